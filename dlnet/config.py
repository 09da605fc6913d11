"""The network description, typed, read from `inventories/<env>/`.

The inventory is the one source of truth. Variables are resolved by Ansible itself
(`ansible-inventory --list`), so the roles and this package can never disagree on precedence
(group_vars < host_vars < extra vars). `Network.from_inventory_json()` builds the model from that
JSON; tests feed it dictionaries directly.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import subprocess
import sys
import unicodedata
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator

from dlnet.chain import ASSET_CODE_RE, MAX_AMOUNT, amount_problem, parse_amount  # noqa: F401 - re-exported
from dlnet.errors import DlnetError, InventoryError

Quality = Literal["CRITICAL", "HIGH", "MEDIUM", "LOW"]

# Inventory groups, one per component. Roles receive the host lists through variables.
GROUPS = {
    "stellar_core": "stellar_core",
    "horizon": "horizon",
    "postgres": "postgres",
    "ipfs": "ipfs_bootstrap",
    "prometheus": "prometheus",
    "grafana": "grafana",
    "services": "dlnet_services",
}

# The participant services and the ports their roles listen on by default (roles/dlnet_<service>).
SERVICE_PORTS = {"federation": 8001, "compliance": 8002, "bridge": 8003}

_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,30}$")
_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,61}[a-z0-9]$")


_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*$")
_HOST_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


def _int(v: object) -> object:
    """Integers as YAML or extra vars (-e port=8000) give them; a boolean is never a number here."""
    if isinstance(v, bool):
        raise ValueError(f"expected a number, got the boolean {v!r} — write a number such as 11625")
    if isinstance(v, str) and v.strip().isdigit():
        return int(v.strip())
    return v


def _safe_name(v: object) -> object:
    """Names that become paths, container names and command arguments."""
    if not isinstance(v, str) or not _NAME.match(v):
        raise ValueError(
            f"expected a name of lowercase letters, digits, '_' or '-' starting with a letter (at most 31;"
            f" it becomes part of paths and container names), got {v!r} — rename it"
        )
    return v


def _address(v: object) -> object:
    """Host addresses reach URLs, peer lists and shell commands: an IPv4 address or a DNS name only."""
    if isinstance(v, str) and _HOSTNAME.match(v):
        try:
            if ipaddress.ip_address(v).version == 4:
                return v
        except ValueError:
            return v  # a host name
    raise ValueError(
        f"expected an IPv4 address or a host name (letters, digits, '-' and '.'), got {v!r}"
        " — set dlnet_address (or ansible_host) to how the other hosts reach it"
    )


Int = Annotated[int, BeforeValidator(_int)]
PortNumber = Annotated[int, BeforeValidator(_int), Field(ge=1, le=65535)]
SafeName = Annotated[str, BeforeValidator(_safe_name)]
Address = Annotated[str, BeforeValidator(_address)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Port = Field(ge=1, le=65535)


class Organisation(_Strict):
    name: SafeName
    home_domain: str
    quality: Quality = "HIGH"
    # Organisations whose validators this organisation's validators trust (their quorum sets list
    # them). Unset: every organisation. An organisation always trusts itself.
    trusts: list[SafeName] | None = None

    @field_validator("home_domain")
    @classmethod
    def _domain(cls, v: str) -> str:
        if not isinstance(v, str) or not _DOMAIN.match(v):
            raise ValueError(f"expected a DNS name such as org1.example.com, got {v!r}")
        return v


class Components(_Strict):
    """Which components this inventory deploys; the roles deploy only what is on."""

    stellar_core: bool = True
    horizon: bool = True
    postgres: bool = True
    ipfs: bool = True
    prometheus: bool = True
    grafana: bool = False
    # The participant services on the hosts of group dlnet_services; dlnet_services_enabled picks which.
    services: bool = False


class ServiceSwitches(_Strict):
    """dlnet_services_enabled: which participant services run on the dlnet_services hosts."""

    federation: bool = False
    compliance: bool = False
    bridge: bool = False


class Exporters(_Strict):
    """roles/dlnet_exporter: the dlnet exporter on the Prometheus hosts, SDF's next to every validator."""

    enabled: bool = True  # dlnet_exporter_enabled
    port: PortNumber = 9470  # dlnet_exporter_port
    core_port_base: PortNumber = 9473  # dlnet_exporter_stellar_core_port_base


