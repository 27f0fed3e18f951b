"""What ``watch`` remembers between rounds and across restarts (store migration 4).

- ``watch_nodes``: the last channel list read from each node. A round writes
  it in the same transaction as the audit entries of the transitions it
  found, so a watch killed at any point resumes diffing from exactly what it
  recorded: nothing is recorded twice, nothing is missed.
- ``watch_alerts``: the alert outbox. An alert is inserted (once per key) in
  the transaction that found its cause, then handed to each sink until every
  sink took it (``sent_to``) or the attempts run out.
- ``watch_conditions``: the conditions found now (a foreign close address, an
  unreachable node...). A condition alerts once when it has lasted its delay,
  and is forgotten when it clears, so it alerts again if it comes back.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from l2custody.custody.report.snapshot import ChannelFacts
from l2custody.custody.watch.alerts import Alert
from l2custody.store import json_column, stored_data

if TYPE_CHECKING:  # pragma: no cover
    from l2custody.store import Store

MAX_ATTEMPTS = 20


# --- node readings ---------------------------------------------------------------------------
@dataclass
class NodeMemory:
    node: str
    taken_at: float
    channels: dict[str, ChannelFacts]
    last_event: float | None = None
    backup_sha256: str | None = None
    backup_at: float | None = None


def _facts_fields() -> list[str]:
    return list(ChannelFacts.__dataclass_fields__)


def _encode(channels: dict[str, ChannelFacts]) -> str:
    return json.dumps(
        {"fields": _facts_fields(), "rows": [f.to_row() for f in channels.values()]}, separators=(",", ":")
    )


def _decode(text: str) -> dict[str, ChannelFacts]:
    with stored_data("the watch memory of a node"):
        return _decode_facts(json.loads(text))


def _decode_facts(data: Any) -> dict[str, ChannelFacts]:
    names = data["fields"]
    known = set(_facts_fields())
    out: dict[str, ChannelFacts] = {}
    if names == _facts_fields():
        for row in data["rows"]:
            facts = ChannelFacts.from_row(row)
            out[facts.channel_point] = facts
        return out
    for row in data["rows"]:  # written by another version: map by name
        facts = ChannelFacts(**{k: v for k, v in zip(names, row) if k in known})
        out[facts.channel_point] = facts
    return out


def load_node(store: Store, node: str) -> NodeMemory | None:
    row = store.execute(
        "SELECT taken_at, channels, last_event, backup_sha256, backup_at FROM watch_nodes WHERE node = ?", (node,)
    ).fetchone()
    if row is None:
        return None
    return NodeMemory(node, row[0], _decode(row[1]), row[2], row[3], row[4])


def save_channels(store: Store, node: str, channels: dict[str, ChannelFacts], taken_at: float) -> None:
    """Replace the node's remembered channel list (call inside the transaction that audits its transitions)."""
    text = _encode(channels)
    cur = store.execute("UPDATE watch_nodes SET taken_at = ?, channels = ? WHERE node = ?", (taken_at, text, node))
    if cur.rowcount == 0:
        store.execute("INSERT INTO watch_nodes (node, taken_at, channels) VALUES (?, ?, ?)", (node, taken_at, text))


def set_last_event(store: Store, node: str, ts: float | None) -> None:
    store.execute("UPDATE watch_nodes SET last_event = ? WHERE node = ?", (ts, node))


def set_backup(store: Store, node: str, sha256: str, ts: float) -> None:
    store.execute("UPDATE watch_nodes SET backup_sha256 = ?, backup_at = ? WHERE node = ?", (sha256, ts, node))


# --- the alert outbox -----------------------------------------------------------------------------
def enqueue(store: Store, alert: Alert) -> bool:
    """Insert the alert unless one with its key exists; True when it is new."""
    cur = store.execute(
        "INSERT OR IGNORE INTO watch_alerts (key, kind, severity, node, subject, message, details, created)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            alert.key,
            alert.kind,
            alert.severity,
            alert.node,
            alert.subject,
            alert.message,
            json.dumps(alert.details, sort_keys=True, default=str),
            alert.created or time.time(),
        ),
    )
    return cur.rowcount > 0


