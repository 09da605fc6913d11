"""dlnet: a private Stellar network for decentralised deep-learning training."""
