"""Building, signing, combining and finalizing multisig PSBTs.

The finalized transactions are checked by an independent judge written
here: a BIP-143 sighash computed by hand and a CHECKMULTISIG walk over the
witness, so the finalizer is not its own oracle. (The chain-level oracle —
the node accepting the transaction — is in the integration tests.)
"""

from __future__ import annotations

import hashlib
from itertools import combinations

import pytest
from embit import ec
from embit.psbt import PSBT
from embit.transaction import Transaction

from l2custody.errors import InsufficientFunds, NetworkMismatch, PsbtError, PsbtTampered
from l2custody.wallet import size
from l2custody.wallet.psbt import (
    TxOut,
    build_psbt,
    combine,
    count_signatures,
    extract,
    finalize,
    finalize_psbt,
    find_output,
    load_psbt,
    psbt_fingerprint,
    psbt_to_base64,
    psbt_txid,
)
from l2custody.wallet.review import summarize
from tests.support.wallet import (
    WALLET,
    coin,
    coins,
    descriptor,
    outside_address,
    pay,
    rng,
    signers,
)

DESC = descriptor()
TIP = 1000


def dsha(b: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(b).digest()).digest()


def compact(n: int) -> bytes:
    return bytes([n]) if n < 0xFD else b"\xfd" + n.to_bytes(2, "little")


def bip143_sighash_all(tx: Transaction, i: int, witness_script: bytes, value: int) -> bytes:
    """BIP-143 signature hash for SIGHASH_ALL, written from the BIP, not from embit."""
    prevouts = b"".join(bytes(reversed(v.txid)) + v.vout.to_bytes(4, "little") for v in tx.vin)
    sequences = b"".join(v.sequence.to_bytes(4, "little") for v in tx.vin)
    outputs = b"".join(
        o.value.to_bytes(8, "little") + compact(len(o.script_pubkey.data)) + o.script_pubkey.data for o in tx.vout
    )
    vin = tx.vin[i]
    preimage = (
        tx.version.to_bytes(4, "little")
        + dsha(prevouts)
        + dsha(sequences)
        + bytes(reversed(vin.txid))
        + vin.vout.to_bytes(4, "little")
        + compact(len(witness_script))
        + witness_script
        + value.to_bytes(8, "little")
        + vin.sequence.to_bytes(4, "little")
        + dsha(outputs)
        + tx.locktime.to_bytes(4, "little")
        + (1).to_bytes(4, "little")
    )
    return dsha(preimage)


def assert_valid_multisig_spend(raw: bytes, spent: dict[str, tuple[int, bytes]], threshold: int) -> Transaction:
    """Judge a signed transaction: every input's witness must satisfy its P2WSH k-of-n output."""
    tx = Transaction.parse(raw)
    for i, vin in enumerate(tx.vin):
        value, spk = spent[f"{vin.txid.hex()}:{vin.vout}"]
        items = vin.witness.items
        script = items[-1]
        assert spk == b"\x00\x20" + hashlib.sha256(script).digest(), "witness script does not hash to the output"
        assert items[0] == b"", "CHECKMULTISIG dummy must be empty"
        assert script[-1] == 0xAE and script[0] - 0x50 == threshold
        keys = [script[2 + 34 * k : 35 + 34 * k] for k in range(script[-2] - 0x50)]
        sigs = items[1:-1]
        assert len(sigs) == threshold
        msg = bip143_sighash_all(tx, i, script, value)
        pos = 0
        for sig in sigs:
            assert sig[-1] == 1, "signature must be SIGHASH_ALL"
            signature = ec.Signature.parse(sig[:-1])
            while pos < len(keys) and not ec.PublicKey.parse(keys[pos]).verify(signature, msg):
                pos += 1
            assert pos < len(keys), f"input {i}: a signature matches no remaining key"
            pos += 1
    return tx


def simple_psbt(values=(100_000, 250_000), amount=120_000, change_index=0, fee_rate=5.0, **kw) -> tuple[PSBT, list]:
    utxos = coins(DESC, list(values))
    return build_psbt(DESC, utxos, [pay(amount)], change_index, fee_rate, TIP, rng=rng(), **kw), utxos


