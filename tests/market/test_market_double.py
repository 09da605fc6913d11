"""The market end to end on the Horizon/ledger double (offers really cross in the double's order book)
with an in-memory IPFS swarm; the same flow runs on the real network in test_market_real.py."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest
from stellar_sdk import Asset, Keypair
from stellar_sdk.operation import Payment

from dlnet.chain import Horizon, InputError, Transactor, amount_text, balance
from dlnet.market import demo, penalties
from dlnet.market import trainer as tr
from dlnet.market.initiator import Initiator
from dlnet.market.partner import Partner
from dlnet.market.protocol import Market
from dlnet.market.validator import Validator
from tests.doubles.fixtures import HorizonEndpoint
from tests.doubles.ipfs import MemoryIpfs
from tests.doubles.ledger import root_keypair


@pytest.fixture
def chain(horizon_double: HorizonEndpoint) -> Iterator[Transactor]:
    h = Horizon(horizon_double.url)
    yield Transactor(h, horizon_double.passphrase)
    h.close()


def test_demo_rounds_pay_the_honest_and_strike_the_malicious(chain: Transactor) -> None:
    ipfs = MemoryIpfs()
    opts = demo.Options(partners=3, malicious=1, validators=2, rounds=3, unapproved=1)
    rep = demo.run(chain, (ipfs, ipfs.node()), root_keypair(chain.passphrase), opts)
    best_alone = max(rep["local_only_accuracy"].values())
    assert rep["final_accuracy"] > rep["initial_accuracy"]
    assert rep["final_accuracy"] > best_alone, rep["local_only_accuracy"]
    [bad] = rep["malicious"]
    honest = [p for p in rep["partners"] if p != bad]
    stakes = []
    for r in rep["rounds"]:
        mine = [d for d in r["decisions"] if d["partner"] == bad]
        assert len(mine) == 2 and not any(d["accepted"] for d in mine), mine  # refused by both validators
        assert all(sum(d["accepted"] for d in r["decisions"] if d["partner"] == p) == 2 for p in honest)
        stakes.append(Decimal(r["required_stake"][bad]))
        assert set(r["accepted"]) == {s["cid"] for s in r["submissions"] if s["partner"] in honest}
        [unapproved] = r["refused_before_submit"]
        assert "not KYC-approved" in unapproved["reason"]
    assert stakes == sorted(set(stakes)) and len(stakes) == 3  # rises after every strike
    assert rep["paid_xlm"][bad] == "0.0000000"
    assert all(Decimal(rep["paid_xlm"][p]) == Decimal(2) * 2 * 3 for p in honest)
    # checked back on the ledger: the payments are what the validators decided, the strikes are recorded
    h = chain.h
    vaccs = [h.account(v) for v in rep["validators"]]
    assert penalties.strikes_of(vaccs, bad) == 3
    for p in rep["partners"]:
        payments = [x for x in h.records(f"/accounts/{p}/payments") if x.get("asset_type") == "native"
                    and x.get("to") == p and x.get("from") in rep["validators"]]
        assert sum(Decimal(x["amount"]) for x in payments) == Decimal(rep["paid_xlm"][p])
    # every checkpoint CID in a memo names bytes on the swarm that hash to it
    for r in rep["rounds"]:
        for cid in [r["checkpoint"], *[s["cid"] for s in r["submissions"]]]:
            from dlnet.market.checkpoint import verify

            verify(ipfs.cat(cid), cid)
    unapproved_id = rep["unapproved"][0]
    assert h.offers(unapproved_id) == []


@pytest.fixture
def world(chain: Transactor) -> tuple[demo.World, MemoryIpfs, tr.Split]:
    opts = demo.Options(partners=2, malicious=0, validators=2, rounds=1)
    w = demo.provision(chain, root_keypair(chain.passphrase), opts)
    ipfs = MemoryIpfs()
    Initiator(chain, ipfs, w.initiator, w.market, tr.SHAPES).setup(Decimal(50))
    return w, ipfs, tr.split(2, 2)


def _validator(chain: Transactor, w: demo.World, ipfs: MemoryIpfs, data: tr.Split, i: int) -> Validator:
    return Validator(chain, ipfs, w.validators[i], w.market, data.benchmarks[i], tr.accuracy, tr.SHAPES, 0.3)


def test_tampered_update_is_refused_with_the_reason(chain: Transactor, world) -> None:  # type: ignore[no-untyped-def]
    w, ipfs, data = world
    Initiator(chain, ipfs, w.initiator, w.market, tr.SHAPES).publish(tr.initial(), 1, 2)
    p = Partner(chain, ipfs, w.partners[0], w.market, data.shards[0], tr.reference_trainer)
    sub = p.work()
    original = ipfs.cat(sub.cid)
    ipfs.tamper(sub.cid, original[:-4] + b"\0\0\0\0")  # bytes changed after the CID went on chain
    [d] = _validator(chain, w, ipfs, data, 0).review()
    assert not d.accepted and "tampered" in d.reason and sub.cid in d.reason
    assert d.paid_xlm == "0"


def test_partner_waits_until_the_initiator_offers(chain: Transactor, world) -> None:  # type: ignore[no-untyped-def]
    """Partners look only at the initiator's own offers (an impostor's offer for the DLM is never read)."""
    w, ipfs, data = world
    p = Partner(chain, ipfs, w.partners[0], w.market, data.shards[0], tr.reference_trainer)
    with pytest.raises(InputError, match="no offer paying XLM for DLM"):
        p.announcement()


def test_bad_input_changes_nothing(chain: Transactor, world) -> None:  # type: ignore[no-untyped-def]
    w, ipfs, data = world
    h = chain.h
    Initiator(chain, ipfs, w.initiator, w.market, tr.SHAPES).publish(tr.initial(), 1, 2)
    kp = w.partners[1]
    # a partner without the stake: give its DLC back, then try
    line = balance(h.account(kp.public_key), w.market.dlc)
    chain.run(kp, [Payment(w.dlc_issuer.public_key, w.market.dlc, line["balance"])])  # type: ignore[index]
    seq = h.account(kp.public_key)["sequence"]  # type: ignore[index]
    adds = ipfs.adds
    p = Partner(chain, ipfs, kp, w.market, data.shards[1], tr.reference_trainer)
    with pytest.raises(InputError, match=r"expected at least 10\.0000000 .*get more DLC"):
        p.work()
    assert h.account(kp.public_key)["sequence"] == seq and ipfs.adds == adds and h.offers(kp.public_key) == []
    # unknown model: an account that runs no market
    with pytest.raises(InputError, match="unknown model"):
        Market.from_chain(h, w.partners[0].public_key)
    with pytest.raises(InputError, match="unknown model 'other'"):
        Market.from_chain(h, w.initiator.public_key, "other")
    assert Market.from_chain(h, w.initiator.public_key).validators == w.market.validators
    # a partner whose DLC trustline the compliance service never authorized
    stranger = Keypair.random()
    with pytest.raises(InputError, match="does not exist"):
        Partner(chain, ipfs, stranger, w.market, data.shards[0], tr.reference_trainer).work()
    # an offer on an asset the model did not issue
    with pytest.raises(InputError, match="not issued by model"):
        w.market.check_model_asset(Asset("DLM", Keypair.random().public_key))
    assert amount_text(w.market.required_stake(0)) == "10.0000000"


def test_a_partner_cannot_skip_the_stake_its_strikes_require(chain: Transactor, world) -> None:  # type: ignore[no-untyped-def]
    """After a strike, an offer staking the old amount is refused by the validators who pay."""
    from stellar_sdk.memo import HashMemo
    from stellar_sdk.operation import ManageSellOffer

    from dlnet.market import checkpoint as ck
    from dlnet.market.partner import stake_price

    w, ipfs, data = world
    Initiator(chain, ipfs, w.initiator, w.market, tr.SHAPES).publish(tr.initial(), 1, 2)
    cheat = Partner(chain, ipfs, w.partners[0], w.market, data.shards[0], tr.malicious_trainer())
    cheat.work()
    validators = [_validator(chain, w, ipfs, data, i) for i in range(2)]
    assert [d.accepted for v in validators for d in v.review()] == [False, False]
    assert cheat.strikes() == 1 and w.market.required_stake(1) == Decimal(20)
    # a good update, but staking only the no-strike amount, submitted around the partner's own check
    update = tr.reference_trainer(tr.initial(), data.shards[0])
    cid = ipfs.add(update)
    [offer] = chain.h.offers(cheat.id)
    chain.run(cheat.kp, [ManageSellOffer(w.market.dlc, w.market.vlm, "10", stake_price(2, Decimal(10)),
                                         offer_id=int(offer["id"]))], memo=HashMemo(ck.cid_to_memo(cid)))
    for v in validators:
        [d] = v.review()
        assert not d.accepted and "below the 20.0000000 required for 1 strike(s)" in d.reason, d.reason
    assert cheat.strikes() == 2


class LocalGate:
    """The compliance service's approval in-process (its Rules and the SEP-8 revision, no web app, no
    database; KYC statuses from a dict): the same code /tx-approve runs."""

    def __init__(self, chain: Transactor, issuer: Keypair, kyc: dict[str, str]) -> None:
        from dlnet.services.compliance import Rules

        self.chain, self.issuer = chain, issuer
        dlc = Asset("DLC", issuer.public_key)
        self.rules = Rules(dlc, Decimal(10**6), Decimal(10), Decimal(2), None,
                           lambda a: (kyc.get(a, "none"), 0), chain.h)

    def approve(self, env, dlc):  # type: ignore[no-untyped-def]
        from dlnet.chain import check_sandwich, sandwich
        from dlnet.services.compliance import Rejected

        try:
            touched = self.rules.check(env.transaction)
        except Rejected as exc:
            raise InputError(f"refused by the compliance service: {exc}") from None
        revised = sandwich(env, self.issuer, dlc, touched, self.chain.passphrase)
        check_sandwich(env, revised, dlc)
        return revised


def test_regulated_dlc_the_ledger_refuses_a_stake_offer_without_approval(chain: Transactor, world) -> None:  # type: ignore[no-untyped-def]
    from stellar_sdk.operation import SetTrustLineFlags

    from dlnet.chain import AUTHORIZED, MAINTAIN, SubmitFailed

    w, ipfs, data = world
    m = w.market
    # KYC-approved partners keep DLC and offers, but may not move DLC on their own (maintain liabilities)
    chain.run(w.dlc_issuer, [SetTrustLineFlags(p.public_key, m.dlc, clear_flags=AUTHORIZED, set_flags=MAINTAIN)
                             for p in w.partners])
    Initiator(chain, ipfs, w.initiator, m, tr.SHAPES).publish(tr.initial(), 1, 2)
    alone = Partner(chain, ipfs, w.partners[0], m, data.shards[0], tr.reference_trainer)
    with pytest.raises(SubmitFailed) as exc:
        alone.work()
    assert exc.value.op_codes == ["sell_not_authorized"]
    gate = LocalGate(chain, w.dlc_issuer, {p.public_key: "approved" for p in w.partners})
    sub = Partner(chain, ipfs, w.partners[0], m, data.shards[0], tr.reference_trainer, compliance=gate).work()
    line = balance(chain.h.account(sub.partner), m.dlc)
    assert line["is_authorized_to_maintain_liabilities"] and not line["is_authorized"]  # type: ignore[index]
    assert [o["amount"] for o in chain.h.offers(sub.partner)] == ["10.0000000"]
    # a strike, then the old stake: refused by the approval server with the reason (strikes read on chain)
    cheat = Partner(chain, ipfs, w.partners[1], m, data.shards[1], tr.malicious_trainer(), compliance=gate)
    cheat.work()
    for i in range(2):
        _validator(chain, w, ipfs, data, i).review()
    assert cheat.strikes() == 1
    from stellar_sdk.memo import HashMemo
    from stellar_sdk.operation import ManageSellOffer

    from dlnet.market import checkpoint as ck
    from dlnet.market.partner import stake_price

    env = chain.build(cheat.kp, [ManageSellOffer(m.dlc, m.vlm, "10", stake_price(2, Decimal(10)))],
                      memo=HashMemo(ck.cid_to_memo(sub.cid)))
    with pytest.raises(InputError, match=r"1 strike\(s\) .* must stake at least 20\.0000000"):
        gate.approve(env, m.dlc)
    # no KYC: refused before anything is signed
    stranger = LocalGate(chain, w.dlc_issuer, {})
    with pytest.raises(InputError, match="is not KYC-approved"):
        stranger.approve(env, m.dlc)
