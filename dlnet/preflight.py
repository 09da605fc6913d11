"""Preflight: every check that must pass before a deployment touches anything.

Each check returns problems as single lines: what is wrong, expected vs got, how to fix. The same
function serves `dlnet check`, `make check` and the first play of deploy/site.yml.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from dlnet import compat, quorum
from dlnet.artifacts import binary_version
from dlnet.config import Network


@dataclass(frozen=True)
class Artifacts:
    """Binaries the operator brings (air-gapped installs) or fetched from SDF (see README)."""

    stellar_core: Path
    horizon: Path

    @classmethod
    def resolve(cls, root: Path | None = None) -> Artifacts:
        base = Path(os.environ.get("DLNET_ARTIFACTS_DIR", root or Path.cwd() / "artifacts"))
        return cls(
            stellar_core=Path(os.environ.get("STELLAR_CORE_BIN") or base / "stellar-core"),
            horizon=Path(os.environ.get("HORIZON_BIN") or base / "stellar-horizon"),
        )


def state_dir(env: str) -> Path:
    """Controller-side state of one environment: secrets (0600) and what was deployed."""
    root = Path(os.environ.get("DLNET_STATE_DIR", Path.home() / ".local" / "state" / "dlnet"))
    return root / env


def passphrase_digest(passphrase: str) -> str:
    return hashlib.sha256(passphrase.encode()).hexdigest()


def qsets_for(net: Network) -> dict[str, quorum.QSet]:
    """Each validator's quorum set as stellar-core will generate it from the config we write."""
    org_of = {o.name: o for o in net.organisations}
    out: dict[str, quorum.QSet] = {}
    for v in net.validators:
        org = org_of[v.organisation]
        trusted = {org.name, *(org.trusts if org.trusts is not None else org_of)}
        members = [
            quorum.Member(w.name, w.organisation, org_of[w.organisation].quality)
            for w in net.validators
            if w.organisation in trusted
        ]
        out[v.name] = quorum.generate_qset(members)
    return out


def check_network(
    net: Network, artifacts: Artifacts | None = None, *, reset: bool = False, check_artifacts: bool = True
) -> list[str]:
    inv = net.inventory or "inventory"
    problems: list[str] = []

    def bad(msg: str) -> None:
        problems.append(f"{inv}: {msg}")

    problems += [f"{inv}: {p}" for p in _check_components(net)]
    problems += [f"{inv}: {p}" for p in _check_names_and_ports(net)]
    if net.components.stellar_core and net.validators:
        horizon = net.horizon_version if net.components.horizon and net.horizon else None
        problems += [f"{inv}: {p}" for p in compat.check_pair(net.stellar_core_version, horizon, net.upgrade_protocol)]
        problems += [f"{inv}: {p}" for p in quorum_gate(net)[0]]
    elif net.validators:  # stellar-core off: its hosts must still name known organisations
        problems += [f"{inv}: {p}" for p in _check_organisations(net) if "is not in dlnet_organisations" in p]
    if check_artifacts:
        problems += [f"{inv}: {p}" for p in _check_artifacts(net, artifacts or Artifacts.resolve())]
    problems += [f"{inv}: {p}" for p in _check_state(net, reset)]
    return problems


def _check_components(net: Network) -> list[str]:
    out = []
    c = net.components
    wanted = {
        "stellar_core": (c.stellar_core, net.validators, "stellar_core"),
        "horizon": (c.horizon, net.horizon, "horizon"),
        "postgres": (c.postgres, net.postgres, "postgres"),
        "ipfs": (c.ipfs, net.ipfs, "ipfs_bootstrap"),
        "prometheus": (c.prometheus, net.prometheus, "prometheus"),
        "grafana": (c.grafana, net.grafana, "grafana"),
        "services": (c.services, net.services, "dlnet_services"),
    }
    for name, (on, hosts, group) in wanted.items():
        if on and not hosts:
            out.append(
                f"dlnet_components.{name} is on but group '{group}' has no host — add a host to '{group}'"
                f" or set dlnet_components.{name}: false"
            )
    if c.horizon and not c.stellar_core:
        out.append(
            "dlnet_components.horizon needs stellar_core (captive core follows our validators)"
            " — switch stellar_core on or horizon off"
        )
    if c.horizon and not c.postgres:
        out.append("dlnet_components.horizon needs postgres (Horizon's database) — switch postgres on")
    if c.services and not c.postgres:
        out.append("dlnet_components.services needs postgres (the services' database) — switch postgres on")
    if c.services and c.ipfs is False and net.services_enabled.compliance:
        out.append("dlnet_services_enabled.compliance needs ipfs (KYC records live on the swarm) — switch ipfs on")
    if len(net.postgres) > 1:
        out.append(f"group 'postgres': expected 1 host, got {len(net.postgres)} — the kit runs one database host")
    return out