class Quorum(_Strict):
    # Validators that may fail at once while the rest still close ledgers (liveness).
    tolerated_failures: Int = Field(default=1, ge=0)
    # stellar-core's UNSAFE_QUORUM: accept quorum sets stellar-core calls unsafe. Never for production.
    unsafe: bool = False


class Host(_Strict):
    name: str
    address: Address  # how the other components reach this host (dlnet_address, default ansible_host)


class Validator(Host):
    organisation: SafeName
    peer_port: PortNumber
    http_port: PortNumber
    history_port: PortNumber
    # SDF's exporter next to this validator: dlnet_exporter_stellar_core_port, else base + index.
    exporter_port: PortNumber | None = None


class HorizonNode(Host):
    port: PortNumber


class PostgresNode(Host):
    port: PortNumber
    # postgres_databases (the postgres role's default: Horizon's only).
    databases: list[str] = ["horizon"]


class IpfsNode(Host):
    swarm_port: PortNumber
    api_port: PortNumber
    gateway_port: PortNumber


class PrometheusNode(Host):
    port: PortNumber


class GrafanaNode(Host):
    port: PortNumber


class ServicesNode(Host):
    # Listen port of each service switched on (dlnet_<service>_port).
    ports: dict[str, PortNumber] = {}


# Day-2 settings (dlnet upgrade / seed / exporter / status): dlnet_dlc, dlnet_upgrade, ...
# Amounts and asset codes: the one validator of the chain layer (dlnet/chain.py).
Flag = Literal["auth_required", "auth_revocable", "auth_clawback_enabled"]


class DlcSettings(_Strict):
    code: str = "DLC"
    supply: str = "1000000000"
    # Unset: the first organisation's home domain (its stellar.toml describes the asset).
    home_domain: str | None = None
    flags: list[Flag] = ["auth_required", "auth_revocable", "auth_clawback_enabled"]
    issuer_starting_balance: str = "100"
    distributor_starting_balance: str = "100"
    # Computing partners that get a funded account with an authorized DLC trustline (keys kept 0600).
    holders: Int = Field(default=0, ge=0, le=100_000)
    holder_starting_balance: str = "50"
    # Holder accounts are created through this many channel accounts in parallel (one transaction per channel
    # in flight, so no sequence number is shared): up to N transactions per ledger. 0 or 1: one at a time.
    channels: Int = Field(default=8, ge=0, le=19)
    channel_starting_balance: str = "30"

    @field_validator("code")
    @classmethod
    def _code(cls, v: str) -> str:
        if not ASSET_CODE_RE.match(v):
            raise ValueError(f"expected 1 to 12 letters or digits such as DLC, got {v!r}")
        return v

    @field_validator(
        "supply",
        "issuer_starting_balance",
        "distributor_starting_balance",
        "holder_starting_balance",
        "channel_starting_balance",
        mode="before",
    )
    @classmethod
    def _amount(cls, v: object) -> str:
        text = str(v).strip()
        if amount_problem(text) is not None:
            raise ValueError(f"expected a positive amount with at most 7 decimals, such as 1000.5, got {v!r}")
        return text

    @field_validator("home_domain")
    @classmethod
    def _domain(cls, v: str | None) -> str | None:
        if v is not None and not (0 < len(v) <= 32 and _DOMAIN.match(v)):
            raise ValueError(
                f"expected a DNS name of at most 32 characters (Stellar's limit) such as org1.example.com, got {v!r}"
            )
        return v


class UpgradeSettings(_Strict):
    # What `dlnet upgrade` with no value flags applies (unset: leave as is).
    protocol: Int | None = Field(default=None, ge=1)
    base_fee: Int | None = Field(default=None, ge=1)
    base_reserve: Int | None = Field(default=None, ge=1)
    max_tx_set_size: Int | None = Field(default=None, ge=1)
    lead_seconds: Int = Field(default=10, ge=0, le=3600)
    deadline_seconds: Int = Field(default=120, ge=1, le=86400)


