"""Where every satoshi is, and whether custody holds: the snapshot behind ``report`` and ``watch``.

:func:`build_snapshot` is pure: it takes typed facts already read from the
multisig wallet, the nodes and the funding sessions (``custody/report/observe.py``
reads them; tests and the benchmark make them up) and returns a
:class:`Snapshot`:

- balances by place: ``multisig``, ``channels_local`` (open channels),
  ``pending_open``, ``limbo`` (closing and force-closing, time-locked) and
  ``hot_wallet`` (the nodes' own on-chain wallets);
- per node: channels by state with their local balance, pending opens (with
  the funding deadline's blocks left), pending closes and force-close limbo
  with maturity, the hot wallet and what is due a sweep;
- the custody checks, one :class:`Finding` per failure, each saying what is
  wrong and what to do:

  ``close-address``    every live channel commits its cooperative close to a
                       multisig address (a foreign one, or none, is flagged)
  ``funding-source``   every channel we opened was funded by one of our
                       funding sessions (else flagged as foreign)
  ``hot-wallet``       no node wallet holds more than the sweep threshold above
                       what it must keep
  ``session-deadline`` no funding session is near the block where peers may
                       forget its channels
  ``node-reachable`` / ``chain-reachable``  every node and the chain could be
                       read (checks fail closed)
  ``rehearsal``        the wallet's current generation was rehearsed
                       (``wallet rehearse``), every signer of it signed a
                       rehearsal within ``[rehearsal] max_age_days``, and the
                       last rehearsal did not fail (with ``[rehearsal]
                       required = false`` only a failed rehearsal is flagged)
  ``generation-exposure``  no older wallet generation holds coins or live
                       channels' close addresses, and each one that does can
                       still sign (``custody/report/exposure.py``)
  ``recovery-timelock``  no coin of a recovery wallet is within ``[recovery]
                       refresh_margin_blocks`` of its recovery path's opening
                       (warning), nor past it (critical; ``custody/report/timelocks.py``)
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from operator import attrgetter
from typing import TYPE_CHECKING, Any

from l2custody.backends.base import ChannelState, CloseType, OnchainBalance

if TYPE_CHECKING:  # pragma: no cover
    from l2custody.custody.channels import ChannelView
    from l2custody.custody.funding.session import FundingSession
    from l2custody.custody.report.exposure import GenerationExposure, MigrationFacts
    from l2custody.custody.report.timelocks import RecoveryFacts
    from l2custody.wallet.generations import GenerationInfo

PLACES = ("multisig", "channels_local", "pending_open", "limbo", "hot_wallet")
STATES = tuple(s.value for s in ChannelState)
CHECKS = (
    "close-address",
    "funding-source",
    "hot-wallet",
    "session-deadline",
    "node-reachable",
    "chain-reachable",
    "rehearsal",
    "generation-exposure",
    "recovery-timelock",
)
FUNDING_SESSION, FUNDING_FOREIGN, FUNDING_PEER = "session", "foreign", "peer"
FORCE_CLOSE_TYPES = frozenset({CloseType.LOCAL_FORCE.value, CloseType.REMOTE_FORCE.value, CloseType.BREACH.value})
_LIVE = frozenset({ChannelState.PENDING_OPEN.value, ChannelState.OPEN.value})
_CLOSING = frozenset({ChannelState.CLOSING.value, ChannelState.FORCE_CLOSING.value})
_UNCONFIRMED_SESSION_STATES = frozenset({"negotiating", "secured", "broadcasting", "broadcast"})
_DAY = 86_400.0
#: enum member -> its value (``.value`` on a str enum costs a descriptor call; 10,000 channels feel it)
_VALUES: dict[object, str] = {m: m.value for e in (ChannelState, CloseType) for m in e}


# --- inputs ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ChannelFacts:
    """One channel as the custody checks see it (flat and JSON-able; persisted by ``watch``).

    ``close_committed``: True when the node reports an upfront close address,
    False when it reports that there is none, None when it does not say in
    this state. ``close_ours``: the close address is a multisig address (None:
    no address known). ``funding``: ``session`` (ours), ``foreign`` (we opened
    it, with other money) or ``peer`` (the peer opened it). ``close_generation``:
    the wallet generation the close address belongs to (None: not ours or unknown).
    """

    node: str
    channel_point: str
    state: str
    peer: str
    capacity_sat: int
    local_balance_sat: int = 0
    active: bool = False
    short_channel_id: str | None = None
    initiator: str = "unknown"
    close_address: str | None = None
    close_committed: bool | None = None
    close_ours: bool | None = None
    funding: str = FUNDING_FOREIGN
    session_id: str | None = None
    closing_txid: str | None = None
    close_type: str | None = None
    limbo_sat: int = 0
    maturity_height: int | None = None
    blocks_til_maturity: int | None = None
    close_generation: int | None = None

    @classmethod
    def from_view(cls, view: ChannelView) -> ChannelFacts:
        ch = view.channel
        if view.funding == "session":
            funding = FUNDING_SESSION
        else:
            funding = FUNDING_PEER if ch.initiator == "remote" else FUNDING_FOREIGN
        committed = (ch.close_address is not None) if ch.close_address_known else None
        return cls(
            ch.node,
            ch.channel_point,
            _VALUES[ch.state],
            ch.peer_pubkey,
            ch.capacity_sat,
            ch.local_balance_sat,
            ch.active,
            ch.short_channel_id,
            ch.initiator,
            view.close_address,
            committed,
            view.close_ours,
            funding,
            view.session_id,
            ch.closing_txid,
            _VALUES[ch.close_type] if ch.close_type else None,
            ch.limbo_sat,
            ch.maturity_height,
            ch.blocks_til_maturity,
            view.close_owned.generation if view.close_owned is not None else None,
        )

    @property
    def funding_txid(self) -> str:
        return self.channel_point.split(":")[0]

    @property
    def force_closed(self) -> bool:
        return self.state == ChannelState.FORCE_CLOSING.value or self.close_type in FORCE_CLOSE_TYPES

    def to_row(self) -> list[Any]:
        return list(_FACT_GETTER(self))

    @classmethod
    def from_row(cls, row: list[Any]) -> ChannelFacts:
        return cls(*row)

    def to_dict(self) -> dict[str, Any]:
        return dict(zip(_FACT_FIELDS, self.to_row()))


_FACT_FIELDS = tuple(f.name for f in fields(ChannelFacts))
_FACT_GETTER = attrgetter(*_FACT_FIELDS)


@dataclass(frozen=True)
class NodeFacts:
    """What was read from one node. ``error`` set: the node could not be read now;
    ``channels``/``balance`` are then the last known ones (or empty)."""

    name: str
    kind: str
    channels: tuple[ChannelFacts, ...] = ()
    balance: OnchainBalance | None = None
    reserve_sat: int = 0  # the anchor reserve the node requires
    error: str | None = None
    read_at: float | None = None  # when channels/balance were read


@dataclass(frozen=True)
class SessionFacts:
    """A funding session not yet settled, with its deadline arithmetic done.

    ``deadline_height``: the last block at which it may still be broadcast
    (before broadcast), or after which peers may forget its channels (once
    broadcast and unconfirmed). ``blocks_left`` counts to it from the tip.
    """

    id: str
    state: str
    txid: str
    amount_sat: int
    nodes: tuple[str, ...]
    channel_points: tuple[str, ...]
    deadline_height: int
    blocks_left: int

    @classmethod
    def of(cls, session: FundingSession, tip: int, margin: int) -> SessionFacts:
        on_network = session.state.value in ("broadcast", "broadcasting")
        deadline = session.deadline_height() - (0 if on_network else margin)
        return cls(
            session.id,
            session.state.value,
            session.txid,
            session.amount_sat,
            tuple(session.nodes),
            tuple(leg.channel_point for leg in session.legs if leg.channel_point),
            deadline,
            deadline - tip,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "state": self.state,
            "txid": self.txid,
            "amount_sat": self.amount_sat,
            "nodes": list(self.nodes),
            "channel_points": list(self.channel_points),
            "deadline_height": self.deadline_height,
            "blocks_left": self.blocks_left,
        }


@dataclass(frozen=True)
class RehearsalRun:
    """One rehearsal, as the report names it."""

    id: str
    state: str
    at: float  # when it reached ``state``
    signers: tuple[str, ...]
    txid: str | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "state": self.state,
            "at": self.at,
            "signers": list(self.signers),
            "txid": self.txid,
            "error": self.error,
        }


@dataclass(frozen=True)
class SignerRehearsal:
    """A registered signer whose key is in the current generation, and when it last signed a
    confirmed rehearsal of it (None: never)."""

    name: str
    kind: str
    fingerprint: str
    last_signed: float | None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "fingerprint": self.fingerprint, "last_signed": self.last_signed}


@dataclass(frozen=True)
class RehearsalFacts:
    """The rehearsals of the wallet's current generation (``wallet/rehearsal_records.py``).

    ``confirmed``: the newest confirmed one; ``failed``: the newest settled one when it
    failed; ``pending``: the unfinished one. ``unregistered_keys``: fingerprints of the
    descriptor's keys that no registered signer holds (no rehearsal can prove them).
    """

    wallet: str
    generation: int
    confirmed: RehearsalRun | None = None
    failed: RehearsalRun | None = None
    pending: RehearsalRun | None = None
    signers: tuple[SignerRehearsal, ...] = ()
    unregistered_keys: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "wallet": self.wallet,
            "generation": self.generation,
            "confirmed": self.confirmed.to_dict() if self.confirmed else None,
            "failed": self.failed.to_dict() if self.failed else None,
            "pending": self.pending.to_dict() if self.pending else None,
            "signers": [s.to_dict() for s in self.signers],
            "unregistered_keys": list(self.unregistered_keys),
        }


@dataclass(frozen=True)
class MultisigFacts:
    confirmed_sat: int
    unconfirmed_sat: int
    reserved_sat: int = 0
    scanned_height: int | None = None

    @property
    def total_sat(self) -> int:
        return self.confirmed_sat + self.unconfirmed_sat


@dataclass(frozen=True)
class ReportInputs:
    wallet: str
    network: str
    taken_at: float
    tip_height: int | None
    multisig: MultisigFacts
    nodes: tuple[NodeFacts, ...]
    sessions: tuple[SessionFacts, ...] = ()
    chain_error: str | None = None
    rehearsal: RehearsalFacts | None = None  # None: not read (``watch``); the check is then skipped
    generations: tuple[GenerationInfo, ...] = ()  # every wallet generation (none given: no exposure section)
    migrations: tuple[MigrationFacts, ...] = ()  # migration sessions in flight
    recovery: RecoveryFacts | None = None  # a wallet with recovery paths: its coins' openings


@dataclass(frozen=True)
class ReportSettings:
    """The thresholds of the checks (``[watch]`` and ``[rehearsal]`` in the config)."""

    sweep_threshold_sat: int = 100_000
    sweep_keep_sat: int = 0
    deadline_warning_blocks: int = 144
    rehearsal_required: bool = True
    rehearsal_max_age_days: int = 90

    @classmethod
    def from_config(cls, config: Any) -> ReportSettings:
        w, r = config.watch, config.rehearsal
        return cls(w.sweep_threshold_sat, w.sweep_keep_sat, w.deadline_warning_blocks, r.required, r.max_age_days)


# --- results -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Finding:
    """One failed custody check: ``message`` says what is wrong and what to do."""

    check: str
    subject: str  # channel point, session id, node name, "chain"
    message: str
    node: str | None = None
    kind: str = ""  # finer reason within the check, e.g. "foreign" / "missing" for close-address

    @property
    def key(self) -> str:
        """Stable identity of the condition (alerts fire once per key)."""
        return ":".join(p for p in (self.check, self.kind, self.node or "", self.subject) if p)

    def to_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "kind": self.kind,
            "node": self.node,
            "subject": self.subject,
            "message": self.message,
        }


@dataclass(frozen=True)
class PendingOpen:
    channel_point: str
    capacity_sat: int
    local_balance_sat: int
    funding: str
    session_id: str | None
    blocks_left: int | None  # the session's funding deadline; None when not ours or settled


@dataclass(frozen=True)
class PendingClose:
    channel_point: str
    state: str
    closing_txid: str | None
    limbo_sat: int
    maturity_height: int | None
    blocks_til_maturity: int | None


@dataclass(frozen=True)
class NodeReport:
    name: str
    kind: str
    reachable: bool
    error: str | None
    by_state: dict[str, tuple[int, int]]  # state -> (channels, local sat)
    hot_confirmed_sat: int
    hot_unconfirmed_sat: int
    reserve_sat: int
    keep_sat: int  # what a sweep leaves: max(reserve, [watch] sweep_keep_sat)
    sweepable_sat: int  # confirmed above keep_sat
    limbo_sat: int
    pending_opens: tuple[PendingOpen, ...]
    pending_closes: tuple[PendingClose, ...]
    read_at: float | None = None

    @property
    def hot_total_sat(self) -> int:
        return self.hot_confirmed_sat + self.hot_unconfirmed_sat

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "reachable": self.reachable,
            "error": self.error,
            "channels": {s: {"count": n, "local_sat": v} for s, (n, v) in self.by_state.items()},
            "hot_wallet": {
                "confirmed_sat": self.hot_confirmed_sat,
                "unconfirmed_sat": self.hot_unconfirmed_sat,
                "reserve_sat": self.reserve_sat,
                "keep_sat": self.keep_sat,
                "sweepable_sat": self.sweepable_sat,
            },
            "limbo_sat": self.limbo_sat,
            "pending_opens": [p.__dict__ for p in self.pending_opens],
            "pending_closes": [p.__dict__ for p in self.pending_closes],
            "read_at": self.read_at,
        }


@dataclass(frozen=True)
class Snapshot:
    """The whole picture at ``taken_at``. ``ok`` is False when any check failed."""

    wallet: str
    network: str
    taken_at: float
    tip_height: int | None
    multisig: MultisigFacts
    nodes: tuple[NodeReport, ...]
    channels: tuple[ChannelFacts, ...]
    sessions: tuple[SessionFacts, ...]
    findings: tuple[Finding, ...]
    balances: dict[str, int] = field(default_factory=dict)
    rehearsal: RehearsalFacts | None = None
    exposure: tuple[GenerationExposure, ...] = ()  # per wallet generation (custody/report/exposure.py)
    recovery: RecoveryFacts | None = None  # coins and their recovery paths (custody/report/timelocks.py)

    @property
    def ok(self) -> bool:
        return not self.findings

    def failed_checks(self) -> dict[str, int]:
        """Check name -> number of findings (every check listed, 0 when it passed)."""
        counts = dict.fromkeys(CHECKS, 0)
        for f in self.findings:
            counts[f.check] = counts.get(f.check, 0) + 1
        return counts

    def channel_counts(self) -> dict[tuple[str, str], int]:
        """(node, state) -> number of channels, every state listed for every node."""
        return {(n.name, s): n.by_state.get(s, (0, 0))[0] for n in self.nodes for s in STATES}

    def to_dict(self, *, channels: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "wallet": self.wallet,
            "network": self.network,
            "taken_at": self.taken_at,
            "tip_height": self.tip_height,
            "ok": self.ok,
            "multisig": {
                "confirmed_sat": self.multisig.confirmed_sat,
                "unconfirmed_sat": self.multisig.unconfirmed_sat,
                "reserved_sat": self.multisig.reserved_sat,
                "scanned_height": self.multisig.scanned_height,
            },
            "balances": dict(self.balances),
            "nodes": [n.to_dict() for n in self.nodes],
            "sessions": [s.to_dict() for s in self.sessions],
            "rehearsal": self.rehearsal.to_dict() if self.rehearsal else None,
            "checks": self.failed_checks(),
            "findings": [f.to_dict() for f in self.findings],
            "generations": [g.to_dict() for g in self.exposure],
            "recovery": self.recovery.to_dict() if self.recovery else None,
        }
        if channels:
            out["channels"] = [c.to_dict() for c in self.channels]
        return out


# --- building ----------------------------------------------------------------------------------
def build_snapshot(inputs: ReportInputs, settings: ReportSettings) -> Snapshot:
    """The snapshot and its checks, from facts only (no I/O)."""
    from l2custody.custody.report.exposure import exposure_findings, generation_exposure
    from l2custody.custody.report.timelocks import timelock_findings

    sessions = {s.id: s for s in inputs.sessions}
    findings: list[Finding] = []
    nodes: list[NodeReport] = []
    channels: list[ChannelFacts] = []
    for node in inputs.nodes:
        nodes.append(_node_report(node, sessions, settings, findings))
        channels.extend(node.channels)
    for s in inputs.sessions:
        finding = _deadline_finding(s, settings)
        if finding is not None:
            findings.append(finding)
    exposure = generation_exposure(inputs.generations, channels, inputs.migrations)
    findings.extend(exposure_findings(exposure))
    findings.extend(timelock_findings(inputs.recovery))
    if inputs.chain_error:
        height = inputs.multisig.scanned_height
        findings.append(
            Finding(
                "chain-reachable",
                "chain",
                (
                    f"the chain source could not be read ({inputs.chain_error}); the multisig balance is as of block "
                    f"{height if height is not None else 'none yet'} and funding deadlines are not current. "
                    "Check [chain] in the config and that the node is running."
                ),
            )
        )
    if inputs.rehearsal is not None:
        findings.extend(rehearsal_findings(inputs.rehearsal, settings, inputs.taken_at))
    balances = dict.fromkeys(PLACES, 0)
    balances["multisig"] = inputs.multisig.total_sat
    for n in nodes:
        balances["channels_local"] += n.by_state.get(ChannelState.OPEN.value, (0, 0))[1]
        balances["pending_open"] += n.by_state.get(ChannelState.PENDING_OPEN.value, (0, 0))[1]
        balances["limbo"] += n.limbo_sat
        balances["hot_wallet"] += n.hot_total_sat
    return Snapshot(
        inputs.wallet,
        inputs.network,
        inputs.taken_at,
        inputs.tip_height,
        inputs.multisig,
        tuple(nodes),
        tuple(channels),
        inputs.sessions,
        tuple(findings),
        balances,
        inputs.rehearsal,
        exposure,
        inputs.recovery,
    )


def _node_report(
    node: NodeFacts, sessions: dict[str, SessionFacts], settings: ReportSettings, findings: list[Finding]
) -> NodeReport:
    by_state: dict[str, list[int]] = {}
    limbo = 0
    opens: list[PendingOpen] = []
    closes: list[PendingClose] = []
    for ch in node.channels:
        totals = by_state.get(ch.state)
        if totals is None:
            totals = by_state[ch.state] = [0, 0]
        totals[0] += 1
        totals[1] += ch.local_balance_sat
        if ch.state in _CLOSING:
            limbo += ch.limbo_sat
            closes.append(
                PendingClose(
                    ch.channel_point,
                    ch.state,
                    ch.closing_txid,
                    ch.limbo_sat,
                    ch.maturity_height,
                    ch.blocks_til_maturity,
                )
            )
        elif ch.state == ChannelState.PENDING_OPEN.value:
            s = sessions.get(ch.session_id or "")
            opens.append(
                PendingOpen(
                    ch.channel_point,
                    ch.capacity_sat,
                    ch.local_balance_sat,
                    ch.funding,
                    ch.session_id,
                    s.blocks_left if s else None,
                )
            )
        if ch.state in _LIVE or ch.state == ChannelState.CLOSING.value:
            _channel_findings(ch, findings)
    if node.error:
        findings.append(
            Finding(
                "node-reachable",
                node.name,
                (
                    f"node {node.name!r} could not be read ({node.error}); its channels and wallet are not checked"
                    + (" (figures shown are the last ones read)" if node.channels or node.balance else "")
                    + f". Check it with `l2custody node check {node.name}`."
                ),
                node=node.name,
            )
        )
    confirmed = node.balance.confirmed_sat if node.balance else 0
    unconfirmed = node.balance.unconfirmed_sat if node.balance else 0
    keep = max(node.reserve_sat, settings.sweep_keep_sat)
    sweepable = max(confirmed - keep, 0)
    excess = max(confirmed + unconfirmed - keep, 0)
    if node.balance is not None and excess > settings.sweep_threshold_sat:
        findings.append(
            Finding(
                "hot-wallet",
                node.name,
                (
                    f"the wallet of node {node.name!r} holds {excess:,} sat above what it keeps ({keep:,} sat), more than the "
                    f"sweep threshold ({settings.sweep_threshold_sat:,} sat); move it to the multisig with "
                    f"`l2custody sweep {node.name}` (or set [watch] auto_sweep = true)"
                ),
                node=node.name,
            )
        )
    return NodeReport(
        node.name,
        node.kind,
        node.error is None,
        node.error,
        {s: (v[0], v[1]) for s, v in by_state.items()},
        confirmed,
        unconfirmed,
        node.reserve_sat,
        keep,
        sweepable,
        limbo,
        tuple(opens),
        tuple(closes),
        node.read_at,
    )


def _channel_findings(ch: ChannelFacts, findings: list[Finding]) -> None:
    where = f"channel {ch.channel_point} of node {ch.node!r}"
    if ch.close_committed is False:
        findings.append(
            Finding(
                "close-address",
                ch.channel_point,
                (
                    f"{where} has no committed close address: a cooperative close the peer starts pays the node "
                    f"wallet, not the multisig. Close it into the multisig with `l2custody channel close "
                    f"{ch.channel_point}` (a fresh multisig delivery address)"
                    + (
                        f". The peer opened it and the node accepted it without our upfront script: keep "
                        f"`l2custody node guard {ch.node}` running so that inbound channels get one"
                        if ch.funding == FUNDING_PEER
                        else ""
                    )
                ),
                node=ch.node,
                kind="missing",
            )
        )
    elif ch.close_ours is False:
        findings.append(
            Finding(
                "close-address",
                ch.channel_point,
                (
                    f"{where} commits its cooperative close to {ch.close_address}, which is not a multisig address: "
                    f"a close would pay it. If that is not intended, force close it (`l2custody channel close "
                    f"{ch.channel_point} --force`) and sweep the node wallet (`l2custody sweep {ch.node}`)"
                ),
                node=ch.node,
                kind="foreign",
            )
        )
    if ch.funding == FUNDING_FOREIGN:
        findings.append(
            Finding(
                "funding-source",
                ch.channel_point,
                (
                    f"{where} was opened by the node with money that did not come from a funding session of "
                    f"ours (funding tx {ch.funding_txid}): the node wallet or another tool funded it. Open channels "
                    "with `l2custody channel open`; close this one into the multisig when you can"
                ),
                node=ch.node,
                kind="foreign",
            )
        )


def _deadline_finding(s: SessionFacts, settings: ReportSettings) -> Finding | None:
    if s.state not in _UNCONFIRMED_SESSION_STATES or s.blocks_left > settings.deadline_warning_blocks:
        return None
    on_network = s.state in ("broadcast", "broadcasting")
    if s.blocks_left < 0:
        what = (
            f"is past its deadline (height {s.deadline_height}): peers may have forgotten its channels"
            if on_network
            else f"is past its safe broadcast height {s.deadline_height}"
        )
        todo = (
            "watch it confirm (`l2custody session status " + s.id + "`)"
            if on_network
            else f"abort it (`l2custody session abort {s.id}`) and open again"
        )
        kind = "passed"
    else:
        what = f"has {s.blocks_left} blocks left before its deadline (height {s.deadline_height})"
        todo = (
            f"make sure it confirms: `l2custody session status {s.id}`, rebroadcast with "
            f"`l2custody session broadcast {s.id}`"
            if on_network
            else f"collect the signatures and broadcast (`l2custody session status {s.id}`) or abort it"
        )
        kind = "near"
    return Finding("session-deadline", s.id, f"funding session {s.id} ({s.state}) {what}; {todo}", kind=kind)


def rehearsal_findings(facts: RehearsalFacts, settings: ReportSettings, now: float) -> list[Finding]:
    """The ``rehearsal`` check: a failed last rehearsal always; with ``[rehearsal] required``,
    a generation never rehearsed, and each signer (or key) not proven within ``max_age_days``."""
    out: list[Finding] = []
    where = f"the wallet {facts.wallet} (generation {facts.generation})"
    if facts.failed is not None:
        f = facts.failed
        out.append(
            Finding(
                "rehearsal",
                f.id,
                f"the last rehearsal of {where}, {f.id} (signers {', '.join(f.signers)}), failed: {f.error}. Fix it "
                f"and run `l2custody wallet rehearse --signers {','.join(f.signers)}` again",
                kind="failed",
            )
        )
    if not settings.rehearsal_required:
        return out
    if facts.confirmed is None:
        pending = (
            f"; rehearsal {facts.pending.id} is {facts.pending.state}: `l2custody wallet rehearse` continues it"
            if facts.pending
            else ""
        )
        out.append(
            Finding(
                "rehearsal",
                f"{facts.wallet}#{facts.generation}",
                f"{where} has never been rehearsed{pending}. Channel opens are refused until `l2custody wallet "
                "rehearse` proves its signers can sign a spend (or set [rehearsal] required = false)",
                kind="never",
            )
        )
        return out
    limit = settings.rehearsal_max_age_days
    for s in facts.signers:
        if s.last_signed is not None and now - s.last_signed <= limit * _DAY:
            continue
        since = (
            "has never signed a rehearsal of it"
            if s.last_signed is None
            else f"last signed a rehearsal {int((now - s.last_signed) // _DAY)} days ago (more than {limit})"
        )
        out.append(
            Finding(
                "rehearsal",
                s.name,
                f"signer {s.name} ({s.kind}, key {s.fingerprint}) of {where} {since}: rehearse with it, "
                f"`l2custody wallet rehearse` (the rotation picks it) or `--signers {s.name},...`",
                kind="signer",
            )
        )
    for fp in facts.unregistered_keys:
        out.append(
            Finding(
                "rehearsal",
                fp,
                f"key {fp} of {where} has no registered signer, so no rehearsal can prove it signs: register it "
                "with `l2custody signer add` and rehearse with it",
                kind="no-signer",
            )
        )
    return out