@dataclass(frozen=True)
class OutboxEntry:
    alert: Alert
    sent_to: tuple[str, ...]
    attempts: int
    delivered: float | None = None
    last_error: str | None = None


_ALERT_COLUMNS = (
    "key, kind, severity, node, subject, message, details, created, delivered, sent_to, attempts, last_error"
)


def _entry(row: Any) -> OutboxEntry:
    key, kind, severity, node, subject, message, details, created, delivered, sent_to, attempts, error = row
    alert = Alert(key, kind, severity, subject, message, node, json_column(details, "an alert"), created)
    return OutboxEntry(alert, tuple(json_column(sent_to, "an alert")), attempts, delivered, error)


def undelivered(store: Store, max_attempts: int = MAX_ATTEMPTS) -> list[OutboxEntry]:
    """Alerts some sink has not taken yet, oldest first."""
    rows = store.execute(
        f"SELECT {_ALERT_COLUMNS} FROM watch_alerts WHERE delivered IS NULL AND attempts < ? ORDER BY created, key",
        (max_attempts,),
    ).fetchall()
    return [_entry(r) for r in rows]


def undelivered_count(store: Store) -> int:
    """Alerts not yet delivered to every sink (including those given up on)."""
    return int(store.execute("SELECT COUNT(*) FROM watch_alerts WHERE delivered IS NULL").fetchone()[0])


def alerts(store: Store) -> list[OutboxEntry]:
    """Every alert raised so far, oldest first."""
    return [_entry(r) for r in store.execute(f"SELECT {_ALERT_COLUMNS} FROM watch_alerts ORDER BY created, key")]


def record_attempt(store: Store, key: str, sent_to: list[str], error: str | None, delivered: bool) -> None:
    store.execute(
        "UPDATE watch_alerts SET sent_to = ?, attempts = attempts + 1, last_error = ?, delivered = ? WHERE key = ?",
        (json.dumps(sorted(set(sent_to))), error, time.time() if delivered else None, key),
    )


# --- conditions ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Condition:
    """A condition found now; alerts once after ``delay`` seconds."""

    key: str
    kind: str
    severity: str
    subject: str
    message: str
    node: str | None = None
    delay: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Cleared:
    key: str
    kind: str
    subject: str
    since: float


def update_conditions(store: Store, active: list[Condition], now: float) -> tuple[list[Alert], list[Cleared]]:
    """Record the conditions found now (call inside a transaction). Returns the alerts
    now due (already in the outbox) and the conditions that cleared."""
    rows = {r[0]: (r[1], r[2]) for r in store.execute("SELECT key, since, alerted FROM watch_conditions")}
    known = {r[0]: Cleared(*r) for r in store.execute("SELECT key, kind, subject, since FROM watch_conditions")}
    due: list[Alert] = []
    seen: set[str] = set()
    for c in active:
        if c.key in seen:
            continue
        seen.add(c.key)
        since, alerted = rows.get(c.key, (None, 0))
        if since is None:
            since = now
            store.execute(
                "INSERT INTO watch_conditions (key, kind, subject, since, alerted) VALUES (?, ?, ?, ?, 0)",
                (c.key, c.kind, c.subject, now),
            )
        if not alerted and now - since >= c.delay:
            alert = Alert(
                f"{c.key}@{since:.3f}",
                c.kind,
                c.severity,
                c.subject,
                c.message,
                c.node,
                {**c.details, "since": since},
                now,
            )
            enqueue(store, alert)
            store.execute("UPDATE watch_conditions SET alerted = 1 WHERE key = ?", (c.key,))
            due.append(alert)
    cleared = [known[k] for k in rows if k not in seen]
    for gone in cleared:
        store.execute("DELETE FROM watch_conditions WHERE key = ?", (gone.key,))
    return due, cleared
