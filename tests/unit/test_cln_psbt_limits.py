"""What every PSBT must respect before lightningd signs or sends it: SIGHASH_ALL and the fee
caps (``custody.psbt_limits``), on the test wallet's PSBTs and the captured CLN ones."""

from __future__ import annotations

import pytest

from l2custody.custody.cln_policy.feerate import sat_per_vbyte
from l2custody.custody.cln_policy.psbt_check import Malformed
from l2custody.custody.psbt_limits import fee_problem, psbt_fee, sighash_problem
from l2custody.errors import PolicyViolation
from l2custody.wallet.addresses import address_to_script
from l2custody.wallet.policy import Policy
from l2custody.wallet.psbt import TxOut, build_psbt, load_psbt
from l2custody.wallet.review import summarize
from tests.support.cln_plugin import rpc_command
from tests.support.wallet import coins, descriptor

OURS = descriptor().derive(False, 1).address


def multisig_psbt(spend: int, fee: int) -> object:
    desc = descriptor()
    out = TxOut(address_to_script(OURS, "regtest"), spend, OURS)
    psbt = build_psbt(desc, coins(desc, [spend]), [out], None, 1.0, 0, subtract_fee_from=0)
    psbt.outputs[0].value = spend - fee
    return psbt


def test_the_multisig_fee_and_rate_are_the_wallets_own() -> None:
    psbt = multisig_psbt(500_000, 12_345)
    fee, review = psbt_fee(psbt), summarize(psbt, descriptor())
    assert fee.fee == review.fee == 12_345
    assert fee.vsize == review.vsize


def test_captured_node_wallet_psbts_have_their_real_fee() -> None:
    """signpsbt-012 (P2WPKH input) and signpsbt-028 (P2TR input) from lightningd v25.12.1."""
    for name, expected in (("signpsbt-012", 5_000_000 - 500_000 - 4_499_834), ("signpsbt-028", 143)):
        psbt = load_psbt(rpc_command(name)["params"]["psbt"])
        assert psbt_fee(psbt).fee == expected
        assert fee_problem(psbt, Policy()) is None


def test_caps_refuse_with_the_config_key() -> None:
    assert "max_fee_sat" in (fee_problem(multisig_psbt(2_000_000, 150_000), Policy()) or "")
    assert "max_fee_rate" in (fee_problem(multisig_psbt(2_000_000, 90_000), Policy()) or "")
    assert fee_problem(multisig_psbt(2_000_000, 90_000), Policy(max_fee_rate=None)) is None


def test_an_input_without_its_amount_makes_the_fee_unknown() -> None:
    psbt = multisig_psbt(100_000, 500)
    psbt.inputs[0].witness_utxo = None
    assert psbt_fee(psbt).fee == 500  # still known from non_witness_utxo
    psbt.inputs[0].non_witness_utxo = None
    with pytest.raises(PolicyViolation, match="does not state the amount"):
        psbt_fee(psbt)


def test_outputs_above_inputs_are_refused() -> None:
    with pytest.raises(PolicyViolation, match="exceed the inputs"):
        psbt_fee(multisig_psbt(100_000, -1))


@pytest.mark.parametrize(("sighash", "ok"), [(None, True), (0, True), (1, True), (2, False), (3, False), (0x81, False)])
def test_only_sighash_all_or_default_is_signed(sighash: int | None, ok: bool) -> None:
    psbt = multisig_psbt(100_000, 500)
    psbt.inputs[0].sighash_type = sighash
    problem = sighash_problem(psbt)
    assert (problem is None) == ok, problem


@pytest.mark.parametrize(
    ("value", "rate"),
    [("normal", None), ("12blocks", None), ("1000perkw", 4.0), ("4000perkb", 4.0), (4000, 4.0), ("253perkw", 1.012)],
)
def test_feerates_as_lightningd_reads_them(value: object, rate: float | None) -> None:
    assert sat_per_vbyte("feerate", value) == rate


@pytest.mark.parametrize("value", ["1.5perkw", "-1", "fast", "1000 perkw", 1.5, True, "99999999999perkb", [1]])
def test_feerates_lightningd_would_not_read_are_refused(value: object) -> None:
    with pytest.raises(Malformed):
        sat_per_vbyte("feerate", value)
