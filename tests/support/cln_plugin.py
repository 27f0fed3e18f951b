"""Shared material for the CLN plugin tests: a regtest custody wallet made with the library,
the captured lightningd payloads, and the real plugin process driven over its stdio JSON-RPC.
"""

from __future__ import annotations

import copy
import json
import os
import queue
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from l2custody.config import Config, init_config, load_config
from l2custody.wallet.service import Wallet
from l2custody.wallet.signers import SoftwareSigner
from tests.support.wallet import WALLET, outside_address

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = ROOT / "plugins" / "l2custody_plugin.py"
VECTORS = ROOT / "tests" / "vectors" / "cln_plugin"

#: A mainnet address (BIP-173 example): never valid on the test wallet's regtest.
MAINNET_ADDRESS = "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4"
#: The outside address the captured withdraw paid (l1's wallet in the capture).
CAPTURED_FOREIGN = "bcrt1q7t7h6sfgpc8kv5xm7fenkxddml6aavut6mdhel"

__all__ = [
    "CAPTURED_FOREIGN",
    "MAINNET_ADDRESS",
    "PLUGIN",
    "PluginProcess",
    "fixture",
    "make_wallet",
    "outside_address",
    "payload",
    "rpc_command",
]


def fixture(name: str) -> dict[str, Any]:
    """A captured payload (a fresh copy each time; tests may change it)."""
    return json.loads((VECTORS / f"{name}.json").read_text())


def payload(name: str) -> dict[str, Any]:
    """The inner payload of a captured hook/notification (``{"openchannel": {...}}`` -> ``{...}``)."""
    (only,) = fixture(name).values()
    return only


def rpc_command(name: str, **params: Any) -> dict[str, Any]:
    """A captured ``rpc_command`` request with some parameters replaced (None removes one)."""
    req = copy.deepcopy(payload(f"hook-rpc_command-{name}"))
    for key, value in params.items():
        if value is None:
            req["params"].pop(key, None)
        else:
            req["params"][key] = value
    return req


def make_wallet(
    directory: Path, *, allowed: tuple[str, ...] = (), allow_any: bool = False, network: str = "regtest"
) -> Config:
    """A 2-of-3 custody wallet over the public test mnemonics, created through the library."""
    directory.mkdir(parents=True, exist_ok=True)
    cfg = init_config(directory / "config.toml", network, data_dir=directory / "data")
    text = cfg.path.read_text()
    text = text.replace("allowed_destinations = []", f"allowed_destinations = {json.dumps(list(allowed))}")
    if allow_any:
        text = text.replace("allow_any_destination = false", "allow_any_destination = true")
    cfg.path.write_text(text)
    cfg = load_config(cfg.path)
    keys = [SoftwareSigner.from_mnemonic(m).account_key(network=network).to_string() for m in WALLET["mnemonics"]]
    Wallet.create(cfg, 2, keys).close()
    return cfg


