"""Prometheus metrics of ``watch``: text exposition (format 0.0.4) over ``http.server``.

No dependency: the format is a few lines per metric, and the page is
rendered once per watch round (:meth:`Metrics.update`), so a scrape only
copies a string. The server binds a loopback address only (``--metrics
127.0.0.1:9739``); put a proxy in front to scrape from elsewhere.

Exposed (all gauges):

- ``l2custody_balance_sat{place}`` — multisig, channels_local, pending_open, limbo, hot_wallet
- ``l2custody_node_balance_sat{node,place}`` — the node places per node
- ``l2custody_channels{node,state}`` — channel counts by state
- ``l2custody_custody_violations`` and ``l2custody_custody_check_failures{check}``
- ``l2custody_node_up{node}``, ``l2custody_node_last_event_timestamp_seconds{node}``
- per wallet generation (labels ``generation``, ``current`` "true"/"false"):
  ``l2custody_generation_channels`` and ``l2custody_generation_channel_local_sat`` (live
  channels whose close address is the generation's), ``l2custody_generation_balance_sat``,
  ``l2custody_generation_coins``, ``l2custody_generation_usable_keys`` and
  ``l2custody_generation_threshold`` (its quorum can sign while usable_keys >= threshold)
- a wallet with recovery paths (absent otherwise): ``l2custody_recovery_coins_due`` (coins
  whose first recovery path opens within ``[recovery] refresh_margin_blocks``, not yet open),
  ``l2custody_recovery_coins_open`` (the recovery keys can spend them now) and
  ``l2custody_recovery_next_open_blocks`` (blocks until the soonest opening; -1: none coming)
- ``l2custody_chain_tip_height``, ``l2custody_funding_sessions{state}``,
  ``l2custody_alerts_undelivered``, ``l2custody_snapshot_timestamp_seconds``,
  ``l2custody_snapshot_duration_seconds``
"""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Iterable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from l2custody.errors import UsageError
from l2custody.netaddr import host_port

