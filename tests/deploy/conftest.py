"""The deployed test network lives in tests/network.py (a plugin of tests/conftest.py), so every test
folder shares the one session deployment. Re-exported names for older imports; no fixture here, or
pytest would make a second session network."""

from tests.network import ENV, INVENTORY, STATE, Deployment, containers, recap, stellar_artifacts, wait_for

__all__ = ["ENV", "INVENTORY", "STATE", "Deployment", "containers", "recap", "stellar_artifacts", "wait_for"]
