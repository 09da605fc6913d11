"""Shared test setup: where the reference records are, and isolated state for every test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Test doubles as fixtures (tests/doubles/fixtures.py); the one deployed test network (tests/network.py).
pytest_plugins = ["tests.doubles.fixtures", "tests.network"]

ROOT = Path(__file__).resolve().parent.parent
# shared/reference sits beside the repository (CI copies shared/ next to the clone).
REFERENCE = (ROOT.parent / "shared" / "reference" / "stellar-core-19.14").resolve()
if not REFERENCE.is_dir():  # worktrees and clones elsewhere: the workplace's copy
    REFERENCE = Path("/work/shared/reference/stellar-core-19.14")


@pytest.fixture
def reference() -> Path:
    if not REFERENCE.is_dir():
        pytest.fail(f"reference records missing at {REFERENCE}: shared/ must sit beside the repository")
    return REFERENCE


def skip_or_fail(reason: str, *, module: bool = False) -> None:
    """Skip a test that needs what this machine lacks, with one line; CI (DLNET_REQUIRE_STELLAR=1, set by
    .ci/run when the real binaries are present) turns that skip into a failure: nothing may skip there."""
    if os.environ.get("DLNET_REQUIRE_STELLAR") == "1":
        pytest.fail(f"required in CI: {reason}", pytrace=False)
    pytest.skip(reason, allow_module_level=module)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `drill` stop, wipe and kill parts of the shared test network: they run after every other
    test of the session (a stable sort keeps everything else in its order)."""
    items.sort(key=lambda item: item.get_closest_marker("drill") is not None)
