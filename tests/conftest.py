"""Shared test setup: where the reference records are, and isolated state for every test."""

from __future__ import annotations

from pathlib import Path

import pytest

# Test doubles (stellar-core admin, Horizon + ledger) as fixtures: tests/doubles/fixtures.py (issue 3).
pytest_plugins = ["tests.doubles.fixtures"]

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
