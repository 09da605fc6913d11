"""Errors the CLI turns into one line and an exit code (see cli.main)."""

from __future__ import annotations


class DlnetError(Exception):
    """An error the operator can act on: what failed, expected vs got, what to try."""

    exit_code = 1

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class InventoryError(DlnetError):
    """The inventory cannot be read or does not describe a valid network."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))
