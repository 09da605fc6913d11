"""Validator key rotation: the order of steps, each proven safe with dlnet.quorum before it is taken.

A validator's key is its identity in everybody's quorum set, and stellar-core reads quorum sets only at
start: changing them means restarting validators, each restart is a validator away. With three validators
of one organisation (2 of 3 each) the direct order halts: once the target runs its new key, the others
still name the old one, and restarting either of them leaves the last one alone. A temporary fourth node,
the *successor* (the new key, on the target's host, other ports), bridges the change:

1. each other validator in turn names the new key instead of the old one (one restart each; the first
   before the successor runs, so that somebody admits it: PREFERRED_PEERS_ONLY);
2. the successor starts after the first of them, naming the old key as well as the others, so that no
   quorum of the others and the new key can avoid the old half of the network;
3. the successor stops and the target restarts with the new key on its own ports: the old key is gone.

`plan` writes these states down for any inventory; `check` proves each with dlnet.quorum: every two
quorums intersect (before, during and after the step), every running validator keeps a quorum while the
step's node is away, and it reports how many further failures the state tolerates (often 0 mid-rotation:
that is the price of a node in transition, stated, not hidden).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from dlnet import preflight, quorum
from dlnet.config import Network
from dlnet.errors import DlnetError


def successor(name: str) -> str:
    """The identity of `name`'s new key in the plan (its inventory name stays `name`)."""
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


@dataclass(frozen=True)
class Proof:
    step: Step
    intersection: bool
    live_while_away: bool
    live_after: bool
    tolerates_after: int
    why: str = ""

    @property
    def safe(self) -> bool:
        return self.intersection and self.live_while_away and self.live_after


def _base(net: Network) -> dict[str, frozenset[str]]:
    return {v: frozenset(q.members() - {v}) for v, q in preflight.qsets_for(net).items()}


def plan(net: Network, target: str) -> list[Step]:
    names = [v.name for v in net.validators]
    if target not in names:
        raise DlnetError(
            f"rotate-key: {target!r} — expected one of the validators {', '.join(names)} — pass an inventory host"
            " of group 'stellar_core'"
        )
    new = successor(target)
    lists = dict(_base(net))
    state = State(frozenset(names), dict(lists))
    steps: list[Step] = []
    others = [n for n in names if n != target and target in lists[n]]

    def swap(who: str) -> None:
        nonlocal state
        changed = dict(state.lists)
        changed[who] = frozenset((changed[who] - {target}) | {new})
        after = State(state.running, changed)
        steps.append(Step(f"restart {who} naming {target}'s new key instead of the old one", who, state, after))
        state = after

    for i, who in enumerate(others):
        swap(who)
        if i == 0:
            changed = dict(state.lists)
            changed[new] = frozenset(lists[target] | {target})
            after = State(state.running | {new}, changed)
            steps.append(
                Step(
                    f"start the successor ({target}'s new key on other ports) naming {target} and the others",
                    None,
                    state,
                    after,
                )
            )
            state = after
    final_lists = {k: v for k, v in state.lists.items() if k not in (target, new)}
    final_lists[new] = lists[target]
    after = State(frozenset((state.running - {target}) | {new}), final_lists)
    steps.append(Step(f"stop the successor and the old key; restart {target} with the new key", new, state, after))
    return steps


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
    return Proof(step, intersect, live_away, live_after, tolerates(after), "; ".join(problems))


def prove(net: Network, target: str) -> list[Proof]:
    return [check(net, target, s) for s in plan(net, target)]
