"""Shared by the watch integration tests: the alert webhook receiver, the `l2custody watch`
process, and readers of what watch recorded."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

from regtest import wait_for
from tests.support.cli_runner import L2CUSTODY


class Hook:
    """The alert webhook: a local HTTP server keeping every JSON body it gets."""

    def __init__(self) -> None:
        self.got: list[dict[str, Any]] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                hook.got.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"

    def kinds(self) -> list[str]:
        return [a["kind"] for a in self.got]

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [a for a in self.got if a["kind"] == kind]


class Watch:
    """A real `l2custody watch` process (metrics on a free loopback port)."""

    def __init__(self, config: Path, log: Path) -> None:
        self.config, self.log = config, log
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.offset = 0

    def start(self) -> None:
        self.offset = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("a") as err:
            self.proc = subprocess.Popen(
                [str(L2CUSTODY), "--config", str(self.config), "watch", "--metrics", "127.0.0.1:0"],
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        wait_for(
            lambda: "ready:" in self.text() or self.proc.poll() is not None,
            120,  # type: ignore[union-attr]
            what="watch to finish its first round",
        )
        assert self.proc.poll() is None, self.text()
        self.url = re.findall(r"metrics on (http://\S+)", self.text())[-1]

    def text(self) -> str:
        """The log of the current run."""
        return self.log.read_text()[self.offset :] if self.log.exists() else ""

    def tail(self) -> str:
        """The end of the log, for assertion messages."""
        return "watch log:\n" + "\n".join(self.text().splitlines()[-25:])

    def metrics(self) -> dict[str, float]:
        with urllib.request.urlopen(self.url, timeout=10) as r:
            page = r.read().decode()
        out = {}
        for line in page.splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                out[name] = float(value)
        return out

    def place(self, place: str) -> int:
        return int(self.metrics()[f'l2custody_balance_sat{{place="{place}"}}'])

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(30)

    def terminate(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(30)


def transitions(config: Path, subject: str | None = None) -> list[tuple[str, str | None, str | None, str]]:
    """(channel point, from, to, source) of watch's channel-state entries, oldest first."""
    from l2custody.config import load_config
    from l2custody.store import Store

    with Store.open(load_config(config).store_path) as store:
        return [
            (e.subject, e.details["from"], e.details["to"], e.details["source"])
            for e in store.audit_log(subject=subject)
            if e.actor == "watch" and e.action == "channel-state"
        ]


def audit(config: Path, action: str) -> list[Any]:
    from l2custody.config import load_config
    from l2custody.store import Store

    with Store.open(load_config(config).store_path) as store:
        return [e for e in store.audit_log() if e.action == action]


def set_keys(config: Path, values: dict[str, str]) -> None:
    text = config.read_text()
    for key, value in values.items():
        text, n = re.subn(rf"^#?\s*{key} = .*$", f"{key} = {value}", text, flags=re.M)
        assert n == 1, key
    config.write_text(text)
