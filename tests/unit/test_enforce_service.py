"""The enforcer's decisions around the rules: fail closed, audit first, the auditor never refuses.

The wallet here is only its store (a real SQLite store in a temp dir); the
facts are the rules tests' plain data, one variant raising to stand in for a
node that cannot answer (a fault named as such).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from l2custody.backends.rpc_calls import KIND_CLOSE, KIND_OTHER, KIND_PAY, Payment, RpcCall
from l2custody.custody.enforce.service import EnforceEvent, Enforcer
from l2custody.errors import NodeUnreachable
from l2custody.store import Store
from tests.unit.test_enforce_rules import FOREIGN, OURS, Facts


@dataclass
class StoreOnly:
    store: Store


class UnreachableNode(Facts):
    """STANDS IN for a node that stops answering while a request waits (cannot be caused on cue)."""

    def node_owns(self, address: str) -> bool:
        raise NodeUnreachable("lnd node 'west' did not answer")


@pytest.fixture
def world(tmp_path: Path) -> Any:
    store = Store.open(tmp_path / "l2custody.sqlite")
    events: list[EnforceEvent] = []
    alerts: list[tuple[str, str, str]] = []

    def make(facts: Facts) -> Enforcer:
        return Enforcer(
            StoreOnly(store),
            "west",
            facts,
            threading.RLock(),
            events.append,
            lambda k, s, m, d: alerts.append((k, s, m)),
        )  # type: ignore[arg-type]

    yield make, store, events, alerts
    store.close()


def _send(address: str, caveat: str | None = "ops") -> RpcCall:
    return RpcCall(
        "west",
        "/lnrpc.Lightning/SendCoins",
        "request",
        caveat,
        kind=KIND_PAY,
        payments=(Payment("addr", address, None, 1000),),
    )


def _actions(store: Store) -> list[tuple[str, dict[str, Any]]]:
    return [(e.action, e.details) for e in store.audit_log(subject="node west rpc")]


def test_a_check_that_raises_refuses_and_is_audited(world: Any) -> None:
    make, store, events, alerts = world
    verdict = make(UnreachableNode()).enforce(_send(FOREIGN))
    assert not verdict.allow and verdict.rule == "check-failed" and "did not answer" in verdict.message
    [(action, details)] = _actions(store)
    assert action == "rpc-refused" and details["holder"] == "ops" and details["rule"] == "check-failed"
    assert [e.kind for e in events] == ["refused"] and alerts[0][0] == "rpc-refused"


def test_a_caveat_condition_we_never_bake_is_refused(world: Any) -> None:
    make, store, _, _ = world
    for condition in ("ops team", "x" * 65, "a;b"):
        verdict = make(Facts()).enforce(_send(OURS[0], caveat=condition))
        assert not verdict.allow and verdict.rule == "caveat-condition"


def test_allowed_policed_requests_are_audited_and_reads_are_not(world: Any) -> None:
    make, store, events, _ = world
    enforcer = make(Facts())
    assert enforcer.enforce(_send(OURS[0])).allow
    assert enforcer.enforce(RpcCall("west", "/lnrpc.Lightning/GetInfo", "request", "ops", kind=KIND_OTHER)).allow
    assert [a for a, _ in _actions(store)] == ["rpc-allowed"]
    assert enforcer.summary.allowed == 1 and [e.kind for e in events] == ["allowed"]


def test_the_auditor_allows_everything_and_records_unguarded_spends(world: Any) -> None:
    make, store, events, alerts = world
    enforcer = make(Facts())
    admin_send, admin_close = (
        _send(FOREIGN, caveat=None),
        RpcCall("west", "/lnrpc.Lightning/CloseChannel", "request", None, kind=KIND_CLOSE),
    )
    for call in (admin_send, admin_close, _send(FOREIGN), replace(admin_send, phase="response")):
        assert enforcer.watch_unguarded(call).allow
    queued = []
    while not enforcer.unguarded.empty():
        queued.append(enforcer.unguarded.get())
    assert queued == [admin_send, admin_close]  # caveat requests are the enforcer's; responses move nothing
    for call in queued:
        enforcer.record_unguarded(call)
    [(a1, d1), (a2, d2)] = _actions(store)
    assert (a1, d1["would_allow"], d1["rule"]) == ("rpc-unguarded", False, "spend-destination")
    assert (a2, d2["would_allow"]) == ("rpc-unguarded", True)
    assert [(k, s) for k, s, _ in alerts] == [("unguarded-rpc", "critical"), ("unguarded-rpc", "warning")]
    assert "break-glass" in alerts[0][2] and enforcer.summary.unguarded == 2
