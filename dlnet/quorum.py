"""Quorum sets as stellar-core derives them, and the safety gate run before anything is deployed.

stellar-core builds each validator's quorum set from `[[HOME_DOMAINS]]` and `[[VALIDATORS]]`
(src/main/Config.cpp, generateQuorumSet): validators sorted by quality then home domain, one inner set
per organisation at simple majority (51%), the organisations of one quality at 67% (100% for CRITICAL),
a lower quality nested as one more inner set, single-child sets flattened. The records in
shared/reference/stellar-core-19.14/quorum-configs/ are the contract the tests hold this module to.

The analysis is exact for any size:
- intersection: a SAT formula (python-sat, CaDiCaL) that is satisfiable exactly when two disjoint
  non-empty quorums exist; each distinct quorum set is encoded once per side (totalizer cardinality
  constraints), so 30 organisations of 3 validators take milliseconds (scripts/bench_quorum.py);
- liveness: the smallest set of failed validators that leaves some live validator without a quorum. A
  failure set stops a live validator exactly when it blocks that validator's quorum set (it meets every
  slice), and since a valid quorum set names each validator once (stellar-core refuses duplicates), the
  cheapest blocking set is found by recursion: block the `size - threshold + 1` cheapest entries.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from pysat.card import CardEnc, EncType
from pysat.formula import IDPool
from pysat.solvers import Solver

_QUALITY_RANK = {"LOW": 0, "MEDIUM": 1, "HIGH": 2, "CRITICAL": 3}
SIMPLE_MAJORITY, BYZANTINE_FAULT_TOLERANCE, ALL_REQUIRED = 51, 67, 100


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
    notes: list[str] = field(default_factory=list)

    @property
    def intersection(self) -> bool:
        return self.disjoint is None

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


def find_disjoint_quorums(qsets: dict[str, QSet]) -> tuple[list[str], list[str]] | None:
    """Two non-empty quorums sharing no validator, or None when every two quorums intersect (exact)."""
    nodes = sorted(qsets)
    pool = IDPool()
    clauses: list[list[int]] = []
    for side in ("a", "b"):
        # One literal per distinct quorum set and side: "this side satisfies it" (implied, not equivalent:
        # a quorum needs each member's set satisfied, never the converse).
        cache: dict[QSet, int] = {}

        def satisfied(q: QSet, side: str = side, cache: dict[QSet, int] = cache) -> int:
            if q in cache:
                return cache[q]
            lits = [pool.id((side, v)) for v in q.validators] + [satisfied(i) for i in q.inner]
            s = pool.id(("sat", side, len(cache)))
            cache[q] = s
            if q.threshold > len(lits):
                clauses.append([-s])
            elif q.threshold > 0:
                card = CardEnc.atleast(lits, bound=q.threshold, vpool=pool, encoding=EncType.totalizer)
                clauses.extend([-s, *c] for c in card.clauses)
            return s

        for v in nodes:
            clauses.append([-pool.id((side, v)), satisfied(qsets[v])])
        clauses.append([pool.id((side, v)) for v in nodes])  # non-empty
    clauses.extend([-pool.id(("a", v)), -pool.id(("b", v))] for v in nodes)
    with Solver(name="cadical195", bootstrap_with=clauses) as solver:
        if not solver.solve():
            return None
        model = set(solver.get_model() or [])
    a = max_quorum((v for v in nodes if pool.id(("a", v)) in model), qsets)
    b = max_quorum((v for v in nodes if pool.id(("b", v)) in model), qsets)
    if not a or not b or a & b:  # the formula is exact: this would be a bug in the encoding
        raise AssertionError(f"quorum SAT model does not decode to disjoint quorums: {sorted(a)} {sorted(b)}")
    return sorted(a), sorted(b)


def _cheapest_block(q: QSet, keep: str) -> list[str] | None:
    """Fewest validators (never `keep`) whose failure leaves q unsatisfiable; None if impossible."""
    options: list[list[str]] = [[v] for v in q.validators if v != keep]
    for inner in q.inner:
        sub = _cheapest_block(inner, keep)
        if sub is not None:
            options.append(sub)
    need = q.size - q.threshold + 1
    if need <= 0:
        return []
    if len(options) < need:
        return None
    options.sort(key=lambda o: (len(o), o))
    return [v for o in options[:need] for v in o]


def smallest_breaking_set(qsets: dict[str, QSet]) -> tuple[list[str], list[str]]:
    """The smallest set of failures after which some live validator stops, and the validators that stop.

    When no failure set stops a validator that is still up, the answer is every validator."""
    best: list[str] | None = None
    for v in sorted(qsets):
        block = _cheapest_block(qsets[v], v)
        if block is not None and (best is None or len(block) < len(best)):
            best = block
    failed = set(best) if best is not None and len(best) < len(qsets) else set(qsets)
    alive = set(qsets) - failed
    working = max_quorum(alive, qsets)
    return sorted(failed), sorted(alive - working) or sorted(alive)


def analyse(qsets: dict[str, QSet], orgs: dict[str, list[str]] | None = None) -> Analysis:
    """Exact intersection and liveness analysis of these quorum sets (any size; `orgs` is informative)."""
    del orgs
    result = Analysis(qsets=qsets)
    if not qsets:
        result.notes.append("no validator to analyse")
        return result
    duplicated = sorted(v for v, q in qsets.items() if _has_duplicates(q))
    if duplicated:
        result.notes.append(
            f"quorum sets of {', '.join(duplicated)} name a validator twice (stellar-core refuses them:"
            " 'Duplicate node found')"
        )
    result.disjoint = find_disjoint_quorums(qsets)
    result.breaking = smallest_breaking_set(qsets)
    return result


def _has_duplicates(q: QSet) -> bool:
    seen: list[str] = []

    def walk(x: QSet) -> None:
        seen.extend(x.validators)
        for i in x.inner:
            walk(i)

    walk(q)
    return len(seen) != len(set(seen))
