"""Alert sinks (custody/watch/alerts.py) against real receivers: a local HTTP server, real
commands, a closed port. And the [alerts] / [watch] config sections."""

from __future__ import annotations

import json
import logging
import socket
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

from l2custody.config import init_config, load_config
from l2custody.custody.watch.alerts import (
    Alert,
    CommandSink,
    LogSink,
    WebhookSink,
    deliver,
    sinks_from_config,
)
from l2custody.errors import AlertDeliveryFailed, ConfigError

ALERT = Alert(
    "force-close:west:ab:0",
    "force-close",
    "critical",
    "ab:0",
    "channel ab:0 was force closed",
    "west",
    {"limbo_sat": 1000},
    1_700_000_000.0,
)


class Receiver:
    """A webhook receiver on 127.0.0.1 answering ``status``."""

    def __init__(self, status: int = 200) -> None:
        self.status, self.got = status, []  # type: ignore[var-annotated]
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.got.append((self.path, self.headers["Content-Type"], json.loads(body)))
                self.send_response(receiver.status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook?token=s3cret"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def test_webhook_posts_the_alert_as_json(receiver: Receiver) -> None:
    WebhookSink(receiver.url).send(ALERT)
    [(path, ctype, body)] = receiver.got
    assert path == "/hook?token=s3cret" and ctype == "application/json"
    assert body == {**ALERT.to_dict(), "details": {"limbo_sat": 1000}} and body["source"] == "l2custody"


def test_webhook_failures_say_what_to_check_without_the_token(receiver: Receiver) -> None:
    receiver.status = 500
    with pytest.raises(AlertDeliveryFailed, match="answered HTTP 500") as failed:
        WebhookSink(receiver.url).send(ALERT)
    assert "s3cret" not in failed.value.message and "127.0.0.1" in failed.value.message
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(AlertDeliveryFailed, match="cannot reach the alert webhook"):
        WebhookSink(f"http://127.0.0.1:{port}/x", timeout=2).send(ALERT)
    with pytest.raises(ConfigError, match="http:// or https://"):
        WebhookSink("ftp://example/x")


def test_command_gets_the_alert_on_stdin_and_in_its_environment(tmp_path: Path) -> None:
    out = tmp_path / "got.json"
    script = (
        "import json, os, sys; d = json.load(sys.stdin); "
        f"d['env'] = os.environ['L2CUSTODY_ALERT_KIND']; open({str(out)!r}, 'w').write(json.dumps(d))"
    )
    CommandSink([sys.executable, "-c", script]).send(ALERT)
    got = json.loads(out.read_text())
    assert got["kind"] == "force-close" and got["env"] == "force-close" and got["node"] == "west"


def test_command_failures(tmp_path: Path) -> None:
    failing = [sys.executable, "-c", "import sys; sys.stderr.write('pager down\\n'); sys.exit(3)"]
    with pytest.raises(AlertDeliveryFailed, match="exited with status 3: pager down"):
        CommandSink(failing).send(ALERT)
    with pytest.raises(AlertDeliveryFailed, match="does not exist"):
        CommandSink([str(tmp_path / "nope")]).send(ALERT)
    slow = [sys.executable, "-c", "import time; time.sleep(5)"]
    with pytest.raises(AlertDeliveryFailed, match="did not finish within 0.5 s"):
        CommandSink(slow, timeout=0.5).send(ALERT)


def test_log_sink_and_deliver(caplog: pytest.LogCaptureFixture, receiver: Receiver) -> None:
    caplog.set_level(logging.INFO, "test.alerts")
    receiver.status = 503
    sinks = [LogSink(logging.getLogger("test.alerts")), WebhookSink(receiver.url)]
    results = deliver(ALERT, sinks)
    assert results["log"] is None and "HTTP 503" in (results["webhook"] or "")
    assert "ALERT force-close ab:0: channel ab:0 was force closed" in caplog.text
    assert caplog.records[0].levelno == logging.ERROR  # critical
    receiver.status = 200
    assert deliver(ALERT, sinks, skip=["log"]) == {"webhook": None}


def test_watch_and_alerts_config_defaults_and_values(tmp_path: Path) -> None:
    cfg = init_config(tmp_path / "config.toml", "regtest", data_dir=tmp_path / "data")
    assert cfg.watch.auto_sweep is False and cfg.watch.sweep_threshold_sat == 100_000
    assert cfg.alerts.webhook_url is None and cfg.alerts.command == ()
    text = (tmp_path / "config.toml").read_text()
    text = text.replace("auto_sweep = false", 'auto_sweep = true\nbackup_dir = "bk"\nsweep_fee_rate = 2')
    text = text.replace('# webhook_url = "https://alerts.example/hook"', 'webhook_url = "http://127.0.0.1:1/h"')
    text = text.replace('# command = ["/usr/local/bin/page-oncall"]', "command = \"/bin/page --urgent 'on call'\"")
    (tmp_path / "config.toml").write_text(text)
    cfg = load_config(tmp_path / "config.toml")
    assert cfg.watch.auto_sweep and cfg.watch.backup_dir == tmp_path / "bk" and cfg.watch.sweep_fee_rate == 2.0
    assert cfg.alerts.command == ("/bin/page", "--urgent", "on call")
    names = [s.name for s in sinks_from_config(cfg.alerts, logging.getLogger("x"))]
    assert names == ["log", "webhook", "command"]


@pytest.mark.parametrize(
    ("extra", "key", "problem"),
    [
        ('[alerts]\nwebhook_url = "ftp://x"\n', "alerts.webhook_url", "http:// or https://"),
        ('[alerts]\ncommand = ["ok", 3]\n', "alerts.command", "non-empty string"),
        ('[alerts]\ncommand = "unbalanced \'quote"\n', "alerts.command", "cannot split"),
        ("[watch]\npoll_seconds = 0\n", "watch.poll_seconds", "greater than 0"),
        ("[watch]\nsweep_threshold_sat = -1\n", "watch.sweep_threshold_sat", "at least 0"),
        ('[watch]\nauto_sweep = "yes"\n', "watch.auto_sweep", "true or false"),
        ("[watch]\npoll = 3\n", "watch.poll", "unknown key"),
    ],
)
def test_bad_watch_and_alerts_values_name_the_key(tmp_path: Path, extra: str, key: str, problem: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(f'network = "regtest"\n[chain]\ncookie = "x"\n{extra}')
    with pytest.raises(ConfigError, match=problem) as err:
        load_config(path)
    assert key in err.value.message and str(path) in err.value.message
