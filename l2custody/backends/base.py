"""The NodeBackend protocol: what the custody flows may ask of a Lightning node.

One abstract class, one package per implementation (``lnd/``, ``cln/``), in the shape of HWI's ``hwwclient.py``. Everything that crosses
this boundary is a plain dataclass defined here: no protobuf message, no raw
JSON dict, no foreign exception. Every method documents what it promises and
which ``l2custody.errors`` it raises.

Optional operations are declared in ``capabilities`` (a set of ``Capability``)
and default to raising ``NotSupported`` (like lnbits' ``wallets/base.py``), so a
caller can ask ``backend.supports(Capability.X)`` before starting a flow that
needs X, and a missing operation fails with a clear message, never an
AttributeError.

Funding (the core of the product) is a small state machine per channel::

    open_start(OpenRequest) -> FundingIntent    negotiated: funding address known
        |-- open_cancel(intent)                 forget it (nothing was signed)
    open_secure(intent, unsigned_psbt) -> str   commitments signed by the peer,
        |                                       channel persisted as pending,
        |                                       NOTHING broadcast (caller does it)
        |-- abandon_pending(channel_point)      never going to broadcast: forget it
    publish(raw_tx) -> txid                      (or any other broadcast path)

or, in the classic interactive flow (signers at hand, peer timer running):
``open_start`` -> ``open_finalize_interactive(intent, signed_psbt)`` (the node
publishes).

A ``FundingIntent`` is plain data (``to_dict``/``from_dict``) so a session can be
persisted and resumed by another process; a backend keeps whatever live state
it needs (an lnd stream) internally and falls back to polling the node when it
has none (after a restart).

The custody invariants cited by number are listed in ``docs/architecture.md``.
"""

from __future__ import annotations

import enum
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, ClassVar

from l2custody.errors import NotSupported, UpfrontShutdownRefused, UsageError
from l2custody.numbers import is_decimal

if TYPE_CHECKING:  # pragma: no cover
    from pathlib import Path

    from l2custody.backends.inbound import Decide, InboundRequest
    from l2custody.backends.rpc_calls import RpcMiddleware


class Capability(str, enum.Enum):
    """Optional operations a backend may offer (see ``NodeBackend.capabilities``)."""

    PSBT_FUNDING = "psbt-funding"  # open_start / open_cancel with an external PSBT
    SECURE_BEFORE_SIGN = "secure-before-sign"  # open_secure: peer signs before we do
    INTERACTIVE_FUNDING = "interactive-funding"  # open_finalize_interactive
    ABANDON_PENDING = "abandon-pending"  # abandon_pending
    PUBLISH = "publish"  # publish(raw_tx)
    PUBLISH_PSBT = "publish-psbt"  # publish_psbt(signed_psbt): see its docstring, it is a duty
    ANCHOR_RESERVE = "anchor-reserve"  # anchor_reserve()
    SWEEP = "sweep"  # sweep_to()
    NEW_ADDRESS = "new-address"  # new_address()
    CHANNEL_BACKUP = "channel-backup"  # channel_backup()
    CHANNEL_EVENTS = "channel-events"  # subscribe_channel_events()
    INBOUND_GUARD = "inbound-guard"  # accept_inbound(): we answer the node's inbound channel requests
    PLUGIN_EVENTS = "plugin-events"  # the l2custody plugin inside the node audits its channel notifications
    WITHHELD_FUNDING = "withheld-funding"  # record_withheld_funding(): funding broadcast elsewhere must be told
    RPC_MIDDLEWARE = "rpc-middleware"  # rpc_middleware(): we judge the node's RPC requests (node enforce)


class ChannelState(str, enum.Enum):
    """Where a channel is in its life, the same words for every implementation."""

    PENDING_OPEN = "pending_open"  # negotiated, funding not (yet) confirmed
    OPEN = "open"  # confirmed and usable (see ChannelInfo.active)
    CLOSING = "closing"  # cooperative/any close tx broadcast, not confirmed
    FORCE_CLOSING = "force_closing"  # closed on chain, funds time-locked (limbo)
    CLOSED = "closed"  # fully resolved (see ChannelInfo.close_type)