def _check_names_and_ports(net: Network) -> list[str]:
    out = []
    seen: dict[tuple[str, int], list[str]] = defaultdict(list)
    c = net.components
    listeners = []
    if c.stellar_core:
        for v in net.validators:
            listeners += [
                (v.address, v.peer_port, f"{v.name} stellar_core_peer_port"),
                (v.address, v.http_port, f"{v.name} stellar_core_http_port"),
                (v.address, v.history_port, f"{v.name} stellar_core_history_port"),
            ]
    if c.horizon:
        listeners += [(h.address, h.port, f"{h.name} horizon_port") for h in net.horizon]
    if c.postgres:
        listeners += [(p.address, p.port, f"{p.name} postgres_port") for p in net.postgres]
    if c.ipfs:
        for n in net.ipfs:
            listeners += [
                (n.address, n.swarm_port, f"{n.name} ipfs_bootstrap_swarm_port"),
                (n.address, n.api_port, f"{n.name} ipfs_bootstrap_api_port"),
                (n.address, n.gateway_port, f"{n.name} ipfs_bootstrap_gateway_port"),
            ]
    if c.prometheus:
        listeners += [(p.address, p.port, f"{p.name} prometheus_port") for p in net.prometheus]
    if c.grafana:
        listeners += [(g.address, g.port, f"{g.name} grafana_port") for g in net.grafana]
    if net.exporters.enabled:
        if c.prometheus:  # the dlnet exporter runs on the Prometheus hosts
            listeners += [(p.address, net.exporters.port, f"{p.name} dlnet_exporter_port") for p in net.prometheus]
        if c.stellar_core:  # SDF's exporter next to each validator (roles/dlnet_exporter, same numbering)
            for i, v in enumerate(net.validators):
                port = v.exporter_port or net.exporters.core_port_base + i
                listeners.append((v.address, port, f"{v.name} stellar-core exporter port"))
    if c.services:
        for h in net.services:
            listeners += [(h.address, port, f"{h.name} dlnet_{svc}_port") for svc, port in h.ports.items()]
    for addr, port, what in listeners:
        seen[(addr, port)].append(what)
    for (addr, port), users in sorted(seen.items()):
        if len(users) > 1:
            out.append(
                f"port {port} on {addr} is used {len(users)} times ({', '.join(users)})"
                " — give each listener its own port"
            )
    for v in net.validators:
        if not re.match(r"^[a-z][a-z0-9-]{0,30}$", v.name):
            out.append(
                f"validator name {v.name!r}: expected lowercase letters, digits and dashes"
                " (it becomes a container and stellar-core NAME) — rename the host"
            )
    domains = [o.home_domain for o in net.organisations]
    for d in sorted({d for d in domains if domains.count(d) > 1}):
        out.append(
            f"dlnet_organisations: home_domain {d} is used by more than one organisation"
            " — each organisation needs its own home domain"
        )
    names = [o.name for o in net.organisations]
    for n in sorted({n for n in names if names.count(n) > 1}):
        out.append(f"dlnet_organisations: organisation name {n} appears twice — names must be unique")
    return out


def _check_organisations(net: Network) -> list[str]:
    out = []
    known = {o.name for o in net.organisations}
    by_org: dict[str, list[str]] = defaultdict(list)
    for v in net.validators:
        if v.organisation not in known:
            out.append(
                f"host {v.name}: stellar_core_organisation {v.organisation!r} is not in dlnet_organisations"
                f" (known: {', '.join(sorted(known)) or 'none'}) — fix the name or add the organisation"
            )
        by_org[v.organisation].append(v.name)
    for o in net.organisations:
        for t in o.trusts or []:
            if t not in known:
                out.append(f"dlnet_organisations: {o.name} trusts unknown organisation {t!r} — fix the name")
        n = len(by_org.get(o.name, []))
        if n == 0:
            out.append(
                f"dlnet_organisations: {o.name} has no validator — add hosts with"
                f" stellar_core_organisation: {o.name} or remove the organisation"
            )
        elif o.quality in ("HIGH", "CRITICAL") and n < 3:
            out.append(
                f"organisation {o.name} ({o.quality}) has {n} validator(s) ({', '.join(by_org[o.name])}): "
                "stellar-core refuses HIGH and CRITICAL organisations with fewer than 3 — add validators"
                " or lower its quality to MEDIUM"
            )
    return out


