#!/usr/bin/env python3
"""l2custody custody plugin for Core Lightning (pyln-client; glue only).

Load it so that lightningd stops if it dies::

    important-plugin=/path/to/l2custody/plugins/l2custody_plugin.py
    l2custody-config=/home/op/.config/l2custody/config.toml
    l2custody-policy=enforce

What it does (the rules live in ``l2custody/custody/cln_policy/``):

- ``openchannel`` / ``openchannel2``: a peer-opened channel gets a fresh
  multisig address as ``close_to`` (checked valid on the node's network and
  recorded as issued first), or is rejected by the inbound options
  (``l2custody-min-channel``, ``-max-channel``, ``-allowed-peer``,
  ``-denied-peer``, ``-allow-private``).
- ``rpc_command`` (only for the commands in ``FILTERED``): refuses ``close``
  to a destination that is not ours, ``withdraw``/``multiwithdraw``/
  ``txprepare`` to destinations neither ours nor in ``[policy]
  allowed_destinations``, ``fundchannel``-style opens with a foreign
  ``close_to``, ``signpsbt``/``sendpsbt`` with an output nobody can explain
  (ours, allowed, an l2custody session, the node's wallet, its channel
  funding outputs) or a sighash other than ALL or a fee above the ``[policy]``
  caps, numeric feerates above ``max_fee_rate``, splices, ``exposesecret`` and
  ``plugin`` other than ``list``. The error names the rule and how to allow.
- The read loop is ours (``StdioPlugin``): lightningd's stream is framed by
  JSON structure and read strictly (``cln_policy.wire``); a message with a
  duplicate member, a raw control character or deep nesting is refused, and
  nothing on stdin ends the loop. The plugin is not dynamic.
- Notifications ``channel_state_changed``, ``channel_opened``,
  ``coin_movement``, ``connect``, ``disconnect`` go to the audit log.
- Methods ``custody-status``, ``custody-address [label]``, ``custody-reload``.

``l2custody-policy``: ``enforce`` (default) refuses; ``audit`` only logs and
audits what it would refuse (and lets commands through after an internal
error) — for a trial run, never for production.

Fail closed: pyln-client answers "continue" when a hook handler raises, so
every handler here catches its own errors and refuses (rpc_command: error
code 71; inbound channel: rejected), logging the traceback. No handler calls
lightningd's RPC while lightningd waits on the hook: PSBT checks that must
ask the node (``listaddresses``, ``listpeerchannels``, never a filtered
method) run on a worker thread and answer the hook from there.
"""

from __future__ import annotations

import os
import sys
import threading
import traceback
from typing import Any

try:
    from pyln.client import LightningRpc, Plugin, RpcException
    from pyln.client.plugin import RequestState

    from l2custody.custody.cln_policy import FILTERED, OPTIONS
    from l2custody.custody.cln_policy.runtime import INBOUND_ERROR, CustodyPlugin, PendingCommand
    from l2custody.custody.cln_policy.wire import Envelope, Frame, Framer, Unreadable, envelope, read_message
except ImportError as exc:  # lightningd shows our stderr: say which python lacks what
    sys.stderr.write(
        f"l2custody plugin: cannot import {exc.name or exc} with {sys.executable}; run the plugin with "
        "the python of the l2custody install (see plugins/README.md)\n"
    )
    sys.exit(1)

NOTIFICATIONS = ("channel_state_changed", "channel_opened", "coin_movement", "connect", "disconnect")