class CloseType(str, enum.Enum):
    COOPERATIVE = "cooperative"
    LOCAL_FORCE = "local_force"
    REMOTE_FORCE = "remote_force"
    BREACH = "breach"
    FUNDING_CANCELED = "funding_canceled"  # funding never confirmed / timed out
    ABANDONED = "abandoned"  # abandon_pending (or lncli abandonchannel)
    UNKNOWN = "unknown"


def parse_channel_point(text: str) -> tuple[str, int]:
    """``"<txid>:<vout>"`` -> ``(txid, vout)``; UsageError for anything else."""
    txid, sep, vout = text.strip().partition(":")
    ok = sep and len(txid) == 64 and is_decimal(vout)
    if ok:
        try:
            bytes.fromhex(txid)
        except ValueError:
            ok = False
    if not ok:
        raise UsageError(
            f"{text!r} is not a channel point: expected <funding txid>:<output index>, "
            "e.g. 3f1c...a9:0 (see `l2custody channel list`)"
        )
    return txid.lower(), int(vout)


def scid_to_str(scid: int) -> str:
    """lnd's 64-bit channel id -> ``BLOCKxTXxOUTPUT`` (CLN's short_channel_id form)."""
    return f"{scid >> 40}x{(scid >> 16) & 0xFFFFFF}x{scid & 0xFFFF}"


# --- data crossing the boundary ----------------------------------------------
@dataclass(frozen=True)
class NodeInfo:
    pubkey: str
    alias: str
    version: str
    network: str  # normalized: main | test | regtest | signet
    synced_to_chain: bool
    block_height: int
    block_hash: str
    kind: str  # "lnd" | "cln"
    num_peers: int = 0
    num_active_channels: int = 0
    num_pending_channels: int = 0
    uris: tuple[str, ...] = ()


@dataclass(frozen=True)
class OpenRequest:
    """One channel we want to open, funded from outside the node's wallet.

    ``close_address`` is the upfront shutdown address (invariant 2); when the
    peer cannot commit it, ``open_start`` raises UpfrontShutdownRefused unless
    ``allow_no_upfront_shutdown`` is set, in which case the channel is opened
    without one and ``FundingIntent.close_address`` is None.
    ``fee_rate`` (sat/vB) is a hint only: with PSBT funding the fee is whatever
    the PSBT pays. ``commitment_type`` None = the node's default (anchors).
    ``node_publishes``: the node broadcasts the funding tx itself at
    ``open_finalize_interactive`` (classic flow; for a batch set it on the last
    channel only). False (the default) for sessions: the caller broadcasts.
    """

    peer_pubkey: str
    amount_sat: int
    private: bool = False
    push_sat: int = 0
    close_address: str | None = None
    fee_rate: float | None = None
    allow_no_upfront_shutdown: bool = False
    commitment_type: str | None = None
    node_publishes: bool = False

    def __post_init__(self) -> None:
        if len(self.peer_pubkey) != 66:
            raise UsageError(f"peer {self.peer_pubkey!r} is not a node public key (66 hex characters)")
        try:
            bytes.fromhex(self.peer_pubkey)
        except ValueError:
            raise UsageError(f"peer {self.peer_pubkey!r} is not hex") from None
        if self.amount_sat <= 0:
            raise UsageError(f"channel amount must be positive, got {self.amount_sat} sat")
        if not 0 <= self.push_sat < self.amount_sat:
            raise UsageError(
                f"push amount {self.push_sat} sat must be between 0 and the channel amount ({self.amount_sat} sat)"
            )


@dataclass(frozen=True)
class FundingIntent:
    """A negotiated channel waiting for its funding PSBT. Plain data: persist it.

    ``intent_id`` identifies the negotiation on the node (lnd: the 32-byte
    pending channel id, hex; CLN: the peer id). ``funding_script`` is the
    scriptPubKey the PSBT must pay exactly ``amount_sat`` to.
    """

    node: str
    kind: str
    peer_pubkey: str
    intent_id: str
    funding_address: str
    funding_script: bytes
    amount_sat: int
    close_address: str | None
    private: bool = False
    push_sat: int = 0

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["funding_script"] = self.funding_script.hex()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> FundingIntent:
        data = dict(d)
        data["funding_script"] = bytes.fromhex(str(data["funding_script"]))
        return cls(**data)  # type: ignore[arg-type]


