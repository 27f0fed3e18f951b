"""The inbound channel guard without a node: policy, decisions, audit, message conversion.

The guard on a real lnd (ChannelAcceptor stream, peers seeing the refusal,
reconnects, SIGTERM) is tests/integration/test_guard_lnd.py. The one piece
here that stands in for lnd is ``ScriptedAcceptorStub`` (a ChannelAcceptor
stream that replays requests), to cause a fault real lnd cannot: a decision
function that crashes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from lndgrpc.compiled import lightning_pb2 as ln

from l2custody.backends.inbound import InboundDecision, InboundRequest
from l2custody.backends.lnd.acceptor import accept_channels, to_request, to_response
from l2custody.custody.guard import Guard, GuardPolicy, run_guard
from l2custody.errors import NodeError, NotSupported, UsageError
from l2custody.wallet.service import Wallet
from tests.support.cli_runner import fails
from tests.support.custody import StandInBackend

PEER = "02" + "ab" * 32
OTHER = "03" + "cd" * 32


def request(peer: str = PEER, sats: int = 500_000, private: bool = False, zero_conf: bool = False) -> InboundRequest:
    return InboundRequest("west", peer, "11" * 32, sats, 0, private, 144, "anchors", wants_zero_conf=zero_conf)


def test_policy_options_are_validated() -> None:
    with pytest.raises(UsageError, match="--min-size"):
        GuardPolicy.build(min_channel_sat=-1)
    with pytest.raises(UsageError, match="--max-size"):
        GuardPolicy.build(min_channel_sat=100_000, max_channel_sat=50_000)
    with pytest.raises(UsageError, match="not a node public key"):
        GuardPolicy.build(denied_peers=["02abc"])
    with pytest.raises(UsageError, match="not hex"):
        GuardPolicy.build(allowed_peers=["02" + "zz" * 32])
    with pytest.raises(UsageError, match="both allowed and denied"):
        GuardPolicy.build(allowed_peers=[PEER], denied_peers=[PEER.upper() + "@127.0.0.1:9735"])


@pytest.mark.parametrize(
    ("policy", "req", "reason"),
    [
        (GuardPolicy.build(), request(), None),
        (GuardPolicy.build(denied_peers=[PEER]), request(), "does not accept channels from you"),
        (GuardPolicy.build(allowed_peers=[OTHER]), request(), "only from known peers"),
        (GuardPolicy.build(allowed_peers=[OTHER]), request(peer=OTHER), None),
        (GuardPolicy.build(min_channel_sat=600_000), request(), "too small: 500000 sat, the minimum is 600000"),
        (GuardPolicy.build(max_channel_sat=400_000), request(), "too large: 500000 sat, the maximum is 400000"),
        (GuardPolicy.build(allow_private=False), request(private=True), "only public"),
        (GuardPolicy.build(), request(zero_conf=True), "zero-conf"),
        (GuardPolicy.build(allow_zero_conf=True), request(zero_conf=True), None),
    ],
)
def test_policy_refusals(policy: GuardPolicy, req: InboundRequest, reason: str | None) -> None:
    got = policy.refusal(req)
    assert (got is None) if reason is None else (reason in (got or ""))


def test_accepted_channels_get_fresh_recorded_addresses_refused_ones_none(
    tmp_path: Path, make_memory_wallet: Callable[..., Wallet]
) -> None:
    wallet = make_memory_wallet(tmp_path)
    events = []
    guard = Guard(wallet, "west", GuardPolicy.build(min_channel_sat=100_000), events.append)
    first, second = guard.decide(request()), guard.decide(request(peer=OTHER))
    refused = guard.decide(request(sats=50_000))
    assert first.accept and second.accept and first.upfront_shutdown != second.upfront_shutdown
    assert not refused.accept and "too small" in refused.error and refused.upfront_shutdown is None
    labels = {a.address: a.label for a in wallet.addresses(show_used=True)}
    assert labels[first.upfront_shutdown] == f"inbound {'11' * 8} west" and len(labels) == 2
    assert [e.kind for e in events] == ["accepted", "accepted", "rejected"]
    assert "accepted 500,000 sat channel from" in events[0].describe()
    audit = [(e.action, e.details) for e in wallet.store.audit_log(subject="node west")]
    assert [a for a, _ in audit] == ["inbound-accepted", "inbound-accepted", "inbound-rejected"]
    assert audit[0][1]["close_address"] == first.upfront_shutdown and audit[2][1]["funding_sat"] == 50_000
    wallet.close()


def test_lnd_messages_convert_both_ways() -> None:
    raw = ln.ChannelAcceptRequest(
        node_pubkey=bytes.fromhex(PEER),
        pending_chan_id=b"\x22" * 32,
        funding_amt=300_000,
        push_amt=20_000_000,
        channel_flags=0,
        csv_delay=144,
        commitment_type=ln.ANCHORS,
        wants_zero_conf=True,
    )
    req = to_request("west", raw)
    assert (req.peer_pubkey, req.funding_sat, req.push_sat, req.private) == (PEER, 300_000, 20_000, True)
    assert (req.commitment_type, req.wants_zero_conf, req.pending_chan_id) == ("anchors", True, "22" * 32)
    assert to_request("west", ln.ChannelAcceptRequest(channel_flags=1)).private is False
    ok = to_response(ln, raw.pending_chan_id, InboundDecision.accept_to("bcrt1qx"))
    assert (ok.accept, ok.upfront_shutdown, ok.error) == (True, "bcrt1qx", "")
    no = to_response(ln, raw.pending_chan_id, InboundDecision.reject("x" * 900))
    assert (no.accept, len(no.error), no.upfront_shutdown) == (False, 500, "")


class ScriptedAcceptorStub:
    """Stands in for lnd's ChannelAcceptor stream: replays ``requests``, keeps our answers."""

    def __init__(self, requests: list) -> None:  # type: ignore[type-arg]
        self.requests = requests
        self.outgoing = None

    def ChannelAcceptor(self, outgoing):  # type: ignore[no-untyped-def]  # noqa: N802 - lnd's name
        self.outgoing = outgoing
        stub = self

        class Call:
            def __iter__(self):  # type: ignore[no-untyped-def]
                return iter(stub.requests)

            def cancel(self) -> None:
                pass

        return Call()


