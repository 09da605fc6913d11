"""Quorum sets as stellar-core derives them, and the safety gate run before anything is deployed.

stellar-core builds each validator's quorum set from `[[HOME_DOMAINS]]` and `[[VALIDATORS]]`
(src/main/Config.cpp, generateQuorumSet): validators sorted by quality then home domain, one inner set
per organisation at simple majority (51%), the organisations of one quality at 67% (100% for CRITICAL),
a lower quality nested as one more inner set, single-child sets flattened. The records in
shared/reference/stellar-core-19.14/quorum-configs/ are the contract the tests hold this module to.

Organisations sharing interchangeable validators make the exact analysis cheap: a set of validators
is described by how many of each organisation it holds, so the search runs over
prod(n_org + 1) states instead of 2^n subsets.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

_QUALITY_RANK = {"LOW": 0, "MEDIUM": 1, "HIGH": 2, "CRITICAL": 3}
SIMPLE_MAJORITY, BYZANTINE_FAULT_TOLERANCE, ALL_REQUIRED = 51, 67, 100
# Above this many states the exact search would take minutes; say so instead of guessing.
MAX_STATES = 300_000


@dataclass(frozen=True)
class QSet:
    threshold: int
    validators: tuple[str, ...] = ()
    inner: tuple[QSet, ...] = ()

    @property
    def size(self) -> int:
        return len(self.validators) + len(self.inner)

    def satisfied_by(self, nodes: set[str]) -> bool:
        hits = sum(v in nodes for v in self.validators) + sum(q.satisfied_by(nodes) for q in self.inner)
        return hits >= self.threshold

    def members(self) -> set[str]:
        out = set(self.validators)
        for q in self.inner:
            out |= q.members()
        return out

    def to_json(self) -> dict[str, object]:
        """The shape stellar-core logs as 'Generated QUORUM_SET' ({"t": .., "v": [...]})."""
        return {"t": self.threshold, "v": [*self.validators, *(q.to_json() for q in self.inner)]}


@dataclass(frozen=True)
class Member:
    name: str
    organisation: str
    quality: str


def default_threshold(size: int, percent: int) -> int:
    """stellar-core's computeDefaultThreshold: 1 + (n * p - 1) / 100, integer division."""
    return 0 if size == 0 else 1 + (size * percent - 1) // 100


def _normalize(q: QSet) -> QSet:
    inner = tuple(_normalize(i) for i in q.inner)
    if not q.validators and len(inner) == 1 and q.threshold == 1:
        return inner[0]
    return QSet(q.threshold, q.validators, inner)


def generate_qset(members: Sequence[Member]) -> QSet:
    """The quorum set stellar-core generates for these validators (self included)."""
    todo = sorted(members, key=lambda m: (-_QUALITY_RANK[m.quality], m.organisation, m.name))

    def helper(items: list[Member], quality: str) -> QSet:
        inner: list[QSet] = []
        i = 0
        while i < len(items) and items[i].quality == quality:
            org = items[i].organisation
            names = []
            while i < len(items) and items[i].organisation == org:
                names.append(items[i].name)
                i += 1
            inner.append(QSet(default_threshold(len(names), SIMPLE_MAJORITY), tuple(names)))
        if i < len(items):
            inner.append(helper(items[i:], items[i].quality))
        level = ALL_REQUIRED if quality == "CRITICAL" else BYZANTINE_FAULT_TOLERANCE
        return QSet(default_threshold(len(inner), level), (), tuple(inner))

    return _normalize(helper(todo, "CRITICAL"))


def failure_safety(q: QSet) -> int:
    """stellar-core's computed FAILURE_SAFETY: top-level entries that may fail (0 = refused as unsafe)."""
    return q.size - q.threshold


@dataclass
class Analysis:
    qsets: dict[str, QSet]
    disjoint: tuple[list[str], list[str]] | None = None
    # Smallest set of failed validators after which some validators stop closing ledgers, and who stalls.
    breaking: tuple[list[str], list[str]] | None = None
    exact: bool = True
    states: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def tolerates(self) -> int:
        """How many validators may fail (any of them) with every other validator still closing ledgers."""
        return len(self.qsets) if self.breaking is None else len(self.breaking[0]) - 1


def max_quorum(nodes: Iterable[str], qsets: dict[str, QSet]) -> set[str]:
    """The largest quorum inside `nodes` (empty when there is none): drop unsatisfied nodes to a fixpoint."""
    s = set(nodes)
    while True:
        drop = {n for n in s if not qsets[n].satisfied_by(s)}
        if not drop:
            return s
        s -= drop


def analyse(qsets: dict[str, QSet], orgs: dict[str, list[str]]) -> Analysis:
    """Exact intersection and liveness analysis, assuming validators of one organisation are
    interchangeable (true for every quorum set generated from [[HOME_DOMAINS]])."""
    groups = [sorted(v) for _, v in sorted(orgs.items())]
    everyone = set(qsets)
    result = Analysis(qsets=qsets)
    states = 1
    for g in groups:
        states *= len(g) + 1
    result.states = states
    if states > MAX_STATES:
        result.exact = False
        result.notes.append(
            f"{states} organisation states exceed the exact search limit {MAX_STATES}: "
            "run stellar-core check-quorum-intersection on the live network"
        )
        return result

    def pick(counts: Sequence[int]) -> set[str]:
        return {n for g, k in zip(groups, counts, strict=True) for n in g[:k]}

    ranges = [range(len(g) + 1) for g in groups]
    for counts in itertools.product(*ranges):
        q1 = max_quorum(pick(counts), qsets)
        if q1:
            q2 = max_quorum(everyone - q1, qsets)
            if q2:
                result.disjoint = (sorted(q1), sorted(q2))
                break
    # Smallest failure set first, so the example named is a minimal one.
    for counts in sorted(itertools.product(*ranges), key=sum):
        if sum(counts) == 0:
            continue
        failed = pick(counts)
        alive = everyone - failed
        working = max_quorum(alive, qsets)
        if not working or working != alive:
            result.breaking = (sorted(failed), sorted(alive - working) or sorted(alive))
            break
    return result
