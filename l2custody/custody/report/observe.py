"""Reading the world for ``report`` and ``watch``: the wallet, every node, the sessions.

Each function turns what the wallet, a node or the store says into the typed
facts :func:`l2custody.custody.report.snapshot.build_snapshot` works on. A node that
cannot be read is not an error here: its :class:`NodeFacts` carries the
message (the report then flags it), so one dead node never hides the others.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from l2custody.backends.base import Capability, ChannelInfo, NodeBackend
from l2custody.custody.report.snapshot import (
    ChannelFacts,
    MultisigFacts,
    NodeFacts,
    ReportInputs,
    SessionFacts,
)
from l2custody.errors import L2CustodyError

if TYPE_CHECKING:  # pragma: no cover
    from l2custody.custody.channels import OwnedAddress
    from l2custody.store import Store
    from l2custody.wallet.service import Wallet


def read_node(wallet: Wallet, backend: NodeBackend, *, include_closed: bool = True) -> NodeFacts:
    """Channels (joined with the store: close address ours? funding ours?), hot wallet
    and anchor reserve of one node; ``error`` set when the node could not be read."""
    try:
        channels = backend.list_channels(include_closed=include_closed)
        balance = backend.onchain_balance()
        reserve = 0
        if backend.supports(Capability.ANCHOR_RESERVE):
            reserve = backend.anchor_reserve().required_sat
    except L2CustodyError as exc:
        return NodeFacts(backend.name, backend.kind, error=exc.message)
    return NodeFacts(backend.name, backend.kind, facts_of(wallet, channels), balance, reserve, None, time.time())


def facts_of(wallet: Wallet, channels: Sequence[ChannelInfo]) -> tuple[ChannelFacts, ...]:
    """ChannelInfo list -> ChannelFacts, through ``channels.view_channels`` with an
    in-memory address index (one query instead of one decode and query per channel)."""
    from l2custody.custody.channels import view_channels

    views = view_channels(wallet, channels, owned=address_index(wallet))
    return tuple(ChannelFacts.from_view(v) for v in views)


def address_index(wallet: Wallet) -> Callable[[str | None], OwnedAddress | None]:
    """Look addresses up among every address the store holds for the wallet. Our
    addresses are bech32 (P2WSH), which is case-insensitive: compared lower-case."""
    from l2custody.custody.channels import OwnedAddress

    index = {
        a.address.lower(): OwnedAddress(a.address, a.change, a.index, a.label)
        for a in wallet.store.addresses(wallet.record.id)
    }

    def owned(address: str | None) -> OwnedAddress | None:
        return index.get(address.lower()) if address else None

    return owned


def read_sessions(store: Store, tip: int, margin: int) -> tuple[SessionFacts, ...]:
    """Funding sessions still waiting for a signature, a broadcast or a confirmation."""
    from l2custody.custody.funding.records import list_sessions

    return tuple(SessionFacts.of(s, tip, margin) for s in list_sessions(store, include_final=False))


def multisig_facts(wallet: Wallet) -> MultisigFacts:
    b = wallet.balance()
    return MultisigFacts(b.confirmed, b.unconfirmed, b.reserved, b.scanned_height)


def read_inputs(wallet: Wallet, backends: Sequence[NodeBackend], *, sync: bool = True) -> ReportInputs:
    """Everything ``report`` needs. ``sync``: bring the wallet up to the chain tip first;
    a chain that cannot be read is reported (``chain_error``), not raised."""
    chain_error = None
    tip = None
    try:
        if sync:
            wallet.sync()
        tip = wallet.chain.tip_height()
    except L2CustodyError as exc:
        chain_error = exc.message
    if tip is None:
        scanned = wallet.store.scanned_tip()
        tip = scanned[0] if scanned else None
    nodes = tuple(read_node(wallet, b) for b in backends)
    sessions = (
        read_sessions(wallet.store, tip, wallet.config.sessions.deadline_margin_blocks) if tip is not None else ()
    )
    return ReportInputs(
        wallet.record.name,
        wallet.config.network,
        time.time(),
        tip,
        multisig_facts(wallet),
        nodes,
        sessions,
        chain_error,
    )
