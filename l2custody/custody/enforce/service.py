"""``node enforce NODE``: the enforcer (refuses) and the auditor (records and alerts).

Two registrations on the same lnd, each its own stream, each reconnecting
when lnd restarts:

- the **enforcer**, middleware ``l2custody-enforce`` for custom caveat
  ``l2custody``: every request made with a macaroon from ``node macaroon`` is
  judged by :func:`rules.judge`; a refusal's text is the error the caller
  gets. A check that raises, a macaroon condition we do not know, or an
  audit write that fails refuses the request (fail closed).
- the **auditor**, read-only middleware ``l2custody-audit``: it sees every
  request; each fund-moving one made *without* our caveat (the break-glass
  ``admin.macaroon`` or any other unencumbered macaroon) is written to the
  audit log and raised as an ``unguarded-rpc`` alert, critical when the
  enforcer would have refused it. It never refuses anything.

Every decision on a policed request goes to the audit log (actor
``lnd-enforcer``).
"""

from __future__ import annotations

import logging
import queue
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from l2custody.backends.base import Capability, NodeBackend
from l2custody.backends.rpc_calls import KIND_HARMLESS, KIND_OTHER, KIND_UNCHECKED, CallVerdict, RpcCall
from l2custody.custody.enforce.facts import WalletFacts
from l2custody.custody.enforce.rules import RULE_CHECK_FAILED, EnforceFacts, judge
from l2custody.errors import L2CustodyError, NodeAuthError, NodeError, NotSupported

if TYPE_CHECKING:  # pragma: no cover
    from pathlib import Path

    from l2custody.wallet.service import Wallet

ACTOR = "lnd-enforcer"
CAVEAT = "l2custody"
ENFORCER = "l2custody-enforce"
AUDITOR = "l2custody-audit"
_CONDITION = re.compile(r"^[A-Za-z0-9._-]{0,64}$")
LOGGER = logging.getLogger("l2custody.enforce")


def audit_subject(node: str) -> str:
    """The audit log subject of the enforcer's entries about ``node`` (apart from the guard's)."""
    return f"node {node} rpc"


@dataclass(frozen=True)
class EnforceEvent:
    """One thing the enforcer or the auditor did, for the log the operator watches."""

    kind: str  # allowed | refused | unguarded | registered | disconnected | stopped
    node: str
    method: str | None = None
    rule: str | None = None
    holder: str | None = None  # the caveat condition: who holds the macaroon
    reason: str | None = None
    ts: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def describe(self) -> str:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.ts))
        what = f" {self.method}" if self.method else ""
        why = f": {self.reason}" if self.reason else ""
        return f"{stamp} {self.kind}{what}{why}"


