"""dlnet.quorum against what a real stellar-core 19.14 generated from twenty configs."""

from __future__ import annotations

import itertools
import json
import re
import tomllib
from pathlib import Path

import pytest

from dlnet import quorum
from tests.conftest import REFERENCE

CASES = sorted((REFERENCE / "quorum-configs").glob("*.json"))


def _members(cfg: dict) -> list[quorum.Member]:
    """Validators as stellar-core sees them: the listed ones plus the node itself (named by key prefix)."""
    quality = {d["HOME_DOMAIN"]: d.get("QUALITY", "HIGH") for d in cfg.get("HOME_DOMAINS", [])}
    out = [quorum.Member(v["NAME"], v["HOME_DOMAIN"], quality[v["HOME_DOMAIN"]]) for v in cfg["VALIDATORS"]]
    out.append(quorum.Member("SELF", cfg["NODE_HOME_DOMAIN"], quality[cfg["NODE_HOME_DOMAIN"]]))
    return out


def _canon(q: object) -> object:
    """Order-free form of {"t", "v"}; the node itself (a key prefix such as GD7RE) becomes SELF."""
    if isinstance(q, str):
        return "SELF" if re.fullmatch(r"G[A-Z2-7]{4}", q) else q
    assert isinstance(q, dict)
    return (q["t"], tuple(sorted((_canon(v) for v in q["v"]), key=repr)))


def _load(case: Path) -> tuple[dict, dict]:
    rec = json.loads(case.read_text())
    return rec, tomllib.loads(rec["config"].replace("<secret seed redacted>", "SEED"))


GENERATED = [
    c
    for c in CASES
    if json.loads(c.read_text())["generated_quorum_set"]
    and "QUORUM_SET" not in json.loads(c.read_text())["config"]
    and "self-listed" not in c.name
]


@pytest.mark.parametrize("case", GENERATED, ids=lambda c: c.stem)
def test_generated_qset_matches_stellar_core(case: Path) -> None:
    rec, cfg = _load(case)
    got = quorum.generate_qset(_members(cfg))
    assert _canon(got.to_json()) == _canon(rec["generated_quorum_set"]), rec["what"]


@pytest.mark.parametrize(
    "case", [c for c in GENERATED if json.loads(c.read_text())["failure_safety"] is not None], ids=lambda c: c.stem
)
def test_failure_safety_matches_stellar_core(case: Path) -> None:
    rec, cfg = _load(case)
    assert quorum.failure_safety(quorum.generate_qset(_members(cfg))) == rec["failure_safety"], rec["what"]


def test_default_threshold_is_stellar_cores_integer_formula() -> None:
    # 51 % of 3 -> 2; 67 % of 2, 3, 4, 5 -> 2, 3, 3, 4 (shared/reference quorum-configs).
    assert [quorum.default_threshold(n, 51) for n in (1, 2, 3, 4, 5)] == [1, 2, 2, 3, 3]
    assert [quorum.default_threshold(n, 67) for n in (1, 2, 3, 4, 5)] == [1, 2, 3, 3, 4]
    assert quorum.default_threshold(0, 67) == 0


def _network(orgs: dict[str, int], quality: str = "HIGH", trusts: dict[str, list[str]] | None = None):
    names = {o: [f"{o}-v{i}" for i in range(1, n + 1)] for o, n in orgs.items()}
    qsets = {}
    for o, vs in names.items():
        trusted = {o, *(trusts or {}).get(o, list(orgs))}
        members = [quorum.Member(v, p, quality) for p in trusted for v in names[p]]
        for v in vs:
            qsets[v] = quorum.generate_qset(members)
    return qsets, names


def _brute_force_disjoint(qsets: dict[str, quorum.QSet]) -> bool:
    nodes = sorted(qsets)
    quorums = [
        set(s)
        for r in range(1, len(nodes) + 1)
        for s in itertools.combinations(nodes, r)
        if quorum.max_quorum(s, qsets) == set(s)
    ]
    return any(not (a & b) for a, b in itertools.combinations(quorums, 2))


