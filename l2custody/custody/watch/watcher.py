"""``l2custody watch``: follow every node and the chain; record, alert, sweep, back up.

A :class:`Watcher` works in rounds. A round reads the chain tip (and syncs the
multisig wallet on a new block), reads the nodes (all of them on a poll, the
ones whose event stream spoke on a wake-up, see ``custody/watch/follow.py``), and:

- diffs each node's channels against the last reading kept in the store and
  writes every transition to the audit log (actor ``watch``) in the same
  transaction as the new reading, so a restart neither repeats nor misses
  one: the first round after a restart reconciles from the node's state;
- on a new block, follows the funding sessions (``lifecycle.refresh``) and
  rebroadcasts a signed funding transaction the mempool lost, until it
  confirms; verifies sweeps;
- builds the snapshot (``custody/report/snapshot.py``) and turns its findings into
  conditions, and force closes and foreign closes into alerts (outbox in the
  store, delivered to the log, the webhook and the command);
- sweeps a node wallet holding more than the threshold above its reserve
  to the multisig when ``auto_sweep`` is on, else logs the dry run;
- on a new block, recognises coins that landed in an older wallet generation and
  prepares their migration PSBT (``custody/watch/migration.py``);
- on a new block, prepares the refresh PSBT of a recovery wallet's coins whose
  recovery path opens soon, and alerts on coins whose path is open
  (``custody/watch/refresh.py``);
- writes the node's channel backup when its channels changed;
- renders the Prometheus page.

The command around it (signals, systemd, the metrics server) is
``custody/watch/service.py``.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from l2custody.backends.base import Capability, NodeBackend
from l2custody.custody.cln_policy.decision import PLUGIN_ACTOR
from l2custody.custody.report.observe import (
    multisig_facts,
    read_generations,
    read_node,
    read_recovery,
    read_sessions,
)
from l2custody.custody.report.snapshot import (
    ChannelFacts,
    NodeFacts,
    NodeReport,
    ReportInputs,
    ReportSettings,
    SessionFacts,
    Snapshot,
    build_snapshot,
)
from l2custody.custody.watch.alerts import Alert, AlertSink, deliver
from l2custody.custody.watch.backups import write_backup
from l2custody.custody.watch.follow import NodeFollower, Wake
from l2custody.custody.watch.metrics import Metrics, render
from l2custody.custody.watch.migration import follow_old_generations
from l2custody.custody.watch.refresh import follow_recovery_timelocks
from l2custody.custody.watch.state import (
    MAX_ATTEMPTS,
    Condition,
    enqueue,
    load_node,
    record_attempt,
    save_channels,
    set_backup,
    set_last_event,
    undelivered,
    undelivered_count,
    update_conditions,
)
from l2custody.custody.watch.transitions import ACTIVITY, diff_channels, transition_alerts
from l2custody.custody.watch.upkeep import ACTOR, drive_sessions, sweep_if_due, verify_sweeps
from l2custody.errors import L2CustodyError, NotSupported

if TYPE_CHECKING:  # pragma: no cover
    from l2custody.config import Config
    from l2custody.wallet.service import Wallet

LOGGER = logging.getLogger("l2custody.watch")

#: (check, finding kind) -> (alert kind, severity)
_FINDING_ALERTS = {
    ("close-address", "foreign"): ("foreign-close-address", "critical"),
    ("close-address", "missing"): ("no-close-address", "critical"),
    ("funding-source", "foreign"): ("foreign-funding", "warning"),
    ("hot-wallet", ""): ("hot-wallet", "warning"),
    ("session-deadline", "near"): ("funding-deadline", "warning"),
    ("session-deadline", "passed"): ("funding-deadline", "critical"),
    ("node-reachable", ""): ("node-unreachable", "critical"),
    ("chain-reachable", ""): ("chain-unreachable", "critical"),
    ("generation-exposure", "coins"): ("old-generation", "warning"),
    ("generation-exposure", "channels"): ("old-generation", "warning"),
    ("generation-exposure", "unsignable"): ("old-generation", "critical"),
    ("recovery-timelock", "due"): ("recovery-timelock", "warning"),
    ("recovery-timelock", "open"): ("recovery-timelock", "critical"),
}


@dataclass(frozen=True)
class WatchOptions:
    """``[watch]`` of the config, with command-line overrides."""

    poll_seconds: float = 30.0
    auto_sweep: bool = False
    sweep_threshold_sat: int = 100_000
    sweep_keep_sat: int = 0
    sweep_fee_rate: float | None = None
    backup_dir: Path = Path("backups")
    unreachable_alert_seconds: float = 300.0
    deadline_warning_blocks: int = 144
    reconnect_min_seconds: float = 1.0
    reconnect_max_seconds: float = 60.0
    auto_migrate_psbt: bool = True
    migration_dir: Path = Path("migrations")  # where prepared migration PSBTs are written
    auto_refresh_psbt: bool = True  # [recovery] auto_refresh_psbt
    refresh_dir: Path = Path("refresh")  # where prepared refresh PSBTs are written

    @classmethod
    def from_config(cls, config: Config, **overrides: Any) -> WatchOptions:
        w = config.watch
        options = cls(
            w.poll_seconds,
            w.auto_sweep,
            w.sweep_threshold_sat,
            w.sweep_keep_sat,
            w.sweep_fee_rate,
            w.backup_dir or config.data_dir / "backups",
            w.unreachable_alert_seconds,
            w.deadline_warning_blocks,
            auto_migrate_psbt=w.auto_migrate_psbt,
            migration_dir=config.data_dir / "migrations",
            auto_refresh_psbt=config.recovery.auto_refresh_psbt,
            refresh_dir=config.data_dir / "refresh",
        )
        return replace(options, **{k: v for k, v in overrides.items() if v is not None})

    @property
    def report_settings(self) -> ReportSettings:
        return ReportSettings(self.sweep_threshold_sat, self.sweep_keep_sat, self.deadline_warning_blocks)


@dataclass
class _Slot:
    """What the watcher holds for one node."""

    backend: NodeBackend
    channels: dict[str, ChannelFacts]
    remembered: bool
    last_event: float | None = None
    facts: NodeFacts | None = None
    unreachable_since: float | None = None
    backup_due: bool = True
    follower: NodeFollower | None = None
    woken_by: set[str] = field(default_factory=set)
    sweep_seen: int | None = None  # confirmed balance a dry run / failed sweep was reported for


class Watcher:
    """The watch rounds over one wallet and its nodes (see the module docstring).

    ``node_names()`` lists the nodes to follow (re-read every round) and
    ``open_backend(name)`` builds a backend (called again for each event
    follower, which needs its own). Nothing touches the network before
    :meth:`round` or :meth:`run`.
    """

    def __init__(
        self,
        wallet: Wallet,
        node_names: Callable[[], list[str]],
        open_backend: Callable[[str], NodeBackend],
        options: WatchOptions,
        sinks: list[AlertSink],
        *,
        metrics: Metrics | None = None,
        logger: logging.Logger = LOGGER,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.wallet, self.store = wallet, wallet.store
        self.node_names, self.open_backend = node_names, open_backend
        self.options, self.sinks, self.metrics, self.log, self.clock = options, sinks, metrics, logger, clock
        self.slots: dict[str, _Slot] = {}
        self.wakes: queue.Queue[Wake] = queue.Queue()
        self.tip: int | None = None
        self.chain_error: str | None = None
        self.rounds = 0
        self.last_snapshot: Snapshot | None = None
        self._following = False
        self._logged: set[str] = set()
        self._plugin_audit_id: int | None = None

    # --- the loop ----------------------------------------------------------------------------
    def run(self, stop: threading.Event, on_ready: Callable[[Snapshot], None] | None = None) -> None:
        """Rounds until ``stop`` is set: one at start (reconciling), then one per poll
        interval and one per node event. The round in progress always finishes."""
        self._following = True
        try:
            snapshot = self._guarded(None, "start")
            if on_ready is not None and snapshot is not None:
                on_ready(snapshot)
            next_poll = time.monotonic() + self.options.poll_seconds
            while not stop.is_set():
                woken = self._wait(stop, next_poll)
                if stop.is_set():
                    break
                if time.monotonic() >= next_poll:
                    self._guarded(None, "poll")
                    next_poll = time.monotonic() + self.options.poll_seconds
                elif woken:
                    self._guarded(woken, "event")
        finally:
            self._following = False
            self.close()

    def _guarded(self, only: set[str] | None, source: str) -> Snapshot | None:
        """A round; a failure of ours (the store busy, say) is logged and the next round retries.
        Nothing of a failed round is half-written: each write is its own transaction."""
        try:
            return self.round(only=only, source=source)
        except L2CustodyError as exc:
            self.log.error("watch round failed (%s: %s); retrying at the next one", type(exc).__name__, exc.message)
            return None

    def _wait(self, stop: threading.Event, until: float) -> set[str]:
        """Node names woken by events before ``until`` (monotonic), or an empty set on timeout.
        Waits in short steps so a stop request is noticed promptly."""
        woken: set[str] = set()
        while not stop.is_set() and not woken:
            remaining = until - time.monotonic()
            if remaining <= 0:
                break
            try:
                wake = self.wakes.get(timeout=min(remaining, 0.5))
            except queue.Empty:
                woken |= self._plugin_wakes()
                continue
            woken |= self._take(wake)
        while True:  # take whatever else is queued: one round serves them all
            try:
                woken |= self._take(self.wakes.get_nowait())
            except queue.Empty:
                return woken

    def _take(self, wake: Wake) -> set[str]:
        slot = self.slots.get(wake.node)
        if slot is None:
            return set()
        if wake.kind != "subscribed":
            slot.last_event = wake.at
            slot.woken_by.add(wake.kind)
        return {wake.node}

    def _plugin_wakes(self) -> set[str]:
        """CLN nodes, when the l2custody plugin recorded a channel notification since we last looked
        (only the audit entries added since are read: the log only grows)."""
        nodes = {n for n, s in self.slots.items() if s.backend.supports(Capability.PLUGIN_EVENTS)}
        if not nodes:
            return set()
        latest = self.store.last_audit_id()
        previous, self._plugin_audit_id = self._plugin_audit_id, latest
        if previous is None or latest <= previous:
            return set()
        spoke = self.store.audited_since(previous, PLUGIN_ACTOR, ("channel_state_changed", "channel_opened"))
        return nodes if spoke else set()

    def close(self) -> None:
        """Stop the followers and close every backend."""
        for slot in self.slots.values():
            if slot.follower is not None:
                slot.follower.shutdown(timeout=2.0)
                slot.follower = None
            try:
                slot.backend.close()
            except Exception:  # closing is best effort
                pass

    # --- one round --------------------------------------------------------------------------------
    def round(self, only: set[str] | None = None, source: str = "poll") -> Snapshot:
        """Read, record, alert, sweep, back up, render. ``only``: read just these nodes
        (the others keep their last reading). Never raises for a node or chain problem."""
        started = time.perf_counter()
        now = self.clock()
        self._sync_nodes()
        first = self.rounds == 0
        new_block = self._follow_chain()
        channels_moved = False
        for name, slot in self.slots.items():
            if only is None or name in only:
                channels_moved = self._read(slot, source, now) or channels_moved
        # a session waits on the chain (confirmations) and on the nodes (a channel that opens
        # after the block that confirmed it, as a polled CLN node reports it a round later)
        sessions = self._follow_sessions(new_block or first or channels_moved)
        if (new_block or first) and self.chain_error is None:
            o = self.options
            follow_old_generations(
                self.wallet,
                prepare=o.auto_migrate_psbt,
                fee_rate=o.sweep_fee_rate,
                out_dir=o.migration_dir,
                log=self.log,
                problem=self._problem("migrate"),
                now=now,
            )
            if self.tip is not None:
                follow_recovery_timelocks(
                    self.wallet,
                    tip=self.tip,
                    prepare=o.auto_refresh_psbt,
                    fee_rate=o.sweep_fee_rate,
                    out_dir=o.refresh_dir,
                    log=self.log,
                    problem=self._problem("refresh"),
                    now=now,
                )
        snapshot = build_snapshot(self._inputs(now, sessions), self.options.report_settings)
        if new_block or first:
            verify_sweeps(self.wallet, self.log)
        reports = {n.name: n for n in snapshot.nodes}
        for name, slot in self.slots.items():
            if name in reports and (only is None or name in only):
                self._sweep(slot, reports[name])
        self._conditions(snapshot, now)
        self._close_violations()
        self._deliver()
        self.rounds += 1
        self.last_snapshot = snapshot
        self._render(snapshot, time.perf_counter() - started)
        return snapshot

    def _inputs(self, now: float, sessions: tuple[SessionFacts, ...]) -> ReportInputs:
        nodes = tuple(s.facts for s in self.slots.values() if s.facts is not None)
        generations, migrations = read_generations(self.store)
        tip = self.tip
        if tip is None:
            scanned = self.store.scanned_tip()
            tip = scanned[0] if scanned else None
        return ReportInputs(
            self.wallet.record.name,
            self.wallet.config.network,
            now,
            self.tip,
            multisig_facts(self.wallet),
            nodes,
            sessions,
            self.chain_error,
            generations=generations,
            migrations=migrations,
            recovery=read_recovery(self.wallet, tip),
        )

    # --- nodes -------------------------------------------------------------------------------------
    def _sync_nodes(self) -> None:
        names = self.node_names()
        for name in names:
            if name not in self.slots:
                self._add(name)
        for name in [n for n in self.slots if n not in names]:
            slot = self.slots.pop(name)
            if slot.follower is not None:
                slot.follower.shutdown(timeout=2.0)
            slot.backend.close()
            self.log.info("node %s was removed from the registry; no longer watched", name)
        if self._following:
            for slot in self.slots.values():
                if slot.follower is None and slot.backend.supports(Capability.CHANNEL_EVENTS):
                    self._follow(slot)

    def _add(self, name: str) -> None:
        try:
            backend = self.open_backend(name)
        except L2CustodyError as exc:
            self._once(f"open:{name}", logging.ERROR, "cannot watch node %s: %s", name, exc.message)
            return
        memory = load_node(self.store, name)
        self.slots[name] = _Slot(
            backend,
            memory.channels if memory else {},
            memory is not None,
            memory.last_event if memory else None,
        )

    def _follow(self, slot: _Slot) -> None:
        try:
            own = self.open_backend(slot.backend.name)
        except L2CustodyError as exc:
            self.log.warning("cannot follow the events of node %s: %s", slot.backend.name, exc.message)
            return
        slot.follower = NodeFollower(
            own,
            self.wakes,
            self.log,
            min_delay=self.options.reconnect_min_seconds,
            max_delay=self.options.reconnect_max_seconds,
        )
        slot.follower.start()

    def _read(self, slot: _Slot, source: str, now: float) -> bool:
        """Read one node and record what changed; True when a channel changed state."""
        name = slot.backend.name
        self._record_withheld(slot)
        facts = read_node(self.wallet, slot.backend)
        if facts.error is not None:
            if slot.unreachable_since is None:
                slot.unreachable_since = now
                with self.store.transaction():
                    self.store.audit(ACTOR, "node-unreachable", f"node {name}", {"error": facts.error})
                self.log.warning("node %s cannot be read: %s", name, facts.error)
            last = slot.facts or NodeFacts(name, slot.backend.kind, tuple(slot.channels.values()))
            slot.facts = replace(last, error=facts.error)
            return False
        if slot.unreachable_since is not None:
            down = now - slot.unreachable_since
            with self.store.transaction():
                self.store.audit(ACTOR, "node-reachable", f"node {name}", {"unreachable_seconds": round(down, 1)})
            self.log.info("node %s is reachable again (after %.0f s)", name, down)
            slot.unreachable_since = None
            slot.backup_due = True
        current, moves = diff_channels(slot.channels, facts.channels)
        if not slot.remembered:
            by_state = Counter(f.state for f in current.values())
            with self.store.transaction():
                save_channels(self.store, name, current, now)
                self.store.audit(
                    ACTOR, "watch-baseline", f"node {name}", {"channels": len(current), "by_state": dict(by_state)}
                )
            self.log.info("node %s: first reading, %d channel(s) %s", name, len(current), dict(by_state))
            slot.remembered, moves = True, []
        elif moves:
            self._record(slot, current, moves, source, now)
        slot.channels = current
        slot.facts = replace(facts, channels=tuple(current.values()))
        slot.woken_by.clear()
        if slot.backup_due:
            self._backup(slot)
        return any(t.kind != ACTIVITY for t in moves)

    def _record_withheld(self, slot: _Slot) -> None:
        """Funding we broadcast past a node that withholds it: tell the node (Core Lightning),
        so that a close of such a channel gets a closing transaction."""
        if not slot.backend.supports(Capability.WITHHELD_FUNDING):
            return
        try:
            taken = slot.backend.record_withheld_funding()
        except L2CustodyError:
            return  # the reading that follows reports the node's problem
        for point in taken:
            with self.store.transaction():
                self.store.audit(ACTOR, "funding-recorded", point, {"node": slot.backend.name})
            self.log.info("node %s: handed the confirmed funding of %s to the node", slot.backend.name, point)

    def _record(self, slot: _Slot, current: dict[str, ChannelFacts], moves: list[Any], source: str, now: float) -> None:
        name = slot.backend.name
        raised = transition_alerts(moves, slot.channels)
        with self.store.transaction():
            for t in moves:
                self.store.audit(ACTOR, t.action, t.channel_point, t.details(source, slot.woken_by))
            save_channels(self.store, name, current, now)
            set_last_event(self.store, name, now if slot.follower is None else slot.last_event)
            for a in raised:
                enqueue(self.store, Alert(a.key, a.kind, a.severity, a.subject, a.message, a.node, a.details, now))
        for t in moves:
            self.log.info(
                "node %s channel %s: %s -> %s (%s)", name, t.channel_point, t.old or "new", t.new or "gone", source
            )
        if slot.follower is None:  # no event stream: a transition found is the node's last event
            slot.last_event = now if slot.last_event is None else max(slot.last_event, now)
        if any(t.kind != ACTIVITY for t in moves):
            slot.backup_due = True

    def _backup(self, slot: _Slot) -> None:
        name = slot.backend.name
        if not slot.backend.supports(Capability.CHANNEL_BACKUP):
            slot.backup_due = False
            return
        try:
            written = write_backup(slot.backend, self.options.backup_dir)
        except NotSupported as exc:
            self._once(f"backup:{name}", logging.INFO, "node %s: no channel backup (%s)", name, exc.message)
            slot.backup_due = False
            return
        except L2CustodyError as exc:
            self.log.warning("node %s: channel backup not written, retrying next round: %s", name, exc.message)
            return
        slot.backup_due = False
        if written.changed:
            with self.store.transaction():
                set_backup(self.store, name, written.sha256, self.clock())
                self.store.audit(
                    ACTOR,
                    "backup-written",
                    f"node {name}",
                    {"path": str(written.path), "sha256": written.sha256, "bytes": written.size},
                )
            self.log.info("node %s: channel backup written to %s (%d bytes)", name, written.path, written.size)

    # --- chain and sessions ---------------------------------------------------------------------------
    def _follow_chain(self) -> bool:
        """Read the tip; on a new block sync the wallet. True when the tip moved."""
        try:
            tip = self.wallet.chain.tip_height()
            if tip != self.tip:
                self.wallet.sync()
        except L2CustodyError as exc:
            if self.chain_error is None:
                self.log.warning("the chain cannot be read: %s", exc.message)
            self.chain_error = exc.message
            return False
        if self.chain_error is not None:
            self.log.info("the chain can be read again (tip %d)", tip)
        self.chain_error = None
        moved = tip != self.tip
        self.tip = tip
        return moved

    def _follow_sessions(self, look: bool) -> tuple[SessionFacts, ...]:
        if look and self.chain_error is None:
            drive_sessions(
                self.wallet,
                self._backend_for_session,
                self.log,
                lambda sid, message: self._once(
                    f"session:{sid}:{message}", logging.WARNING, "funding session %s: %s", sid, message
                ),
            )
        tip = self.tip
        if tip is None:
            scanned = self.store.scanned_tip()
            tip = scanned[0] if scanned else None
        if tip is None:
            return ()
        return read_sessions(self.store, tip, self.wallet.config.sessions.deadline_margin_blocks)

    def _backend_for_session(self, name: str) -> NodeBackend:
        slot = self.slots.get(name)
        return slot.backend if slot is not None else self.open_backend(name)

    def _sweep(self, slot: _Slot, report: NodeReport) -> None:
        o = self.options
        slot.sweep_seen, alert = sweep_if_due(
            self.wallet,
            slot.backend,
            report,
            auto=o.auto_sweep,
            threshold_sat=o.sweep_threshold_sat,
            keep_sat=o.sweep_keep_sat,
            fee_rate=o.sweep_fee_rate,
            seen=slot.sweep_seen,
            log=self.log,
            now=self.clock(),
        )
        if alert is not None:
            with self.store.transaction():
                enqueue(self.store, alert)

    # --- conditions and alerts --------------------------------------------------------------------------
    def _conditions(self, snapshot: Snapshot, now: float) -> None:
        active: list[Condition] = []
        for f in snapshot.findings:
            kind, severity = _FINDING_ALERTS.get((f.check, f.kind), (f.check, "warning"))
            if kind == "hot-wallet" and self.options.auto_sweep:
                continue  # the sweep itself is reported
            delay = self.options.unreachable_alert_seconds if kind.endswith("-unreachable") else 0.0
            active.append(Condition(f.key, kind, severity, f.subject, f.message, f.node, delay, f.to_dict()))
        from l2custody.custody.sweeping.records import SweepState, sweep_records

        for rec in sweep_records(self.store):
            if rec.state in (SweepState.STARTED, SweepState.UNKNOWN):
                active.append(
                    Condition(
                        f"sweep-unknown:{rec.id}",
                        "sweep-problem",
                        "critical",
                        f"sweep {rec.id}",
                        f"sweep #{rec.id} of node {rec.node} to {rec.address} has an unknown outcome; automatic "
                        f"sweeps of that node wait until `l2custody sweep-status {rec.node}` settles it",
                        rec.node,
                        0.0,
                        rec.to_dict(),
                    )
                )
        with self.store.transaction():
            _due, cleared = update_conditions(self.store, active, now)
            for c in cleared:
                self.store.audit(
                    ACTOR,
                    "condition-cleared",
                    c.subject,
                    {"condition": c.key, "kind": c.kind, "lasted_seconds": round(now - c.since, 1)},
                )
        for c in cleared:
            self.log.info("%s %s: no longer the case", c.kind, c.subject)

    def _close_violations(self) -> None:
        """Closes that ``channel close-status`` judged not to pay the multisig."""
        from l2custody.custody.closing.records import CloseState, close_records

        bad = [r for r in close_records(self.store) if r.state == CloseState.VIOLATION]
        if not bad:
            return
        with self.store.transaction():
            for r in bad:
                enqueue(
                    self.store,
                    Alert(
                        f"close-violation:{r.node}:{r.channel_point}",
                        "foreign-close",
                        "critical",
                        r.channel_point,
                        f"the close of channel {r.channel_point} (node {r.node}) did not pay the multisig "
                        f"(closing tx {r.closing_txid}); see `l2custody channel show {r.channel_point}`",
                        r.node,
                        r.to_dict(),
                        self.clock(),
                    ),
                )

    def _deliver(self) -> None:
        """Hand every alert some sink has not taken to that sink; record the attempts."""
        attempts = []
        for entry in undelivered(self.store):
            results = deliver(entry.alert, self.sinks, skip=entry.sent_to)
            sent = list(entry.sent_to) + [name for name, err in results.items() if err is None]
            errors = [f"{name}: {err}" for name, err in results.items() if err]
            attempts.append((entry, sent, errors))
            for err in errors:
                self.log.warning("alert %s not delivered (attempt %d): %s", entry.alert.key, entry.attempts + 1, err)
        if not attempts:
            return
        with self.store.transaction():
            for entry, sent, errors in attempts:
                record_attempt(self.store, entry.alert.key, sent, "; ".join(errors) or None, not errors)
                if errors and entry.attempts + 1 >= MAX_ATTEMPTS:
                    self.store.audit(
                        ACTOR, "alert-undelivered", entry.alert.subject, {"key": entry.alert.key, "errors": errors}
                    )

    # --- metrics and logs ------------------------------------------------------------------------------------
    def _render(self, snapshot: Snapshot, duration: float) -> None:
        if self.metrics is None:
            return
        pending = undelivered_count(self.store)
        page = render(
            snapshot,
            last_events={n: s.last_event for n, s in self.slots.items()},
            undelivered_alerts=pending,
            duration_seconds=duration,
            session_states=Counter(s.state for s in snapshot.sessions),
        )
        self.metrics.set_page(page)

    def _problem(self, step: str) -> Callable[[str, str], None]:
        """A step's problem reporter: each (subject, message) logged once, as a warning."""
        return lambda subject, msg: self._once(f"{step}:{subject}:{msg}", logging.WARNING, "%s: %s", subject, msg)

    def _once(self, key: str, level: int, message: str, *args: Any) -> None:
        if key not in self._logged:
            self._logged.add(key)
            self.log.log(level, message, *args)