@dataclass(frozen=True)
class ChannelInfo:
    """One channel in any state. Amounts in sat.

    ``close_address`` is the upfront shutdown address the node committed for
    our side; ``close_address_known`` is False when the node does not report
    it in this state (lnd: pending and closed channels), so None then means
    "not reported", not "none".
    """

    node: str
    channel_point: str
    peer_pubkey: str
    state: ChannelState
    capacity_sat: int
    local_balance_sat: int = 0
    remote_balance_sat: int = 0
    short_channel_id: str | None = None
    active: bool = False
    private: bool = False
    initiator: str = "unknown"  # local | remote | both | unknown
    close_address: str | None = None
    close_address_known: bool = False
    commitment_type: str = "unknown"
    closing_txid: str | None = None
    close_type: CloseType | None = None
    close_height: int | None = None
    settled_sat: int | None = None  # closed: what came back to us on chain
    limbo_sat: int = 0  # force closing: still time-locked
    recovered_sat: int = 0
    maturity_height: int | None = None
    blocks_til_maturity: int | None = None

    @property
    def funding_txid(self) -> str:
        return self.channel_point.split(":")[0]


@dataclass(frozen=True)
class CloseResult:
    channel_point: str
    closing_txid: str | None  # None: the close is negotiated but no tx known yet
    state: ChannelState
    delivery_address: str | None = None


@dataclass(frozen=True)
class OnchainBalance:
    """The node's own (hot) wallet. ``reserved_anchor_sat`` is what the node keeps
    for fee-bumping anchor channels; ``locked_sat`` is leased to pending spends."""

    confirmed_sat: int
    unconfirmed_sat: int
    locked_sat: int
    reserved_anchor_sat: int

    @property
    def total_sat(self) -> int:
        return self.confirmed_sat + self.unconfirmed_sat


@dataclass(frozen=True)
class AnchorReserve:
    """What the node must keep in its wallet for its anchor channels, after
    opening ``additional_public_channels`` more, and what it has."""

    required_sat: int
    available_sat: int
    additional_public_channels: int

    @property
    def sufficient(self) -> bool:
        return self.available_sat >= self.required_sat

    @property
    def missing_sat(self) -> int:
        return max(0, self.required_sat - self.available_sat)


@dataclass(frozen=True)
class SweepResult:
    """What ``sweep_to`` sent (or, with ``dry_run``, would send)."""

    address: str
    amount_sat: int
    fee_sat: int
    kept_sat: int
    inputs: tuple[str, ...]
    dry_run: bool
    txid: str | None = None


@dataclass(frozen=True)
class ChannelEvent:
    """A change in one channel's life, as reported by the node."""

    node: str
    kind: str  # pending_open | open | active | inactive | closed | fully_resolved | funding_timeout
    channel_point: str
    channel: ChannelInfo | None = None


def check_close_request(
    ch: ChannelInfo,
    channel_point: str,
    *,
    delivery_address: str | None,
    fee_rate: float | None,
    force: bool,
    implementation: str,
) -> None:
    """The checks every backend makes before asking its node to close ``ch``:
    it is open, a force close names neither fee nor destination, and a
    delivery address is refused when another upfront shutdown address is
    committed (``implementation`` names the node in that message). Raises
    UsageError or UpfrontShutdownRefused."""
    if ch.state is not ChannelState.OPEN:
        raise UsageError(f"channel {channel_point} is {ch.state.value}, not open; nothing to close")
    if force and (fee_rate is not None or delivery_address):
        raise UsageError("a force close uses the fee and outputs fixed in the commitment; drop --fee-rate/--to")
    if delivery_address and ch.close_address and delivery_address != ch.close_address:
        raise UpfrontShutdownRefused(
            f"channel {channel_point} was opened with upfront shutdown address {ch.close_address}; "
            f"{implementation} can only close it to that address, not to {delivery_address}. Close "
            "without a delivery address."
        )