if TYPE_CHECKING:  # pragma: no cover
    from l2custody.custody.report.snapshot import Snapshot

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
NODE_PLACES = ("channels_local", "pending_open", "limbo", "hot_wallet")


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6) on a loopback address; port 0 picks a free one."""
    hint = "use e.g. --metrics 127.0.0.1:9739"
    try:
        host, port = host_port(text, "--metrics", allow_zero=True)
    except UsageError:
        raise UsageError(f"--metrics {text!r}: expected HOST:PORT; {hint}") from None
    if host == "localhost":
        host = "127.0.0.1"
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise UsageError(
            f"--metrics {text!r}: the metrics server binds a loopback address only (127.0.0.1 or ::1); "
            f"{hint} and put a reverse proxy in front to scrape from another host"
        )
    return host, port


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    return repr(float(value))


class _Page:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def gauge(self, name: str, help_text: str, samples: Iterable[tuple[Mapping[str, str], float]]) -> None:
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} gauge")
        for labels, value in samples:
            label = ",".join(f'{k}="{_escape(str(v))}"' for k, v in labels.items())
            self.lines.append(f"{name}{{{label}}} {_number(value)}" if label else f"{name} {_number(value)}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def render(
    snapshot: Snapshot,
    *,
    last_events: Mapping[str, float | None],
    undelivered_alerts: int = 0,
    duration_seconds: float = 0.0,
    session_states: Mapping[str, int] | None = None,
) -> str:
    """The exposition page for one watch round."""
    page = _Page()
    page.gauge(
        "l2custody_balance_sat",
        "Satoshis by place: multisig, channels_local, pending_open, limbo, hot_wallet.",
        (({"place": p}, v) for p, v in snapshot.balances.items()),
    )
    samples: list[tuple[Mapping[str, str], float]] = []
    for n in snapshot.nodes:
        values = {
            "channels_local": n.by_state.get("open", (0, 0))[1],
            "pending_open": n.by_state.get("pending_open", (0, 0))[1],
            "limbo": n.limbo_sat,
            "hot_wallet": n.hot_total_sat,
        }
        samples += [({"node": n.name, "place": p}, values[p]) for p in NODE_PLACES]
    page.gauge("l2custody_node_balance_sat", "Satoshis by place on each node.", samples)
    page.gauge(
        "l2custody_channels",
        "Channels by state on each node.",
        (({"node": node, "state": state}, count) for (node, state), count in snapshot.channel_counts().items()),
    )
    failures = snapshot.failed_checks()
    page.gauge(
        "l2custody_custody_violations",
        "Custody check failures now (0 when every check passes).",
        [({}, sum(failures.values()))],
    )
    page.gauge(
        "l2custody_custody_check_failures",
        "Failures of each custody check.",
        (({"check": c}, v) for c, v in failures.items()),
    )
    page.gauge(
        "l2custody_node_up",
        "1 when the node was read in the last round.",
        (({"node": n.name}, n.reachable) for n in snapshot.nodes),
    )
    page.gauge(
        "l2custody_node_last_event_timestamp_seconds",
        "Unix time of the last channel event received from the node (a node without an event "
        "stream: of the last transition seen); 0: none yet.",
        (({"node": n.name}, last_events.get(n.name) or 0.0) for n in snapshot.nodes),
    )
    _generations(page, snapshot)
    _recovery(page, snapshot)
    page.gauge(
        "l2custody_chain_tip_height",
        "The chain tip height watch last saw.",
        [({}, snapshot.tip_height if snapshot.tip_height is not None else -1)],
    )
    states = dict(session_states or {})
    page.gauge(
        "l2custody_funding_sessions",
        "Funding sessions not yet settled, by state.",
        (({"state": s}, v) for s, v in sorted(states.items())),
    )
    page.gauge("l2custody_alerts_undelivered", "Alerts some sink has not taken yet.", [({}, undelivered_alerts)])
    page.gauge("l2custody_snapshot_timestamp_seconds", "Unix time of the last watch round.", [({}, snapshot.taken_at)])
    page.gauge(
        "l2custody_snapshot_duration_seconds", "How long the last watch round took.", [({}, round(duration_seconds, 6))]
    )
    return page.text()


def _generations(page: _Page, snapshot: Snapshot) -> None:
    """The per-generation gauges (custody/report/exposure.py)."""
    gens = [
        ({"generation": str(g.generation), "current": "true" if g.current else "false"}, g) for g in snapshot.exposure
    ]
    page.gauge(
        "l2custody_generation_channels",
        "Live channels whose cooperative close pays this wallet generation.",
        ((labels, g.channels) for labels, g in gens),
    )
    page.gauge(
        "l2custody_generation_channel_local_sat",
        "Local balance of the live channels whose cooperative close pays this wallet generation.",
        ((labels, g.channel_local_sat) for labels, g in gens),
    )
    page.gauge(
        "l2custody_generation_balance_sat",
        "Satoshis on chain in this wallet generation (unconfirmed included).",
        ((labels, g.balance_sat) for labels, g in gens),
    )
    page.gauge(
        "l2custody_generation_coins", "Coins in this wallet generation.", ((labels, g.coins) for labels, g in gens)
    )
    page.gauge(
        "l2custody_generation_usable_keys",
        "Keys of this wallet generation not removed by a later rotation.",
        ((labels, g.usable_keys) for labels, g in gens),
    )
    page.gauge(
        "l2custody_generation_threshold",
        "Signatures this wallet generation needs.",
        ((labels, g.threshold) for labels, g in gens),
    )


def _recovery(page: _Page, snapshot: Snapshot) -> None:
    """The recovery-path gauges (custody/report/timelocks.py), for a wallet that has such paths."""
    from l2custody.custody.report.timelocks import DUE, OPEN

    facts = snapshot.recovery
    if facts is None:
        return
    page.gauge(
        "l2custody_recovery_coins_due",
        "Coins whose first recovery path opens within [recovery] refresh_margin_blocks (not yet open).",
        [({}, len(facts.with_status(DUE)))],
    )
    page.gauge(
        "l2custody_recovery_coins_open",
        "Coins whose recovery path is open: the recovery keys alone can spend them now.",
        [({}, len(facts.with_status(OPEN)))],
    )
    nxt = facts.next_open_blocks
    page.gauge(
        "l2custody_recovery_next_open_blocks",
        "Blocks until the soonest recovery path opening of a coin not yet open; -1: none.",
        [({}, nxt if nxt is not None else -1)],
    )


class Metrics:
    """The current page, shared between the watch loop (writer) and the HTTP server."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._text = "# no watch round finished yet\n"

    def set_page(self, text: str) -> None:
        with self._lock:
            self._text = text

    def page(self) -> str:
        with self._lock:
            return self._text


class MetricsServer:
    """``/metrics`` over HTTP on a loopback address, served from a daemon thread."""

    def __init__(self, metrics: Metrics, host: str, port: int) -> None:
        self.metrics = metrics
        handler = _handler(metrics)
        server_class: type[ThreadingHTTPServer] = ThreadingHTTPServer
        if ":" in host:
            import socket

            class _Server6(ThreadingHTTPServer):
                address_family = socket.AF_INET6

            server_class = _Server6
        try:
            self.httpd = server_class((host, port), handler)
        except OSError as exc:
            raise UsageError(
                f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}; pick another port "
                "(--metrics 127.0.0.1:PORT, or port 0 for a free one)"
            ) from None
        self.httpd.daemon_threads = True
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="metrics", daemon=True)

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.httpd.server_address[:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        host, port = self.address
        return f"http://{'[' + host + ']' if ':' in host else host}:{port}/metrics"

    def start(self) -> MetricsServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)


def _handler(metrics: Metrics) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "l2custody-metrics"

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            if self.path.split("?")[0] not in ("/metrics", "/"):
                self.send_error(404, "only /metrics is served here")
                return
            body = metrics.page().encode()
            self.send_response(200)
            self.send_header("Content-Type", CONTENT_TYPE)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # scrapes are not news
            return

    return Handler