@pytest.mark.parametrize(
    "orgs,trusts",
    [
        ({"a": 3}, None),
        ({"a": 3, "b": 3}, None),
        ({"a": 3, "b": 3}, {"a": ["a"], "b": ["b"]}),
        ({"a": 2, "b": 2, "c": 1}, None),
        ({"a": 3, "b": 3, "c": 3}, {"a": ["a", "b"], "b": ["b", "c"], "c": ["c"]}),
    ],
)
def test_intersection_agrees_with_brute_force(orgs: dict[str, int], trusts: dict | None) -> None:
    qsets, names = _network(orgs, "MEDIUM", trusts)
    analysis = quorum.analyse(qsets, names)
    assert (analysis.disjoint is not None) == _brute_force_disjoint(qsets)


def test_disjoint_quorums_are_named() -> None:
    qsets, names = _network({"a": 3, "b": 3}, trusts={"a": ["a"], "b": ["b"]})
    a, b = quorum.analyse(qsets, names).disjoint or ([], [])
    assert set(a).isdisjoint(b)
    assert quorum.max_quorum(a, qsets) == set(a) and quorum.max_quorum(b, qsets) == set(b)


@pytest.mark.parametrize(
    "orgs,tolerates",
    [({"a": 3}, 1), ({"a": 4}, 1), ({"a": 5}, 2), ({"a": 3, "b": 3, "c": 3, "d": 3}, 3), ({"a": 1}, 0)],
)
def test_tolerated_failures(orgs: dict[str, int], tolerates: int) -> None:
    qsets, names = _network(orgs, "MEDIUM" if min(orgs.values()) < 3 else "HIGH")
    analysis = quorum.analyse(qsets, names)
    assert analysis.tolerates == tolerates
    if analysis.breaking:
        failed, stalled = analysis.breaking
        # Who stops: the survivors, or nobody left at all when every validator failed.
        assert len(failed) == tolerates + 1
        assert stalled or len(failed) == len(qsets)


@pytest.mark.parametrize("n", [10, 30])
def test_large_networks_are_analysed_exactly(n: int) -> None:
    # Above the old 300,000-state limit: every organisation trusts every other, so quorums intersect, and
    # stopping any one validator takes blocking ceil(n/3)-ish organisations' majorities.
    qsets, names = _network({f"o{i}": 3 for i in range(n)})
    analysis = quorum.analyse(qsets, names)
    assert analysis.intersection and not analysis.notes
    top = quorum.default_threshold(n, 67)
    assert analysis.tolerates == 2 * (n - top + 1) - 1


def test_large_split_network_is_found() -> None:
    # 30 organisations in two camps that trust only their own camp: two disjoint quorums.
    orgs = {f"o{i}": 3 for i in range(30)}
    camp = {o: [p for p in orgs if (int(p[1:]) < 15) == (int(o[1:]) < 15)] for o in orgs}
    qsets, names = _network(orgs, trusts=camp)
    a, b = quorum.analyse(qsets, names).disjoint or ([], [])
    assert a and b and set(a).isdisjoint(b)
    assert quorum.max_quorum(a, qsets) == set(a) and quorum.max_quorum(b, qsets) == set(b)


@pytest.mark.parametrize(
    "orgs,trusts",
    [
        ({"a": 3, "b": 3, "c": 3, "d": 3}, None),
        ({"a": 3, "b": 3}, {"a": ["a", "b"], "b": ["b"]}),
        ({"a": 2, "b": 2, "c": 1}, {"a": ["a", "b"], "b": ["b", "c"], "c": ["c", "a"]}),
        ({"a": 1, "b": 1, "c": 1, "d": 1}, None),
    ],
)
def test_smallest_breaking_set_agrees_with_brute_force(orgs: dict[str, int], trusts: dict | None) -> None:
    qsets, names = _network(orgs, "MEDIUM", trusts)
    nodes = sorted(qsets)

    def breaks(failed: set[str]) -> bool:
        alive = set(nodes) - failed
        return not alive or quorum.max_quorum(alive, qsets) != alive

    smallest = next(r for r in range(1, len(nodes) + 1) for s in itertools.combinations(nodes, r) if breaks(set(s)))
    failed, _ = quorum.analyse(qsets, names).breaking or ([], [])
    assert len(failed) == smallest and breaks(set(failed))
