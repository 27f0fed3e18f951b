"""What a signer is shown and what is refused before any signer sees a PSBT.

Each tampering test takes a PSBT the wallet built, changes it the way an
attacker (or a bug) would, and expects verify() to refuse with the error
type and a message naming the input or output.
"""

from __future__ import annotations

import json

import pytest
from embit import bip32, ec
from embit.psbt import DerivationPath
from embit.script import Script
from embit.transaction import Transaction, TransactionOutput

from l2custody.errors import NetworkMismatch, PolicyViolation, PsbtTampered
from l2custody.wallet.addresses import address_to_script
from l2custody.wallet.policy import Policy
from l2custody.wallet.psbt import (
    TxOut,
    build_psbt,
    check_signatures,
    copy_psbt,
    find_output,
    psbt_fingerprint,
)
from l2custody.wallet.review import summarize, verify
from tests.support.wallet import (
    WALLET,
    coin,
    coins,
    descriptor,
    other_descriptor,
    outside_address,
    pay,
    rng,
    signers,
)

DESC = descriptor()
ATTACKER = other_descriptor().address(False, 7)
DEST = outside_address()


def build(amount: int = 120_000, fee_rate: float = 5.0, change_index: int | None = 0, dest: str = DEST):
    return build_psbt(
        DESC, coins(DESC, [100_000, 250_000]), [pay(amount, dest)], change_index, fee_rate, 1000, rng=rng()
    )


def allowing(*addresses: str, **kw) -> Policy:
    return Policy(allowed_destinations=frozenset(addresses), **kw)


def dest_index(psbt) -> int:
    return find_output(psbt, address_to_script(DEST, "regtest"))


def change_index_of(psbt) -> int:
    return find_output(psbt, DESC.derive(True, 0).script_pubkey)


# --- the summary --------------------------------------------------------------------
def test_summary_describes_inputs_outputs_and_fee() -> None:
    psbt = build()
    s = summarize(psbt, DESC)
    assert s.ok and not s.complete and s.rbf and s.threshold == 2
    assert sorted((i.ours, i.change, i.derivation_index, i.value) for i in s.inputs) == [
        (True, False, 0, 100_000),
        (True, False, 1, 250_000),
    ]
    kinds = {o.kind: o for o in s.outputs}
    assert kinds["foreign"].address == DEST and kinds["foreign"].value == 120_000
    assert kinds["change"].address == WALLET["regtest_change"][0] and kinds["change"].derivation_index == 0
    assert s.fee == 350_000 - 120_000 - kinds["change"].value
    assert s.fee_rate == pytest.approx(s.fee / s.vsize) and s.fee_rate >= 5.0
    assert s.sent == 120_000 and s.warnings == ()
    json.dumps(s.to_dict())  # JSON-ready for --json


def test_summary_counts_signatures_per_cosigner() -> None:
    psbt = signers()[2].sign(build())
    s = summarize(psbt, DESC)
    assert [i.signed_by for i in s.inputs] == [(WALLET["keys"][2][1:9],)] * 2
    assert all(i.signatures == 1 for i in s.inputs)


def test_summary_warns_about_missing_previous_transactions_and_high_fees() -> None:
    utxos = [coin(DESC, 100_000, index=0, salt=1, with_prev=False)]
    psbt = build_psbt(DESC, utxos, [pay(20_000)], 0, 150.0, 1000, rng=rng())
    warnings = " | ".join(summarize(psbt, DESC).warnings)
    assert "lacks its previous transaction" in warnings
    assert "high fee: 15" in warnings


def test_known_scripts_mark_our_outputs_without_metadata() -> None:
    own = DESC.derive(False, 5)
    psbt = build(dest=own.address)
    assert summarize(psbt, DESC).outputs[dest_index_of(psbt, own)].kind == "foreign"
    s = summarize(psbt, DESC, known_scripts={own.script_pubkey: (False, 5)})
    assert s.outputs[dest_index_of(psbt, own)].kind == "self"


def dest_index_of(psbt, derived) -> int:
    return find_output(psbt, derived.script_pubkey)


# --- destinations and policy ----------------------------------------------------------
def test_foreign_destination_is_refused_by_default_with_how_to_allow_it() -> None:
    psbt = build()
    j = dest_index(psbt)
    with pytest.raises(PolicyViolation) as exc:
        verify(psbt, DESC, Policy())
    msg = exc.value.message
    assert f"output {j} pays 120,000 sat to {DEST}" in msg
    assert "[policy] allowed_destinations" in msg and "allow_any_destination" in msg


def test_allowed_destination_passes() -> None:
    s = verify(build(), DESC, allowing(DEST))
    assert s.sent == 120_000


def test_allow_any_passes_every_destination() -> None:
    verify(build(), DESC, Policy(allow_any=True))


