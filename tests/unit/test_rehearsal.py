"""`wallet rehearse`, the runner: a small spend to the wallet itself through the whole
pipeline, on a real wallet and store over a MemoryChain (real blocks, no node). The same
runs on btcd in tests/integration/test_rehearsal.py.

Signers (tests/support/rehearsal.py): s0, s1 software keys, vault an air-gapped file signer;
a hardware wallet is ``FakeHwilib``, a stand-in for HWI and a device.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from l2custody.errors import (
    BroadcastRejected,
    BroadcastUnknown,
    InsufficientFunds,
    PsbtError,
    SignerError,
    SignerUnavailable,
    UsageError,
)
from l2custody.store import SignerRecord
from l2custody.wallet.rehearsal import Rehearsal, RehearsalOptions, RehearsalResult, choose_signers
from l2custody.wallet.rehearsal_records import RehearsalState, rehearsals
from l2custody.wallet.signer_registry import add_signer
from tests.support.rehearsal import FakeHwilib, UnsureChain, World, mnemonic_signer
from tests.support.wallet import descriptor

FAST: dict[str, Any] = {"timeout": 0.0, "poll_seconds": 0.01}


@pytest.fixture
def world(tmp_path: Path):  # type: ignore[no-untyped-def]
    w = World.make(tmp_path)
    yield w
    w.wallet.close()


def run(world: World, **options: Any) -> RehearsalResult:
    return Rehearsal(world.wallet, world.progress.append, lambda _signer, _address: True).run(
        RehearsalOptions(**{**FAST, **options})
    )


# --- a whole rehearsal ----------------------------------------------------------------------------
def test_software_and_file_signers_rehearse_to_a_confirmed_spend_the_wallet_holds_again(world: World) -> None:
    first = run(world, signers=("vault", "s0"))
    rec = first.record
    assert (rec.state, first.waiting_for, first.resumed) == (RehearsalState.SIGNING, ("vault",), False)
    assert rec.signed.keys() == {"s0"} and world.exported(rec.session_id).exists()
    assert "put the signed file back" in first.next_step
    session = world.wallet.store.psbt(rec.session_id)
    assert (session.kind, session.state) == ("rehearsal", "partially-signed")
    assert world.reserved() == rec.details["inputs"]  # its coins are held while signers sign

    again = run(world)  # nothing came back yet: still waiting, and no second PSBT
    assert again.record.id == rec.id and again.resumed and again.waiting_for == ("vault",)
    assert len(world.wallet.store.psbts(kind="rehearsal")) == 1

    world.sign_offline(rec.session_id)
    sent = run(world)  # vault's file is picked up, the PSBT finalized and broadcast; no block yet
    rec = sent.record
    assert rec.state is RehearsalState.BROADCAST and rec.txid in world.chain.mempool
    assert "once it has a confirmation" in sent.next_step

    world.chain.add_block()
    done = run(world, timeout=5.0)
    rec = done.record
    assert done.done and rec.state is RehearsalState.CONFIRMED and rec.height == world.chain.tip_height()
    # step 5: the rehearsal output and the change are wallet coins at the values built
    receive, change = rec.details["receive"], rec.details["change"]
    out = world.wallet.store.utxo(rec.txid, receive["vout"])
    back = world.wallet.store.utxo(rec.txid, change["vout"])
    assert (out.value, out.change, out.index) == (10_000, False, receive["index"])  # type: ignore[union-attr]
    assert (back.value, back.change, back.index) == (change["value"], True, change["index"])  # type: ignore[union-attr]
    assert rec.details["fee_paid"] == 400_000 - 10_000 - change["value"] == rec.details["fee"]
    assert world.wallet.balance().total == 400_000 - rec.details["fee_paid"] and world.reserved() == []
    assert world.audit(rec.id) == [
        "rehearsal-started",
        "rehearsal-signed",
        "rehearsal-exported",
        "rehearsal-signed",
        "rehearsal-broadcasting",
        "rehearsal-broadcast",
        "rehearsal-confirmed",
    ]
    assert any(m.startswith("[5/5] the coins are back in the wallet") for m in world.progress)


def test_the_psbt_pays_only_the_wallet_itself(world: World) -> None:
    rec = run(world, signers=("s0", "vault"), amount_sat=25_000).record
    summary = world.wallet.session(rec.session_id).summary
    assert all(o.ours for o in summary.outputs) and summary.sent == 0
    mine = {o.address: (o.value, o.change) for o in summary.outputs}
    assert mine[rec.details["receive"]["address"]] == (25_000, False)
    assert [a.label for a in world.wallet.addresses() if a.address == rec.details["receive"]["address"]] == [
        f"rehearsal {rec.id}"
    ]


def test_software_signers_alone_finish_in_one_run_when_a_block_comes(world: World) -> None:
    def mine_when_sent() -> None:
        deadline = time.monotonic() + 5
        while not world.chain.mempool and time.monotonic() < deadline:
            time.sleep(0.01)
        world.chain.add_block()

    miner = threading.Thread(target=mine_when_sent)
    miner.start()
    done = run(world, signers=("s0", "s1"), timeout=5.0)
    miner.join()
    assert done.done and done.resumed is False


def test_wait_signers_polls_the_file_signers_folder(world: World) -> None:
    def airgapped_machine() -> None:  # signs once the export shows up, as an operator would
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            exported = list((world.dir / "usb").glob("*.psbt.txt"))
            if exported:
                world.sign_offline(exported[0].name.split(".")[0])
                return
            time.sleep(0.01)

    machine = threading.Thread(target=airgapped_machine)
    machine.start()
    result = run(world, signers=("s1", "vault"), wait_signers=5.0)
    machine.join()
    assert result.record.state is RehearsalState.BROADCAST and result.waiting_for == ()
    assert any("waiting for vault's signed PSBT" in m for m in world.progress)


# --- failures and aborts ---------------------------------------------------------------------------
@pytest.mark.parametrize("returned", ["as exported", "without any signature"])
def test_a_file_signer_returning_the_psbt_unsigned_fails_it_and_releases_the_coins(world: World, returned: str) -> None:
    rec = run(world, signers=("s0", "vault")).record
    if returned == "as exported":  # carries s0's signature, not vault's
        world.sign_offline(rec.session_id, sign=False)
    else:
        from l2custody.wallet.psbt import load_psbt

        first = load_psbt(world.wallet.store.psbt(rec.session_id).psbt)
        for inp in first.inputs:
            inp.partial_sigs.clear()
        (world.dir / "usb" / f"{rec.session_id}-signed.psbt").write_bytes(first.serialize())
    with pytest.raises(SignerError) as err:
        run(world)
    assert f"rehearsal {rec.id} failed: signer vault: {rec.session_id}-signed.psbt came back without its " in (
        err.value.message
    )
    assert "1 coin(s) released; nothing was broadcast" in err.value.message
    failed = rehearsals(world.wallet.store)[-1]
    assert failed.state is RehearsalState.FAILED and "came back without its signature" in (failed.error or "")
    assert world.reserved() == [] and world.wallet.store.psbt(rec.session_id).state == "aborted"
    assert world.audit(rec.id)[-1] == "rehearsal-failed" and world.chain.mempool == {}
    assert run(world, signers=("s0", "s1")).record.id != rec.id  # a new one may start


def test_a_signer_that_holds_another_key_fails_it(world: World) -> None:
    rec = run(world, signers=("s0", "vault")).record
    world.sign_offline(rec.session_id, key=1)  # the wrong device: key 1 instead of key 2
    with pytest.raises(SignerError, match="came back without its signature"):
        run(world)
    assert world.reserved() == []


def test_abort_gives_it_up_and_releases_the_coins(world: World) -> None:
    with pytest.raises(UsageError, match="no unfinished rehearsal to abort"):
        Rehearsal(world.wallet).abort()
    rec = run(world, signers=("s0", "vault")).record
    aborted = Rehearsal(world.wallet).abort()
    assert (aborted.record.state, aborted.released, aborted.record.error) == (
        RehearsalState.ABORTED,
        1,
        "aborted by the operator",
    )
    assert world.reserved() == [] and world.audit(rec.id)[-1] == "rehearsal-aborted"
    world.sign_offline(rec.session_id)  # too late: a later run starts afresh
    assert run(world, signers=("s0", "s1")).record.id != rec.id


def test_a_sent_rehearsal_cannot_be_aborted(world: World) -> None:
    run(world, signers=("s0", "s1"))
    with pytest.raises(PsbtError, match="may be on the chain, so it cannot be aborted"):
        Rehearsal(world.wallet).abort()


def test_continuing_with_other_signers_or_amount_is_refused(world: World) -> None:
    rec = run(world, signers=("s0", "vault")).record
    for options in ({"signers": ("s0", "s1")}, {"amount_sat": 20_000}):
        with pytest.raises(UsageError, match=f"rehearsal {rec.id} .* is not finished: run"):
            run(world, **options)
    assert run(world, signers=("vault", "s0")).record.id == rec.id  # the same ones: fine


def test_too_small_an_amount_or_too_little_money_starts_nothing(world: World) -> None:
    with pytest.raises(UsageError, match="at least 546 sat"):
        run(world, signers=("s0", "s1"), amount_sat=545)
    with pytest.raises(InsufficientFunds, match="fund it"):
        run(world, signers=("s0", "s1"), amount_sat=400_000)
    assert rehearsals(world.wallet.store) == [] and world.reserved() == []


@pytest.mark.parametrize("accepted", [True, False])
def test_a_broadcast_without_an_answer_is_resumed_from_the_chain(tmp_path: Path, accepted: bool) -> None:
    chain = UnsureChain()
    world = World.make(tmp_path, chain=chain)
    chain.lose = accepted
    with pytest.raises(BroadcastUnknown, match="stays broadcasting: run `l2custody wallet rehearse` again"):
        run(world, signers=("s0", "s1"))
    rec = rehearsals(world.wallet.store)[-1]
    assert rec.state is RehearsalState.BROADCASTING and (rec.txid in chain.mempool) is accepted
    with pytest.raises(PsbtError, match="may be on the chain"):
        Rehearsal(world.wallet).abort()
    resumed = run(world).record  # the chain is asked first; sent again only when it does not know it
    assert resumed.id == rec.id and resumed.state is RehearsalState.BROADCAST and rec.txid in chain.mempool
    assert ("found" in str(world.wallet.store.audit_log(subject=rec.id)[-1].details)) is accepted
    chain.add_block()
    assert run(world, timeout=5.0).done
    world.wallet.close()


def test_a_broadcast_the_chain_refuses_fails_it_and_releases_the_coins(tmp_path: Path) -> None:
    chain = UnsureChain()
    world = World.make(tmp_path, chain=chain)
    chain.refuse = "min relay fee not met"
    with pytest.raises(BroadcastRejected, match="the chain refused the transaction: min relay fee not met"):
        run(world, signers=("s0", "s1"))
    rec = rehearsals(world.wallet.store)[-1]
    assert rec.state is RehearsalState.FAILED and world.reserved() == [] and chain.mempool == {}
    world.wallet.close()


def test_a_session_aborted_behind_its_back_fails_the_rehearsal(world: World) -> None:
    rec = run(world, signers=("s0", "vault")).record
    world.wallet.abort(rec.session_id, "psbt abort by hand")
    with pytest.raises(PsbtError, match=f"its PSBT session {rec.session_id} was aborted outside the rehearsal"):
        run(world)
    assert rehearsals(world.wallet.store)[-1].state is RehearsalState.FAILED and world.reserved() == []


# --- hardware signers (FakeHwilib) -----------------------------------------------------------------
@pytest.fixture
def device(world: World, monkeypatch: pytest.MonkeyPatch) -> FakeHwilib:
    fake = FakeHwilib(mnemonic_signer(1))
    fake.install(monkeypatch)
    add_signer(world.wallet.config, "ledger", "hwi", fake.signer.fingerprint)
    return fake


def test_a_hardware_signer_shows_the_receive_address_before_it_signs(world: World, device: FakeHwilib) -> None:
    asked: list[tuple[str, str]] = []
    options = RehearsalOptions(signers=("s0", "ledger"), **FAST)
    result = Rehearsal(world.wallet, confirm_address=lambda s, a: asked.append((s, a)) or True).run(options)
    rec = result.record
    receive = rec.details["receive"]
    assert asked == [("ledger", receive["address"])]
    assert [c[0] for c in device.calls] == ["find_device", "displayaddress", "find_device", "signtx"]
    assert device.calls[1][1] == world.wallet.descriptor.address_descriptor(False, receive["index"])
    assert (
        rec.state is RehearsalState.BROADCAST
        and rec.details["address_checks"]["ledger"]["address"] == (receive["address"])
    )
    assert "rehearsal-address-confirmed" in world.audit(rec.id)


@pytest.mark.parametrize("what", ["the operator says no", "the device shows another address"])
def test_an_address_not_confirmed_fails_it(world: World, device: FakeHwilib, what: str) -> None:
    if what == "the device shows another address":
        device.shows = descriptor().address(False, 19)
    options = RehearsalOptions(signers=("ledger", "s0"), **FAST)
    with pytest.raises(SignerError) as err:
        Rehearsal(world.wallet, confirm_address=lambda s, a: what != "the operator says no").run(options)
    expected = (
        "did not confirm that ledger shows" if what == "the operator says no" else "it does not hold this multisig"
    )
    assert expected in err.value.message and "signtx" not in [c[0] for c in device.calls]
    assert rehearsals(world.wallet.store)[-1].state is RehearsalState.FAILED and world.reserved() == []


def test_an_unplugged_device_or_nobody_to_ask_leaves_it_waiting(world: World, device: FakeHwilib) -> None:
    options = RehearsalOptions(signers=("ledger", "s0"), **FAST)
    with pytest.raises(SignerUnavailable, match="nobody can be asked here"):
        Rehearsal(world.wallet).run(options)
    device.connected = False
    with pytest.raises(SignerUnavailable, match="connect and unlock it.*run `l2custody wallet rehearse` again"):
        Rehearsal(world.wallet, confirm_address=lambda s, a: True).run(options)
    rec = rehearsals(world.wallet.store)[-1]
    assert rec.state is RehearsalState.SIGNING and world.reserved() == rec.details["inputs"]
    device.connected = True
    done = Rehearsal(world.wallet, confirm_address=lambda s, a: True).run(RehearsalOptions(**FAST))
    assert done.record.id == rec.id and done.record.state is RehearsalState.BROADCAST


# --- choosing the signers ------------------------------------------------------------------------
DESC = descriptor()
FPS = [k.fingerprint for k in DESC.keys]


def signer(name: str, key: int | None, kind: str = "software") -> SignerRecord:
    return SignerRecord(name, kind, None, FPS[key] if key is not None else "", {}, 0.0)


REGISTERED = [signer("alice", 0), signer("bob", 1), signer("carol", 2, "file"), signer("bob-usb", 1, "file")]


def test_rotation_picks_the_never_rehearsed_then_the_least_recent() -> None:
    names = lambda last: [s.name for s in choose_signers(REGISTERED, DESC, last)]  # noqa: E731
    assert names({}) == ["alice", "bob"]  # all never: by name, one signer per key
    assert names({"alice": 10.0, "bob": 10.0}) == ["bob-usb", "carol"]
    assert names({"alice": 10.0, "bob": 10.0, "bob-usb": 20.0, "carol": 20.0}) == ["alice", "bob"]
    assert names({"alice": 30.0, "bob": 10.0, "bob-usb": 20.0, "carol": 5.0}) == ["carol", "bob"]


def test_rotation_says_which_keys_have_no_signer() -> None:
    with pytest.raises(UsageError) as err:
        choose_signers([signer("alice", 0), signer("alice-usb", 0, "file")], DESC, {})
    assert err.value.message == (
        f"a rehearsal needs 2 signers holding different keys of the wallet, but only 1 of its 3 keys have a "
        f"registered signer (alice ({FPS[0]}), alice-usb ({FPS[0]})); register a signer for {FPS[1]}, {FPS[2]} "
        "with `l2custody signer add`"
    )


@pytest.mark.parametrize(
    ("requested", "problem"),
    [
        (("alice",), "name exactly 2 signers with --signers (got 1: alice)"),
        (("alice", "bob", "carol"), "name exactly 2 signers with --signers (got 3"),
        (("alice", "zed"), "no signer named 'zed'; see `l2custody signer list`"),
        (("alice", "alice"), "signer alice is named twice"),
        (("bob", "bob-usb"), f"signers bob and bob-usb hold the same key {FPS[1]}"),
        (("alice", "nokey"), "signer nokey has no key fingerprint registered"),
        (("alice", "stranger"), "signer stranger's key 0badc0de is not one of this wallet's keys"),
    ],
)
def test_named_signers_are_checked(requested: tuple[str, ...], problem: str) -> None:
    registered = [*REGISTERED, signer("nokey", None, "file"), SignerRecord("stranger", "hwi", None, "0badc0de", {}, 0)]
    with pytest.raises(UsageError) as err:
        choose_signers(registered, DESC, {}, requested)
    assert problem in err.value.message


def test_named_signers_are_taken_as_named() -> None:
    assert [s.name for s in choose_signers(REGISTERED, DESC, {"carol": 1.0}, ("carol", "bob-usb"))] == [
        "carol",
        "bob-usb",
    ]


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    st.lists(st.sampled_from(range(3)), min_size=2, max_size=6),
    st.dictionaries(st.integers(0, 5), st.floats(0, 1e9, allow_nan=False), max_size=6),
)
def test_rotation_always_proves_k_distinct_keys_starting_with_the_longest_unproven(
    keys: list[int], times: dict[int, float]
) -> None:
    registered = [signer(f"s{i}", key) for i, key in enumerate(keys)]
    last = {f"s{i}": t for i, t in times.items() if i < len(keys)}
    if len(set(keys)) < 2:
        with pytest.raises(UsageError, match="register a signer for"):
            choose_signers(registered, DESC, last)
        return
    chosen = choose_signers(registered, DESC, last)
    assert len(chosen) == 2 and len({s.fingerprint for s in chosen}) == 2
    rank = lambda s: (s.name in last, last.get(s.name, 0.0), s.name)  # noqa: E731
    first = min(registered, key=rank)
    assert chosen[0] == first  # the signer unproven longest always goes first
    for s in registered:  # no signer of another key waits while a more recent one is chosen
        if s not in chosen and s.fingerprint not in {c.fingerprint for c in chosen}:
            assert all(rank(c) <= rank(s) for c in chosen)


def test_the_vector_wallet_keys_are_those_of_the_vector_mnemonics() -> None:
    assert sorted(FPS) == sorted(mnemonic_signer(i).fingerprint for i in range(3))


def test_a_recovery_wallet_is_rehearsed_with_its_primary_keys_never_a_time_locked_one() -> None:
    """A recovery key cannot sign before its delay: picking it would make every rehearsal
    fail, and counting it would let a rehearsal 'prove' a quorum the primary path lacks."""
    from l2custody.wallet.miniscript import RecoveryDescriptor
    from tests.support import miniscript

    desc = RecoveryDescriptor.parse(miniscript.text(), network="regtest")
    recovery_fp = desc.recovery_paths[0].keys[0].fingerprint
    heir = SignerRecord("heir", "software", None, recovery_fp, {}, 0.0)
    registered = [heir, signer("alice", 0), signer("bob", 1)]
    assert [s.name for s in choose_signers(registered, desc, {})] == ["alice", "bob"]
    with pytest.raises(UsageError, match="is a time-locked recovery key"):
        choose_signers(registered, desc, {}, ("heir", "alice"))
    with pytest.raises(UsageError, match="only 1 of its 3 keys"):
        choose_signers([heir, signer("alice", 0)], desc, {})