@dataclass
class EnforceSummary:
    node: str
    allowed: int = 0
    refused: int = 0
    unguarded: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Enforcer:
    """Judges, audits and counts; never raises to the stream (see the module docstring)."""

    def __init__(
        self,
        wallet: Wallet,
        node: str,
        facts: EnforceFacts,
        lock: threading.RLock,
        log: Callable[[EnforceEvent], None],
        alert: Callable[[str, str, str, dict[str, Any]], None],
    ) -> None:
        self.wallet, self.node, self.facts, self.lock = wallet, node, facts, lock
        self.log, self.alert = log, alert
        self.summary = EnforceSummary(node)
        self.unguarded: queue.Queue[RpcCall | None] = queue.Queue()

    def _audit(self, action: str, call: RpcCall, details: dict[str, Any]) -> None:
        with self.lock:
            self.wallet.store.audit(ACTOR, action, audit_subject(self.node), {"method": call.method, **details})

    def enforce(self, call: RpcCall) -> CallVerdict:
        """The answer to a request made with a caveat macaroon."""
        try:
            if call.caveat is None or not _CONDITION.match(call.caveat):
                verdict = CallVerdict.refuse(
                    "caveat-condition",
                    f"{call.short_method} refused by l2custody: the macaroon's l2custody caveat condition "
                    f"{call.caveat!r} is not one `l2custody node macaroon` bakes",
                )
            else:
                verdict = judge(call, self.facts)
        except Exception as exc:  # fail closed
            verdict = CallVerdict.refuse(
                RULE_CHECK_FAILED,
                f"{call.short_method} refused by l2custody: its custody check failed "
                f"({exc.message if isinstance(exc, L2CustodyError) else type(exc).__name__ + ': ' + str(exc)}); "
                "fix the cause and retry",
            )
        if verdict.allow and call.kind in (KIND_OTHER, KIND_HARMLESS):
            return verdict
        try:
            self._audit(
                "rpc-allowed" if verdict.allow else "rpc-refused", call, {"holder": call.caveat, **verdict.to_dict()}
            )
        except Exception as exc:  # nothing un-audited goes through
            LOGGER.exception("could not audit a decision")
            verdict = CallVerdict.refuse(
                RULE_CHECK_FAILED, f"{call.short_method} refused by l2custody: audit failed ({exc})"
            )
        if verdict.allow:
            self.summary.allowed += 1
            self.log(EnforceEvent("allowed", self.node, call.method, verdict.rule, call.caveat))
        else:
            self.summary.refused += 1
            self.log(EnforceEvent("refused", self.node, call.method, verdict.rule, call.caveat, verdict.message))
            self.alert(
                "rpc-refused",
                "warning",
                verdict.message,
                {"method": call.method, "rule": verdict.rule, "holder": call.caveat},
            )
        return verdict

    def watch_unguarded(self, call: RpcCall) -> CallVerdict:
        """The auditor: allow at once, and queue fund-moving requests made without our caveat
        for :meth:`record_unguarded` (judging them may ask lnd, which waits for this answer)."""
        if call.caveat is not None or call.kind in (KIND_OTHER, KIND_HARMLESS) or call.phase == "response":
            return CallVerdict.ok("read-only")
        if call.phase == "stream-auth" and call.kind != KIND_UNCHECKED:
            return CallVerdict.ok("read-only")  # the stream's request messages are judged
        self.unguarded.put(call)
        return CallVerdict.ok("read-only")

    def record_unguarded(self, call: RpcCall) -> None:
        """Audit an unguarded request and alert (critical when the enforcer would have refused it)."""
        try:
            would = judge(call, self.facts)
        except Exception as exc:
            would = CallVerdict.refuse(RULE_CHECK_FAILED, f"check failed: {exc}")
        details = {"phase": call.phase, "would_allow": would.allow, "rule": would.rule, "message": would.message}
        try:
            self._audit("rpc-unguarded", call, details)
        except Exception:
            LOGGER.exception("could not audit an unguarded request")
        self.summary.unguarded += 1
        self.log(EnforceEvent("unguarded", self.node, call.method, would.rule, None, would.message or None))
        severity = "warning" if would.allow else "critical"
        message = (
            f"{call.method} was called on {self.node} with a macaroon without the l2custody caveat "
            f"(the break-glass admin key?); l2custody did not check it"
            + ("" if would.allow else f". The enforcer would have refused it: {would.message}")
        )
        self.alert("unguarded-rpc", severity, message, {"method": call.method, **details})

    def run_recorder(self) -> None:
        """Record queued unguarded requests until a None arrives."""
        while (call := self.unguarded.get()) is not None:
            try:
                self.record_unguarded(call)
            except Exception:
                LOGGER.exception("could not record an unguarded request")


class _Alerts:
    """Alert delivery off the interception threads (lnd waits on our answers)."""

    def __init__(self, wallet: Wallet, node: str) -> None:
        from l2custody.custody.watch.alerts import sinks_from_config

        self.node = node
        self.sinks = sinks_from_config(wallet.config.alerts, LOGGER)
        self.queue: queue.Queue[Any] = queue.Queue()
        self.thread = threading.Thread(target=self._run, name=f"enforce-alerts-{node}", daemon=True)
        self.thread.start()

    def __call__(self, kind: str, severity: str, message: str, details: dict[str, Any]) -> None:
        from l2custody.custody.watch.alerts import Alert

        now = time.time()
        key = f"{kind}:{self.node}:{details.get('method')}:{now:.6f}"
        self.queue.put(Alert(key, kind, severity, f"node {self.node}", message, self.node, details, now))

    def _run(self) -> None:
        from l2custody.custody.watch.alerts import deliver

        while True:
            alert = self.queue.get()
            if alert is None:
                return
            for sink, error in deliver(alert, self.sinks).items():
                if error is not None:
                    LOGGER.error("alert %s not delivered to %s: %s", alert.kind, sink, error)

    def close(self) -> None:
        self.queue.put(None)
        self.thread.join(timeout=15)


