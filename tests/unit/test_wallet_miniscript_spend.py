"""Spending a recovery wallet's coins: nSequence, witnesses, completeness, sizes.

The wallet is the issue's example: 2-of-3 (A, B, C), or R1 alone once a coin
is 10 blocks old. The witness stacks are written out from the miniscript
spec; every signature in them is checked against a BIP-143 sighash written
from the BIP (tests/unit/test_wallet_psbt.py). The node's verdict on these
transactions is in tests/integration/test_wallet_recovery.py.
"""

from __future__ import annotations

import pytest
from embit import ec
from embit.psbt import PSBT
from embit.script import Witness
from embit.transaction import Transaction

from l2custody.errors import DescriptorError, PsbtError, PsbtTampered
from l2custody.wallet import size
from l2custody.wallet.psbt import (
    build_psbt,
    combine,
    copy_psbt,
    extract,
    final_witness_valid,
    finalize_psbt,
)
from l2custody.wallet.review import summarize
from tests.support import miniscript as ms
from tests.support.wallet import coin, pay, rng
from tests.support.wallet import descriptor as multisig_descriptor
from tests.unit.test_wallet_psbt import bip143_sighash_all

DESC = ms.descriptor()
STACKED = ms.stacked()
A, B, C, R1, R2, R3, R4 = ms.signers()
TIP = 1000


def spend(desc=DESC, recovery: int | None = None, values=(200_000,)) -> PSBT:
    utxos = [coin(desc, v, index=i + 2, salt=i + 1) for i, v in enumerate(values)]
    return build_psbt(desc, utxos, [pay(50_000)], 0, 2.0, TIP, rng=rng(), recovery=recovery)


def signed(psbt: PSBT, *signers) -> PSBT:
    return combine([s.sign(psbt) for s in signers])


def sig_of(psbt: PSBT, signer, i: int = 0) -> bytes:
    """The signature ``signer`` put on input ``i``."""
    fp = bytes.fromhex(signer.fingerprint)
    return next(
        sig
        for pub, sig in psbt.inputs[i].partial_sigs.items()
        if psbt.inputs[i].bip32_derivations[pub].fingerprint == fp
    )


def pub_of(psbt: PSBT, signer, i: int = 0) -> bytes:
    fp = bytes.fromhex(signer.fingerprint)
    return next(pub.sec() for pub, d in psbt.inputs[i].bip32_derivations.items() if d.fingerprint == fp)


def witness(final: PSBT, i: int = 0) -> list[bytes]:
    return list(final.inputs[i].final_scriptwitness.items)


def assert_signatures_verify(final: PSBT, i: int, pairs: list[tuple[bytes, bytes]]) -> None:
    """Each (pubkey, signature) verifies against the BIP-143 sighash of input ``i``, SIGHASH_ALL."""
    tx = Transaction.parse(extract(final))
    script = witness(final, i)[-1]
    msg = bip143_sighash_all(tx, i, script, final.inputs[i].witness_utxo.value)
    for pub, sig in pairs:
        assert sig[-1] == 1
        assert ec.PublicKey.parse(pub).verify(ec.Signature.parse(sig[:-1]), msg)


# --- nSequence ------------------------------------------------------------------------------
def test_a_primary_spend_signals_rbf_and_a_recovery_spend_carries_the_delay() -> None:
    assert [v.sequence for v in spend().tx.vin] == [size.RBF_SEQUENCE]
    recovery = spend(recovery=10, values=(100_000, 150_000))
    assert recovery.tx.version == 2
    assert [v.sequence for v in recovery.tx.vin] == [10, 10]  # BIP-68: 10 blocks; still below 0xfffffffe: RBF


def test_a_recovery_spend_needs_a_recovery_path_of_that_delay() -> None:
    with pytest.raises(DescriptorError, match="no recovery path after 11 blocks; its paths open after 10"):
        spend(recovery=11)
    multisig = multisig_descriptor()
    with pytest.raises(PsbtError, match="this wallet has no recovery path"):
        build_psbt(multisig, [coin(multisig, 100_000)], [pay(50_000)], 0, 2.0, TIP, recovery=10)


