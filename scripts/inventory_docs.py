#!/usr/bin/env python3
"""Write what derives from the one declaration (dlnet/contract.py): the inventory variable tables of the
README and of inventories/sample/README.md, and each role's meta/argument_specs.yml entries (every entry
point) for the inventory globals the role reads.

Only the blocks between the markers are replaced; tests/unit/test_contract.py fails when one is stale.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import re
import textwrap

from dlnet.contract import VARIABLES, markdown_table

ROOT = Path(__file__).resolve().parent.parent
BEGIN, END = "<!-- INVENTORY VARIABLES BEGIN (scripts/inventory_docs.py) -->", "<!-- INVENTORY VARIABLES END -->"


def render(text: str) -> str:
    head, rest = text.split(BEGIN, 1)
    return head + BEGIN + "\n" + markdown_table() + "\n" + END + rest.split(END, 1)[1]


SPEC_BEGIN = "      # BEGIN inventory globals (scripts/inventory_docs.py, from dlnet/contract.py)"
SPEC_END = "      # END inventory globals"
# Contract types as Ansible argument_specs types.
_SPEC_TYPES = {"name": "str", "str": "str", "list": "list", "dict": "dict", "bool": "bool", "port": "int",
               "address": "str", "version": "str", "float": "float"}
_READ_FROM = ("defaults", "vars", "tasks", "handlers", "templates")
_OPTIONS = re.compile(r"^    options:( &\w+)?$", re.M)


def globals_read(role: Path) -> list[str]:
    """The inventory globals (contract scope "global") a role's files name, in declaration order."""
    text = "\n".join(
        f.read_text(errors="replace")
        for d in _READ_FROM
        for f in sorted((role / d).rglob("*"))
        if f.is_file()
    )
    return [
        v.name
        for v in VARIABLES
        if v.scope == "global"
        and not v.name.startswith(role.name + "_")
        and re.search(rf"(?<![A-Za-z0-9_]){re.escape(v.name)}(?![A-Za-z0-9_])", text)
    ]


def spec_block(role: Path) -> str:
    lines = [SPEC_BEGIN]
    by_name = {v.name: v for v in VARIABLES}
    for name in globals_read(role):
        v = by_name[name]
        lines += [f"      {name}:", f"        type: {_SPEC_TYPES[v.type]}", "        description: >-"]
        lines += ["          " + line for line in textwrap.wrap("Inventory global (README table): " + v.doc, 100)]
    return "\n".join([*lines, SPEC_END]) + "\n"


def render_spec(role: Path, text: str) -> str:
    """The argument_specs text with the generated block first under every entry point's options."""
    while SPEC_BEGIN in text:
        head, rest = text.split(SPEC_BEGIN, 1)
        text = head + rest.split(SPEC_END + "\n", 1)[1]
    matches = list(_OPTIONS.finditer(text))
    if not matches:
        raise SystemExit(f"error: {role}/meta/argument_specs.yml: no `    options:` line for an entry point")
    if not globals_read(role):
        return text
    for m in reversed(matches):
        text = text[: m.end() + 1] + spec_block(role) + text[m.end() + 1 :]
    return text


def spec_files() -> list[Path]:
    return sorted((ROOT / "roles").glob("*/meta/argument_specs.yml"))


TABLES = (ROOT / "README.md", ROOT / "inventories" / "sample" / "README.md")


def main() -> int:
    for readme in TABLES:
        readme.write_text(render(readme.read_text()))
    for spec in spec_files():
        role = spec.parent.parent
        spec.write_text(render_spec(role, spec.read_text()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
