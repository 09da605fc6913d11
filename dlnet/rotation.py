"""Validator key rotation: the order of restarts, each state proven safe with dlnet.quorum first.

A validator's key is its identity in everybody's quorum set, and stellar-core reads quorum sets only at
start, so a rotation is a series of restarts, one validator away at a time: each validator that names the
target restarts naming the new key instead of the old (same NAME and ADDRESS), and the target restarts
with the new seed. Only the position of the target's own restart is free. `check` proves one step:
- every two quorums intersect, before and after it;
- every running validator keeps a quorum while the step's validator is away, and after it;
- the restarted validator can rejoin: the others block its new quorum set (meet every slice), so it can
  accept what they externalized without them waiting for it. Learnt on the real network (stellar-core
  19.14, three validators, 2 of 3): v2 restarted naming v1's new key before that key ran sat in
  "Joining SCP" while v1 and v3 went on;
and counts the further failures the new state tolerates (one fewer than usual mid-rotation: stated).
`plan` tries every position of the target and keeps the safe order with the most tolerance. Five or more
validators of one organisation rotate in the order v2, v1, v3, ... Three or four have no such order (the
target first halts the network at the next restart; anyone first cannot rejoin), so they rotate through a
temporary successor S: a validator with the new key on the target's host (its own container, ports, data
and archive), proven the same way (`successor_steps`):
  start S naming the target and the others; each other validator adds S; each drops the target; S drops
  the target; the target stops (its old key retires); S moves into the target's slot (the target's own
  container, data and archive, with the new key) and S's container goes.
Only organisation sizes that ran this way on the real network are let through (SUCCESSOR_VERIFIED_ORG_SIZES).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from dlnet import preflight, quorum
from dlnet.config import Network
from dlnet.errors import DlnetError

# How far above the target's peer and admin ports its temporary successor listens (deploy/rotate-key.yml
# passes it to the stellar_core role); the kit spaces validators' ports 10 apart on one host.
SUCCESSOR_PORT_OFFSET = 5


# Organisation sizes where the successor plan ran on the real network (stellar-core 19.14): three (the CI
# test, tests/deploy/test_rotate_key.py) and four (measured, README). Four used to fail: the others, naming
# S at the target's ADDRESS, refused it as a non-preferred peer (PREFERRED_PEERS_ONLY=true; S dials from its
# own port) and it stayed "Joining SCP"; validators now prefer the keys they name (PREFERRED_PEER_KEYS).
# Any other size the proof passes is refused until it has run on a real network.
SUCCESSOR_VERIFIED_ORG_SIZES = frozenset({3, 4})


def successor(name: str) -> str:
    """The identity of `name`'s new key in the proofs (its inventory name stays `name`)."""
    return f"{name}+new"


@dataclass(frozen=True)
class State:
    running: frozenset[str]
    lists: dict[str, frozenset[str]]  # identity -> the identities its [[VALIDATORS]] names (itself excluded)


@dataclass(frozen=True)
class Step:
    action: str
    away: str | None  # the identity not running while the step is taken (a restart), if any
    before: State
    after: State
    # What deploy/rotate-key.yml does: "restart" a validator (`host`) or "start"/"restart" the successor
    # (on `host`), naming `names` (identities: `v1` the old key, `v1+new` the new one); "stop" the target's
    # old key; "move" the successor into the target's own container.
    kind: str = "restart"
    host: str = ""
    names: tuple[str, ...] = ()


@dataclass(frozen=True)
class Proof:
    step: Step
    intersection: bool
    live_while_away: bool
    live_after: bool
    tolerates_after: int
    why: str = ""
    rejoins: bool = True

    @property
    def safe(self) -> bool:
        return self.intersection and self.live_while_away and self.live_after and self.rejoins


def _base(net: Network) -> dict[str, frozenset[str]]:
    return {v: frozenset(q.members() - {v}) for v, q in preflight.qsets_for(net).items()}