# --- the witnesses ---------------------------------------------------------------------------
def test_primary_spend_witness_is_the_multisig_alone() -> None:
    psbt = signed(spend(), A, C)
    final = finalize_psbt(psbt, DESC)
    script = DESC.derive(False, 2).witness_script
    # or_d(X,Z) satisfied by X: CHECKMULTISIG's empty dummy, then the signatures in key order
    assert witness(final) == [b"", sig_of(psbt, A), sig_of(psbt, C), script]
    assert_signatures_verify(final, 0, [(pub_of(psbt, A), sig_of(psbt, A)), (pub_of(psbt, C), sig_of(psbt, C))])
    assert final_witness_valid(final, 0, DESC.derive(False, 2), DESC)


def test_recovery_spend_witness_is_pkh_then_the_multisig_dissatisfied() -> None:
    psbt = signed(spend(recovery=10), R1)
    final = finalize_psbt(psbt, DESC)
    script = DESC.derive(False, 2).witness_script
    # or_d(X,Z) by Z: pkh(R1)'s signature and key, then multi(2,...) dissatisfied by K+1 = 3 empty items
    assert witness(final) == [sig_of(psbt, R1), pub_of(psbt, R1), b"", b"", b"", script]
    assert_signatures_verify(final, 0, [(pub_of(psbt, R1), sig_of(psbt, R1))])
    assert final_witness_valid(final, 0, DESC.derive(False, 2), DESC)


def test_stacked_paths_select_their_branch_with_or_i() -> None:
    script = STACKED.derive(False, 2).witness_script
    primary = signed(spend(STACKED), A, B)
    assert witness(finalize_psbt(primary, STACKED)) == [b"", sig_of(primary, A), sig_of(primary, B), b"", script]
    first = signed(spend(STACKED, recovery=10), R1)
    assert witness(finalize_psbt(first, STACKED)) == [sig_of(first, R1), pub_of(first, R1), b"", b"", b"", b"", script]
    second = signed(spend(STACKED, recovery=20), R2, R3)
    # thresh(2,pkh(R2),a:pkh(R3)): the last key's items deepest; or_i's X is chosen by a 1 on top
    assert witness(finalize_psbt(second, STACKED)) == [
        sig_of(second, R3),
        pub_of(second, R3),
        sig_of(second, R2),
        pub_of(second, R2),
        b"\x01",
        script,
    ]


def test_the_cheapest_complete_path_is_used() -> None:
    everyone = signed(spend(recovery=10), A, B, R1)
    items = witness(finalize_psbt(everyone, DESC))
    assert items[:2] == [sig_of(everyone, R1), pub_of(everyone, R1)]  # 110 witness bytes against the primary's 147
    before_the_delay = signed(spend(), A, B, R1)  # nSequence RBF: the recovery path is closed
    assert witness(finalize_psbt(before_the_delay, DESC))[:3] == [
        b"",
        sig_of(before_the_delay, A),
        sig_of(before_the_delay, B),
    ]


def test_an_incomplete_input_says_what_each_path_lacks() -> None:
    with pytest.raises(PsbtError) as err:
        finalize_psbt(signed(spend(), A, R1), DESC)
    message = err.value.message
    assert "the primary path has 1 of the 2 signatures it needs (collect 1 more from: " in message
    assert (
        "the recovery path after 10 blocks has 1 of the 1 signatures it needs and is open only to a spend " in message
    )
    assert "(nSequence 10; this input has 0xfffffffd)" in message


