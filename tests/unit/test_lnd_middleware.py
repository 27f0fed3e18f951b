"""lnd RPC middleware plumbing without lnd: macaroon caveats and decoding intercepted requests.

Messages are built with the same compiled stubs l2custody loads; the real
lnd 0.20.1 round trip is tests/integration/test_enforce_lnd.py.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from l2custody.backends.lnd.macaroon import Caveat, Macaroon, custom_caveat, parse_macaroon
from l2custody.backends.lnd.middleware import POLICED, decode, sensitive_methods
from l2custody.backends.partial_import import submodule
from l2custody.backends.rpc_calls import KIND_CLOSE, KIND_HARMLESS, KIND_OTHER, KIND_PAY, KIND_PSBT, KIND_UNCHECKED
from l2custody.custody.enforce.rules import judge
from l2custody.errors import ConfigError
from tests.unit.test_enforce_rules import FOREIGN, OURS, Facts

settings.register_profile("l2custody", max_examples=300, deadline=None, derandomize=True)
settings.load_profile("l2custody")

LN = submodule("lndgrpc", "compiled.lightning_pb2")
WK = submodule("lndgrpc", "compiled.walletkit_pb2")
MODULES = {"ln": LN, "wk": WK}
SENSITIVE = frozenset({"/lnrpc.Lightning/BakeMacaroon", "/signrpc.Signer/SignOutputRaw", *POLICED})


def intercepted(method: str, msg: Any, *, type_name: str | None = None, extra: bytes = b"") -> Any:
    name = type_name or f"{msg.DESCRIPTOR.full_name}"
    return LN.RPCMiddlewareRequest(
        request_id=1,
        msg_id=2,
        request=LN.RPCMessage(method_full_uri=method, type_name=name, serialized=msg.SerializeToString() + extra),
    )


# --- decoding ------------------------------------------------------------------------------------------
def test_send_coins_becomes_one_payment_with_its_fee_rate() -> None:
    raw = intercepted("/lnrpc.Lightning/SendCoins", LN.SendCoinsRequest(addr=FOREIGN, amount=5000, sat_per_vbyte=3))
    call = decode("west", raw, MODULES, SENSITIVE, "ops")
    assert (call.kind, call.caveat, call.fee_rate_sat_vb) == (KIND_PAY, "ops", 3.0)
    assert [(p.address, p.amount_sat) for p in call.payments] == [(FOREIGN, 5000)]
    sweep_all = decode(
        "west",
        intercepted("/lnrpc.Lightning/SendCoins", LN.SendCoinsRequest(addr=FOREIGN, send_all=True)),
        MODULES,
        SENSITIVE,
        "",
    )
    assert sweep_all.payments[0].amount_sat is None


def test_close_and_psbt_requests_keep_what_the_rules_read() -> None:
    point = LN.ChannelPoint(funding_txid_str="ab" * 32, output_index=1)
    close = decode(
        "west",
        intercepted(
            "/lnrpc.Lightning/CloseChannel", LN.CloseChannelRequest(channel_point=point, delivery_address=OURS[0])
        ),
        MODULES,
        SENSITIVE,
        "",
    )
    assert (close.kind, close.delivery_address, close.details["channel_point"]) == (
        KIND_CLOSE,
        OURS[0],
        "ab" * 32 + ":1",
    )
    fund = decode(
        "west",
        intercepted("/walletrpc.WalletKit/FundPsbt", WK.FundPsbtRequest(psbt=b"psbt-bytes")),
        MODULES,
        SENSITIVE,
        "",
    )
    assert (fund.kind, fund.psbt) == (KIND_PSBT, b"psbt-bytes")


def test_a_field_the_stubs_do_not_know_makes_the_request_unreadable() -> None:
    # FundPsbt field 9 is lnd 0.20's coin_select template: invisible to our stubs, so it could hide outputs
    hidden = bytes([0x4A, 0x02, 0x0A, 0x00])
    call = decode(
        "west",
        intercepted("/walletrpc.WalletKit/FundPsbt", WK.FundPsbtRequest(sat_per_vbyte=2), extra=hidden),
        MODULES,
        SENSITIVE,
        "",
    )
    assert call.kind == KIND_UNCHECKED and "[9]" in (call.problem or "")
    assert not judge(call, Facts()).allow


def test_a_message_of_the_wrong_type_or_garbage_is_unreadable() -> None:
    wrong = intercepted("/lnrpc.Lightning/SendCoins", LN.SendManyRequest(), type_name="lnrpc.SendManyRequest")
    assert "lnrpc.SendCoinsRequest" in (decode("west", wrong, MODULES, SENSITIVE, "").problem or "")
    garbage = LN.RPCMiddlewareRequest(
        request=LN.RPCMessage(
            method_full_uri="/lnrpc.Lightning/SendCoins", type_name="lnrpc.SendCoinsRequest", serialized=b"\xff\xff\xff"
        )
    )
    assert decode("west", garbage, MODULES, SENSITIVE, "").problem


def test_methods_are_classed_by_lnd_permissions() -> None:
    stream = LN.RPCMiddlewareRequest(stream_auth=LN.StreamAuth(method_full_uri="/lnrpc.Lightning/BakeMacaroon"))
    assert decode("west", stream, MODULES, SENSITIVE, "").kind == KIND_UNCHECKED
    lease = LN.RPCMiddlewareRequest(stream_auth=LN.StreamAuth(method_full_uri="/walletrpc.WalletKit/LeaseOutput"))
    assert decode("west", lease, MODULES, SENSITIVE, "").kind == KIND_HARMLESS
    info = intercepted("/lnrpc.Lightning/GetInfo", LN.GetInfoRequest())
    assert decode("west", info, MODULES, SENSITIVE, "").kind == KIND_OTHER
    table = {
        "/lnrpc.Lightning/GetInfo": frozenset({("info", "read")}),
        "/lnrpc.Lightning/SendCoins": frozenset({("onchain", "write")}),
        "/signrpc.Signer/SignOutputRaw": frozenset({("signer", "generate")}),
        "/lnrpc.Lightning/BakeMacaroon": frozenset({("macaroon", "generate")}),
        "/lnrpc.Lightning/SendPaymentSync": frozenset({("offchain", "write")}),
    }
    assert sensitive_methods(table) == {
        "/lnrpc.Lightning/SendCoins",
        "/signrpc.Signer/SignOutputRaw",
        "/lnrpc.Lightning/BakeMacaroon",
    }


@given(st.sampled_from(sorted(POLICED)), st.binary(max_size=200))
def test_any_bytes_for_a_policed_method_decode_and_judge_without_raising(method: str, data: bytes) -> None:
    raw = LN.RPCMiddlewareRequest(request=LN.RPCMessage(method_full_uri=method, type_name="x", serialized=data))
    assert decode("west", raw, MODULES, SENSITIVE, "").problem  # a message of the wrong type is never read
    for message in (
        *{m.DESCRIPTOR.full_name for m in (LN.SendCoinsRequest, LN.CloseChannelRequest)},
        "walletrpc.FundPsbtRequest",
        "walletrpc.Transaction",
        "walletrpc.SignPsbtRequest",
        "lnrpc.OpenChannelRequest",
    ):
        raw.request.type_name = message
        judge(decode("west", raw, MODULES, SENSITIVE, ""), Facts())  # a verdict, never an exception


# --- macaroons -----------------------------------------------------------------------------------------
def _macaroon() -> Macaroon:
    return Macaroon(b"\x03" + b"id" * 20, (Caveat(b"time-before 2030-01-01T00:00:00Z"),), b"\x07" * 32, b"lnd")


def test_a_macaroon_round_trips_and_a_caveat_chains_the_signature() -> None:
    mac = _macaroon()
    raw = mac.serialize()
    assert raw[0] == 2 and parse_macaroon(raw) == mac
    restricted = mac.with_first_party(custom_caveat("l2custody", "ops"))
    assert restricted.signature == hmac.new(mac.signature, b"lnd-custom l2custody ops", hashlib.sha256).digest()
    again = parse_macaroon(restricted.serialize())
    assert again.custom_caveat("l2custody") == "ops" and again.custom_caveat("other") is None
    assert parse_macaroon(mac.with_first_party(custom_caveat("l2custody")).serialize()).custom_caveat("l2custody") == ""
    assert "07" not in repr(restricted)


@pytest.mark.parametrize(
    "raw", [b"", b"\x01abc", b"\x02", b"\x02\x02\x05ab", _macaroon().serialize()[:-1], _macaroon().serialize() + b"x"]
)
def test_a_broken_macaroon_is_a_config_error(raw: bytes) -> None:
    with pytest.raises(ConfigError):
        parse_macaroon(raw)


@given(st.binary(max_size=120))
def test_parsing_any_bytes_gives_a_macaroon_or_a_config_error(data: bytes) -> None:
    try:
        mac = parse_macaroon(b"\x02" + data)
    except ConfigError:
        return
    assert parse_macaroon(mac.serialize()) == mac


@given(st.binary(min_size=1, max_size=300), st.lists(st.binary(min_size=1, max_size=200), max_size=4))
def test_any_identifier_and_caveats_round_trip(identifier: bytes, caveats: list[bytes]) -> None:
    mac = Macaroon(identifier, tuple(Caveat(c) for c in caveats), b"\x01" * 32)
    assert parse_macaroon(mac.serialize()) == mac


def test_before_lnd_permission_table_is_loaded_only_policed_and_harmless_methods_are_classed() -> None:
    info = intercepted("/lnrpc.Lightning/GetInfo", LN.GetInfoRequest())
    early = decode("west", info, MODULES, None, "ops")
    assert early.kind == KIND_UNCHECKED and "permission table" in (early.problem or "")
    assert not judge(early, Facts()).allow  # refused: retry in a moment
    send = intercepted("/lnrpc.Lightning/SendCoins", LN.SendCoinsRequest(addr=OURS[0], amount=1000))
    assert judge(decode("west", send, MODULES, None, "ops"), Facts()).allow


def test_an_open_through_a_psbt_shim_is_marked_externally_funded() -> None:
    shim = LN.FundingShim(psbt_shim=LN.PsbtShim(pending_chan_id=b"\x01" * 32, no_publish=True))
    shimmed = intercepted(
        "/lnrpc.Lightning/OpenChannel", LN.OpenChannelRequest(local_funding_amount=1, funding_shim=shim)
    )
    plain = intercepted("/lnrpc.Lightning/OpenChannel", LN.OpenChannelRequest(local_funding_amount=1))
    assert decode("west", shimmed, MODULES, SENSITIVE, "ops").external_funding
    assert not decode("west", plain, MODULES, SENSITIVE, "ops").external_funding
