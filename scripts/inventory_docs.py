#!/usr/bin/env python3
"""Write the README's inventory variable table from the one declaration (dlnet/contract.py).

Only the block between the INVENTORY markers is replaced; tests/unit/test_contract.py fails when it is stale.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dlnet.contract import markdown_table

ROOT = Path(__file__).resolve().parent.parent
BEGIN, END = "<!-- INVENTORY VARIABLES BEGIN (scripts/inventory_docs.py) -->", "<!-- INVENTORY VARIABLES END -->"


def render(text: str) -> str:
    head, rest = text.split(BEGIN, 1)
    return head + BEGIN + "\n" + markdown_table() + "\n" + END + rest.split(END, 1)[1]


def main() -> int:
    readme = ROOT / "README.md"
    readme.write_text(render(readme.read_text()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
