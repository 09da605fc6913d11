#!/usr/bin/env python3
"""Write each role's README variable table from its defaults and meta/argument_specs.yml.

The prose of a README stays as written; only the block between the VARIABLES markers is replaced.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
BEGIN, END = "<!-- VARIABLES BEGIN (scripts/role_docs.py) -->", "<!-- VARIABLES END -->"


def table(role: Path) -> str:
    spec = yaml.safe_load((role / "meta" / "argument_specs.yml").read_text())["argument_specs"]["main"]["options"]
    defaults_file = role / "defaults" / "main.yml"
    defaults = (yaml.safe_load(defaults_file.read_text()) or {}) if defaults_file.exists() else {}
    rows = ["| name | type | default | description |", "|---|---|---|---|"]
    for name, opt in spec.items():
        default = "**required**" if opt.get("required") else f"`{defaults.get(name)!s}`".replace("|", "\\|")
        rows.append(f"| `{name}` | {opt.get('type', 'str')} | {default} | {opt.get('description', '')} |")
    return "\n".join([BEGIN, *rows, END])


def main() -> int:
    for role in sorted((ROOT / "roles").iterdir()):
        readme = role / "README.md"
        if not (role / "meta" / "argument_specs.yml").exists() or not readme.exists():
            continue
        text = readme.read_text()
        if BEGIN not in text:
            print(f"{readme}: no {BEGIN} marker", file=sys.stderr)
            return 1
        head, rest = text.split(BEGIN, 1)
        tail = rest.split(END, 1)[1]
        readme.write_text(head + table(role) + tail)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
