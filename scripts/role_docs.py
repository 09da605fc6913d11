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


def table(role: Path, entry: str = "main") -> str:
    spec = yaml.safe_load((role / "meta" / "argument_specs.yml").read_text())["argument_specs"][entry]["options"]
    defaults_file = role / "defaults" / f"{entry}.yml"
    defaults = (yaml.safe_load(defaults_file.read_text()) or {}) if defaults_file.exists() else {}
    rows = ["| name | type | default | description |", "|---|---|---|---|"]
    for name, opt in spec.items():
        if opt.get("description", "").startswith("Inventory global"):
            continue  # generated from dlnet/contract.py; documented in the README's inventory table
        default = "**required**" if opt.get("required") else f"`{defaults.get(name)!s}`".replace("|", "\\|")
        rows.append(f"| `{name}` | {opt.get('type', 'str')} | {default} | {opt.get('description', '')} |")
    return "\n".join(rows)


def markers(entry: str) -> tuple[str, str]:
    """One table per entry point; a role with only `main` keeps the plain markers."""
    if entry == "main":
        return BEGIN, END
    return BEGIN.replace("BEGIN", f"BEGIN {entry}"), END.replace("END", f"END {entry}")


def documented_entries(role: Path) -> list[str]:
    """Entry points with their own knobs: `main`, and any with its own defaults/<entry>.yml (dlnet_service's
    federation/compliance/bridge). Others (dlnet_exporter's stellar_core) share main's defaults and table."""
    entries = yaml.safe_load((role / "meta" / "argument_specs.yml").read_text())["argument_specs"]
    return [e for e in entries if e == "main" or (role / "defaults" / f"{e}.yml").is_file()]


def main() -> int:
    for role in sorted((ROOT / "roles").iterdir()):
        readme = role / "README.md"
        if not (role / "meta" / "argument_specs.yml").exists() or not readme.exists():
            continue
        text = readme.read_text()
        for entry in documented_entries(role):
            begin, end = markers(entry)
            if begin not in text:
                print(f"{readme}: no {begin} marker", file=sys.stderr)
                return 1
            head, rest = text.split(begin, 1)
            text = head + begin + "\n" + table(role, entry) + "\n" + end + rest.split(end, 1)[1]
        readme.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
