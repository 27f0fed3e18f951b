"""Funding sessions: the typed record of one multisig-funded open (single or batch).

A session is negotiated in seconds and signed at the signers' pace::

    NEGOTIATING -> SECURED -> BROADCASTING -> BROADCAST -> CONFIRMED
         |             |            (outcome unknown: check the chain, rebroadcast)
         `-> FAILED    `-> ABORTED   (nothing broadcast, channels forgotten, UTXOs released)

Each channel of the session is a leg::

    PLANNED -> REQUESTED -> SECURED -> OPEN
                   |            `-> ABANDONED
                   `-> CANCELLED

This module is pure data and rules (no I/O): the legs, the states, the
deadline arithmetic and the JSON form. ``custody/funding/negotiate.py`` negotiates,
``custody/funding/lifecycle.py`` signs, broadcasts, follows and aborts, and
``custody/funding/records.py`` persists.

The custody invariants cited by number are listed in ``docs/architecture.md``.
"""

from __future__ import annotations

import enum
import json
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from l2custody.errors import DeadlinePassed, SessionError

#: Peers forget an unconfirmed channel 2016 blocks after negotiation (BOLT 2).
PEER_FORGET_BLOCKS = 2016


class SessionState(str, enum.Enum):
    NEGOTIATING = "negotiating"  # funding outputs requested from nodes, not yet all counter-signed
    SECURED = "secured"  # every leg counter-signed; waiting for signatures
    BROADCASTING = "broadcasting"  # broadcast attempted, outcome unknown: check the chain
    BROADCAST = "broadcast"  # funding tx in the mempool; waiting for confirmation
    CONFIRMED = "confirmed"  # funding tx confirmed
    ABORTED = "aborted"  # cancelled by the operator before broadcast; nothing lost
    FAILED = "failed"  # negotiation failed; nothing was broadcast

    @property
    def is_final(self) -> bool:
        return self in (SessionState.CONFIRMED, SessionState.ABORTED, SessionState.FAILED)

    @property
    def may_be_on_chain(self) -> bool:
        """The funding transaction may exist out there: never abandon the channels."""
        return self in (SessionState.BROADCASTING, SessionState.BROADCAST, SessionState.CONFIRMED)


class LegState(str, enum.Enum):
    PLANNED = "planned"  # close address reserved, node not asked yet
    REQUESTED = "requested"  # open started on the node, funding output known
    SECURED = "secured"  # peer counter-signed the commitment (channel pending in the node)
    OPEN = "open"  # funding confirmed, the node lists the channel as open
    CANCELLED = "cancelled"  # negotiation cancelled before it was secured
    ABANDONED = "abandoned"  # secured, then forgotten by the node (funding never broadcast)


@dataclass(frozen=True)
class ChannelRequest:
    """One channel the operator asked for."""

    node: str
    peer_pubkey: str
    amount_sat: int
    peer_host: str | None = None
    private: bool = False
    push_sat: int = 0

    @property
    def label(self) -> str:
        return f"{self.node} -> {self.peer_pubkey[:16]}…"


@dataclass(frozen=True)
class FundingLeg:
    """One channel of a session, as negotiated with its node.

    ``intent`` is the backend's ``FundingIntent.to_dict()`` (plain data): the
    pending channel id and the funding script the node asked us to pay.
    ``upfront_shutdown`` is whether the node committed ``close_address``
    (False only with ``--allow-no-upfront-shutdown``); ``close_address_ok`` is
    the read-back after the channel opened (None: not checked yet).
    """

    request: ChannelRequest
    close_address: str
    state: LegState = LegState.PLANNED
    intent: dict[str, Any] | None = None
    output_index: int | None = None  # where the funding output is in the session PSBT
    channel_point: str = ""  # txid:vout once secured
    upfront_shutdown: bool | None = None
    close_address_ok: bool | None = None
    error: str = ""

    @property
    def funding_script(self) -> bytes:
        return bytes.fromhex(str(self.intent["funding_script"])) if self.intent else b""

    @property
    def funding_address(self) -> str:
        return str(self.intent["funding_address"]) if self.intent else ""

    @property
    def intent_id(self) -> str:
        return str(self.intent["intent_id"]) if self.intent else ""

    @property
    def amount_sat(self) -> int:
        return int(self.intent["amount_sat"]) if self.intent else self.request.amount_sat