class Day2(_Strict):
    dlc: DlcSettings = DlcSettings()
    upgrade: UpgradeSettings = UpgradeSettings()
    exporter_port: PortNumber = 9470
    exporter_listen: Address = "127.0.0.1"
    admin_timeout_seconds: float = Field(default=2.0, gt=0, le=60)


_DAY2_VARS = {
    "dlc": "dlnet_dlc",
    "upgrade": "dlnet_upgrade",
    "exporter_port": "dlnet_exporter_port",
    "exporter_listen": "dlnet_exporter_listen",
    "admin_timeout_seconds": "dlnet_admin_timeout_seconds",
}


class Network(_Strict):
    env: SafeName
    passphrase: str = Field(min_length=1)
    organisations: list[Organisation] = Field(min_length=1)
    components: Components = Components()
    quorum: Quorum = Quorum()
    accelerate_time: bool = False
    stellar_core_version: str
    horizon_version: str
    # dlnet_upgrade.protocol: where the operator means to take the network (None: the core's highest).
    upgrade_protocol: int | None = Field(default=None, ge=1)
    validators: list[Validator] = []
    horizon: list[HorizonNode] = []
    postgres: list[PostgresNode] = []
    ipfs: list[IpfsNode] = []
    prometheus: list[PrometheusNode] = []
    grafana: list[GrafanaNode] = []
    exporters: Exporters = Exporters()
    services_enabled: ServiceSwitches = ServiceSwitches()
    services: list[ServicesNode] = []
    day2: Day2 = Day2()
    inventory: str = ""

    @field_validator("passphrase")
    @classmethod
    def _passphrase(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("expected a non-empty network passphrase, got only blanks")
        bad = sorted({f"U+{ord(c):04X}" for c in v if unicodedata.category(c) == "Cc"})
        if bad:
            raise ValueError(
                f"expected printable text, got control characters {', '.join(bad)} (they change what stellar-core"
                " and Horizon read) — remove them"
            )
        return v

    @field_validator("validators", "horizon", "postgres", "ipfs", "prometheus", "grafana", "services")
    @classmethod
    def _host_names(cls, v: list[Host]) -> list[Host]:
        for h in v:
            if not _HOST_NAME.match(h.name):
                raise ValueError(
                    f"host name {h.name!r}: expected letters, digits, '_', '.' or '-' (it becomes part of container"
                    " names and paths) — rename the host"
                )
        return v

    @field_validator("stellar_core_version", "horizon_version")
    @classmethod
    def _version(cls, v: str) -> str:
        if not re.match(r"^\d+\.\d+\.\d+$", v):
            raise ValueError(f"expected a version MAJOR.MINOR.PATCH such as 27.1.0, got {v!r}")
        return v

    def organisation(self, name: str) -> Organisation | None:
        return next((o for o in self.organisations if o.name == name), None)

    @property
    def stellar_core_major(self) -> int:
        return int(self.stellar_core_version.split(".")[0])

    @classmethod
    def from_inventory_json(cls, data: dict[str, Any], inventory: str = "") -> Network:
        """Build the model from `ansible-inventory --list` output; raise InventoryError listing problems."""
        hostvars: dict[str, dict[str, Any]] = data.get("_meta", {}).get("hostvars", {})

        def hosts(group: str) -> list[str]:
            return _group_hosts(data, group)

        # Inventory-wide values live in group_vars/all: any host carries them. An inventory without
        # hosts still has its group_vars, which ansible-inventory does not show: say so plainly.
        every = sorted({h for g in GROUPS.values() for h in hosts(g)})
        if not every:
            raise InventoryError(
                [
                    f"{inventory or 'inventory'}: no hosts in any of the groups {', '.join(GROUPS.values())}"
                    " — add at least one host, as in inventories/sample/hosts.yml"
                ]
            )
        common = hostvars.get(every[0], {})

        def host(name: str, **fields: str) -> dict[str, Any]:
            hv = hostvars.get(name, {})
            out: dict[str, Any] = {"name": name, "address": hv.get("dlnet_address", hv.get("ansible_host", name))}
            for field, var in fields.items():
                out[field] = hv.get(var)
            return out

        switches = common.get("dlnet_services_enabled", {})
        raw: dict[str, Any] = {
            "env": common.get("dlnet_env", Path(inventory).name or "default"),
            "passphrase": common.get("dlnet_network_passphrase", ""),
            "organisations": common.get("dlnet_organisations", []),
            "components": common.get("dlnet_components", {}),
            "quorum": common.get("dlnet_quorum", {}),
            "accelerate_time": common.get("dlnet_testing_accelerate_time", False),
            "stellar_core_version": _str(common.get("stellar_core_version", "")),
            "horizon_version": _str(common.get("horizon_version", "")),
            "upgrade_protocol": (common.get("dlnet_upgrade") or {}).get("protocol"),
            "validators": [
                host(
                    n,
                    organisation="stellar_core_organisation",
                    peer_port="stellar_core_peer_port",
                    http_port="stellar_core_http_port",
                    history_port="stellar_core_history_port",
                    exporter_port="dlnet_exporter_stellar_core_port",
                )
                for n in hosts(GROUPS["stellar_core"])
            ],
            "horizon": [host(n, port="horizon_port") for n in hosts(GROUPS["horizon"])],
            "postgres": [
                host(n, port="postgres_port")
                | {"databases": hostvars.get(n, {}).get("postgres_databases") or ["horizon"]}
                for n in hosts(GROUPS["postgres"])
            ],
            "ipfs": [
                host(
                    n,
                    swarm_port="ipfs_bootstrap_swarm_port",
                    api_port="ipfs_bootstrap_api_port",
                    gateway_port="ipfs_bootstrap_gateway_port",
                )
                for n in hosts(GROUPS["ipfs"])
            ],
            "prometheus": [host(n, port="prometheus_port") for n in hosts(GROUPS["prometheus"])],
            "grafana": [host(n, port="grafana_port") for n in hosts(GROUPS["grafana"])],
            "exporters": {k: common[var] for k, var in _EXPORTER_VARS.items() if var in common},
            "services_enabled": switches,
            "services": [
                {
                    **host(n),
                    "ports": {
                        svc: hostvars.get(n, {}).get(f"dlnet_{svc}_port", default)
                        for svc, default in SERVICE_PORTS.items()
                        if isinstance(switches, dict) and switches.get(svc) is True
                    },
                }
                for n in hosts(GROUPS["services"])
            ],
            "day2": {field: common[var] for field, var in _DAY2_VARS.items() if var in common},
            "inventory": inventory,
        }
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            # dict.fromkeys: one line per problem even when two fields read the same variable.
            raise InventoryError(list(dict.fromkeys(_explain(e, raw, inventory) for e in exc.errors()))) from None


# What each model field is called in the inventory, so messages name what the operator edits.
_INVENTORY_NAMES = {
    "env": "dlnet_env",
    "passphrase": "dlnet_network_passphrase",
    "organisations": "dlnet_organisations",
    "components": "dlnet_components",
    "services_enabled": "dlnet_services_enabled",
    "quorum": "dlnet_quorum",
    "accelerate_time": "dlnet_testing_accelerate_time",
    "peer_port": "stellar_core_peer_port",
    "http_port": "stellar_core_http_port",
    "history_port": "stellar_core_history_port",
    "organisation": "stellar_core_organisation",
    "exporter_port": "dlnet_exporter_stellar_core_port",
}
# Where the exporters' fields come from (roles/dlnet_exporter's variables).
_EXPORTER_VARS = {
    "enabled": "dlnet_exporter_enabled",
    "port": "dlnet_exporter_port",
    "core_port_base": "dlnet_exporter_stellar_core_port_base",
}
_HOST_GROUPS = {"validators", "horizon", "postgres", "ipfs", "prometheus", "grafana", "services"}
_HOST_FIELD_VARS = {
    "horizon": "horizon_",
    "postgres": "postgres_",
    "prometheus": "prometheus_",
    "grafana": "grafana_",
    "ipfs": "ipfs_bootstrap_",
}


def _explain(err: Any, raw: dict[str, Any], inventory: str) -> str:
    loc = list(err["loc"])
    where: str
    if loc and loc[0] in _HOST_GROUPS and len(loc) >= 3 and isinstance(loc[1], int):
        group, idx, field = loc[0], loc[1], str(loc[2])
        hostname = raw[group][idx]["name"]
        if field == "address":
            var = "dlnet_address"
        elif group == "validators":
            var = _INVENTORY_NAMES.get(field)
        elif group == "services":
            var = f"dlnet_{loc[3]}_port" if field == "ports" and len(loc) > 3 else field
        else:
            var = _HOST_FIELD_VARS[group] + field
        where = f"host {hostname}: {var or field}"
    elif len(loc) >= 2 and loc[0] == "day2":
        where = ".".join([_DAY2_VARS.get(str(loc[1]), str(loc[1])), *[str(p) for p in loc[2:]]])
    elif len(loc) == 2 and loc[0] == "exporters":
        where = _EXPORTER_VARS.get(str(loc[1]), str(loc[1]))
    else:
        top = str(loc[0]) if loc else "?"
        where = ".".join([_INVENTORY_NAMES.get(top, top), *[str(p) for p in loc[1:]]])
    got = err.get("input")
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "missing" or got is None:
        msg = "missing — set it in the inventory (see inventories/sample/ for every knob, commented)"
    elif err["type"] == "extra_forbidden":
        msg = f"unknown key (got {got!r}) — check its spelling against inventories/sample/"
    elif "got" not in msg:
        msg = f"{msg}, got {got!r}"
    if " — " not in msg:
        msg += " — fix it in the inventory (inventories/sample/ documents every knob)"
    return f"{inventory or 'inventory'}: {where}: {msg}"


def _str(v: object) -> object:
    """Versions may be written unquoted (27.1 is a float in YAML); other types stay as given, to be refused."""
    return str(v) if isinstance(v, (int, float, str)) and not isinstance(v, bool) else v


def _group_hosts(data: dict[str, Any], group: str) -> list[str]:
    """Hosts of a group including its children, in inventory order."""
    out: list[str] = []
    node = data.get(group, {})
    out.extend(node.get("hosts", []))
    for child in node.get("children", []):
        out.extend(h for h in _group_hosts(data, child) if h not in out)
    return out


def ansible_inventory_json(inventory: str | Path, extra_vars: list[str] | None = None) -> dict[str, Any]:
    """Run `ansible-inventory --list` (from this interpreter's environment) and return its JSON."""
    path = Path(inventory)
    if not path.exists():
        raise DlnetError(f"inventory {inventory} does not exist — expected a directory such as inventories/local")
    exe = Path(sys.executable).parent / "ansible-inventory"
    cmd = [str(exe) if exe.exists() else (shutil.which("ansible-inventory") or "ansible-inventory")]
    cmd += ["-i", str(path), "--list"]
    for ev in extra_vars or []:
        cmd += ["-e", ev]
    env = {**os.environ, "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false", "ANSIBLE_NOCOLOR": "1"}
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120, check=False)
    except FileNotFoundError:
        raise DlnetError("ansible-inventory not found — run `make venv` (installs ansible-core)") from None
    if proc.returncode != 0:
        detail = proc.stderr.strip().splitlines()[-1:] or ["no output"]
        raise DlnetError(f"ansible-inventory could not read {inventory}: {detail[0]}")
    return json.loads(proc.stdout)


def load_network(
    inventory: str | Path, extra_vars: list[str] | None = None, inventory_json: str | None = None
) -> Network:
    """Read the network from an inventory, or from JSON of the same shape (`-` = stdin).

    Playbooks pass the variables exactly as the play resolved them (extra vars included) through
    stdin, so nothing secret such as the passphrase appears in a command line.
    """
    from dlnet.contract import scan  # the raw files first: YAML errors with file and line, unknown keys

    raw_problems = scan(inventory)
    if raw_problems:
        raise InventoryError(raw_problems)
    if inventory_json is not None:
        text = sys.stdin.read() if inventory_json == "-" else Path(inventory_json).read_text()
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DlnetError(
                f"inventory JSON is not valid JSON: {exc} — expected `ansible-inventory --list` output"
            ) from None
        return Network.from_inventory_json(data, str(inventory))
    return Network.from_inventory_json(ansible_inventory_json(inventory, extra_vars), str(inventory))