def _serve(
    register: Callable[[], None],
    name: str,
    node: str,
    stop: threading.Event,
    log: Callable[[EnforceEvent], None],
    close: Callable[[], None],
    reconnect_delay: float,
    max_reconnect_delay: float,
) -> None:
    delay = reconnect_delay
    while not stop.is_set():
        try:
            register()
            delay = reconnect_delay
            if not stop.is_set():
                log(EnforceEvent("disconnected", node, reason=f"{name}: lnd closed the stream"))
                stop.wait(delay)
        except (NodeAuthError, NotSupported):
            raise
        except NodeError as exc:
            log(EnforceEvent("disconnected", node, reason=f"{name}: {exc.message}; retrying in {delay:g}s"))
            close()
            stop.wait(delay)
            delay = min(delay * 2, max_reconnect_delay)


def run_enforcer(
    backend: NodeBackend,
    wallet: Wallet,
    stop: threading.Event,
    *,
    macaroon: Path | None = None,
    audit: bool = True,
    log: Callable[[EnforceEvent], None] | None = None,
    reconnect_delay: float = 1.0,
    max_reconnect_delay: float = 15.0,
) -> EnforceSummary:
    """Enforce the custody rules on ``backend`` (and audit unguarded requests) until ``stop``.

    ``macaroon``: an unencumbered macaroon with macaroon:write to register
    with (a caveat macaroon cannot register its own middleware); default: the
    node's registered one. Raises NotSupported for nodes without RPC
    middleware, NodeAuthError when the macaroon is refused (after stopping
    the other stream).
    """
    if not backend.supports(Capability.RPC_MIDDLEWARE):
        raise NotSupported(
            f"node {backend.name!r} ({backend.kind}) has no RPC middleware; on Core Lightning the "
            "l2custody plugin enforces the same rules"
        )
    emit = log or (lambda event: None)
    lock = threading.RLock()
    enforcer_mw = backend.rpc_middleware(macaroon)
    auditor_mw = backend.rpc_middleware(macaroon)
    facts = WalletFacts(wallet, enforcer_mw.wallet_addresses, lock)
    alerts = _Alerts(wallet, backend.name)
    enforcer = Enforcer(wallet, backend.name, facts, lock, emit, alerts)
    started = time.monotonic()
    with lock:
        wallet.store.audit(ACTOR, "enforcer-started", audit_subject(backend.name), {"audit": audit, "caveat": CAVEAT})
    failures: list[BaseException] = []

    def registered(name: str) -> Callable[[], None]:
        return lambda: emit(EnforceEvent("registered", backend.name, reason=f"{name} registered with lnd"))

    def run(name: str, mw: Any, caveat: str | None, answer: Callable[[RpcCall], CallVerdict]) -> None:
        try:
            _serve(
                lambda: mw.intercept(name, caveat, answer, stop, own_caveat=CAVEAT, on_registered=registered(name)),
                name,
                backend.name,
                stop,
                emit,
                mw.close,
                reconnect_delay,
                max_reconnect_delay,
            )
        except BaseException as exc:
            failures.append(exc)
            stop.set()

    threads = [threading.Thread(target=run, args=(ENFORCER, enforcer_mw, CAVEAT, enforcer.enforce), daemon=True)]
    if audit:
        threads.append(
            threading.Thread(target=run, args=(AUDITOR, auditor_mw, None, enforcer.watch_unguarded), daemon=True)
        )
    recorder = threading.Thread(target=enforcer.run_recorder, name=f"enforce-audit-{backend.name}", daemon=True)
    recorder.start()
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        stop.set()
        enforcer.unguarded.put(None)
        recorder.join(timeout=30)
        alerts.close()
        enforcer_mw.close()
        auditor_mw.close()
        summary = enforcer.summary
        summary.seconds = time.monotonic() - started
        with lock:
            wallet.store.audit(ACTOR, "enforcer-stopped", audit_subject(backend.name), summary.to_dict())
        emit(
            EnforceEvent(
                "stopped",
                backend.name,
                reason=f"{summary.allowed} allowed, {summary.refused} refused, {summary.unguarded} unguarded",
            )
        )
    if failures:
        raise failures[0]
    return summary