def check_abandon_request(ch: ChannelInfo, channel_point: str) -> None:
    """The check every backend makes before abandoning ``ch``: only a pending
    channel we opened may be abandoned. Raises UsageError."""
    if ch.state is not ChannelState.PENDING_OPEN or ch.initiator != "local":
        raise UsageError(
            f"channel {channel_point} is {ch.state.value} ({ch.initiator} initiator); only pending "
            "channels we opened can be abandoned"
        )


# --- the protocol ----------------------------------------------------------------
class NodeBackend(ABC):
    """A Lightning node as the custody flows see it.

    Constructing a backend never touches the network; the first call does.
    Every call raises NodeUnreachable (cannot reach the node), NodeAuthError
    (credentials rejected), NodeError (the node refused, with its message), or
    the more specific errors named in each docstring.
    """

    kind: ClassVar[str] = ""
    capabilities: ClassVar[frozenset[Capability]] = frozenset()

    def __init__(self, name: str) -> None:
        self.name = name

    def supports(self, capability: Capability) -> bool:
        return capability in self.capabilities

    def _not_supported(self, what: str) -> NotSupported:
        return NotSupported(
            f"node {self.name!r} ({self.kind}) does not support {what}; "
            "see `l2custody node check` for what this node can do"
        )

    def close(self) -> None:
        """Release connections and background streams. Safe to call twice."""

    def access_problems(self) -> list[str]:
        """What our credentials do not allow that l2custody needs (empty: all fine)."""
        return []

    # --- always present -----------------------------------------------------
    @abstractmethod
    def info(self) -> NodeInfo:
        """Identity, version, network and chain sync state."""

    @abstractmethod
    def connect_peer(self, pubkey: str, host: str) -> None:
        """Connect to ``pubkey@host``; succeeds if already connected.
        Raises PeerRefused when the peer cannot be reached."""

    @abstractmethod
    def is_connected(self, pubkey: str) -> bool:
        """Whether the node has a live connection to ``pubkey``."""

    @abstractmethod
    def list_channels(self, *, include_closed: bool = True) -> list[ChannelInfo]:
        """Every channel: pending opens, open, closing, force closing (with limbo
        and maturity) and, unless ``include_closed`` is False, closed ones."""

    def start_list_channels(self, *, include_closed: bool = True) -> Callable[[], list[ChannelInfo]]:
        """Ask for :meth:`list_channels` now and collect the answer later: the returned
        function waits for it (and raises what ``list_channels`` raises). A backend that can
        ask without blocking (lnd) lets the caller work meanwhile; by default the node is
        asked when the answer is collected."""
        return lambda: self.list_channels(include_closed=include_closed)

    @abstractmethod
    def close_channel(
        self,
        channel_point: str,
        *,
        delivery_address: str | None = None,
        fee_rate: float | None = None,
        force: bool = False,
    ) -> CloseResult:
        """Close a channel. Cooperative unless ``force``. ``delivery_address``
        only for channels without an upfront shutdown address (otherwise
        UpfrontShutdownRefused: the committed address is the only possible
        destination). Returns once the close transaction is known (or the
        node has accepted the request)."""

    @abstractmethod
    def onchain_balance(self) -> OnchainBalance:
        """The node's hot wallet balance."""

    # --- funding (Capability.PSBT_FUNDING and friends) ---------------------------
    def open_start(self, request: OpenRequest) -> FundingIntent:
        """Negotiate a channel with an externally funded output; return the
        funding address and amount. Nothing is signed or locked on our side.
        Raises PeerRefused (peer said no, not connected), UpfrontShutdownRefused."""
        raise self._not_supported("PSBT channel funding")

    def open_secure(self, intent: FundingIntent, unsigned_psbt: bytes) -> str:
        """Hand the node the (unsigned) funding PSBT; return the channel point
        once the peer has counter-signed and the node persisted the channel as
        pending. Nothing is broadcast: the caller must broadcast a transaction
        with exactly this txid (only signatures may be added).
        Raises PsbtError (PSBT does not pay the funding output),
        InsufficientFunds (anchor reserve), PeerRefused."""
        raise self._not_supported("securing a channel before signing (skip_finalize)")

    def open_finalize_interactive(self, intent: FundingIntent, signed_psbt: bytes) -> str:
        """Classic flow: verify, then hand the node the fully signed PSBT; the
        node completes the negotiation and publishes. Returns the channel point."""
        raise self._not_supported("interactive PSBT funding")

    def open_cancel(self, intent: FundingIntent) -> None:
        """Forget a negotiation that has not been secured. Idempotent."""
        raise self._not_supported("cancelling a PSBT funding negotiation")

    def abandon_pending(self, channel_point: str) -> None:
        """Forget a secured (pending) channel whose funding transaction will never
        be broadcast. Refuses (NodeError) if the funding tx is known on chain."""
        raise self._not_supported("abandoning a pending channel")

    def publish(self, raw_tx: bytes, *, label: str = "") -> str:
        """Broadcast through the node. Returns the txid. BroadcastRejected when
        refused; BroadcastUnknown when we cannot tell (timeout)."""
        raise self._not_supported("publishing transactions")

    def publish_psbt(self, signed_psbt: bytes) -> str:
        """Broadcast a finalized PSBT through the node, which records it as the
        funding of the channels it secured for it (CLN ``sendpsbt``: stored and
        rebroadcast after a restart). Returns the txid.

        A backend with ``Capability.PUBLISH_PSBT`` must be handed the signed
        funding PSBT of every transaction that funds a channel it secured
        (``open_secure``), before or together with any other broadcast of it,
        and again when a broadcast is retried: publishing the same transaction
        twice is harmless, not telling the node is not (CLN from v25.12 keeps
        such channels marked "funding withheld" until then, and a withheld
        channel is forgotten without a closing transaction when it closes).
        PsbtError when the PSBT is not finalized (nothing sent); BroadcastRejected;
        BroadcastUnknown (timeout: check the chain, publishing again is safe)."""
        raise self._not_supported("publishing funding PSBTs")

    # --- hot wallet -----------------------------------------------------------------
    def anchor_reserve(self, additional_public_channels: int = 0) -> AnchorReserve:
        """The reserve the node requires for its anchor channels (plus
        ``additional_public_channels`` new ones) against what it has."""
        raise self._not_supported("anchor reserve queries")

    def sweep_to(
        self,
        address: str,
        *,
        keep_sat: int | None = None,
        fee_rate: float | None = None,
        dry_run: bool = False,
    ) -> SweepResult:
        """Send the node's confirmed on-chain funds to ``address``, keeping
        ``max(keep_sat, anchor reserve)``. With ``dry_run`` nothing is sent or
        locked. InsufficientFunds when nothing is left to send."""
        raise self._not_supported("sweeping the node wallet")

    def new_address(self) -> str:
        """A fresh address of the node's own wallet (tests and harness use)."""
        raise self._not_supported("new node wallet addresses")

    def channel_backup(self) -> bytes:
        """An opaque static channel backup of all channels."""
        raise self._not_supported("channel backups")

    def subscribe_channel_events(self) -> Iterator[ChannelEvent]:
        """Channel state changes as they happen; close the iterator to stop."""
        raise self._not_supported("channel event subscriptions")

    def accept_inbound(
        self,
        decide: Decide,
        stop: threading.Event,
        *,
        on_error: Callable[[InboundRequest, BaseException], None] | None = None,
    ) -> None:
        """Answer the node's inbound channel requests with ``decide`` until ``stop`` is set
        (``Capability.INBOUND_GUARD``). A ``decide`` that raises gets the request rejected
        (the exception goes to ``on_error``): a bug never lets a channel in unguarded.
        Raises NodeUnreachable/NodeAuthError/NodeError when the node's stream fails."""
        raise self._not_supported("a channel acceptor")

    def rpc_middleware(self, macaroon: Path | None = None) -> RpcMiddleware:
        """The node's RPC interception (``Capability.RPC_MIDDLEWARE``), see ``backends/rpc_calls.py``."""
        raise self._not_supported("RPC middleware")

    def record_withheld_funding(self) -> tuple[str, ...]:
        """Tell the node about funding transactions it was told to withhold and that
        confirmed without it (broadcast through another path), so that it can close those
        channels with a closing transaction (``Capability.WITHHELD_FUNDING``). This may
        hand the node a transaction to publish: read commands never call it. Returns the
        channel points the node took."""
        return ()
