"""Channel chores between harness lnd nodes, using lnd's own wallet.

Used by the demo and by tests that need a plain channel as a starting point;
the custody flows (multisig funding) live in the product, not here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import grpc

from regtest.errors import HarnessError
from regtest.lnd import RPC_TIMEOUT, LndNode
from regtest.network import Network
from regtest.util import wait_for


@dataclass(frozen=True)
class PaymentResult:
    """What a payment attempt ended with."""

    status: str  # "SUCCEEDED" or "FAILED"
    payment_hash: str
    preimage: str
    amount_sat: int
    fee_sat: int
    failure_reason: str


def channel_point_str(point: Any) -> str:
    """'txid:index' of an lnrpc.ChannelPoint (txid bytes are little-endian on the wire)."""
    txid = point.funding_txid_str or point.funding_txid_bytes[::-1].hex()
    return f"{txid}:{point.output_index}"


def find_channel(node: LndNode, channel_point: str) -> Any | None:
    """The node's open channel at ``channel_point`` (lnrpc.Channel), or None."""
    from lndgrpc.compiled import lightning_pb2 as ln

    channels = node.ln.ListChannels(ln.ListChannelsRequest(), timeout=RPC_TIMEOUT).channels
    return next((c for c in channels if c.channel_point == channel_point), None)


def open_channel(net: Network, a: LndNode, b: LndNode, sats: int, push_sat: int = 0) -> str:
    """Open a channel a -> b funded by a's wallet, confirm it, wait until both see it active.

    Returns the channel point 'txid:index'.
    """
    from lndgrpc.compiled import lightning_pb2 as ln

    net.connect(a, b)
    point = a.ln.OpenChannelSync(
        ln.OpenChannelRequest(
            node_pubkey=bytes.fromhex(b.pubkey), local_funding_amount=sats, push_sat=push_sat, sat_per_vbyte=2
        ),
        timeout=RPC_TIMEOUT,
    )
    chan_point = channel_point_str(point)
    txid = chan_point.split(":")[0]
    wait_for(lambda: txid in net.chain.rpc("getrawmempool"), 30, what=f"funding transaction {txid} in the mempool")
    net.mine(1)
    wait_usable(a, b, chan_point)
    return chan_point


def wait_usable(a: LndNode, b: LndNode, chan_point: str) -> None:
    """Wait until the confirmed channel a -- b is active on both and payments can use it."""
    from lndgrpc.compiled import lightning_pb2 as ln

    def active() -> bool:
        return all((c := find_channel(n, chan_point)) is not None and c.active for n in (a, b))

    wait_for(active, 60, what=f"channel {chan_point} to be active on {a.name} and {b.name}")
    chan_id = find_channel(a, chan_point).chan_id  # type: ignore[union-attr]

    def in_graph() -> bool:
        # `active` comes before the router can use the channel: a payment made
        # right away fails with INSUFFICIENT_BALANCE. Both nodes must have the
        # edge (with their policies) in their graph.
        for node in (a, b):
            try:
                edge = node.ln.GetChanInfo(ln.ChanInfoRequest(chan_id=chan_id), timeout=RPC_TIMEOUT)
            except grpc.RpcError:
                return False
            if not (edge.HasField("node1_policy") and edge.HasField("node2_policy")):
                return False
        return True

    wait_for(in_graph, 60, what=f"channel {chan_point} in the graphs of {a.name} and {b.name}")


def pay(payer: LndNode, payee: LndNode, sats: int, memo: str = "regtest") -> PaymentResult:
    """``payee`` issues an invoice for ``sats``; ``payer`` pays it (router SendPaymentV2)."""
    from lndgrpc.compiled import lightning_pb2 as ln
    from lndgrpc.compiled import router_pb2 as router

    invoice = payee.ln.AddInvoice(ln.Invoice(value=sats, memo=memo), timeout=RPC_TIMEOUT)
    last = None
    for update in payer.router.SendPaymentV2(
        router.SendPaymentRequest(
            payment_request=invoice.payment_request, timeout_seconds=30, fee_limit_sat=max(10, sats // 100)
        ),
        timeout=RPC_TIMEOUT,
    ):
        last = update
        if update.status in (ln.Payment.SUCCEEDED, ln.Payment.FAILED):
            break
    if last is None:
        raise HarnessError(f"{payer.name} got no payment update for {sats} sat")
    if last.status == ln.Payment.SUCCEEDED:
        # The preimage is known before the HTLC leaves the commitments; balances
        # (and cooperative closes) are right only once it has.
        for node in (payer, payee):
            wait_for(
                lambda n=node: _no_pending_htlcs(n),
                30,  # type: ignore[misc]
                what=f"HTLCs on {node.name}'s channels to settle",
            )
    return PaymentResult(
        status=ln.Payment.PaymentStatus.Name(last.status),
        payment_hash=last.payment_hash,
        preimage=last.payment_preimage,
        amount_sat=int(last.value_sat),
        fee_sat=int(last.fee_sat),
        failure_reason=ln.PaymentFailureReason.Name(last.failure_reason),
    )


def _no_pending_htlcs(node: LndNode) -> bool:
    from lndgrpc.compiled import lightning_pb2 as ln

    channels = node.ln.ListChannels(ln.ListChannelsRequest(), timeout=RPC_TIMEOUT).channels
    return not any(c.pending_htlcs for c in channels)


def close_channel(net: Network, a: LndNode, channel_point: str) -> str:
    """Close cooperatively from ``a``, mine, wait until lnd lists it closed; return the txid."""
    from lndgrpc.compiled import lightning_pb2 as ln

    txid, index = channel_point.split(":")

    def settled() -> bool:
        channel = find_channel(a, channel_point)
        if channel is None:
            raise HarnessError(f"{a.name} has no open channel {channel_point}")
        return not channel.pending_htlcs

    # lnd refuses a cooperative close while an HTLC is still being settled.
    wait_for(settled, 30, what=f"HTLCs on {channel_point} to settle")
    updates = a.ln.CloseChannel(
        ln.CloseChannelRequest(
            channel_point=ln.ChannelPoint(funding_txid_str=txid, output_index=int(index)), sat_per_vbyte=2
        ),
        timeout=RPC_TIMEOUT,
    )
    closing_txid = ""
    for update in updates:
        if update.HasField("close_pending"):
            closing_txid = update.close_pending.txid[::-1].hex()
            break
    updates.cancel()  # the close goes on in lnd; we follow it on chain instead
    if not closing_txid:
        raise HarnessError(f"{a.name} sent no close_pending update for {channel_point}")
    wait_for(
        lambda: closing_txid in net.chain.rpc("getrawmempool"),
        30,
        what=f"closing transaction {closing_txid} in the mempool",
    )
    net.mine(1)

    def closed() -> bool:
        summaries = a.ln.ClosedChannels(ln.ClosedChannelsRequest(cooperative=True), timeout=RPC_TIMEOUT).channels
        return any(c.channel_point == channel_point for c in summaries)

    wait_for(closed, 60, what=f"{a.name} to list {channel_point} as closed")
    return closing_txid