class StdioPlugin(Plugin):
    """pyln's Plugin with the read loop owned here: lightningd's stream is framed by JSON
    structure and each message read strictly (``cln_policy.wire``) before pyln dispatches it.
    Nothing on stdin can end the loop: a message the plugin cannot read is answered with a
    refusal (its id and method are lightningd's own envelope), and any error while
    dispatching is answered the same way."""

    def run(self) -> None:
        if os.environ.get("LIGHTNINGD_PLUGIN") != "1":
            return self.print_usage()
        framer = Framer()
        stdin = self.stdin.buffer
        while True:
            data = stdin.read1(1 << 16)
            if not data:
                return
            for frame in framer.feed(data):
                self._handle(frame)

    def _handle(self, frame: Frame) -> None:
        try:
            message = read_message(frame)
        except Unreadable as exc:
            self._unreadable(envelope(frame), exc.message)
            return
        try:
            request = self._parse_request(message)
            if request.id is not None:
                self._dispatch_request(request)
            else:
                self._dispatch_notification(request)
        except Exception as exc:
            _log(traceback.format_exc(), "error")
            self._unreadable(Envelope(message.get("id"), _text(message.get("method"))), f"{type(exc).__name__}: {exc}")

    def _dispatch_request(self, request: Any) -> None:
        """pyln answers a hook whose handler raised with a "safe fallback" (``continue`` for
        rpc_command): here such a call is refused instead."""
        if request.method not in HOOKS:
            return super()._dispatch_request(request)
        method = self.methods[request.method]
        request.background = method.background
        try:
            result = self._exec_func(method.func, request)
            if not method.background:
                request.set_result(result)
        except Exception as exc:
            _log(traceback.format_exc(), "error")
            if request.state == RequestState.PENDING:
                request.state = RequestState.FAILED
                self._unreadable(Envelope(request.id, request.method), f"{type(exc).__name__}: {exc}")

    def _unreadable(self, env: Envelope, reason: str) -> None:
        """Answer a call the plugin could not read or dispatch: always a refusal."""
        try:
            _log(f"l2custody plugin: cannot read a message from lightningd ({env.method}): {reason}", "warn")
            runtime = _runtime()
            if env.id is None:
                if runtime is not None:
                    runtime.record_unreadable(env.method or "message", reason)
                return
            if env.method in HOOKS:
                if runtime is not None:
                    result = runtime.refuse_unreadable(env.method, reason)
                elif env.method == "rpc_command":
                    result = NOT_READY
                else:
                    result = {"result": "reject", "error_message": INBOUND_ERROR}
                self._write_locked({"jsonrpc": "2.0", "id": env.id, "result": result})
                return
            error = {"code": -32600, "message": f"l2custody plugin cannot read this request: {reason}"}
            self._write_locked({"jsonrpc": "2.0", "id": env.id, "error": error})
        except BaseException:  # the loop must live on; lightningd keeps waiting: nothing runs unchecked
            sys.stderr.write(traceback.format_exc())


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


HOOKS = ("rpc_command", "openchannel", "openchannel2")
NOT_READY = {
    "return": {"error": {"code": 71, "message": "the l2custody plugin is not initialised; refusing (fail closed)"}}
}

# Not dynamic: `lightning-cli plugin stop` cannot remove the plugin while lightningd runs.
plugin = StdioPlugin(dynamic=False)
_state: dict[str, Any] = {"runtime": None}

for _name, (_default, _type, _multi, _description) in OPTIONS.items():
    plugin.add_option(_name, _default, _description, opt_type=_type, multi=_multi)


def _log(message: str, level: str = "info") -> None:
    for line in message.rstrip().splitlines() or [""]:
        plugin.log(line, level=level)


def _runtime() -> CustodyPlugin | None:
    return _state["runtime"]


def _rpc() -> LightningRpc:
    """A private connection (pyln's shared one carries per-request state)."""
    assert plugin.rpc is not None
    return LightningRpc(plugin.rpc.socket_path)


def _in_thread(name: str, work: Any) -> None:
    threading.Thread(target=work, name=name, daemon=True).start()


@plugin.init()
def init(options: dict[str, Any], configuration: dict[str, Any], plugin: Plugin, **kwargs: Any) -> Any:
    try:
        _state["runtime"] = CustodyPlugin.start(options, configuration, _log)
    except Exception as exc:
        # Exit rather than answer {"disable": ...}: lightningd v25.12 keeps running when even an
        # important-plugin disables itself, but shuts down when one dies.
        message = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
        _log(traceback.format_exc(), "debug")
        _log(f"l2custody plugin cannot start, exiting: {message}", "error")
        sys.exit(1)
    _log(f"l2custody custody plugin started: {_state['runtime'].describe()}", "info")
    return None


