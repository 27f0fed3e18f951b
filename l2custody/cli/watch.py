"""``l2custody watch``: the long-running monitor (foreground, systemd-friendly)."""

from __future__ import annotations

import json
import logging
import sys
from typing import Annotated, Optional

import typer

from l2custody.cli.main import STATE, app
from l2custody.cli.params import number


@app.command("watch")
def watch(
    metrics: Annotated[
        Optional[str],
        typer.Option(
            "--metrics",
            metavar="HOST:PORT",
            help="Serve Prometheus metrics on this loopback address, e.g. 127.0.0.1:9739 (port 0: any free "
            "port, logged).",
        ),
    ] = None,
    poll: Annotated[
        Optional[float],
        typer.Option(
            "--poll", help="Seconds between full rounds (default: watch.poll_seconds in the config).", parser=number
        ),
    ] = None,
    auto_sweep: Annotated[
        Optional[bool],
        typer.Option(
            "--auto-sweep/--no-auto-sweep",
            help="Sweep due node wallets to the multisig (default: watch.auto_sweep in the config: off).",
        ),
    ] = None,
    once: Annotated[
        bool, typer.Option("--once", help="One reconciling round (record, alert, sweep, back up), then exit.")
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Also log debug details.")] = False,
) -> None:
    """Follow every node and the chain until stopped (SIGTERM or Ctrl-C).

    Records every channel state transition in the audit log, rebroadcasts
    signed funding transactions until they confirm, alerts (the log,
    alerts.webhook_url and alerts.command) on force closes, closes to foreign
    addresses, channels without a committed close address, unreachable nodes
    and funding deadlines, keeps channel backups current in watch.backup_dir,
    sweeps node wallets to the multisig when watch.auto_sweep is on, and
    prepares the migration PSBT of a coin landing in an older wallet
    generation for its signers when watch.auto_migrate_psbt is on (the
    default), and on a wallet with recovery paths the refresh PSBT of coins
    whose path opens within recovery.refresh_margin_blocks when
    recovery.auto_refresh_psbt is on (the default; a coin whose path is open
    gets a critical alert). Keys of the config file written by `l2custody init`.
    A restart loses nothing: the first round reconciles from each node's
    state. Logs go to stderr (JSON lines with --json).

    Examples:

      l2custody watch --metrics 127.0.0.1:9739

      l2custody watch --once --no-auto-sweep

    As a systemd service: Type=notify, ExecStart=l2custody watch --metrics
    127.0.0.1:9739, Restart=on-failure.
    """
    from l2custody import api

    _logging(verbose)
    api.watch(STATE.config, metrics_listen=metrics, once=once, poll_seconds=poll, auto_sweep=auto_sweep)


def _redacted(record: logging.LogRecord) -> bool:
    """Every log line of ``watch`` passes here: no key, seed or URL login is logged."""
    from l2custody import redact

    record.msg, record.args = redact.text(record.getMessage()), None
    return True


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps({"ts": record.created, "level": record.levelname.lower(), "message": record.getMessage()})


class _Stderr(logging.StreamHandler):
    """Writes to whatever sys.stderr is when a record is emitted."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def _logging(verbose: bool) -> None:
    handler = _Stderr(sys.stderr)
    if STATE.json:
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    handler.addFilter(_redacted)
    logger = logging.getLogger("l2custody")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