# --- what build_psbt promises -------------------------------------------------------
def test_build_makes_a_version_2_rbf_transaction_with_full_hardware_metadata() -> None:
    psbt, utxos = simple_psbt()
    tx = psbt.tx
    assert tx.version == 2
    assert all(v.sequence == 0xFFFFFFFD for v in tx.vin)
    by_outpoint = {u.outpoint: u for u in utxos}
    for pin in psbt.inputs:
        u = by_outpoint[f"{pin.txid.hex()}:{pin.vout}"]
        derived = DESC.derive(u.change, u.index)
        assert pin.witness_utxo.value == u.value and pin.witness_utxo.script_pubkey.data == u.script_pubkey
        assert pin.non_witness_utxo is not None and pin.non_witness_utxo.txid() == pin.txid
        assert pin.witness_script.data == derived.witness_script
        got = {pub.sec(): (d.fingerprint, d.derivation) for pub, d in pin.bip32_derivations.items()}
        assert got == derived.bip32 and len(got) == 3
    assert {d.fingerprint.hex() for d in psbt.xpubs.values()} == {k[1:9] for k in WALLET["keys"]}


def test_change_goes_to_the_change_branch_with_its_metadata() -> None:
    psbt, _ = simple_psbt(change_index=4)
    change = DESC.derive(True, 4)
    j = find_output(psbt, change.script_pubkey)
    assert j is not None
    out = psbt.outputs[j]
    assert out.witness_script.data == change.witness_script
    assert {pub.sec() for pub in out.bip32_derivations} == set(change.bip32)
    other = 1 - j
    assert not psbt.outputs[other].bip32_derivations and psbt.outputs[other].value == 120_000


def test_locktime_is_the_tip_or_one_time_in_ten_up_to_99_blocks_lower() -> None:
    locktimes = []
    for seed in range(300):
        p = build_psbt(DESC, coins(DESC, [100_000]), [pay(50_000)], 0, 2.0, TIP, rng=rng(seed))
        locktimes.append(p.tx.locktime)
    assert all(TIP - 99 <= lt <= TIP for lt in locktimes)
    lowered = sum(1 for lt in locktimes if lt < TIP)
    assert 10 <= lowered <= 60  # about 10% of 300, minus the draws of "0 blocks lower"


def test_locktime_is_used_verbatim_without_anti_fee_sniping() -> None:
    p = build_psbt(DESC, coins(DESC, [100_000]), [pay(50_000)], 0, 2.0, 777, anti_fee_sniping=False)
    assert p.tx.locktime == 777


def test_output_order_is_random_and_find_output_locates_them() -> None:
    change = DESC.derive(True, 0).script_pubkey
    positions = {
        find_output(build_psbt(DESC, coins(DESC, [100_000]), [pay(50_000)], 0, 2.0, TIP, rng=rng(s)), change)
        for s in range(20)
    }
    assert positions == {0, 1}


def test_fee_pays_at_least_the_rate_for_the_real_signed_size() -> None:
    for fee_rate in (1.0, 2.5, 13.7):
        psbt, utxos = simple_psbt(values=(60_000, 70_000, 80_000), amount=150_000, fee_rate=fee_rate)
        s0, _, s2 = signers()
        raw = finalize(combine([s0.sign(psbt), s2.sign(psbt)]), DESC)
        stripped = Transaction.parse(raw)
        for v in stripped.vin:
            v.witness = type(v.witness)([])
        real_vsize = size.vsize(3 * len(stripped.serialize()) + len(raw))  # weight = 3*base + total
        summary = summarize(psbt, DESC)
        assert summary.fee >= fee_rate * real_vsize
        assert summary.vsize >= real_vsize  # the estimate is an upper bound
        assert summary.vsize - real_vsize <= 3


def test_sub_dust_change_is_given_to_the_fee() -> None:
    fee_no_change = size.fee_for_weight(size.tx_weight([size.multisig_input_weight(2, 3)], [34]), 2.0)
    utxos = coins(DESC, [100_000])
    p = build_psbt(DESC, utxos, [pay(100_000 - fee_no_change - 300)], 0, 2.0, TIP, rng=rng())
    assert len(p.outputs) == 1
    assert summarize(p, DESC).fee == fee_no_change + 300


def test_subtract_fee_takes_the_fee_from_the_chosen_output() -> None:
    p, _ = simple_psbt(values=(100_000, 250_000), amount=120_000, subtract_fee_from=0)
    s = summarize(p, DESC)
    dest = next(o for o in s.outputs if not o.ours)
    change = next(o for o in s.outputs if o.change)
    assert change.value == 350_000 - 120_000
    assert dest.value == 120_000 - s.fee


