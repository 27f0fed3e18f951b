"""The ``l2custody watch`` process around the :class:`Watcher`.

:func:`run_watch` opens the wallet and the node registry, handles SIGTERM and
SIGINT (the round in progress finishes, then everything is closed), tells
systemd when it is ready and when it stops (``NOTIFY_SOCKET``), and serves
the Prometheus page.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from l2custody.custody.watch.alerts import sinks_from_config
from l2custody.custody.watch.metrics import Metrics, MetricsServer, parse_listen
from l2custody.custody.watch.upkeep import ACTOR
from l2custody.custody.watch.watcher import LOGGER, Watcher, WatchOptions
from l2custody.numbers import is_positive

if TYPE_CHECKING:  # pragma: no cover
    from l2custody.config import Config
    from l2custody.custody.report.snapshot import Snapshot


def sd_notify(message: str) -> None:
    """Tell systemd (``Type=notify`` units) about our state; nothing without NOTIFY_SOCKET."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.sendall(message.encode())
    except OSError:
        pass


def run_watch(
    config: Config,
    *,
    metrics_listen: str | None = None,
    once: bool = False,
    poll_seconds: float | None = None,
    auto_sweep: bool | None = None,
    logger: logging.Logger = LOGGER,
    stop: threading.Event | None = None,
) -> Snapshot | None:
    """``l2custody watch``: run until SIGTERM/SIGINT (or ``stop``); with ``once``, one
    reconciling round and return its snapshot. Refuses a bad --metrics address before
    touching anything."""
    from l2custody.backends.node_registry import NodeRegistry
    from l2custody.errors import UsageError
    from l2custody.wallet.service import Wallet

    if poll_seconds is not None and not is_positive(poll_seconds):
        raise UsageError(f"--poll must be positive (seconds), got {poll_seconds}")
    listen = parse_listen(metrics_listen) if metrics_listen else None
    options = WatchOptions.from_config(config, poll_seconds=poll_seconds, auto_sweep=auto_sweep)
    sinks = sinks_from_config(config.alerts, logger)
    metrics = Metrics()
    wallet = Wallet.open(config)
    wallet.actor = ACTOR
    registry = NodeRegistry(wallet.store, config.data_dir)
    watcher = Watcher(
        wallet,
        lambda: [r.name for r in registry.all()],
        registry.backend,
        options,
        sinks,
        metrics=metrics,
        logger=logger,
    )
    server = None
    stop = stop or threading.Event()
    restore = _handle_signals(stop)
    try:
        if listen is not None:
            server = MetricsServer(metrics, *listen).start()
            logger.info("metrics on %s", server.url)
        names = [r.name for r in registry.all()]
        logger.info(
            "watching wallet %s and %d node(s) %s; poll every %g s; auto-sweep %s; backups in %s",
            wallet.record.name,
            len(names),
            ", ".join(names) or "(none registered)",
            options.poll_seconds,
            "ON" if options.auto_sweep else "off (dry run logged)",
            options.backup_dir,
        )
        if once:
            return watcher.round(source="start")

        def ready(snapshot: Snapshot) -> None:
            sd_notify("READY=1")
            logger.info("ready: %d channel(s), %d custody finding(s)", len(snapshot.channels), len(snapshot.findings))

        watcher.run(stop, on_ready=ready)
        return watcher.last_snapshot
    finally:
        sd_notify("STOPPING=1")
        watcher.close()
        if server is not None:
            server.stop()
        wallet.close()
        restore()
        logger.info("stopped")


def _handle_signals(stop: threading.Event) -> Callable[[], None]:
    """SIGTERM and SIGINT set ``stop`` (the round in progress finishes). Main thread only."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}

    def handler(signum: int, _frame: Any) -> None:
        LOGGER.info("received %s: stopping after the current round", signal.Signals(signum).name)
        stop.set()

    for sig in previous:
        signal.signal(sig, handler)

    def restore() -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)

    return restore