def _openchannel(hook: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    runtime = _runtime()
    if runtime is None:  # not initialised: never accept a channel we cannot commit
        return {"result": "reject", "error_message": "this node cannot accept channels right now"}
    return runtime.on_openchannel(hook, kwargs.get(hook))


@plugin.hook("openchannel")
def on_openchannel(plugin: Plugin, *args: Any, **kwargs: Any) -> dict[str, Any]:
    return _openchannel("openchannel", kwargs)


@plugin.hook("openchannel2")
def on_openchannel2(plugin: Plugin, *args: Any, **kwargs: Any) -> dict[str, Any]:
    return _openchannel("openchannel2", kwargs)


def on_rpc_command(plugin: Plugin, request: Any, *args: Any, **kwargs: Any) -> None:
    """Background hook: answered here, or from a worker thread for PSBTs the node must explain."""
    try:
        runtime = _runtime()
        if runtime is None:
            request.set_result(NOT_READY)
            return
        answer = runtime.on_rpc_command(kwargs.get("rpc_command"))
        if not isinstance(answer, PendingCommand):
            request.set_result(answer)
            return
        pending = answer

        def finish() -> None:
            try:
                rpc = _rpc()
                result = runtime.finish_command(pending, _node_lookup(rpc))
            except BaseException as exc:  # finish_command never raises; belt and braces
                result = {"return": {"error": {"code": 71, "message": f"l2custody check failed: {exc!r}"}}}
            request.set_result(result)

        _in_thread("l2custody-psbt-check", finish)
    except BaseException as exc:
        _log(traceback.format_exc(), "error")
        request.set_result(
            {"return": {"error": {"code": 71, "message": f"l2custody plugin error ({exc!r}); refusing (fail closed)"}}}
        )


def _node_lookup(rpc: LightningRpc) -> Any:
    from l2custody.custody.cln_policy.node import RpcNodeLookup

    return RpcNodeLookup(lambda method, params: rpc.call(method, params))


plugin.add_hook("rpc_command", on_rpc_command, background=True, filters=list(FILTERED))


def _record(topic: str) -> None:
    def handler(plugin: Plugin, *args: Any, **kwargs: Any) -> None:
        runtime = _runtime()
        if runtime is not None:
            runtime.on_notification(topic, kwargs.get(topic))

    handler.__name__ = f"on_{topic}"
    plugin.add_subscription(topic, handler)


for _topic in NOTIFICATIONS:
    _record(_topic)


@plugin.async_method("custody-status")
def custody_status(plugin: Plugin, request: Any, **kwargs: Any) -> None:
    """The custody wallet, the plugin's decisions, and where each channel's cooperative close pays."""
    runtime = _runtime()

    def work() -> None:
        try:
            if runtime is None:
                raise RpcException("the l2custody plugin is not initialised")
            rpc = _rpc()
            request.set_result(runtime.status(lambda method, params: rpc.call(method, params)))
        except Exception as exc:
            request.set_exception(
                exc
                if isinstance(exc, RpcException)
                else RpcException(getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}")
            )

    _in_thread("l2custody-status", work)


@plugin.method("custody-address")
def custody_address(plugin: Plugin, label: str | None = None, **kwargs: Any) -> dict[str, Any]:
    """A fresh address of the custody multisig, recorded as issued (optional label)."""
    runtime = _runtime()
    if runtime is None:
        raise RpcException("the l2custody plugin is not initialised")
    try:
        return runtime.new_address(label)
    except Exception as exc:
        raise RpcException(getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}") from exc


@plugin.method("custody-reload")
def custody_reload(plugin: Plugin, **kwargs: Any) -> dict[str, Any]:
    """Re-read the [policy] section of the l2custody config (e.g. after adding an allowed destination)."""
    runtime = _runtime()
    if runtime is None:
        raise RpcException("the l2custody plugin is not initialised")
    try:
        return runtime.reload()
    except Exception as exc:
        raise RpcException(getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}") from exc


if __name__ == "__main__":
    plugin.run()