def test_send_everything_with_subtract_fee_and_no_change() -> None:
    utxos = coins(DESC, [100_000, 50_000])
    p = build_psbt(DESC, utxos, [pay(150_000)], None, 3.0, TIP, subtract_fee_from=0, rng=rng())
    s = summarize(p, DESC)
    assert len(s.outputs) == 1 and s.outputs[0].value == 150_000 - s.fee
    assert s.fee_rate >= 3.0


def test_refuses_when_coins_cannot_pay_outputs_and_fee() -> None:
    with pytest.raises(InsufficientFunds, match="short by"):
        build_psbt(DESC, coins(DESC, [100_000]), [pay(99_900)], 0, 5.0, TIP)


def test_refuses_dust_outputs() -> None:
    with pytest.raises(PsbtError, match="dust threshold of 330 sat"):
        build_psbt(DESC, coins(DESC, [100_000]), [pay(329)], 0, 5.0, TIP)


def test_refuses_to_give_a_large_remainder_to_miners_without_change() -> None:
    with pytest.raises(PsbtError, match="pass a change index"):
        build_psbt(DESC, coins(DESC, [100_000]), [pay(50_000)], None, 5.0, TIP)


def test_refuses_duplicate_or_misrecorded_coins() -> None:
    c = coin(DESC, 100_000, index=2, salt=9)
    with pytest.raises(PsbtError, match="listed twice"):
        build_psbt(DESC, [c, c], [pay(50_000)], 0, 2.0, TIP)
    wrong = type(c)(c.txid, c.vout, c.value, c.script_pubkey, c.change, 3, c.height, c.prev_tx)
    with pytest.raises(PsbtError, match="resync"):
        build_psbt(DESC, [wrong], [pay(50_000)], 0, 2.0, TIP)
    lying = type(c)(c.txid, c.vout, c.value + 1, c.script_pubkey, c.change, 2, c.height, c.prev_tx)
    with pytest.raises(PsbtError, match="does not pay this coin"):
        build_psbt(DESC, [lying], [pay(50_000)], 0, 2.0, TIP)


def test_refuses_destinations_of_another_network() -> None:
    with pytest.raises(NetworkMismatch, match="signet or testnet address but this wallet is on regtest"):
        TxOut.to_address(WALLET["test_receive"][0], 10_000, "regtest")
    with pytest.raises(NetworkMismatch, match="mainnet"):
        TxOut.to_address("bc1qrgc6p3kylfztu06ysl752gwwuekhvtfh9vr7zg43jvu60mutamcsv948ej", 10_000, "regtest")


# --- signing and finalizing ---------------------------------------------------------
@pytest.mark.parametrize("pair", list(combinations(range(3), 2)))
def test_any_two_of_three_signers_make_a_valid_transaction(pair: tuple[int, int]) -> None:
    psbt, utxos = simple_psbt(values=(60_000, 70_000, 80_000), amount=150_000)
    all_signers = signers()
    signed = [all_signers[k].sign(psbt) for k in pair]
    raw = finalize(combine(signed), DESC)
    spent = {u.outpoint: (u.value, u.script_pubkey) for u in utxos}
    tx = assert_valid_multisig_spend(raw, spent, threshold=2)
    assert tx.txid().hex() == psbt_txid(psbt)


def test_the_judge_rejects_a_witness_with_a_swapped_signature() -> None:
    psbt, utxos = simple_psbt()
    s0, s1, _ = signers()
    raw = finalize(combine([s0.sign(psbt), s1.sign(psbt)]), DESC)
    tx = Transaction.parse(raw)
    items = tx.vin[0].witness.items
    items[1], items[2] = items[2], items[1]  # CHECKMULTISIG needs key order
    with pytest.raises(AssertionError):
        assert_valid_multisig_spend(tx.serialize(), {u.outpoint: (u.value, u.script_pubkey) for u in utxos}, 2)


def test_signing_returns_a_copy_and_counts_signatures() -> None:
    psbt, _ = simple_psbt()
    signed = signers()[1].sign(psbt)
    assert count_signatures(psbt) == [0, 0]
    assert count_signatures(signed) == [1, 1]
    assert count_signatures(combine([signed, signers()[0].sign(psbt)])) == [2, 2]


def test_finalize_with_too_few_signatures_names_the_missing_cosigners() -> None:
    psbt, _ = simple_psbt()
    one = signers()[0].sign(psbt)
    with pytest.raises(PsbtError, match="has 1 of the 2 signatures it needs; collect 1 more from") as exc:
        finalize(one, DESC)
    assert WALLET["keys"][1][1:9] in exc.value.message and WALLET["keys"][2][1:9] in exc.value.message


