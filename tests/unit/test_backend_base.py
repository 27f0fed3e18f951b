"""The backend protocol's plain parts: values, validation, capabilities, the NotSupported default."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from l2custody.backends.base import (
    AnchorReserve,
    Capability,
    ChannelInfo,
    ChannelState,
    CloseResult,
    FundingIntent,
    NodeBackend,
    NodeInfo,
    OnchainBalance,
    OpenRequest,
    parse_channel_point,
    scid_to_str,
)
from l2custody.errors import NotSupported, UsageError
from l2custody.networks import normalize_network, reported_network

PEER = "02" + "ab" * 32
TXID = "626fee109850449849f86be45af6c11ba25f9e87c1e0fc66c9ffd05775920d97"


class MinimalBackend(NodeBackend):
    """Only the mandatory operations: every optional one must say NotSupported."""

    kind = "minimal"

    def info(self) -> NodeInfo:
        raise AssertionError

    def connect_peer(self, pubkey: str, host: str) -> None:
        raise AssertionError

    def is_connected(self, pubkey: str) -> bool:
        return False

    def list_channels(self, *, include_closed: bool = True) -> list[ChannelInfo]:
        return []

    def close_channel(self, channel_point: str, **kw: object) -> CloseResult:  # type: ignore[override]
        raise AssertionError

    def onchain_balance(self) -> OnchainBalance:
        return OnchainBalance(0, 0, 0, 0)


def test_optional_operations_raise_not_supported_naming_node_and_operation() -> None:
    backend = MinimalBackend("edge")
    intent = FundingIntent("edge", "minimal", PEER, "00", "addr", b"\x00", 1, None)
    calls = {
        "PSBT channel funding": lambda: backend.open_start(OpenRequest(PEER, 100_000)),
        "securing a channel before signing": lambda: backend.open_secure(intent, b""),
        "interactive PSBT funding": lambda: backend.open_finalize_interactive(intent, b""),
        "cancelling": lambda: backend.open_cancel(intent),
        "abandoning": lambda: backend.abandon_pending(f"{TXID}:0"),
        "publishing": lambda: backend.publish(b""),
        "anchor reserve": lambda: backend.anchor_reserve(),
        "sweeping": lambda: backend.sweep_to("addr"),
        "addresses": lambda: backend.new_address(),
        "backups": lambda: backend.channel_backup(),
        "subscriptions": lambda: backend.subscribe_channel_events(),
    }
    for words, call in calls.items():
        with pytest.raises(NotSupported) as err:
            result = call()
            if isinstance(result, Iterator):
                next(result)
        assert "'edge' (minimal)" in err.value.message and words in err.value.message
    assert not backend.supports(Capability.PSBT_FUNDING)
    assert backend.access_problems() == []


def test_lnd_declares_every_capability_but_the_core_lightning_ones() -> None:
    from l2custody.backends.lnd.backend import LndBackend

    assert LndBackend.capabilities == frozenset(Capability) - {
        Capability.PUBLISH_PSBT,
        Capability.PLUGIN_EVENTS,
        Capability.WITHHELD_FUNDING,
    }


def test_core_lightning_declares_every_capability_but_the_lnd_interceptors() -> None:
    from l2custody.backends.cln.backend import ClnBackend

    # the plugin's hooks do both jobs inside lightningd
    assert ClnBackend.capabilities == frozenset(Capability) - {Capability.INBOUND_GUARD, Capability.RPC_MIDDLEWARE}


def test_funding_intent_round_trips_through_json() -> None:
    intent = FundingIntent(
        "west",
        "lnd",
        PEER,
        "ab" * 32,
        "bcrt1q...",
        bytes.fromhex("0020" + "11" * 32),
        1_000_000,
        "bcrt1qclose",
        private=True,
        push_sat=5,
    )
    again = FundingIntent.from_dict(json.loads(json.dumps(intent.to_dict())))
    assert again == intent


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"peer_pubkey": "02ab"}, "not a node public key"),
        ({"peer_pubkey": "zz" * 33}, "is not hex"),
        ({"amount_sat": 0}, "must be positive"),
        ({"push_sat": 100_000}, "push amount"),
        ({"push_sat": -1}, "push amount"),
    ],
)
def test_open_request_refuses_bad_values(kwargs: dict, message: str) -> None:
    args = {"peer_pubkey": PEER, "amount_sat": 100_000, **kwargs}
    with pytest.raises(UsageError, match=message):
        OpenRequest(**args)


def test_channel_points() -> None:
    assert parse_channel_point(f"{TXID.upper()}:1") == (TXID, 1)
    for bad in ("", TXID, f"{TXID}:", f"{TXID}:x", "ab:0", f"{'g' * 64}:0"):
        with pytest.raises(UsageError, match="not a channel point"):
            parse_channel_point(bad)


def test_short_channel_id_matches_lnd() -> None:
    # chan_id 502511218868224 is block 457, tx 1, output 0 (seen on regtest: 457x1x0)
    assert scid_to_str((457 << 40) | (1 << 16)) == "457x1x0"


def test_network_names() -> None:
    assert normalize_network("mainnet") == normalize_network("bitcoin") == "main"
    assert normalize_network("testnet") == normalize_network("testnet4") == "test"
    assert normalize_network("REGTEST") == "regtest"
    with pytest.raises(UsageError, match="unknown network 'liquid'"):
        normalize_network("liquid")
    with pytest.raises(UsageError, match="unknown network 'simnet'"):
        normalize_network("simnet")  # no wallet runs on btcd's simnet


def test_reported_network_keeps_names_the_wallet_does_not_know() -> None:
    # what a node or chain source reports: a check compares it, reading it never fails
    assert reported_network("testnet4") == "test"
    assert reported_network("bitcoin") == "main"
    assert reported_network("simnet") == "simnet"
    assert reported_network("liquid") == "liquid"


def test_reserve_and_balance_arithmetic() -> None:
    r = AnchorReserve(required_sat=20_000, available_sat=10_000, additional_public_channels=1)
    assert not r.sufficient and r.missing_sat == 10_000
    assert AnchorReserve(10_000, 10_000, 0).sufficient
    assert OnchainBalance(5, 7, 1, 2).total_sat == 12


def test_channel_info_funding_txid() -> None:
    ch = ChannelInfo("west", f"{TXID}:3", PEER, ChannelState.OPEN, 1_000)
    assert ch.funding_txid == TXID
