"""Day-2 CLI tests: every test gets its own dlnet state directory (secrets never land in $HOME)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _isolated_state(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DLNET_STATE_DIR", str(tmp_path_factory.mktemp("state")))
