"""The training market (paper Sec. 4-6): initiator, partners, validators, fusion, penalties."""
