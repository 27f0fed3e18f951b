"""judge_closing_tx: does a closing transaction bring our balance back to the multisig?"""

from __future__ import annotations

import pytest

from l2custody.custody.closing.verdict import judge_closing_tx
from l2custody.errors import UsageError
from l2custody.wallet.addresses import address_to_script
from tests.support.custody import FOREIGN_ADDRESS, closing_tx, random_outpoint
from tests.support.wallet import descriptor

DESC = descriptor()
OURS = {DESC.derive(False, i).script_pubkey: (False, i) for i in range(3)}
EXPECTED = DESC.address(False, 1)
FOREIGN = address_to_script(FOREIGN_ADDRESS, "regtest")


def judge(tx, funding, expected=EXPECTED, due=100_000):  # type: ignore[no-untyped-def]
    return judge_closing_tx(
        tx.serialize(), funding, network="regtest", our_scripts=OURS, expected_address=expected, due_sat=due
    )


def test_a_close_paying_the_expected_address_is_ok() -> None:
    funding = random_outpoint()
    tx = closing_tx(funding, [(FOREIGN, 400_000), (DESC.derive(False, 1).script_pubkey, 99_000)])
    v = judge(tx, funding)
    assert v.ok and v.spends_funding and v.problem is None and not v.notes
    assert (v.main_output.index, v.main_output.value, v.main_output.address) == (1, 99_000, EXPECTED)
    assert v.returned_sat == 99_000 and v.txid == tx.txid().hex()
    assert v.to_dict()["outputs"][1]["derivation"] == "receive/1"


def test_another_address_of_ours_is_ok_with_a_note() -> None:
    funding = random_outpoint()
    v = judge(closing_tx(funding, [(DESC.derive(False, 2).script_pubkey, 50_000)]), funding)
    assert v.ok and v.main_output.derivation_index == 2
    assert "not the expected" in v.notes[0] and EXPECTED in v.notes[0]


def test_a_close_paying_only_foreign_outputs_is_a_violation_naming_where_the_money_went() -> None:
    funding = random_outpoint()
    v = judge(closing_tx(funding, [(FOREIGN, 99_000)]), funding)
    assert not v.ok and v.returned_sat == 0 and v.main_output is None
    assert FOREIGN_ADDRESS in v.problem and "99000 sat" in v.problem and EXPECTED in v.problem
    assert "custody violation" in v.problem and "l2custody sweep" in v.problem


@pytest.mark.parametrize("due", [0, 545])
def test_nothing_back_is_fine_when_nothing_above_dust_was_due(due: int) -> None:
    funding = random_outpoint()
    v = judge(closing_tx(funding, [(FOREIGN, 99_000)]), funding, due=due)
    assert v.ok and "below the dust limit" in v.notes[0]


def test_unknown_due_and_no_output_of_ours_is_not_ok() -> None:
    funding = random_outpoint()
    v = judge(closing_tx(funding, [(FOREIGN, 99_000)]), funding, expected=None, due=None)
    assert not v.ok and "our balance went to" in v.problem


def test_a_transaction_that_does_not_spend_the_funding_output_is_refused() -> None:
    funding, other = random_outpoint(), random_outpoint()
    v = judge(closing_tx(other, [(DESC.derive(False, 1).script_pubkey, 99_000)]), funding)
    assert not v.ok and not v.spends_funding and funding in v.problem and "not this channel's close" in v.problem


def test_garbage_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="could not be parsed"):
        judge_closing_tx(
            b"\x00\x01", random_outpoint(), network="regtest", our_scripts=OURS, expected_address=None, due_sat=1
        )
