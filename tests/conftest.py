"""Shared test setup: where the reference records are, the doubles' fixtures (tests/doubles/) and an isolated
dlnet state directory for every test."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# shared/reference sits beside the repository (CI copies shared/ next to the clone).
REFERENCE = (ROOT.parent / "shared" / "reference" / "stellar-core-19.14").resolve()
if not REFERENCE.is_dir():  # worktrees and clones elsewhere: the workplace's copy
    REFERENCE = Path("/work/shared/reference/stellar-core-19.14")

# The doubles import each other as `doubles.*` (tests/ is a package on main, so put tests/ on the path).
sys.path.insert(0, str(Path(__file__).resolve().parent))
pytest_plugins = ["doubles.fixtures"]


@pytest.fixture
def reference() -> Path:
    if not REFERENCE.is_dir():
        pytest.fail(f"reference records missing at {REFERENCE}: shared/ must sit beside the repository")
    return REFERENCE


@pytest.fixture(autouse=True)
def _isolated_state(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DLNET_STATE_DIR", str(tmp_path_factory.mktemp("state")))