def steps_for(net: Network, target: str, order: list[str]) -> list[Step]:
    """The steps of restarting validators in `order` (`target` once, with its new key; each other naming
    the new key instead of the old)."""
    new = successor(target)
    base = _base(net)
    state = State(frozenset(base), dict(base))
    out: list[Step] = []
    for who in order:
        lists = dict(state.lists)
        if who == target:
            lists[new] = lists.pop(target)
            after = State(frozenset((state.running - {target}) | {new}), lists)
            out.append(
                Step(f"restart {target} with its new key", new, state, after, "restart", target, _names(lists[new]))
            )
        else:
            lists[who] = frozenset((lists[who] - {target}) | {new})
            after = State(state.running, lists)
            out.append(
                Step(
                    f"restart {who} naming {target}'s new key instead of the old",
                    who,
                    state,
                    after,
                    "restart",
                    who,
                    _names(lists[who]),
                )
            )
        state = after
    return out


def _names(identities: frozenset[str], net: Network | None = None) -> tuple[str, ...]:
    """In the inventory's order (the role writes [[VALIDATORS]] in it), the new key where the old one was."""
    rank = {v.name: i for i, v in enumerate(net.validators)} if net else {}
    return tuple(sorted(identities, key=lambda n: (rank.get(n.removesuffix("+new"), len(rank)), n)))


def successor_steps(net: Network, target: str) -> list[Step]:
    """The rotation through a temporary successor S (the new key, running beside the target): see the module
    docstring. Every validator that names the target restarts twice (add S, then drop the target)."""
    new = successor(target)
    base = _base(net)
    others = [v.name for v in net.validators if v.name != target and target in base[v.name]]
    state = State(frozenset(base), dict(base))
    out: list[Step] = []

    def step(
        action: str,
        away: str | None,
        kind: str,
        host: str,
        lists: dict[str, frozenset[str]],
        running: frozenset[str] | None = None,
    ) -> None:
        nonlocal state
        after = State(frozenset(state.running if running is None else running), lists)
        who = new if host == target and kind != "stop" else host
        out.append(Step(action, away, state, after, kind, host, _names(lists.get(who, frozenset()), net)))
        state = after

    # S starts behind: it is "away" until it has caught up, so it must be able to join (the rejoin check).
    step(
        f"start {target}'s successor (new key) naming {target} and the others",
        new,
        "start",
        target,
        {**state.lists, new: base[target] | {target}},
        state.running | {new},
    )
    for o in others:
        step(f"restart {o} naming the successor too", o, "restart", o, {**state.lists, o: state.lists[o] | {new}})
    for o in others:
        drop = {**state.lists, o: state.lists[o] - {target}}
        step(f"restart {o} naming the successor, not {target}", o, "restart", o, drop)
    drop = {**state.lists, new: state.lists[new] - {target}}
    step(f"restart the successor not naming {target}", new, "restart", target, drop)
    step(
        f"stop {target} (its old key retires)",
        target,
        "stop",
        target,
        {n: ls for n, ls in state.lists.items() if n != target},
        state.running - {target},
    )
    step(f"move the successor into {target}'s own container", new, "move", target, dict(state.lists))
    return out


def plan(net: Network, target: str) -> list[Proof]:
    """The safe restart order with the most tolerance on the way, proven step by step; refused when no
    order is safe."""
    names = [v.name for v in net.validators]
    if target not in names:
        raise DlnetError(
            f"rotate-key: {target!r} — expected one of the validators {', '.join(names)} — pass an inventory host"
            " of group 'stellar_core'"
        )
    base = _base(net)
    others = [n for n in names if n != target and target in base[n]]
    best: list[Proof] | None = None
    for k in [1, *range(2, len(others) + 1), 0]:
        proofs = [check(net, target, s) for s in steps_for(net, target, [*others[:k], target, *others[k:]])]
        if all(p.safe for p in proofs) and (
            best is None or min(p.tolerates_after for p in proofs) > min(p.tolerates_after for p in best)
        ):
            best = proofs
    if best is None:
        proofs = [check(net, target, s) for s in successor_steps(net, target)]
        if all(p.safe for p in proofs):
            org = next(v.organisation for v in net.validators if v.name == target)
            size = sum(v.organisation == org for v in net.validators)
            if size not in SUCCESSOR_VERIFIED_ORG_SIZES:
                ran = " or ".join(map(str, sorted(SUCCESSOR_VERIFIED_ORG_SIZES)))
                raise DlnetError(
                    f"rotate-key {target}: the successor plan passes the proof for an organisation of {size}"
                    f" validators, but only organisations of {ran} have run it on the real network — nothing was"
                    " changed — see README, key rotation"
                )
            return proofs
        order = [*others[:1], target, *others[1:]]
        bad = next(p for p in (check(net, target, s) for s in steps_for(net, target, order)) if not p.safe)
        raise DlnetError(
            f"rotate-key {target}: no restart order keeps the network live and safe (e.g. {bad.step.action}:"
            f" {bad.why}), not even through a temporary successor — nothing was changed — add validators or"
            " change the organisations' quorum (README, key rotation)"
        )
    return best