def test_sending_to_ourselves_needs_no_policy_entry() -> None:
    own = DESC.derive(False, 5)
    psbt = build(dest=own.address)
    verify(psbt, DESC, Policy(), known_scripts={own.script_pubkey: (False, 5)})


def test_policy_entries_of_another_network_are_named() -> None:
    with pytest.raises(NetworkMismatch, match=r"\[policy\] allowed_destinations entry tb1q"):
        verify(build(), DESC, allowing(WALLET["test_receive"][0]))


def test_swapped_output_is_refused_naming_it() -> None:
    psbt = build()
    j = dest_index(psbt)
    psbt.outputs[j].script_pubkey = Script(address_to_script(ATTACKER, "regtest"))
    with pytest.raises(PolicyViolation, match=f"output {j} pays 120,000 sat to {ATTACKER}"):
        verify(psbt, DESC, allowing(DEST))
    with pytest.raises(
        PsbtTampered, match=f"output {j} \\({ATTACKER}, 120,000 sat\\) is not one of the expected outputs"
    ):
        verify(psbt, DESC, Policy(), expected_outputs=[pay(120_000)])


def test_changed_amount_is_refused_against_expected_outputs() -> None:
    psbt = build()
    j = dest_index(psbt)
    psbt.outputs[j].value = 119_000
    with pytest.raises(
        PsbtTampered, match=f"output {j} \\({DEST}, 119,000 sat\\): the amount to that address should be 120,000 sat"
    ):
        verify(psbt, DESC, Policy(), expected_outputs=[pay(120_000)])


def test_expected_outputs_allow_exactly_those_plus_our_change() -> None:
    psbt = build()
    s = verify(psbt, DESC, Policy(), expected_outputs=[pay(120_000)])
    assert {o.kind for o in s.outputs} == {"foreign", "change"}
    with pytest.raises(PsbtTampered, match="missing from the PSBT"):
        verify(psbt, DESC, Policy(), expected_outputs=[pay(120_000), pay(5_000, ATTACKER)])


def test_expected_outputs_of_another_network_are_refused() -> None:
    wrong = TxOut(address_to_script(DEST, "regtest"), 120_000, WALLET["test_receive"][0])
    with pytest.raises(NetworkMismatch, match="expected output 0"):
        verify(build(), DESC, Policy(), expected_outputs=[wrong])


# --- change -------------------------------------------------------------------------
def test_foreign_change_with_our_metadata_is_refused() -> None:
    psbt = build()
    k = change_index_of(psbt)
    psbt.outputs[k].script_pubkey = Script(address_to_script(ATTACKER, "regtest"))
    s = summarize(psbt, DESC)
    assert not s.ok and "foreign change" in s.problems[0]
    with pytest.raises(
        PsbtTampered, match=f"output {k} \\({ATTACKER}, .*claims to be our change address .*foreign change"
    ):
        verify(psbt, DESC, allowing(DEST, ATTACKER))


def test_change_of_another_wallet_is_refused_as_foreign_change() -> None:
    psbt = build()
    k = change_index_of(psbt)
    theirs = other_descriptor().derive(True, 0)
    out = psbt.outputs[k]
    out.script_pubkey = Script(theirs.script_pubkey)
    out.bip32_derivations = {ec.PublicKey.parse(p): DerivationPath(fp, path) for p, (fp, path) in theirs.bip32.items()}
    out.witness_script = Script(theirs.witness_script)
    assert any("looks like change but is not ours" in w for w in summarize(psbt, DESC).warnings)
    with pytest.raises(PsbtTampered, match=f"output {k} .*change of another wallet.*foreign change"):
        verify(psbt, DESC, allowing(DEST))


# --- fees ---------------------------------------------------------------------------
def test_fee_above_the_absolute_cap_is_refused() -> None:
    psbt = build(fee_rate=20.0)
    fee = summarize(psbt, DESC).fee
    with pytest.raises(PolicyViolation, match=r"above the cap of 5,000 sat \(\[policy\] max_fee_sat\)"):
        verify(psbt, DESC, allowing(DEST, max_fee_sat=5_000))
    verify(psbt, DESC, allowing(DEST, max_fee_sat=fee))


def test_fee_rate_above_the_cap_is_refused() -> None:
    psbt = build(fee_rate=20.0)
    with pytest.raises(
        PolicyViolation, match=r"fee rate 20\.\d\d sat/vB is above the cap of 10 sat/vB \(\[policy\] max_fee_rate\)"
    ):
        verify(psbt, DESC, allowing(DEST, max_fee_rate=10.0))


def test_forged_input_amount_is_refused() -> None:
    psbt = build()
    psbt.inputs[0].witness_utxo = TransactionOutput(
        psbt.inputs[0].witness_utxo.value + 50_000, psbt.inputs[0].witness_utxo.script_pubkey
    )
    with pytest.raises(PsbtTampered, match="input 0 .*witness_utxo disagrees with the previous transaction"):
        verify(psbt, DESC, allowing(DEST))