def test_a_witness_that_does_not_satisfy_the_script_is_refused() -> None:
    final = finalize_psbt(signed(spend(recovery=10), R1), DESC)
    derived = DESC.derive(False, 2)
    good = witness(final)
    for bad in (
        good[:1] + good[2:],  # the key of pkh missing
        [good[0], good[1], b"", b"", b"\x01", good[-1]],  # not a dissatisfaction of multi
        [good[0], pub_of(final, A), b"", b"", b"", good[-1]],  # another key's hash
        [good[0][:10] + bytes([good[0][10] ^ 1]) + good[0][11:], good[1], b"", b"", b"", good[-1]],  # does not verify
        good[:-1] + [multisig_descriptor().derive(False, 2).witness_script],
    ):
        probe = copy_psbt(final)
        probe.inputs[0].final_scriptwitness = Witness(bad)
        assert not final_witness_valid(probe, 0, derived, DESC)
        with pytest.raises(PsbtTampered, match="finalized elsewhere with a witness that is not valid"):
            finalize_psbt(probe, DESC)


def test_a_recovery_witness_on_an_input_whose_nsequence_does_not_open_it_is_refused() -> None:
    psbt = signed(spend(), R1)
    recovery_built = finalize_psbt(signed(spend(recovery=10), R1), DESC)
    probe = copy_psbt(psbt)
    probe.inputs[0].final_scriptwitness = recovery_built.inputs[0].final_scriptwitness
    assert not final_witness_valid(probe, 0, DESC.derive(False, 2), DESC)


# --- review ---------------------------------------------------------------------------------
def test_complete_means_a_path_is_satisfied() -> None:
    assert not summarize(signed(spend(), A), DESC).complete
    assert summarize(signed(spend(), A, B), DESC).complete
    assert not summarize(signed(spend(), R1), DESC).complete  # the recovery path is closed without nSequence 10
    assert summarize(signed(spend(recovery=10), R1), DESC).complete
    assert not summarize(signed(spend(STACKED, recovery=20), R2), STACKED).complete
    assert summarize(signed(spend(STACKED, recovery=20), R2, R3), STACKED).complete
    summary = summarize(finalize_psbt(signed(spend(recovery=10), R1), DESC), DESC)
    assert summary.complete and summary.inputs[0].finalized and summary.ok


def test_signatures_are_counted_from_every_path() -> None:
    summary = summarize(signed(spend(recovery=10), A, R1), DESC)
    assert summary.inputs[0].signatures == 2
    assert set(summary.inputs[0].signed_by) == {A.fingerprint, R1.fingerprint}
    assert summary.threshold == 2


# --- sizes -----------------------------------------------------------------------------------
def test_input_weights_of_each_path() -> None:
    # script: multi 105 bytes + IFDUP NOTIF 2 + v:pkh 25 + <10> CSV 2 + ENDIF 1 = 135 bytes
    assert len(DESC.derive(False, 0).witness_script) == 135
    # 41 bytes outside the witness (x4); witness: count, dummy, 2 x (1+72), then 1+135 for the script
    assert DESC.input_weight() == 4 * 41 + 1 + 1 + 2 * 73 + 1 + 135 == 448
    # count, 1+72 signature, 1+33 key, 3 empty items, then the script
    assert DESC.input_weight(10) == 4 * 41 + 1 + 73 + 34 + 3 + 1 + 135 == 411
    assert multisig_descriptor().input_weight() == size.multisig_input_weight(2, 3) == 418
    assert STACKED.input_weight(20) > STACKED.input_weight(10)


def test_fee_is_sized_for_the_path_and_never_below_the_real_weight() -> None:
    primary, recovery = spend(), spend(recovery=10)
    fee = lambda p: sum(i.witness_utxo.value for i in p.inputs) - sum(o.value for o in p.outputs)  # noqa: E731
    assert fee(primary) - fee(recovery) == size.fee_for_weight(
        size.tx_weight([448], [34, 34]), 2.0
    ) - size.fee_for_weight(size.tx_weight([411], [34, 34]), 2.0)
    for psbt, signers, estimate in ((primary, (A, B), 448), (recovery, (R1,), 411)):
        final = finalize_psbt(signed(psbt, *signers), DESC)
        real = 4 * 41 + len(final.inputs[0].final_scriptwitness.serialize())
        assert estimate - 4 <= real <= estimate  # DER signatures of 71 or 72 bytes
        assert summarize(psbt, DESC).vsize >= summarize(final, DESC).vsize
