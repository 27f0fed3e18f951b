"""The lnd enforcement rules (custody/enforce/rules.py), judged on typed calls.

The facts are the 2-of-3 vector wallet's first addresses ("ours"), one
allowed destination, one live session's funding script and two node wallet
addresses: plain data, no node.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import pytest
from embit.script import Script
from embit.transaction import Transaction, TransactionInput, TransactionOutput
from hypothesis import given, settings
from hypothesis import strategies as st

from l2custody.backends.rpc_calls import (
    KIND_ACCEPT,
    KIND_CLOSE,
    KIND_HARMLESS,
    KIND_OPEN,
    KIND_OTHER,
    KIND_PAY,
    KIND_PSBT,
    KIND_TX,
    KIND_UNCHECKED,
    Payment,
    RpcCall,
)
from l2custody.custody.enforce.rules import judge
from l2custody.wallet.addresses import address_to_script
from l2custody.wallet.psbt import build_psbt
from tests.support.wallet import coins, descriptor, other_descriptor, outside_address, pay

settings.register_profile("l2custody", max_examples=300, deadline=None, derandomize=True)
settings.load_profile("l2custody")

DESC = descriptor()
OURS = [DESC.address(False, i) for i in range(3)]
FOREIGN = outside_address()
ALLOWED = other_descriptor().address(False, 1)
NODE = other_descriptor().address(False, 2)  # stands for an address of the node wallet
SESSION_SCRIPT = bytes.fromhex("0020" + "11" * 32)
MAINNET = "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq"


@dataclass
class Facts:
    """EnforceFacts as plain data."""

    network: str = "regtest"
    config_path: str = "/etc/l2custody/config.toml"
    max_fee_sat: int | None = 50_000
    max_fee_rate: float | None = 100.0
    node_addresses: set[str] = field(default_factory=lambda: {NODE})
    asked: list[str] = field(default_factory=list)
    prevouts: dict[tuple[str, int], int] = field(default_factory=dict)

    def ours(self, script: bytes) -> bool:
        return script in {address_to_script(a, "regtest") for a in OURS}

    def allowed(self, script: bytes) -> bool:
        return script == address_to_script(ALLOWED, "regtest")

    def session_output(self, script: bytes) -> bool:
        return script == SESSION_SCRIPT

    def node_owns(self, address: str) -> bool:
        self.asked.append(address)
        return address in self.node_addresses

    def spent_value(self, txid: str, vout: int) -> int | None:
        return self.prevouts.get((txid, vout))


def call(method: str, kind: str, **fields: object) -> RpcCall:
    return RpcCall("west", f"/lnrpc.Lightning/{method}", "request", "ops", kind=kind, **fields)  # type: ignore[arg-type]


def sends(*addresses: str, amount: int | None = 10_000) -> RpcCall:
    return call("SendMany", KIND_PAY, payments=tuple(Payment(f"AddrToAmount[{a}]", a, None, amount) for a in addresses))


# --- closes and opens ------------------------------------------------------------------------------
def test_a_close_without_delivery_address_or_to_our_address_is_allowed() -> None:
    assert judge(call("CloseChannel", KIND_CLOSE), Facts()).allow
    assert judge(call("CloseChannel", KIND_CLOSE, delivery_address=OURS[1]), Facts()).allow


@pytest.mark.parametrize("address", [FOREIGN, ALLOWED, NODE, MAINNET])
def test_a_close_to_any_other_address_is_refused_naming_the_rule(address: str) -> None:
    verdict = judge(call("CloseChannel", KIND_CLOSE, delivery_address=address), Facts())
    assert not verdict.allow and verdict.rule == "close-destination"
    assert (
        "CloseChannel refused by l2custody (rule close-destination)" in verdict.message and address in verdict.message
    )


def test_a_close_to_garbage_is_refused_as_malformed() -> None:
    verdict = judge(call("CloseChannel", KIND_CLOSE, delivery_address="bcrt1qnotanaddress"), Facts())
    assert not verdict.allow and verdict.rule == "malformed-request"


@pytest.mark.parametrize(
    ("addresses", "allow"),
    [
        ((OURS[0],), True),
        ((OURS[0], OURS[2]), True),
        (("",), False),  # no upfront address: a close could pay anywhere
        ((FOREIGN,), False),
        ((OURS[0], NODE), False),  # one channel of a batch to the node wallet
        ((ALLOWED,), False),  # allowed for spends, not as a close address
    ],
)
def test_every_channel_opened_or_accepted_commits_to_our_address(addresses: tuple[str, ...], allow: bool) -> None:
    for kind, method in ((KIND_OPEN, "BatchOpenChannel"), (KIND_ACCEPT, "ChannelAcceptor")):
        verdict = judge(call(method, kind, close_addresses=addresses), Facts())
        assert verdict.allow is allow, verdict
        if not allow:
            assert verdict.rule == "close-address"


def test_rejecting_an_inbound_channel_needs_no_address() -> None:
    assert judge(call("ChannelAcceptor", KIND_ACCEPT, close_addresses=()), Facts()).allow


# --- sends -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("address", [OURS[0], ALLOWED, NODE])
def test_sends_to_ours_allowed_or_the_node_wallet_pass(address: str) -> None:
    verdict = judge(sends(address), Facts())
    assert verdict.allow and verdict.rule == "checked"


def test_a_send_to_a_live_session_funding_output_passes() -> None:
    pay_session = call("SendOutputs", KIND_PAY, payments=(Payment("outputs[0]", None, SESSION_SCRIPT, 5000),))
    assert judge(pay_session, Facts()).allow


@pytest.mark.parametrize("amount", [10_000, None])
def test_one_foreign_output_refuses_the_whole_send(amount: int | None) -> None:
    verdict = judge(sends(OURS[0], FOREIGN, amount=amount), Facts())
    assert not verdict.allow and verdict.rule == "spend-destination" and FOREIGN in verdict.message
    assert ("all funds" if amount is None else "10,000 sat") in verdict.message
    assert "allowed_destinations in /etc/l2custody/config.toml" in verdict.message


def test_an_address_of_another_network_is_never_ours() -> None:
    assert not judge(sends(MAINNET), Facts()).allow


def test_a_send_naming_no_output_is_refused() -> None:
    assert judge(sends(), Facts()).rule == "malformed-request"


def test_a_fee_rate_above_the_cap_is_refused() -> None:
    verdict = judge(replace(sends(OURS[0]), fee_rate_sat_vb=101.0), Facts())
    assert not verdict.allow and verdict.rule == "fee-cap" and "max_fee_rate" in verdict.message
    assert judge(replace(sends(OURS[0]), fee_rate_sat_vb=100.0), Facts()).allow
    assert judge(replace(sends(OURS[0]), fee_rate_sat_vb=10_000.0), Facts(max_fee_rate=None)).allow


# --- methods, phases, unreadable requests --------------------------------------------------------------
def test_a_method_no_rule_reads_is_refused_at_the_stream_and_at_each_request() -> None:
    for phase in ("stream-auth", "request"):
        verdict = judge(replace(call("BakeMacaroon", KIND_UNCHECKED), phase=phase), Facts())
        assert not verdict.allow and verdict.rule == "unchecked-method" and "break-glass" in verdict.message


def test_reads_harmless_methods_and_responses_pass() -> None:
    for kind in (KIND_OTHER, KIND_HARMLESS):
        assert judge(call("GetInfo", kind), Facts()).allow
    assert judge(replace(sends(FOREIGN), phase="response"), Facts()).allow


def test_an_unreadable_request_is_refused() -> None:
    verdict = judge(call("FundPsbt", KIND_PAY, problem="field 9 unknown"), Facts())
    assert not verdict.allow and verdict.rule == "malformed-request" and "field 9 unknown" in verdict.message


# --- PSBTs and transactions ---------------------------------------------------------------------------
def _psbt(*outputs: tuple[str, int], sighash: int | None = None) -> bytes:
    """500,000 sat of the vector wallet to ``outputs`` (which add up to that; the last pays the fee)."""
    psbt = build_psbt(
        DESC, coins(DESC, [500_000]), [pay(v, a) for a, v in outputs], None, 2.0, 100, len(outputs) - 1, shuffle=False
    )
    if sighash is not None:
        psbt.inputs[0].sighash_type = sighash
    return psbt.serialize()


def test_a_psbt_paying_only_explained_outputs_passes() -> None:
    verdict = judge(call("FinalizePsbt", KIND_PSBT, psbt=_psbt((OURS[1], 200_000), (NODE, 300_000))), Facts())
    assert verdict.allow and verdict.details["outputs"][:2] == ["ours", "node-wallet"]


def test_a_psbt_with_a_foreign_output_is_refused() -> None:
    verdict = judge(call("SignPsbt", KIND_PSBT, psbt=_psbt((OURS[1], 200_000), (FOREIGN, 300_000))), Facts())
    assert not verdict.allow and verdict.rule == "spend-destination" and "output 1" in verdict.message


@pytest.mark.parametrize("sighash", [0x02, 0x03, 0x81, 0x83])
def test_a_psbt_asking_for_another_sighash_is_refused(sighash: int) -> None:
    verdict = judge(call("SignPsbt", KIND_PSBT, psbt=_psbt((OURS[1], 500_000), sighash=sighash)), Facts())
    assert not verdict.allow and verdict.rule == "sighash"


def test_a_psbt_fee_above_the_cap_is_refused() -> None:
    verdict = judge(call("SignPsbt", KIND_PSBT, psbt=_psbt((OURS[1], 500_000))), Facts(max_fee_sat=100))
    assert not verdict.allow and verdict.rule == "fee-cap" and "max_fee_sat" in verdict.message


def _tx(script: bytes, witness_sig: bytes) -> bytes:
    vin = TransactionInput(b"\x01" * 32, 0)
    vin.witness.items = [witness_sig, bytes.fromhex("02" + "11" * 32)]
    return Transaction(version=2, vin=[vin], vout=[TransactionOutput(1000, Script(script))]).serialize()


def _der(sighash: int) -> bytes:
    body = bytes.fromhex("0220" + "11" * 32 + "0220" + "22" * 32)
    return bytes([0x30, len(body)]) + body + bytes([sighash])


def test_a_transaction_is_judged_by_its_outputs_and_signature_flags() -> None:
    ours, foreign = address_to_script(OURS[0], "regtest"), address_to_script(FOREIGN, "regtest")
    assert judge(call("PublishTransaction", KIND_TX, raw_tx=_tx(ours, _der(0x01))), Facts()).allow
    assert (
        judge(call("PublishTransaction", KIND_TX, raw_tx=_tx(foreign, _der(0x01))), Facts()).rule == "spend-destination"
    )
    assert judge(call("PublishTransaction", KIND_TX, raw_tx=_tx(ours, _der(0x83))), Facts()).rule == "sighash"


@given(st.binary(max_size=300))
def test_garbage_psbts_and_transactions_are_refused_never_raised(data: bytes) -> None:
    for kind, key in ((KIND_PSBT, "psbt"), (KIND_TX, "raw_tx")):
        verdict = judge(call("PublishTransaction", kind, **{key: data}), Facts())
        if verdict.allow:  # only a well-formed thing paying explained outputs may pass
            assert verdict.details["outputs"]


@given(st.text(max_size=80))
def test_any_address_text_is_allowed_exactly_when_it_is_explained(text: str) -> None:
    verdict = judge(sends(text), Facts(node_addresses=set()))
    assert verdict.allow is (text in (*OURS, ALLOWED))
    assert verdict.allow or verdict.rule in ("spend-destination", "malformed-request")


def test_a_shim_funded_open_may_omit_the_close_address_but_never_name_a_foreign_one() -> None:
    # l2custody's sessions fund through a PSBT shim; --allow-no-upfront-shutdown opens without an address
    assert judge(call("OpenChannel", KIND_OPEN, close_addresses=("",), external_funding=True), Facts()).allow
    foreign = judge(call("OpenChannel", KIND_OPEN, close_addresses=(FOREIGN,), external_funding=True), Facts())
    assert not foreign.allow and foreign.rule == "close-address"
    assert not judge(call("OpenChannel", KIND_OPEN, close_addresses=("",)), Facts()).allow  # the node wallet pays


def test_a_transaction_fee_is_capped_when_the_chain_knows_what_it_spends() -> None:
    ours = address_to_script(OURS[0], "regtest")
    raw = _tx(ours, _der(0x01))
    spent = ("01" * 32, 0)
    unknown = judge(call("PublishTransaction", KIND_TX, raw_tx=raw), Facts())
    assert unknown.allow and unknown.details["fee"] is None  # no txindex: not checked, recorded as such
    assert judge(call("PublishTransaction", KIND_TX, raw_tx=raw), Facts(prevouts={spent: 1200})).details["fee"] == 200
    too_much = judge(call("PublishTransaction", KIND_TX, raw_tx=raw), Facts(prevouts={spent: 100_000}))
    assert not too_much.allow and too_much.rule == "fee-cap" and "max_fee_sat" in too_much.message
    steep = judge(call("PublishTransaction", KIND_TX, raw_tx=raw), Facts(prevouts={spent: 40_000}, max_fee_sat=None))
    assert not steep.allow and "max_fee_rate" in steep.message