def test_finalize_refuses_a_signature_made_for_another_transaction() -> None:
    psbt, _ = simple_psbt(amount=120_000)
    other, _ = simple_psbt(amount=120_001)  # same coins, same keys, different outputs
    s0, s1, _ = signers()
    both = combine([s0.sign(psbt), s1.sign(psbt)])
    foreign = s1.sign(other)
    by_outpoint = {(i.txid, i.vout): i for i in foreign.inputs}
    for pin in both.inputs:
        for pub, sig in by_outpoint[(pin.txid, pin.vout)].partial_sigs.items():
            pin.partial_sigs[pub] = sig
    with pytest.raises(PsbtTampered, match="does not verify for this transaction"):
        finalize(both, DESC)


def test_finalized_psbt_still_reviews_as_ours_and_complete() -> None:
    psbt, _ = simple_psbt()
    s0, _, s2 = signers()
    final = finalize_psbt(combine([s0.sign(psbt), s2.sign(psbt)]), DESC)
    assert count_signatures(final) == [-1, -1]
    s = summarize(final, DESC)
    assert s.complete and s.ok and all(i.finalized and i.ours for i in s.inputs)
    assert extract(final) == finalize(final, DESC)


def test_extract_refuses_an_unfinalized_psbt() -> None:
    psbt, _ = simple_psbt()
    with pytest.raises(PsbtError, match="not finalized"):
        extract(psbt)


def test_combine_refuses_psbts_of_different_transactions() -> None:
    a, _ = simple_psbt(amount=120_000)
    b, _ = simple_psbt(amount=120_001)
    with pytest.raises(PsbtError, match="different transaction"):
        combine([a, b])


# --- identity and serialization -----------------------------------------------------
def test_fingerprint_ignores_signatures_but_not_amounts() -> None:
    psbt, _ = simple_psbt()
    signed = signers()[0].sign(psbt)
    assert psbt_fingerprint(signed) == psbt_fingerprint(psbt)
    edited = load_psbt(psbt.serialize())
    edited.outputs[0].value -= 1
    assert psbt_fingerprint(edited) != psbt_fingerprint(psbt)
    forged = load_psbt(psbt.serialize())
    forged.inputs[0].witness_utxo.value += 1000
    assert psbt_fingerprint(forged) != psbt_fingerprint(psbt)


def test_load_psbt_reads_binary_base64_and_hex() -> None:
    psbt, _ = simple_psbt()
    raw = psbt.serialize()
    for form in (raw, psbt_to_base64(psbt), psbt_to_base64(psbt).encode(), raw.hex()):
        assert load_psbt(form).serialize() == raw


def test_load_psbt_refuses_what_is_not_a_psbt() -> None:
    with pytest.raises(PsbtError, match="neither base64 nor hex"):
        load_psbt("hello world!")
    with pytest.raises(PsbtError, match="magic"):
        load_psbt("aGVsbG8=")
    with pytest.raises(PsbtError, match="malformed"):
        load_psbt(b"psbt\xff\x01\x00\x05")


# --- size arithmetic ------------------------------------------------------------------
def test_size_figures_match_known_values() -> None:
    assert size.multisig_input_weight(2, 3) == 418  # 104.5 vB: the usual 2-of-3 P2WSH figure
    assert size.dust_threshold(b"\x00\x20" + bytes(32)) == 330
    assert size.dust_threshold(b"\x00\x14" + bytes(20)) == 294
    assert size.dust_threshold(b"\x76\xa9\x14" + bytes(20) + b"\x88\xac") == 546
    assert size.dust_threshold(b"\xa9\x14" + bytes(20) + b"\x87") == 540
    assert size.dust_threshold(b"\x6a\x04test") == 0
    assert size.fee_for_vsize(141, 1.5) == 212  # ceil(211.5)


def test_outside_address_is_not_ours() -> None:
    assert outside_address() not in WALLET["regtest_receive"]


def test_finalize_needs_key_origins_or_known_scripts_to_recognise_inputs() -> None:
    psbt, utxos = simple_psbt()
    s0, s1, _ = signers()
    both = combine([s0.sign(psbt), s1.sign(psbt)])
    for pin in both.inputs:
        pin.bip32_derivations = {}
    with pytest.raises(PsbtTampered, match="input 0 does not spend an address of this wallet"):
        finalize(both, DESC)
    known = {u.script_pubkey: (u.change, u.index) for u in utxos}
    raw = finalize(both, DESC, known_scripts=known)
    assert_valid_multisig_spend(raw, {u.outpoint: (u.value, u.script_pubkey) for u in utxos}, 2)