def attempt(net: Network, target: str) -> list[Proof]:
    """The proofs of the natural order (the first other validator, the target, the rest), safe or not:
    what `dlnet rotation-plan` shows when no order is safe."""
    base = _base(net)
    others = [v.name for v in net.validators if v.name != target and target in base.get(v.name, ())]
    return [check(net, target, s) for s in steps_for(net, target, [*others[:1], target, *others[1:]])]


def _qsets(net: Network, target: str, state: State) -> dict[str, quorum.QSet]:
    org_of = {v.name: v.organisation for v in net.validators}
    org_of[successor(target)] = org_of[target]
    quality = {o.name: o.quality for o in net.organisations}

    def member(n: str) -> quorum.Member:
        return quorum.Member(n, org_of[n], quality[org_of[n]])

    out = {n: quorum.generate_qset([member(n), *(member(m) for m in sorted(state.lists[n]))]) for n in state.running}
    # An identity named but not running can never be part of a quorum: a set it cannot satisfy.
    for n in set().union(*state.lists.values()) - state.running:
        out[n] = _NEVER
    return out


_NEVER = quorum.QSet(1)


def _live(qsets: dict[str, quorum.QSet], up: set[str]) -> bool:
    """Every node in `up` has a quorum made of nodes in `up` (the others are down)."""
    return quorum.max_quorum(up, qsets) == up


def tolerates(qsets: dict[str, quorum.QSet]) -> int:
    """How many of the running nodes may fail, any of them, with the rest still closing ledgers (exact,
    by enumeration: a handful of validators)."""
    nodes = sorted(n for n, q in qsets.items() if q is not _NEVER)
    for k in range(1, len(nodes) + 1):
        for failed in itertools.combinations(nodes, k):
            rest = set(nodes) - set(failed)
            if rest and not _live(qsets, rest):
                return k - 1
    return len(nodes)


def check(net: Network, target: str, step: Step) -> Proof:
    before, after = _qsets(net, target, step.before), _qsets(net, target, step.after)
    # While the step runs, the nodes up are those of both states minus the one away; each runs the old
    # configuration until it restarts with the new one.
    during = {**before, **after}
    up = set(step.before.running & step.after.running) - ({step.away} if step.away else set())
    problems = []
    intersect = True
    for name, qs in (("before", before), ("after", after)):
        d = quorum.find_disjoint_quorums(qs)
        if d:
            intersect = False
            problems.append(f"{name}: quorums {{{', '.join(d[0])}}} and {{{', '.join(d[1])}}} do not intersect")
    live_away = _live({n: during[n] for n in up}, up)
    if not live_away:
        problems.append(f"while {step.away} is away, {', '.join(sorted(up - quorum.max_quorum(up, during)))} stall")
    live_after = _live(after, set(step.after.running))
    if not live_after:
        problems.append("after the step some validators have no quorum")
    # A restarted validator is behind: it catches up only by accepting what a v-blocking set of its new
    # quorum set has externalized (every slice of it meets that set); the others do not wait for it. Seen
    # on stellar-core 19.14: v2 restarted naming v1's new key before that key ran sat in "Joining SCP".
    rejoins = True
    if step.away is not None and step.away in after:
        others = set(step.after.running) - {step.away}
        everyone = set(after) | set().union(*(q.members() for q in after.values()))
        rejoins = not after[step.away].satisfied_by(everyone - others)
        if not rejoins:
            problems.append(
                f"{step.away} could not rejoin: {', '.join(sorted(others))} do not block its new quorum set"
                " (it would wait for a key that does not run)"
            )
    return Proof(step, intersect, live_away, live_after, tolerates(after), "; ".join(problems), rejoins)


def prove(net: Network, target: str) -> list[Proof]:
    return plan(net, target)