def quorum_gate(net: Network) -> tuple[list[str], quorum.Analysis | None]:
    """The organisations' checks, then the quorum gate: what `dlnet check` and `dlnet quorum` both run.

    Returns the problems and the analysis (None when the organisations are wrong or nothing to analyse)."""
    if not (net.components.stellar_core and net.validators):
        return [], None
    problems = _check_organisations(net)
    if problems:
        return problems, None
    analysis = quorum.analyse(qsets_for(net))
    return check_quorum(net, analysis), analysis


def check_quorum(net: Network, analysis: quorum.Analysis | None = None) -> list[str]:
    """The quorum safety gate: intersection, stellar-core's own refusal, and the failures to survive."""
    out = []
    qsets = analysis.qsets if analysis else qsets_for(net)
    if not net.quorum.unsafe:
        for v in net.validators:
            q = qsets[v.name]
            if quorum.failure_safety(q) == 0:
                top = q.size
                out.append(
                    f"quorum: validator {v.name} would need {q.threshold} of {top} top-level entries of its "
                    f"quorum set {json.dumps(q.to_json())}: losing any one stops it, so stellar-core computes "
                    "FAILURE_SAFETY 0 and refuses to start ('SCP unsafe'). Use 1 organisation of 3+ validators"
                    " or 4+ organisations; dlnet_quorum.unsafe: true accepts it (never in production)"
                )
                break
    if analysis is None:
        analysis = quorum.analyse(qsets)
    if analysis.disjoint:
        a, b = analysis.disjoint
        out.append(
            f"quorum: no intersection — {{{', '.join(a)}}} and {{{', '.join(b)}}} are both quorums and share no"
            " validator, so they could confirm conflicting ledgers. Make the organisations trust each other"
            " (dlnet_organisations[].trusts) so every quorum overlaps"
        )
    want = net.quorum.tolerated_failures
    if analysis.breaking and analysis.tolerates < want:
        failed, stalled = analysis.breaking
        out.append(
            f"quorum: dlnet_quorum.tolerated_failures is {want} but the network tolerates {analysis.tolerates}:"
            f" if {', '.join(failed)} fail, "
            + (f"{', '.join(stalled)} stop closing ledgers" if stalled else "no validator is left")
            + " — add validators or organisations, or lower tolerated_failures"
        )
    out += [f"quorum: {n}" for n in analysis.notes]
    return out


def _check_artifacts(net: Network, artifacts: Artifacts) -> list[str]:
    out = []
    need = []
    if net.components.stellar_core and net.validators:
        need.append(("stellar-core", artifacts.stellar_core, "STELLAR_CORE_BIN", "stellar_core"))
    if net.components.horizon and net.horizon:
        need.append(("stellar-horizon", artifacts.horizon, "HORIZON_BIN", "horizon"))
    for name, path, env, comp in need:
        if not path.is_file() or not os.access(path, os.X_OK):
            out.append(
                f"artifact {name} missing: expected an executable at {path} — put the binary there, set {env}=,"
                f" or run `make fetch-artifacts` on an internet-connected host (see README); or set"
                f" dlnet_components.{comp}: false"
            )
        else:
            want = net.stellar_core_version if name == "stellar-core" else net.horizon_version
            var = "stellar_core_version" if name == "stellar-core" else "horizon_version"
            got = binary_version(path)
            # stellar-core must match its major (the template follows it); Horizon its release row.
            same = (
                compat.parse(got)[:1] == compat.parse(want)[:1]
                if name == "stellar-core"
                else compat.horizon_release(got) == compat.horizon_release(want)
            ) if compat.parse(got) and compat.parse(want) else True
            if got and not same:
                out.append(
                    f"artifact {path} is {name} {got} but {var} is {want} — supply the matching binary"
                    f" or change {var}"
                )
    return out


def _check_state(net: Network, reset: bool) -> list[str]:
    record = state_dir(net.env) / "network.json"
    if reset or not record.is_file():
        return []
    deployed = json.loads(record.read_text()).get("passphrase_sha256")
    if deployed and deployed != passphrase_digest(net.passphrase):
        return [
            f"dlnet_network_passphrase changed since environment '{net.env}' was deployed (ledger data exists,"
            f" recorded in {record}) — restore the old passphrase, or start a new network with"
            " `make clean ENV=...` (deletes ledgers) or `make up RESET=1`"
        ]
    return []
