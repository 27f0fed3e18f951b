"""The plugin's state and every decision it makes, behind methods that never raise.

:class:`CustodyPlugin` is opened once at ``init`` (options, the node's
network from lightningd's ``configuration``, the l2custody config and
wallet) and then answers hooks, records notifications and serves the
plugin's RPC methods. The plugin file (``plugins/l2custody_plugin.py``) only
wires lightningd's calls to these methods.

Fail closed: pyln-client lets a command through when a hook handler raises,
so every hook method here catches every error, logs the traceback, writes
what it can to the audit log and answers with a refusal (``enforce``) —
an rpc_command error with code 71 (CustodyCheckFailed), an inbound channel
rejected. A decision is audited before it is returned; if the audit write
fails, the action is refused too. In ``audit`` mode nothing is ever
refused: would-be refusals and errors are logged and audited instead.

The store: a decision waits at most :data:`STORE_WAIT` seconds for another process's lock,
and is refused if the store's file was deleted or replaced since the plugin opened it
(``Store.check_present``: SQLite would keep writing to the unlinked file and lose it all).

Thread safety: hooks run on the plugin's main thread, PSBT checks that ask
the node and ``custody-status`` run on worker threads; one lock serialises
every use of the store (one SQLite connection).
"""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from l2custody.custody.cln_policy.commands import check_command
from l2custody.custody.cln_policy.decision import (
    ALLOW_UNFILTERED,
    PLUGIN_ACTOR,
    RULE_CHECK_FAILED,
    RULE_MALFORMED,
    NodeLookup,
    Verdict,
)
from l2custody.custody.cln_policy.inbound import accept, inbound_request, reject
from l2custody.custody.cln_policy.node import Call, RpcNodeLookup, parse_channels
from l2custody.custody.cln_policy.options import PluginOptions
from l2custody.custody.cln_policy.psbt_check import Malformed, PsbtCheck, second_pass
from l2custody.errors import CustodyCheckFailed, CustodyViolation, L2CustodyError, NetworkMismatch, UsageError

if TYPE_CHECKING:  # pragma: no cover
    from l2custody.config import Config
    from l2custody.wallet.policy import Policy
    from l2custody.wallet.service import Wallet

ACTOR = PLUGIN_ACTOR
CONTINUE: dict[str, Any] = {"result": "continue"}
#: Seconds a decision waits for another process's lock on the store before refusing: lightningd
#: (and the caller of the command) wait on the hook meanwhile. Other l2custody writers hold the
#: lock for milliseconds.
STORE_WAIT = 2.0
#: What a peer reads when we cannot check its channel (no internals).
INBOUND_ERROR = "this node cannot accept channels right now; try again later"

Log = Callable[[str, str], None]  # (message, level: "debug"|"info"|"warn"|"error")


@dataclass
class Counters:
    """Decisions since the plugin started (shown by ``custody-status``)."""

    allowed: int = 0
    refused: int = 0
    would_refuse: int = 0  # audit mode
    check_failed: int = 0
    inbound_accepted: int = 0
    inbound_rejected: int = 0
    notifications: int = 0
    notification_errors: int = 0


@dataclass(frozen=True)
class PendingCommand:
    """A PSBT command waiting for the node's answers (run off the hook thread)."""

    request_id: Any
    check: PsbtCheck


def _error(code: int, message: str, rule: str) -> dict[str, Any]:
    return {"return": {"error": {"code": code, "message": message, "data": {"rule": rule, "plugin": "l2custody"}}}}


def _message(exc: BaseException) -> str:
    return exc.message if isinstance(exc, L2CustodyError) else f"{type(exc).__name__}: {exc}"


def _subject(topic: str, payload: Mapping[str, Any]) -> str:
    if topic == "channel_state_changed":
        return f"channel {payload.get('channel_id')}"
    if topic == "coin_movement":
        return f"account {payload.get('account_id')}"
    if "id" in payload:  # channel_opened, connect, disconnect: the peer
        return f"peer {payload.get('id')}"
    return topic


