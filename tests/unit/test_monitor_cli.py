"""`l2custody watch` as a user runs it, without a node: refusals, --once, and the real
process serving metrics and stopping cleanly on SIGTERM. (With lnd: test_watch_lnd.py.)"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import urllib.request
from pathlib import Path

from l2custody.config import init_config
from l2custody.wallet.service import Wallet
from regtest import wait_for
from tests.support.cli_runner import L2CUSTODY, run
from tests.support.wallet import WALLET


def _config(tmp_path: Path) -> Path:
    config = init_config(
        tmp_path / "config.toml",
        "regtest",
        data_dir=tmp_path / "data",
        chain_url="http://127.0.0.1:9",
        chain_user="u",
        chain_password="p",
    )
    Wallet.import_(config, WALLET["descriptor"]).close()
    return config.path


def test_refusals_name_what_to_change(tmp_path: Path) -> None:
    config = _config(tmp_path)
    bad = run(config, "watch", "--metrics", "0.0.0.0:9739", json_out=True)
    assert bad.exit_code == 2 and "loopback address only" in json.loads(bad.stdout)["error"]
    bad = run(config, "watch", "--poll", "0", json_out=True)
    assert bad.exit_code == 2 and "--poll must be positive" in json.loads(bad.stdout)["error"]
    missing = run(tmp_path / "nope.toml", "watch", "--once")
    assert missing.exit_code == 2 and "l2custody init" in missing.stderr


def test_once_reconciles_and_exits(tmp_path: Path) -> None:
    config = _config(tmp_path)
    done = run(config, "watch", "--once")
    assert done.exit_code == 0, done.output
    assert "watching wallet" in done.stderr and "the chain cannot be read" in done.stderr and "stopped" in done.stderr


def test_the_process_serves_metrics_and_stops_on_sigterm(tmp_path: Path) -> None:
    import os
    import socket

    config = _config(tmp_path)
    log = tmp_path / "watch.log"
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)  # what systemd listens on (Type=notify)
    notify.bind(str(tmp_path / "notify.sock"))
    notify.settimeout(30)
    env = {**os.environ, "NOTIFY_SOCKET": str(tmp_path / "notify.sock")}
    with log.open("w") as err:
        proc = subprocess.Popen(
            [str(L2CUSTODY), "--config", str(config), "watch", "--poll", "0.2", "--metrics", "127.0.0.1:0"],
            stderr=err,
            stdout=subprocess.DEVNULL,
            env=env,
        )
    try:
        assert notify.recv(64) == b"READY=1"
        wait_for(lambda: "ready:" in log.read_text() or proc.poll() is not None, 60, what="watch to be ready")
        assert proc.poll() is None, log.read_text()
        url = re.search(r"metrics on (http://\S+)", log.read_text()).group(1)  # type: ignore[union-attr]
        with urllib.request.urlopen(url, timeout=10) as r:
            page = r.read().decode()
        assert 'l2custody_custody_check_failures{check="chain-reachable"} 1' in page
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        assert notify.recv(64) == b"STOPPING=1"
    finally:
        notify.close()
        if proc.poll() is None:
            proc.kill()
    text = log.read_text()
    assert "received SIGTERM" in text and text.rstrip().endswith("stopped")


def test_json_logs_are_one_object_per_line(tmp_path: Path) -> None:
    config = _config(tmp_path)
    done = run(config, "watch", "--once", json_out=True)
    assert done.exit_code == 0, done.output
    lines = [json.loads(line) for line in done.stderr.splitlines()]
    assert {"ts", "level", "message"} <= set(lines[0]) and lines[-1]["message"] == "stopped"
    assert any(x["level"] == "warning" and "chain cannot be read" in x["message"] for x in lines)
