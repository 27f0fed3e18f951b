"""Alerts: what ``watch`` tells people, and the sinks that carry it.

An :class:`Alert` is plain data with a stable ``key`` (the same condition
never alerts twice). Sinks deliver it:

- :class:`LogSink` — always on: the alert as one log line (WARNING, or
  ERROR for critical ones).
- :class:`WebhookSink` — an HTTP(S) POST of ``Alert.to_dict()`` as JSON;
  any 2xx answer counts as delivered.
- :class:`CommandSink` — runs a command (argv, no shell) with the alert JSON
  on stdin and ``L2CUSTODY_ALERT_*`` environment variables; exit 0 counts as
  delivered.

A failed delivery raises :class:`~l2custody.errors.AlertDeliveryFailed`
saying what to check; ``watch`` keeps the alert in its outbox
(``custody/watch/state.py``) and tries that sink again on its next round.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from l2custody.errors import AlertDeliveryFailed, ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from l2custody.config import AlertsConfig

SEVERITIES = ("info", "warning", "critical")
KINDS = (
    "force-close",
    "foreign-close",
    "foreign-close-address",
    "no-close-address",
    "foreign-funding",
    "node-unreachable",
    "chain-unreachable",
    "funding-deadline",
    "hot-wallet",
    "auto-sweep",
    "sweep-problem",
    "close-violation",
    "unguarded-rpc",  # node enforce: a fund-moving lnd request made without the l2custody caveat
    "rpc-refused",  # node enforce: the enforcer refused a request
    "old-generation",  # an older wallet generation holds coins or live channels' close addresses
    "old-generation-coin",  # a coin landed in an older generation (no migration PSBT prepared for it)
    "migration-psbt",  # a coin's migration PSBT is ready for its generation's signers
    "recovery-timelock",  # a recovery wallet's coins near (warning) or past (critical) their recovery path
    "recovery-due",  # a coin's recovery path opens soon (no refresh PSBT prepared for it)
    "recovery-open",  # a coin's recovery path is open: the recovery keys can spend it now
    "refresh-psbt",  # a refresh PSBT is ready for the primary signers
)


@dataclass(frozen=True)
class Alert:
    """Something an operator must know. ``key`` identifies the condition or event."""

    key: str
    kind: str
    severity: str
    subject: str
    message: str
    node: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    created: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """What every sink sends (webhook, command, log): the message redacted."""
        from l2custody import redact

        return {
            "source": "l2custody",
            "key": self.key,
            "kind": self.kind,
            "severity": self.severity,
            "node": self.node,
            "subject": self.subject,
            "message": redact.text(self.message),
            "details": self.details,
            "created": self.created,
        }


class AlertSink(Protocol):
    name: str

    def send(self, alert: Alert) -> None:
        """Deliver ``alert`` or raise AlertDeliveryFailed."""


class LogSink:
    """Alerts as log lines (``ALERT <kind> <subject>: <message>``)."""

    name = "log"

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger

    def send(self, alert: Alert) -> None:
        level = (
            logging.ERROR
            if alert.severity == "critical"
            else (logging.WARNING if alert.severity == "warning" else logging.INFO)
        )
        self.logger.log(level, "ALERT %s %s: %s", alert.kind, alert.subject, alert.message)


def _safe_url(url: str) -> str:
    """The URL without credentials, path or query (which may hold a token) for messages."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or "?"
    return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "") + "/…"


class WebhookSink:
    """POST the alert as JSON to ``url``."""

    name = "webhook"

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        if not (url.startswith("http://") or url.startswith("https://")):
            raise ConfigError(f"[alerts] webhook_url must start with http:// or https://, got {_safe_url(url)}")
        self.url, self.timeout = url, timeout

    def __repr__(self) -> str:
        return f"WebhookSink({_safe_url(self.url)})"

    def send(self, alert: Alert) -> None:
        body = json.dumps(alert.to_dict(), sort_keys=True).encode()
        request = urllib.request.Request(
            self.url,
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", "User-Agent": "l2custody-watch"},
        )
        where = _safe_url(self.url)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310 - http(s) only
                status = response.status
        except urllib.error.HTTPError as exc:
            raise AlertDeliveryFailed(
                f"the alert webhook {where} answered HTTP {exc.code} ({exc.reason}); check [alerts] webhook_url "
                "and the receiver's logs (the alert is kept and sent again)"
            ) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise AlertDeliveryFailed(
                f"cannot reach the alert webhook {where}: {reason}; check that it runs and [alerts] webhook_url "
                "(the alert is kept and sent again)"
            ) from None
        if not 200 <= status < 300:
            raise AlertDeliveryFailed(f"the alert webhook {where} answered HTTP {status}; expected 2xx")


class CommandSink:
    """Run ``argv`` with the alert JSON on stdin (no shell)."""

    name = "command"

    def __init__(self, argv: Sequence[str], timeout: float = 10.0) -> None:
        if not argv:
            raise ConfigError('[alerts] command is empty; give the program to run, e.g. ["/usr/local/bin/page"]')
        self.argv, self.timeout = list(argv), timeout

    def send(self, alert: Alert) -> None:
        env = dict(os.environ)
        env.update(
            {
                "L2CUSTODY_ALERT_KIND": alert.kind,
                "L2CUSTODY_ALERT_SEVERITY": alert.severity,
                "L2CUSTODY_ALERT_SUBJECT": alert.subject,
                "L2CUSTODY_ALERT_NODE": alert.node or "",
                "L2CUSTODY_ALERT_MESSAGE": alert.message,
                "L2CUSTODY_ALERT_KEY": alert.key,
            }
        )
        program = self.argv[0]
        try:
            done = subprocess.run(
                self.argv,
                input=json.dumps(alert.to_dict(), sort_keys=True).encode(),
                env=env,
                capture_output=True,
                timeout=self.timeout,
                check=False,
            )
        except FileNotFoundError:
            raise AlertDeliveryFailed(f"the alert command {program} does not exist; fix [alerts] command") from None
        except PermissionError:
            raise AlertDeliveryFailed(f"the alert command {program} is not executable; chmod +x it") from None
        except subprocess.TimeoutExpired:
            raise AlertDeliveryFailed(
                f"the alert command {program} did not finish within {self.timeout:g} s; it was stopped "
                "(raise [alerts] timeout_seconds or make it faster)"
            ) from None
        if done.returncode != 0:
            tail = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or [""]
            raise AlertDeliveryFailed(
                f"the alert command {program} exited with status {done.returncode}"
                + (f": {tail[0][:200]}" if tail[0] else "")
                + " (the alert is kept and sent again)"
            )


def sinks_from_config(alerts: AlertsConfig, logger: logging.Logger) -> list[AlertSink]:
    """The log sink plus the webhook and command the config names."""
    sinks: list[AlertSink] = [LogSink(logger)]
    if alerts.webhook_url:
        sinks.append(WebhookSink(alerts.webhook_url, alerts.timeout_seconds))
    if alerts.command:
        sinks.append(CommandSink(alerts.command, alerts.timeout_seconds))
    return sinks


def deliver(alert: Alert, sinks: Sequence[AlertSink], skip: Sequence[str] = ()) -> dict[str, str | None]:
    """Hand ``alert`` to every sink not in ``skip``: sink name -> None (delivered) or the error."""
    results: dict[str, str | None] = {}
    for sink in sinks:
        if sink.name in skip:
            continue
        try:
            sink.send(alert)
            results[sink.name] = None
        except AlertDeliveryFailed as exc:
            results[sink.name] = exc.message
    return results