def test_a_crashing_decision_rejects_the_channel_instead_of_letting_it_in() -> None:
    stub = ScriptedAcceptorStub(
        [ln.ChannelAcceptRequest(node_pubkey=bytes.fromhex(PEER), pending_chan_id=b"\x01" * 32, funding_amt=100_000)]
    )
    errors = []

    def decide(req: InboundRequest) -> InboundDecision:
        raise RuntimeError("store is locked")

    accept_channels(
        "west",
        ln,
        stub,
        lambda exc, action: NodeError(action),
        decide,
        threading.Event(),
        on_error=lambda r, e: errors.append((r.pending_chan_id, e)),
    )
    answers = list(stub.outgoing)
    assert [(a.accept, a.pending_chan_id) for a in answers] == [(False, b"\x01" * 32)]
    assert "try again later" in answers[0].error and "locked" not in answers[0].error  # nothing internal leaks
    assert errors[0][0] == "01" * 32 and "store is locked" in str(errors[0][1])


def test_a_node_without_an_acceptor_is_refused(tmp_path: Path, make_memory_wallet: Callable[..., Wallet]) -> None:
    backend = StandInBackend()
    backend.kind = "cln"  # type: ignore[misc]
    wallet = make_memory_wallet(tmp_path)
    with pytest.raises(NotSupported, match="openchannel hook"):
        run_guard(backend, wallet, GuardPolicy(), threading.Event())
    wallet.close()


def test_cli_refuses_bad_policy_options_before_touching_anything(tmp_path: Path) -> None:
    err = fails(tmp_path / "none.toml", "node", "guard", "west", "--deny-peer", "02abc", code=10)
    assert "not a node public key" in err["error"]
    err = fails(tmp_path / "none.toml", "node", "guard", "west", "--min-size", "2btc", "--max-size", "1btc", code=10)
    assert "--max-size" in err["error"]