class CustodyPlugin:
    """The custody rules for one lightningd. See the module docstring."""

    def __init__(self, wallet: Wallet, options: PluginOptions, node_network: str, log: Log) -> None:
        self.wallet = wallet
        self.options = options
        self.network = node_network  # embit name; equals the wallet's
        self.config_path = str(wallet.config.path)
        self.log = log
        self.lock = threading.RLock()
        self.counters = Counters()
        self._policy = wallet.policy
        self._allowed_scripts: set[bytes] = set()

    # --- start, reload, stop -------------------------------------------------------------

    @classmethod
    def start(cls, raw_options: Mapping[str, Any], configuration: Mapping[str, Any], log: Log) -> CustodyPlugin:
        """Validate the options, check the node's network against the wallet's, open the wallet.

        Raises an L2CustodyError that says what to fix (the plugin then exits, which stops
        lightningd when it is loaded as an important-plugin).
        """
        from l2custody.config import load_config
        from l2custody.networks import normalize_network
        from l2custody.wallet.addresses import human_network
        from l2custody.wallet.service import Wallet

        options = PluginOptions.parse(raw_options)
        if not configuration.get("network"):
            raise UsageError("lightningd did not tell the plugin its network (init configuration.network)")
        node_network = normalize_network(str(configuration["network"]))
        config = load_config(options.config_path)
        if config.embit_network != node_network:
            raise NetworkMismatch(
                f"lightningd runs on {human_network(node_network)} but the l2custody wallet of {config.path} "
                f"is on {config.network}; its addresses would be invalid close_to addresses there. "
                "Point l2custody-config at the config of a wallet on the node's network"
            )
        wallet = Wallet.open(config)
        wallet.actor = ACTOR
        wallet.store.set_busy_timeout(STORE_WAIT)
        try:
            plugin = cls(wallet, options, node_network, log)
            plugin._set_policy(config)
            plugin._load_window()
            wallet.store.audit(ACTOR, "plugin-started", f"node {options.node}", plugin.describe())
        except BaseException:
            wallet.close()
            raise
        return plugin

    def _set_policy(self, config: Config) -> None:
        from l2custody.wallet.policy import Policy

        policy = Policy.from_config(config.policy)
        scripts = policy.allowed_scripts(self.network)  # NetworkMismatch names a wrong entry
        self._policy, self._allowed_scripts = policy, scripts

    def _load_window(self) -> None:
        """Derive the gap window into the store, so ``ours`` knows every address in it."""
        from l2custody.chain.scanner import Watchlist

        desc = self.wallet.descriptor

        def derive(change: bool, index: int) -> tuple[bytes, str]:
            d = desc.derive(change, index)
            return d.script_pubkey, d.address

        with self.wallet.store.transaction():
            Watchlist(self.wallet.store, self.wallet.record.id, derive, self.wallet.config.wallet.gap_limit).load()

    def reload(self) -> dict[str, Any]:
        """Re-read the config's ``[policy]`` (``custody-reload``); on error the old one stays."""
        from l2custody.config import load_config

        config = load_config(self.config_path)
        if config.embit_network != self.network:
            raise NetworkMismatch(f"{config.path} is now for {config.network}; not reloading")
        with self.lock:
            self._set_policy(config)
            self.wallet.store.audit(ACTOR, "policy-reloaded", f"node {self.options.node}", self.describe())
        return self.describe()

    def describe(self) -> dict[str, Any]:
        return {
            "mode": self.options.mode,
            "node": self.options.node,
            "network": self.network,
            "config": self.config_path,
            "allowed_destinations": sorted(self._policy.allowed_destinations),
            "allow_any_destination": self._policy.allow_any,
            "inbound": self.options.inbound.to_dict(),
        }

    def close(self) -> None:
        with self.lock:
            self.wallet.close()

    # --- CustodyFacts ----------------------------------------------------------------------

    @property
    def policy(self) -> Policy:
        return self._policy

    def ours(self, script: bytes) -> bool:
        return self.wallet.store.address_by_script(bytes(script)) is not None

    def allowed(self, script: bytes) -> bool:
        return self._policy.allow_any or bytes(script) in self._allowed_scripts

    def session_of(self, psbt: Any) -> str | None:
        from l2custody.wallet.pipeline import CLOSED_STATES
        from l2custody.wallet.psbt import psbt_fingerprint

        rec = self.wallet.store.psbt_by_fingerprint(psbt_fingerprint(psbt))
        return rec.id if rec is not None and rec.state not in CLOSED_STATES else None

    # --- rpc_command ---------------------------------------------------------------------

    def on_rpc_command(self, request: Any) -> dict[str, Any] | PendingCommand:
        """The hook's answer, or a PendingCommand to finish with :meth:`finish_command`."""
        method = "command"
        try:
            if not isinstance(request, dict) or not isinstance(request.get("method"), str):
                raise Malformed(f"the rpc_command payload is not a JSON-RPC request: {request!r:.200}")
            method = request["method"]
            with self.lock:
                result = check_command(method, request.get("params"), self)
                if isinstance(result, PsbtCheck):
                    return PendingCommand(request.get("id"), result)
                return self._answer(result, request.get("id"))
        except Exception as exc:  # fail closed
            return self._check_failed(method, exc)

    def finish_command(self, pending: PendingCommand, node: NodeLookup) -> dict[str, Any]:
        """Ask the node about the outputs left over, then answer (never raises)."""
        try:
            verdict = second_pass(pending.check, node)
            with self.lock:
                return self._answer(verdict, pending.request_id)
        except Exception as exc:  # fail closed
            return self._check_failed(pending.check.command, exc)

    def refuse_unreadable(self, hook: str, reason: str) -> dict[str, Any]:
        """The answer to a hook call whose message the plugin cannot read (``cln_policy.wire``):
        a refusal, audited (never raises)."""
        if hook != "rpc_command":
            return self._inbound_failed(hook, Malformed(f"the {hook} payload cannot be read: {reason}"))
        verdict = Verdict.refuse(
            "command",
            RULE_MALFORMED,
            f"command refused by the l2custody plugin (rule {RULE_MALFORMED}): the request cannot be read "
            f"the one way lightningd reads it: {reason}",
            reason=reason,
        )
        try:
            with self.lock:
                return self._answer(verdict, None)
        except Exception as exc:  # fail closed
            return self._check_failed("command", exc)

    def record_unreadable(self, topic: str, reason: str) -> None:
        """A notification the plugin cannot read: kept in the audit log as such."""
        self.on_notification(f"{topic}-unreadable", {"reason": reason})

    def _answer(self, verdict: Verdict, request_id: Any) -> dict[str, Any]:
        """Audit the verdict, then turn it into the hook's answer (raises if the audit fails)."""
        store = self.wallet.store
        details = {"request_id": request_id, **verdict.to_dict()}
        if verdict.allow:
            if verdict.rule != ALLOW_UNFILTERED:
                store.audit(ACTOR, "rpc-allowed", verdict.command, details)
            self.counters.allowed += 1
            return CONTINUE
        if not self.options.enforce:
            store.audit(ACTOR, "rpc-would-refuse", verdict.command, details)
            self.counters.would_refuse += 1
            self.log(f"audit mode, letting through: {verdict.message}", "warn")
            return CONTINUE
        store.audit(ACTOR, "rpc-refused", verdict.command, details)
        self.counters.refused += 1
        self.log(verdict.message, "info")
        return _error(CustodyViolation.code, verdict.message, verdict.rule)

    def _check_failed(self, method: str, exc: BaseException) -> dict[str, Any]:
        self.counters.check_failed += 1
        self.log(f"custody check of {method} failed:\n{traceback.format_exc()}", "error")
        try:
            with self.lock:
                self.wallet.store.audit(
                    ACTOR, "rpc-check-failed", method, {"error": _message(exc), "mode": self.options.mode}
                )
        except Exception:
            self.log(f"could not audit the failed check either:\n{traceback.format_exc()}", "error")
        if not self.options.enforce:
            return CONTINUE
        message = (
            f"{method} refused by the l2custody plugin: its custody check failed ({_message(exc)}); "
            "the plugin fails closed, so the command was not run. The lightningd log has the "
            "details; fix the cause and retry"
        )
        return _error(CustodyCheckFailed.code, message, RULE_CHECK_FAILED)

    # --- openchannel / openchannel2 ------------------------------------------------------------

    def on_openchannel(self, hook: str, payload: Any) -> dict[str, Any]:
        """Reject by the inbound policy, or accept with a fresh multisig close_to (never raises)."""
        try:
            req = inbound_request(hook, payload, self.options.node)
            details = {
                "hook": hook,
                "peer": req.peer_pubkey,
                "funding_sat": req.funding_sat,
                "push_sat": req.push_sat,
                "private": req.private,
                "channel_id": req.pending_chan_id,
            }
            store = self.wallet.store
            with self.lock:
                reason = self.options.inbound.refusal(req)
                if reason is not None and self.options.enforce:
                    store.audit(ACTOR, "inbound-rejected", f"peer {req.peer_pubkey}", {**details, "reason": reason})
                    self.counters.inbound_rejected += 1
                    self.log(f"rejected a {req.funding_sat} sat channel from {req.peer_pubkey}: {reason}", "info")
                    return reject(reason)
                with store.transaction():
                    address, _ = self._issue_address(f"inbound {req.peer_pubkey[:16]} via {self.options.node}")
                    if reason is not None:
                        store.audit(
                            ACTOR, "inbound-would-reject", f"peer {req.peer_pubkey}", {**details, "reason": reason}
                        )
                    store.audit(ACTOR, "inbound-accepted", f"peer {req.peer_pubkey}", {**details, "close_to": address})
                self.counters.inbound_accepted += 1
            return accept(address)
        except Exception as exc:  # fail closed: no channel whose close we could not commit
            return self._inbound_failed(hook, exc)

    def _inbound_failed(self, hook: str, exc: BaseException) -> dict[str, Any]:
        """Reject (enforce) the channel whose check failed, audited where possible."""
        self.counters.check_failed += 1
        self.log(f"{hook} hook failed ({_message(exc)}):\n{traceback.format_exc()}", "error")
        try:
            with self.lock:
                self.wallet.store.audit(ACTOR, "inbound-check-failed", hook, {"error": _message(exc)})
        except Exception:
            self.log(f"could not audit the failed check either:\n{traceback.format_exc()}", "error")
        return reject(INBOUND_ERROR) if self.options.enforce else accept(None)

    def _issue_address(self, label: str) -> tuple[str, int]:
        """A fresh multisig address (and its index), recorded as issued, checked valid on the
        node's network and present in the wallet's address table."""
        from l2custody.wallet.addresses import address_to_script

        info = self.wallet.next_address(label=label)
        script = address_to_script(info.address, self.network)  # never hand lightningd an invalid close_to
        record = self.wallet.store.address_by_script(script)
        if record is None or record.address != info.address:
            raise CustodyCheckFailed(f"the new address {info.address} is not in the wallet's address table")
        return info.address, info.index

    def new_address(self, label: str | None = None) -> dict[str, Any]:
        """``custody-address``: the next multisig address (recorded as issued)."""
        label = label or f"custody-address via {self.options.node}"
        with self.lock, self.wallet.store.transaction():
            address, index = self._issue_address(label)
        return {"address": address, "index": index, "label": label, "network": self.network}

    # --- notifications ---------------------------------------------------------------------

    def on_notification(self, topic: str, payload: Any) -> None:
        """Append the notification to the audit log (errors are logged, never raised)."""
        try:
            body = payload if isinstance(payload, dict) else {"payload": payload}
            with self.lock:
                self.wallet.store.audit(ACTOR, topic, _subject(topic, body), body)
            self.counters.notifications += 1
        except Exception:
            self.counters.notification_errors += 1
            self.log(f"could not record the {topic} notification:\n{traceback.format_exc()}", "error")

    # --- custody-status --------------------------------------------------------------------

    def status(self, call: Call) -> dict[str, Any]:
        """``custody-status``: the wallet, the decisions so far, and each channel's close custody."""
        self.wallet.store.check_present()  # never report from a store that is gone
        node = RpcNodeLookup(call)
        channels = parse_channels(call("listpeerchannels", {}))
        rows = []
        for ch in channels:
            with self.lock:
                ours = ch.close_to is not None and self.ours(bytes.fromhex(ch.close_to))
            if ours:
                custody = "multisig"
            elif not ch.close_to_addr:
                custody = "unset"
            elif node.owns_address(ch.close_to_addr):
                custody = "node-wallet"
            else:
                custody = "foreign"
            rows.append({**asdict(ch), "inflight": [list(o) for o in ch.inflight], "custody": custody})
        with self.lock:
            balance = self.wallet.balance()
            record = self.wallet.record
            desc = self.wallet.descriptor
        return {
            **self.describe(),
            "wallet": {
                "name": record.name,
                "network": record.network,
                "policy": f"{desc.threshold}-of-{desc.n}",
                "fingerprints": [k.fingerprint for k in desc.keys],
                "confirmed_sat": balance.confirmed,
                "unconfirmed_sat": balance.unconfirmed,
                "scanned_height": balance.scanned_height,
            },
            "decisions": asdict(self.counters),
            "channels": rows,
        }