@dataclass(frozen=True)
class FundingSession:
    """The persisted state of one funding session.

    ``txid`` and ``psbt_fingerprint`` are those of the unsigned transaction the
    peers counter-signed: only signatures may be added before broadcast.
    ``psbt`` is the latest PSBT (base64, all signatures so far).
    """

    id: str
    state: SessionState
    start_height: int
    legs: tuple[FundingLeg, ...]
    psbt: str = ""
    psbt_fingerprint: str = ""
    txid: str = ""
    reserved_utxos: tuple[str, ...] = ()  # "txid:vout"
    fee_rate: float | None = None
    interactive: bool = False
    allow_no_upfront_shutdown: bool = False
    owner: dict[str, Any] = field(default_factory=dict)  # pid/host of the negotiating process
    broadcast_height: int | None = None
    confirm_height: int | None = None
    error: str = ""

    def with_state(self, state: SessionState, **changes: Any) -> FundingSession:
        return replace(self, state=state, **changes)

    def with_leg(self, index: int, leg: FundingLeg) -> FundingSession:
        legs = list(self.legs)
        legs[index] = leg
        return replace(self, legs=tuple(legs))

    def update_leg(self, index: int, **changes: Any) -> FundingSession:
        return self.with_leg(index, replace(self.legs[index], **changes))

    @property
    def amount_sat(self) -> int:
        return sum(leg.request.amount_sat for leg in self.legs)

    @property
    def nodes(self) -> list[str]:
        return sorted({leg.request.node for leg in self.legs})

    def deadline_height(self) -> int:
        """Block height after which a peer may have forgotten the channels."""
        return self.start_height + PEER_FORGET_BLOCKS

    def blocks_left(self, tip_height: int, margin: int) -> int:
        """Blocks left before broadcasting stops being safe (negative: past it)."""
        return self.deadline_height() - margin - tip_height

    def check_broadcastable(self, tip_height: int, margin: int) -> None:
        """Raise unless every leg is counter-signed and the deadline margin is not reached."""
        allowed = (SessionState.SECURED, SessionState.BROADCASTING, SessionState.BROADCAST)
        if self.state not in allowed:
            raise SessionError(f"session {self.id} is {self.state.value}; only a secured session can be broadcast")
        unsecured = [leg for leg in self.legs if leg.state not in (LegState.SECURED, LegState.OPEN)]
        if unsecured:
            names = ", ".join(f"{leg.request.label} ({leg.state.value})" for leg in unsecured)
            raise SessionError(
                f"session {self.id}: channel(s) {names} are not counter-signed by the peer; "
                "broadcasting could lock funds in an output nobody can spend. "
                f"Run 'l2custody session abort {self.id}'."
            )
        left = self.blocks_left(tip_height, margin)
        if left < 0:
            raise DeadlinePassed(
                f"session {self.id} was negotiated at height {self.start_height}; at height "
                f"{tip_height} it is past the safety margin ({margin} blocks before the "
                f"{PEER_FORGET_BLOCKS}-block window after which peers forget unconfirmed channels). "
                f"Refusing to broadcast. Run 'l2custody session abort {self.id}' and open again."
            )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (states as their values)."""
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> FundingSession:
        raw = dict(raw)
        legs = []
        for leg in raw.pop("legs"):
            leg = dict(leg)
            request = ChannelRequest(**leg.pop("request"))
            legs.append(FundingLeg(request=request, state=LegState(leg.pop("state")), **leg))
        return cls(
            state=SessionState(raw.pop("state")),
            legs=tuple(legs),
            reserved_utxos=tuple(raw.pop("reserved_utxos", ())),
            **raw,
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> FundingSession:
        return cls.from_dict(json.loads(text))


@dataclass
class SessionView:
    """What `session show/status` renders: the session plus live facts."""

    session: FundingSession
    tip_height: int
    margin: int
    signatures: int = 0  # the fewest valid signatures on any input
    threshold: int = 0
    confirmations: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def blocks_left(self) -> int:
        return self.session.blocks_left(self.tip_height, self.margin)

    def to_dict(self) -> dict[str, Any]:
        data = self.session.to_dict()
        data.pop("psbt", None)
        data.update(
            tip_height=self.tip_height,
            deadline_height=self.session.deadline_height(),
            deadline_margin=self.margin,
            blocks_left=self.blocks_left,
            signatures=self.signatures,
            threshold=self.threshold,
            confirmations=self.confirmations,
            notes=self.notes,
        )
        return data
