"""The inventory contract: every variable the kit reads from an inventory, declared once.

Each entry gives the variable's scope (global: group_vars/all; host: a host or its group), its type, its
default, its allowed values and the sentence that documents it. From this declaration come the checks of
the raw inventory files (`scan`: YAML errors with file and line, keys defined twice, unknown keys with the
nearest known name), the README's variable table (`markdown_table`, checked by tests/unit/test_contract.py)
and the list of variables deploy/group_vars/all/kit.yml hands to Python (checked by the same test). The typed
model that enforces types and values is dlnet.config.Network.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


@dataclass(frozen=True)
class Var:
    name: str
    scope: str  # "global" (group_vars/all) or "host" (a host, or a group's vars)
    type: str
    default: str
    doc: str
    allowed: str = ""


_PORT = "port (1-65535, not a boolean)"
VARIABLES: tuple[Var, ...] = (
    Var(
        "dlnet_env",
        "global",
        "name",
        "the inventory directory's name",
        "Environment name; prefixes containers (dlnet-<env>-*), data directories and the controller's state.",
        "[a-z][a-z0-9_-]{0,30}",
    ),
    Var(
        "dlnet_network_passphrase",
        "global",
        "str",
        "**required**",
        "The network passphrase every component signs with; changing it means a new network.",
        "non-empty, no control characters",
    ),
    Var(
        "dlnet_organisations",
        "global",
        "list",
        "**required**",
        "Organisations: name, home_domain, quality "
        "(CRITICAL/HIGH/MEDIUM/LOW, default HIGH) and optional trusts (names).",
        "at least one",
    ),
    Var(
        "dlnet_components",
        "global",
        "dict",
        "all on but grafana and services",
        "Which components this inventory deploys.",
        "stellar_core, horizon, postgres, ipfs, prometheus, grafana, services: bool",
    ),
    Var(
        "dlnet_quorum",
        "global",
        "dict",
        "{tolerated_failures: 1, unsafe: false}",
        "Validators that may fail at once, and stellar-core's UNSAFE_QUORUM (never in production).",
        "tolerated_failures >= 0",
    ),
    Var(
        "dlnet_testing_accelerate_time",
        "global",
        "bool",
        "false",
        "1 s ledgers and 8-ledger checkpoints (testing only).",
    ),
    Var(
        "stellar_core_version",
        "global",
        "version",
        "**required**",
        "stellar-core release the artifacts are.",
        "19.x to 27.x, MAJOR.MINOR.PATCH",
    ),
    Var(
        "horizon_version",
        "global",
        "version",
        "**required**",
        "Horizon release the artifacts are.",
        "MAJOR.MINOR.PATCH",
    ),
    Var(
        "dlnet_services_enabled",
        "global",
        "dict",
        "all false",
        "Which participant services run on the dlnet_services hosts.",
        "federation, compliance, bridge: bool",
    ),
    Var("dlnet_exporter_enabled", "global", "bool", "true", "Run the dlnet exporter and SDF's stellar-core exporters."),
    Var("dlnet_exporter_port", "global", "port", "9470", "Port of the dlnet exporter on the Prometheus hosts.", _PORT),
    Var(
        "dlnet_exporter_listen",
        "global",
        "address",
        "127.0.0.1",
        "Address the dlnet exporter listens on.",
        "IPv4 address or host name",
    ),
    Var(
        "dlnet_exporter_stellar_core_port_base",
        "global",
        "port",
        "9473",
        "First port of SDF's exporters, one per validator in inventory order.",
        _PORT,
    ),
    Var(
        "dlnet_dlc",
        "global",
        "dict",
        "DLC, supply 1000000000",
        "The Deep Learning Coin: code, supply, home_domain, flags, starting balances, holders, channels.",
        "see inventories/sample/",
    ),
    Var(
        "dlnet_upgrade",
        "global",
        "dict",
        "lead 10 s, deadline 120 s",
        "What `dlnet upgrade` applies: "
        "protocol, base_fee, base_reserve, max_tx_set_size, lead_seconds, deadline_seconds.",
    ),
    Var(
        "dlnet_admin_timeout_seconds",
        "global",
        "float",
        "2",
        "Timeout of each stellar-core admin request.",
        "0 < t <= 60",
    ),
    Var(
        "dlnet_address",
        "host",
        "address",
        "ansible_host, else the host name",
        "How the other components reach this host.",
        "IPv4 address or host name",
    ),
    Var(
        "ansible_host",
        "host",
        "address",
        "the host name",
        "Where Ansible connects to (the address fallback).",
        "IPv4 address or host name",
    ),
    Var(
        "stellar_core_organisation",
        "host",
        "name",
        "**required** on validators",
        "The organisation (name in dlnet_organisations) this validator belongs to.",
    ),
    Var("stellar_core_peer_port", "host", "port", "**required** on validators", "stellar-core peer port.", _PORT),
    Var(
        "stellar_core_http_port",
        "host",
        "port",
        "**required** on validators",
        "stellar-core admin HTTP port (loopback on the host).",
        _PORT,
    ),
    Var(
        "stellar_core_history_port",
        "host",
        "port",
        "**required** on validators",
        "Port of this validator's history archive (HTTP).",
        _PORT,
    ),
    Var(
        "dlnet_exporter_stellar_core_port",
        "host",
        "port",
        "base + index",
        "Port of SDF's exporter next to this validator.",
        _PORT,
    ),
    Var("horizon_port", "host", "port", "8000", "Horizon's HTTP port.", _PORT),
    Var("postgres_port", "host", "port", "5432", "PostgreSQL's port.", _PORT),
    Var("ipfs_bootstrap_swarm_port", "host", "port", "4001", "kubo swarm port (private swarm, TCP).", _PORT),
    Var("ipfs_bootstrap_api_port", "host", "port", "5001", "kubo RPC port.", _PORT),
    Var("ipfs_bootstrap_gateway_port", "host", "port", "8080", "kubo gateway port.", _PORT),
    Var("prometheus_port", "host", "port", "9090", "Prometheus's port.", _PORT),
    Var("grafana_port", "host", "port", "3000", "Grafana's port.", _PORT),
    Var("dlnet_federation_port", "host", "port", "8001", "Federation service port.", _PORT),
    Var("dlnet_compliance_port", "host", "port", "8002", "Compliance service port.", _PORT),
    Var("dlnet_bridge_port", "host", "port", "8003", "Bridge service port.", _PORT),
)
BY_NAME = {v.name: v for v in VARIABLES}
KIT_ROOT = Path(__file__).resolve().parent.parent
# Prefixes that belong to Ansible itself or to the vault indirection (vault_<role>_<secret>).
_FOREIGN_PREFIXES = ("ansible_", "vault_")
_GROUP_KEYS = {"vars", "hosts", "children"}


def role_variables(root: Path = KIT_ROOT) -> set[str]:
    """Every option a role declares in meta/argument_specs.yml (knobs an inventory may override)."""
    out: set[str] = set()
    for spec in sorted((root / "roles").glob("*/meta/argument_specs.yml")):
        data = yaml.safe_load(spec.read_text()) or {}
        for entry in (data.get("argument_specs") or {}).values():
            out.update((entry or {}).get("options") or {})
    return out


def known_names(root: Path = KIT_ROOT) -> set[str]:
    return set(BY_NAME) | role_variables(root)


class _Loader(yaml.SafeLoader):
    """A YAML loader that refuses a key defined twice (PyYAML and Ansible keep the last silently)."""


def _mapping(loader: _Loader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"{key!r} is defined twice (first on line {seen[key] + 1}); the second would silently replace the"
                " first — keep one",
                key_node.start_mark,
            )
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node, deep=deep)  # type: ignore[no-untyped-call]


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)
for _tag in ("!vault", "!unsafe"):  # Ansible's tags: values we never read here
    _Loader.add_constructor(_tag, lambda loader, node: "<ansible tagged value>")


def load_yaml(path: Path) -> Any:
    """Parse one inventory file; YAMLError names the file and line."""
    return yaml.load(path.read_text(), Loader=_Loader)  # _Loader derives from SafeLoader


def _files(inv: Path) -> tuple[list[Path], list[Path], list[Path]]:
    if inv.is_file():
        hosts, base = [inv], inv.parent
    else:
        hosts = [p for p in (inv / "hosts.yml", inv / "hosts.yaml") if p.is_file()]
        base = inv

    def tree(sub: str) -> list[Path]:
        d = base / sub
        return sorted(p for ext in ("*.yml", "*.yaml") for p in [*d.glob(ext), *d.glob("*/" + ext)])

    return hosts, tree("group_vars"), tree("host_vars")


def scan(inventory: str | Path, root: Path = KIT_ROOT) -> list[str]:
    """Problems in the raw inventory files, one line each: YAML errors (file:line), keys defined twice,
    unknown variables with the nearest known name, misspelt group keys."""
    inv = Path(inventory)
    if not inv.exists():
        return []
    known = known_names(root)
    out: list[str] = []

    def unknown(where: str, key: object) -> None:
        name = str(key)
        if name in known or name.startswith(_FOREIGN_PREFIXES):
            return
        near = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
        hint = f"did you mean {near[0]}?" if near else "see inventories/sample/ for every knob, commented"
        out.append(
            f"{where}: unknown variable {name!r} — expected a variable the kit declares, got an unknown name — {hint}"
        )

    def load(path: Path) -> Any:
        try:
            return load_yaml(path)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
            problem = str(exc.problem or exc)
            if "defined twice" in problem:
                out.append(f"{path}{line}: {problem}")
            else:
                out.append(f"{path}{line}: not valid YAML — {problem} — fix the file at that line")
        except yaml.YAMLError as exc:
            out.append(f"{path}: not valid YAML — {exc} — fix the file")
        return None

    def group(path: Path, name: str, node: Any) -> None:
        if node is None:
            return
        if not isinstance(node, dict):
            out.append(f"{path}: group {name}: expected a mapping of vars/hosts/children, got {node!r} — fix it")
            return
        for k in node:
            if k not in _GROUP_KEYS:
                near = difflib.get_close_matches(str(k), sorted(_GROUP_KEYS), n=1)
                out.append(
                    f"{path}: group {name}: unknown key {k!r} — expected vars, hosts or children"
                    + (f" — did you mean {near[0]}?" if near else "")
                )
        for k in (node.get("vars") or {}) if isinstance(node.get("vars"), dict) else {}:
            unknown(f"{path}: group {name} vars", k)
        hosts = node.get("hosts") or {}
        if isinstance(hosts, dict):
            for host, hv in hosts.items():
                for k in hv or {} if isinstance(hv, dict) else {}:
                    unknown(f"{path}: host {host}", k)
        children = node.get("children") or {}
        if isinstance(children, dict):
            for child, sub in children.items():
                group(path, str(child), sub)

    hosts, group_vars, host_vars = _files(inv)
    for path in hosts:
        data = load(path)
        if isinstance(data, dict):
            for name, node in data.items():
                group(path, str(name), node)
    for path in [*group_vars, *host_vars]:
        data = load(path)
        if data is None:
            continue
        if not isinstance(data, dict):
            out.append(f"{path}: expected a mapping of variables, got {type(data).__name__} — fix the file")
            continue
        for k in data:
            unknown(str(path), k)
    return out


def markdown_table(scope: str | None = None) -> str:
    rows = ["| variable | scope | type | default | allowed | description |", "|---|---|---|---|---|---|"]
    for v in VARIABLES:
        if scope is None or v.scope == scope:
            allowed = v.allowed.replace("|", "\\|")
            rows.append(f"| `{v.name}` | {v.scope} | {v.type} | {v.default} | {allowed} | {v.doc} |")
    return "\n".join(rows)