class PluginProcess:
    """``plugins/l2custody_plugin.py`` as lightningd runs it: JSON-RPC over stdin/stdout,
    each message followed by a blank line. Log notifications are collected in ``logs``."""

    def __init__(self, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(PLUGIN)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            # The plugin's sys.path starts at plugins/: name the checkout so it imports this
            # l2custody, not whichever one the interpreter has installed.
            env={**os.environ, "LIGHTNINGD_PLUGIN": "1", "PYTHONPATH": str(ROOT), **(env or {})},
            cwd=str(ROOT),
        )
        self.logs: list[dict[str, Any]] = []
        self._replies: dict[Any, dict[str, Any]] = {}
        self._inbox: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._next = 0
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        buf = b""
        for line in self.proc.stdout:
            if line.strip():
                buf += line
                continue
            if buf.strip():
                self._inbox.put(json.loads(buf))
            buf = b""
        self._inbox.put(None)

    def send(self, method: str, params: Any, *, notification: bool = False) -> Any:
        """Write one request (or notification); returns its id."""
        assert self.proc.stdin is not None
        msg: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "params": params}
        if not notification:
            self._next += 1
            msg["id"] = f"test:{method}#{self._next}"
        self.proc.stdin.write(json.dumps(msg).encode() + b"\n\n")
        self.proc.stdin.flush()
        return msg.get("id")

    def send_raw(self, data: bytes) -> None:
        """Write bytes as they are (a message lightningd would frame itself)."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def hook_raw(self, name: str, body: bytes, timeout: float = 30.0) -> Any:
        """Call hook ``name`` with ``body`` spliced in verbatim, the way lightningd v25.12.1
        forwards a caller's request (its envelope first, each member's token copied as sent)."""
        self._next += 1
        request_id = f"cln:{name}#{self._next}"
        envelope = f'{{"jsonrpc":"2.0","id":{json.dumps(request_id)},"method":"{name}","params":{{"{name}":'
        self.send_raw(envelope.encode() + body + b"}}\n\n")
        response = self.reply(request_id, timeout)
        assert "result" in response, response
        return response["result"]

    def reply(self, request_id: Any, timeout: float = 30.0) -> dict[str, Any]:
        """The response to ``request_id`` (log notifications are kept in ``logs``)."""
        while request_id not in self._replies:
            try:
                msg = self._inbox.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(
                    f"the plugin did not answer {request_id} within {timeout}s; logs: {self.log_text()[-2000:]}"
                ) from None
            if msg is None:
                raise AssertionError(f"the plugin exited (rc={self.proc.wait()}): {self.stderr()}")
            if msg.get("method") == "log":
                self.logs.append(msg["params"])
            elif "id" in msg:
                self._replies[msg["id"]] = msg
        return self._replies.pop(request_id)

    def call(self, method: str, params: Any, timeout: float = 30.0) -> dict[str, Any]:
        """Send a request and return the whole response (``result`` or ``error``)."""
        return self.reply(self.send(method, params), timeout)

    def result(self, method: str, params: Any) -> Any:
        response = self.call(method, params)
        assert "result" in response, response
        return response["result"]

    def hook(self, name: str, body: Any) -> Any:
        """Call hook ``name`` with ``{name: body}`` as lightningd does; returns the hook's answer."""
        return self.result(name, {name: body})

    def notify(self, topic: str, body: Any) -> None:
        self.send(topic, {topic: body}, notification=True)

    def start(self, config: Config | Path | str, network: str = "regtest", **options: Any) -> Any:
        """getmanifest + init; returns init's result (None when the plugin started)."""
        self.result("getmanifest", {"allow-deprecated-apis": False})
        return self.result("init", self._init_params(config, network, options))

    def start_fails(self, config: Config | Path | str, network: str = "regtest", **options: Any) -> int:
        """getmanifest + an init the plugin cannot accept: it must exit without answering.
        Returns the exit code; the reason is in ``log_text()``."""
        self.result("getmanifest", {"allow-deprecated-apis": False})
        request_id = self.send("init", self._init_params(config, network, options))
        try:
            answer = self.reply(request_id)
        except AssertionError as exc:
            if "plugin exited" not in str(exc):
                raise
            return self.proc.wait(10)
        raise AssertionError(f"the plugin answered init instead of exiting: {answer}")

    @staticmethod
    def _init_params(config: Config | Path | str, network: str, options: dict[str, Any]) -> dict[str, Any]:
        path = Path(getattr(config, "path", config))
        return {
            "options": {"l2custody-config": str(path), **options},
            "configuration": {
                "lightning-dir": str(path.parent),
                "rpc-file": "lightning-rpc",
                "startup": True,
                "network": network,
                "feature_set": {},
            },
        }

    def log_text(self) -> str:
        return "\n".join(str(entry.get("message")) for entry in self.logs)

    def stderr(self) -> str:
        return self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""

    def close(self) -> None:
        if self.proc.stdin and not self.proc.stdin.closed:
            self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


#: The node's change output in the captured fundchannel (signpsbt-012).
FUNDCHANNEL_CHANGE = "bcrt1pu83x58rjfq8kuyx3yspq2vcym49q99832eflec5222nca5efhelq4u26kr"


class RecordedNode:
    """Serves recorded lightningd answers to RpcNodeLookup; counts the calls."""

    def __init__(self, addresses: tuple[str, ...] = ()) -> None:
        self.channels = fixture("listpeerchannels.two")
        self.addresses = [{"keyidx": i + 1, "p2tr": a} for i, a in enumerate(addresses)]
        self.calls: list[str] = []

    def __call__(self, method: str, params: dict[str, Any]) -> Any:
        self.calls.append(method)
        if method == "listpeerchannels":
            return self.channels
        if method == "listaddresses":
            wanted = params.get("address")
            return {"addresses": [a for a in self.addresses if wanted in (a.get("bech32"), a.get("p2tr"))]}
        raise AssertionError(f"unexpected call {method}")