def test_attached_previous_transaction_of_another_txid_is_refused() -> None:
    psbt = build()
    other = Transaction.parse(psbt.inputs[1].non_witness_utxo.serialize())
    psbt.inputs[0].non_witness_utxo = other
    with pytest.raises(PsbtTampered, match="input 0 .*attached previous transaction has txid"):
        verify(psbt, DESC, allowing(DEST))


# --- inputs and signatures -----------------------------------------------------------------
def test_inputs_not_ours_are_refused_naming_them() -> None:
    theirs = coin(other_descriptor(), 80_000, salt=42)
    ours = coins(DESC, [100_000])
    psbt = build_psbt(DESC, ours, [pay(50_000)], 0, 2.0, 1000, rng=rng())
    foreign = build_psbt(other_descriptor(), [theirs], [pay(50_000)], 0, 2.0, 1000, rng=rng())
    psbt.inputs.append(foreign.inputs[0])
    with pytest.raises(PsbtTampered, match=f"input 1 \\({theirs.txid}:0, .*80,000 sat\\) is not a coin of this wallet"):
        verify(psbt, DESC, allowing(DEST))


def test_signature_from_a_key_outside_the_descriptor_is_refused() -> None:
    psbt = build()
    intruder = bip32.HDKey.from_seed(bytes(32) + b"intruder" * 4)
    msg = psbt.sighash(0)
    psbt.inputs[0].partial_sigs[intruder.get_public_key()] = intruder.sign(msg).serialize() + b"\x01"
    with pytest.raises(PsbtTampered, match="input 0 .*signature from key .*not in this wallet's descriptor"):
        verify(psbt, DESC, allowing(DEST))


def test_signature_with_sighash_none_is_refused() -> None:
    psbt = build()
    signed = signers()[0].sign(psbt)
    pub = next(iter(signed.inputs[0].partial_sigs))
    signed.inputs[0].partial_sigs[pub] = signed.inputs[0].partial_sigs[pub][:-1] + b"\x02"
    with pytest.raises(PsbtTampered, match="input 0 .*is not SIGHASH_ALL"):
        verify(signed, DESC, allowing(DEST))


def test_psbt_asking_for_a_weak_sighash_is_refused() -> None:
    psbt = build()
    psbt.inputs[1].sighash_type = 0x83  # SINGLE|ANYONECANPAY
    with pytest.raises(PsbtTampered, match="input 1 .*sighash type 131"):
        verify(psbt, DESC, allowing(DEST))


def test_signatures_stop_verifying_when_the_transaction_changes() -> None:
    psbt = signers()[0].sign(build())
    psbt.locktime = 999
    with pytest.raises(PsbtTampered, match="does not verify for this transaction"):
        verify(psbt, DESC, allowing(DEST))


def test_misleading_key_origin_is_refused() -> None:
    psbt = build()
    pub, der = next(iter(psbt.inputs[0].bip32_derivations.items()))
    psbt.inputs[0].bip32_derivations[pub] = DerivationPath(
        der.fingerprint, der.derivation[:-1] + [der.derivation[-1] + 1]
    )
    with pytest.raises(PsbtTampered, match="input 0 "):
        verify(psbt, DESC, allowing(DEST))


def test_psbt_changed_since_verified_is_refused() -> None:
    psbt = build()
    fingerprint = verify(psbt, DESC, allowing(DEST)).fingerprint
    assert fingerprint == psbt_fingerprint(signers()[0].sign(psbt))  # signing is not a change
    verify(signers()[0].sign(psbt), DESC, allowing(DEST), verified_fingerprint=fingerprint)
    changed = copy_psbt(psbt)
    changed.outputs[change_index_of(changed)].value -= 1000
    with pytest.raises(PsbtTampered, match="changed since it was verified"):
        verify(changed, DESC, allowing(DEST), verified_fingerprint=fingerprint)


def test_mainnet_cosigner_keys_in_a_regtest_psbt_are_a_network_mismatch() -> None:
    psbt = build()
    key, der = next(iter(psbt.xpubs.items()))
    mainnet = bip32.HDKey(
        key.key,
        key.chain_code,
        version=bytes.fromhex("0488b21e"),
        depth=key.depth,
        fingerprint=key.fingerprint,
        child_number=key.child_number,
    )
    psbt.xpubs = {mainnet: der}
    with pytest.raises(NetworkMismatch, match="for mainnet but this wallet is on regtest"):
        verify(psbt, DESC, allowing(DEST))


def test_a_clean_signed_psbt_has_only_valid_signatures() -> None:
    psbt = signers()[1].sign(build())
    for i in range(len(psbt.inputs)):
        derived = DESC.derive(False, summarize(psbt, DESC).inputs[i].derivation_index)
        assert [c.valid for c in check_signatures(psbt, i, derived)] == [True]
