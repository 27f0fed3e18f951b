"""lnd's ChannelAcceptor: answer every inbound channel request with a decision.

``ChannelAcceptor`` is a bidirectional stream: lnd sends a
``ChannelAcceptRequest`` per inbound ``open_channel`` and waits (up to its
``--acceptortimeout``, 15 s by default) for a ``ChannelAcceptResponse`` with
the same ``pending_chan_id``. ``upfront_shutdown`` in an accepting response
becomes our committed cooperative-close address (lnd fails the open when the
peer lacks option_upfront_shutdown_script); ``error`` in a rejecting response
is sent to the peer.

While no acceptor is connected lnd falls back to its default policy (accept,
no upfront address): the caller should keep the stream up (reconnect) for as
long as it guards the node.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from l2custody.backends.inbound import Decide, InboundDecision, InboundRequest
from l2custody.backends.lnd.convert import commitment_type
from l2custody.backends.lnd.duplex import DuplexStream
from l2custody.errors import L2CustodyError

_ANNOUNCE_BIT = 0x01  # BOLT 2 channel_flags: announce_channel
_INTERNAL_ERROR = "internal error at the receiving node; please try again later"


def to_request(node: str, req: Any) -> InboundRequest:
    """``lnrpc.ChannelAcceptRequest`` -> InboundRequest."""
    return InboundRequest(
        node=node,
        peer_pubkey=req.node_pubkey.hex(),
        pending_chan_id=req.pending_chan_id.hex(),
        funding_sat=req.funding_amt,
        push_sat=req.push_amt // 1000,
        private=not (req.channel_flags & _ANNOUNCE_BIT),
        csv_delay=req.csv_delay,
        commitment_type=commitment_type(req.commitment_type),
        wants_zero_conf=req.wants_zero_conf,
        channel_reserve_sat=req.channel_reserve,
        dust_limit_sat=req.dust_limit,
        max_accepted_htlcs=req.max_accepted_htlcs,
    )


def to_response(ln: Any, pending_chan_id: bytes, decision: InboundDecision) -> Any:
    """InboundDecision -> ``lnrpc.ChannelAcceptResponse``."""
    if decision.accept:
        return ln.ChannelAcceptResponse(
            accept=True, pending_chan_id=pending_chan_id, upfront_shutdown=decision.upfront_shutdown or ""
        )
    return ln.ChannelAcceptResponse(accept=False, pending_chan_id=pending_chan_id, error=decision.error)


def accept_channels(
    node: str,
    ln: Any,
    stub: Any,
    translate: Callable[[Any, str], L2CustodyError],
    decide: Decide,
    stop: threading.Event,
    *,
    on_error: Callable[[InboundRequest, BaseException], None] | None = None,
) -> None:
    """Answer the inbound channel requests of lnd ``node`` (``ln``: lightning_pb2, ``stub``:
    its LightningStub) with ``decide`` until ``stop`` is set.

    Returns when ``stop`` is set (the stream is cancelled). A ``decide`` that
    raises gets the request rejected with a neutral message (the exception
    goes to ``on_error``), so a bug never lets a channel in unguarded. Raises
    NodeUnreachable/NodeAuthError/NodeError when the stream fails (lnd
    stopped, credentials refused): the caller decides whether to reconnect.
    """
    import grpc

    stream = DuplexStream(stub.ChannelAcceptor, stop, f"acceptor-stop-{node}")
    try:
        for raw in stream.call:
            request = to_request(node, raw)
            try:
                decision = decide(request)
            except Exception as exc:  # a bug must not let the channel in unguarded
                decision = InboundDecision.reject(_INTERNAL_ERROR)
                if on_error is not None:
                    on_error(request, exc)
            stream.send(to_response(ln, raw.pending_chan_id, decision))
    except grpc.RpcError as exc:
        if not stream.ended_by_stop(exc):
            raise translate(exc, "guard inbound channels (ChannelAcceptor)") from None
    finally:
        stream.close()
