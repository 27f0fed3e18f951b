"""Funding sessions: the typed record of one multisig-funded open (single or batch).

A session is negotiated in seconds and signed at the signers' pace:

    NEGOTIATING -> SECURED -> (signatures collected) -> BROADCAST -> CONFIRMED
          \\            \\
           `-> FAILED    `-> ABORTED   (nothing broadcast, UTXOs released)

This module is pure data and rules (no I/O): the legs, the states, and the
deadline arithmetic. ``custody/funding.py`` drives it through the backends,
the wallet and the store.
"""

from __future__ import annotations

import enum
import json
from dataclasses import asdict, dataclass, field, replace

from l2custody.errors import DeadlinePassed, SessionError

#: Peers forget an unconfirmed channel 2016 blocks after negotiation (BOLT 2).
PEER_FORGET_BLOCKS = 2016


class SessionState(str, enum.Enum):
    NEGOTIATING = "negotiating"  # funding outputs requested from nodes, not yet counter-signed
    SECURED = "secured"  # every leg counter-signed; waiting for signatures
    BROADCAST = "broadcast"  # funding tx sent; waiting for confirmation
    CONFIRMED = "confirmed"  # funding tx confirmed; channels open
    ABORTED = "aborted"  # cancelled by the operator before broadcast; nothing lost
    FAILED = "failed"  # negotiation failed; nothing was broadcast

    @property
    def is_final(self) -> bool:
        return self in (SessionState.CONFIRMED, SessionState.ABORTED, SessionState.FAILED)


class LegState(str, enum.Enum):
    REQUESTED = "requested"  # open started on the node, funding output known
    SECURED = "secured"  # peer counter-signed the commitment (channel pending in the node)
    CANCELLED = "cancelled"
    OPEN = "open"  # funding confirmed and channel seen active


@dataclass(frozen=True)
class ChannelRequest:
    """One channel the operator asked for."""

    node: str
    peer_pubkey: str
    amount_sat: int
    peer_host: str | None = None
    private: bool = False
    push_sat: int = 0


@dataclass(frozen=True)
class FundingLeg:
    """One channel of a session, as negotiated with its node."""

    request: ChannelRequest
    close_address: str
    pending_chan_id: str = ""  # backend's handle for the pending open (hex)
    funding_address: str = ""
    funding_script: str = ""  # hex scriptPubKey the node asked us to pay
    output_index: int | None = None  # where that output is in the session PSBT
    channel_point: str = ""  # txid:vout once secured
    state: LegState = LegState.REQUESTED
    upfront_shutdown_committed: bool | None = None  # read back from the node; None = not checked yet


@dataclass(frozen=True)
class FundingSession:
    """The persisted state of one funding session."""

    id: str
    state: SessionState
    start_height: int
    legs: tuple[FundingLeg, ...]
    psbt: str = ""  # base64, the latest combined PSBT
    psbt_fingerprint: str = ""  # of the unsigned tx that was verified and counter-signed
    reserved_utxos: tuple[str, ...] = ()  # "txid:vout"
    interactive: bool = False
    allow_no_upfront_shutdown: bool = False
    txid: str = ""
    error: str = ""

    def with_state(self, state: SessionState, **changes: object) -> "FundingSession":
        return replace(self, state=state, **changes)  # type: ignore[arg-type]

    def with_leg(self, index: int, leg: FundingLeg) -> "FundingSession":
        legs = list(self.legs)
        legs[index] = leg
        return replace(self, legs=tuple(legs))

    @property
    def amount_sat(self) -> int:
        return sum(leg.request.amount_sat for leg in self.legs)

    def deadline_height(self) -> int:
        """Block height after which a peer may have forgotten the channels."""
        return self.start_height + PEER_FORGET_BLOCKS

    def blocks_left(self, tip_height: int, margin: int) -> int:
        """Blocks left before broadcasting stops being safe (negative: past it)."""
        return self.deadline_height() - margin - tip_height

    def check_broadcastable(self, tip_height: int, margin: int) -> None:
        """Raise unless every leg is counter-signed and the deadline margin is not reached."""
        if self.state is not SessionState.SECURED and self.state is not SessionState.BROADCAST:
            raise SessionError(
                f"session {self.id} is {self.state.value}; only a secured session can be broadcast"
            )
        unsecured = [leg for leg in self.legs if leg.state is not LegState.SECURED]
        if unsecured:
            names = ", ".join(f"{leg.request.node}->{leg.request.peer_pubkey[:16]}" for leg in unsecured)
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

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "FundingSession":
        raw = json.loads(text)
        legs = []
        for leg in raw.pop("legs"):
            request = ChannelRequest(**leg.pop("request"))
            legs.append(FundingLeg(request=request, state=LegState(leg.pop("state")), **leg))
        return cls(
            state=SessionState(raw.pop("state")),
            legs=tuple(legs),
            reserved_utxos=tuple(raw.pop("reserved_utxos")),
            **raw,
        )


@dataclass
class SessionView:
    """What `session show/status` renders: the session plus live facts."""

    session: FundingSession
    tip_height: int
    margin: int
    signatures: int = 0
    threshold: int = 0
    confirmations: int = 0
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        data = asdict(self.session)
        data.pop("psbt", None)
        data.update(
            tip_height=self.tip_height,
            deadline_height=self.session.deadline_height(),
            blocks_left=self.session.blocks_left(self.tip_height, self.margin),
            signatures=self.signatures,
            threshold=self.threshold,
            confirmations=self.confirmations,
            notes=self.notes,
        )
        return data
