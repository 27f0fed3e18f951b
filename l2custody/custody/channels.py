"""Channel views: what a node says about its channels, joined with what our store knows.

A :class:`ChannelView` answers the two custody questions about a channel:

- where does a cooperative close pay (``close_address``) and is that an
  address of our multisig descriptor (``close_ours``)?  The node's own report
  wins (lnd reports the upfront address of open channels); for channels in
  other states we fall back on our close record (the address we asked for) or
  the funding session that reserved it. ``close_ours`` is None when nobody
  knows the address. ``close_owned.generation`` says which wallet generation
  (``wallet rotate``) the address belongs to; ``close_owned.current`` is False
  for an older one, whose keys a close then pays.
- where did the funding come from (``funding``): ``"session"`` when the
  funding txid is one of our funding sessions (``session_id``), else
  ``"foreign"`` (lnd's own wallet, the peer, another tool).

Pure joins over the store plus one ``list_channels`` call per backend; no
writes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from l2custody.backends.base import ChannelInfo, ChannelState, NodeBackend, scid_to_str
from l2custody.errors import ChannelNotFound, UsageError
from l2custody.numbers import is_decimal

if TYPE_CHECKING:  # pragma: no cover
    from l2custody.store import Store
    from l2custody.wallet.service import Wallet

FUNDING_SESSION = "session"
FUNDING_FOREIGN = "foreign"


@dataclass(frozen=True)
class OwnedAddress:
    """An address of our descriptor, with where it sits in it."""

    address: str
    change: bool
    index: int
    label: str | None
    generation: int = 1  # the wallet generation it belongs to (see `wallet rotate`)
    current: bool = True  # that generation is the wallet's newest (False: an old key set still guards it)


@dataclass(frozen=True)
class ChannelView:
    """One channel of one node with our custody facts. See the module docstring."""

    channel: ChannelInfo
    close_address: str | None
    close_address_from: str  # "node" | "close-record" | "session" | "unknown"
    close_ours: bool | None  # None: no address known (or none committed: set at close)
    close_owned: OwnedAddress | None
    funding: str  # "session" | "foreign"
    session_id: str | None = None
    close_state: str | None = None  # our close record's state, if we closed/verified it

    @property
    def node(self) -> str:
        return self.channel.node

    @property
    def channel_point(self) -> str:
        return self.channel.channel_point

    def to_dict(self) -> dict[str, Any]:
        ch = self.channel
        return {
            "node": ch.node,
            "channel_point": ch.channel_point,
            "short_channel_id": ch.short_channel_id,
            "peer": ch.peer_pubkey,
            "state": ch.state.value,
            "active": ch.active,
            "private": ch.private,
            "initiator": ch.initiator,
            "capacity_sat": ch.capacity_sat,
            "local_balance_sat": ch.local_balance_sat,
            "remote_balance_sat": ch.remote_balance_sat,
            "commitment_type": ch.commitment_type,
            "close_address": self.close_address,
            "close_address_from": self.close_address_from,
            "close_address_ours": self.close_ours,
            "close_address_index": (
                None
                if self.close_owned is None
                else f"{'change' if self.close_owned.change else 'receive'}/{self.close_owned.index}"
            ),
            "close_generation": None if self.close_owned is None else self.close_owned.generation,
            "close_generation_current": None if self.close_owned is None else self.close_owned.current,
            "funding": self.funding,
            "session_id": self.session_id,
            "close_state": self.close_state,
            "closing_txid": ch.closing_txid,
            "close_type": ch.close_type.value if ch.close_type else None,
            "settled_sat": ch.settled_sat,
            "limbo_sat": ch.limbo_sat,
            "maturity_height": ch.maturity_height,
            "blocks_til_maturity": ch.blocks_til_maturity,
        }


# --- ownership -------------------------------------------------------------------------
def address_index(wallet: Wallet) -> Callable[[str | None], OwnedAddress | None]:
    """A lookup of addresses among every address the store holds for the wallet, every
    generation of it (one query); ``OwnedAddress.current`` is False for an older generation's.
    Our addresses are bech32 (P2WSH), which is case-insensitive: compared lower-case.
    Anything else a node may report (another network, not an address at all) is simply
    not ours (None), never an error."""
    generation = {r.id: r.generation for r in wallet.store.generations(wallet.record.name)}
    newest = max(generation.values(), default=0)
    index = {}
    for wid, a in wallet.store.all_addresses():
        g = generation.get(wid, 0)
        index[a.address.lower()] = OwnedAddress(a.address, a.change, a.index, a.label, g, g == newest)

    def owned(address: str | None) -> OwnedAddress | None:
        return index.get(address.lower()) if address else None

    return owned


# --- funding sessions ---------------------------------------------------------------------
def funding_sessions_by_txid(store: Store) -> dict[str, dict[str, Any]]:
    """Funding txid -> ``{"id", "close_addresses": {channel_point: address}}`` for our
    funding sessions (``custody/funding/records.py``: one ``psbts`` row per session)."""
    from l2custody.custody.funding.records import funding_commitments

    return {
        txid: {"id": session_id, "close_addresses": legs}
        for txid, (session_id, legs) in funding_commitments(store).items()
    }


# --- views ------------------------------------------------------------------------------------
def view_channels(wallet: Wallet, channels: Iterable[ChannelInfo]) -> list[ChannelView]:
    """Join channels (from any nodes) with the store: close address ownership (through
    :func:`address_index`), funding source."""
    return channel_joiner(wallet)(channels)


def channel_joiner(wallet: Wallet) -> Callable[[Iterable[ChannelInfo]], list[ChannelView]]:
    """What :func:`view_channels` reads from the store, read now; the returned function
    joins channels with it (so the store can be read while nodes are still answering)."""
    from l2custody.custody.closing.records import close_records

    lookup = address_index(wallet)
    sessions = funding_sessions_by_txid(wallet.store)
    records = {r.channel_point: r for r in close_records(wallet.store)}
    return lambda channels: _join(channels, lookup, sessions, records)


def _join(
    channels: Iterable[ChannelInfo],
    lookup: Callable[[str | None], OwnedAddress | None],
    sessions: dict[str, dict[str, Any]],
    records: dict[str, Any],
) -> list[ChannelView]:
    views = []
    for ch in channels:
        session = sessions.get(ch.funding_txid)
        record = records.get(ch.channel_point)
        address, source = ch.close_address, "node" if ch.close_address_known else "unknown"
        if address is None and record is not None and record.expected_address:
            address, source = record.expected_address, "close-record"
        if address is None and session is not None and session["close_addresses"].get(ch.channel_point):
            address, source = session["close_addresses"][ch.channel_point], "session"
        mine = lookup(address)
        ours = None if address is None else mine is not None
        views.append(
            ChannelView(
                channel=ch,
                close_address=address,
                close_address_from=source,
                close_ours=ours,
                close_owned=mine,
                funding=FUNDING_SESSION if session else FUNDING_FOREIGN,
                session_id=session["id"] if session else None,
                close_state=record.state if record else None,
            )
        )
    return views


def read_channels(backends: Sequence[NodeBackend], *, include_closed: bool = True) -> Callable[[], list[ChannelInfo]]:
    """Ask every given node for its channels now; the returned function collects them
    (open and pending first, then closed). Meanwhile the caller can open the wallet."""
    collectors = [backend.start_list_channels(include_closed=include_closed) for backend in backends]
    order = {s: i for i, s in enumerate(ChannelState)}

    def collect() -> list[ChannelInfo]:
        channels = [c for answer in collectors for c in answer()]
        channels.sort(key=lambda c: (order[c.state], c.node, c.channel_point))
        return channels

    return collect


def find_view(views: Sequence[ChannelView], ref: str) -> ChannelView:
    """The view named by ``ref``: a channel point ``txid:n``, a short channel id
    ``BLOCKxTXxOUT`` or lnd's numeric channel id. ChannelNotFound if none,
    UsageError if the reference is malformed or matches several nodes' channels."""
    key = parse_channel_ref(ref)
    hits = [v for v in views if v.channel_point == key or (v.channel.short_channel_id or "") == key]
    if not hits:
        raise ChannelNotFound(
            f"no channel {ref} on the node(s) checked; see `l2custody channel list` "
            "(a channel point is FUNDING_TXID:OUTPUT, a short id BLOCKxTXxOUTPUT)"
        )
    nodes = {v.node for v in hits}
    if len(nodes) > 1:
        raise UsageError(f"channel {ref} is known to several nodes ({', '.join(sorted(nodes))}); pass --node NAME")
    return hits[0]


def parse_channel_ref(ref: str) -> str:
    """A channel point (lower-case txid) or ``BLOCKxTXxOUT`` short id; UsageError otherwise."""
    from l2custody.backends.base import parse_channel_point

    text = ref.strip()
    if ":" in text:
        txid, vout = parse_channel_point(text)
        return f"{txid}:{vout}"
    if is_decimal(text):
        return scid_to_str(int(text))
    parts = text.lower().split("x")
    if len(parts) == 3 and all(is_decimal(p) for p in parts):
        return "x".join(str(int(p)) for p in parts)
    raise UsageError(
        f"{ref!r} is not a channel reference: use the channel point (FUNDING_TXID:OUTPUT) "
        "or the short channel id (BLOCKxTXxOUTPUT) shown by `l2custody channel list`"
    )


@dataclass(frozen=True)
class ChannelDetail:
    """``channel show``: the view, our close record and the channel's audit history."""

    view: ChannelView
    close: dict[str, Any] | None
    history: tuple[dict[str, Any], ...]

    def to_dict(self) -> dict[str, Any]:
        return {**self.view.to_dict(), "close": self.close, "history": list(self.history)}
