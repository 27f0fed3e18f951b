"""The real plugin process (``plugins/l2custody_plugin.py``) driven as lightningd drives it:
JSON-RPC over its stdin/stdout (getmanifest, init, hooks, notifications, methods), with the
captured lightningd payloads. No lightningd runs here, so the node's RPC socket does not
exist: a check that must ask the node fails, and the plugin must refuse (fail closed).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from l2custody.config import Config
from l2custody.custody.cln_policy import FILTERED
from l2custody.store import Store
from l2custody.wallet.addresses import address_to_script
from l2custody.wallet.psbt import build_psbt, psbt_fingerprint, psbt_to_base64
from tests.support.cln_plugin import (
    CAPTURED_FOREIGN,
    PluginProcess,
    fixture,
    payload,
    rpc_command,
)
from tests.support.wallet import coins, descriptor

NOTIFICATIONS = ["channel_state_changed", "channel_opened", "coin_movement", "connect", "disconnect"]


@pytest.fixture(scope="module")
def cfg(tmp_path_factory: pytest.TempPathFactory, make_plugin_wallet: Callable[..., Config]) -> Config:
    return make_plugin_wallet(tmp_path_factory.mktemp("plugin") / "w")


@pytest.fixture(scope="module")
def plugin(cfg: Config) -> Iterator[PluginProcess]:
    """One plugin process (enforce mode) for the tests that do not break it."""
    proc = PluginProcess()
    assert proc.start(cfg, **{"l2custody-node": "cln-test"}) is None
    yield proc
    proc.close()


@pytest.fixture
def fresh(tmp_path: Path, make_plugin_wallet: Callable[..., Config]) -> Iterator[tuple[PluginProcess, Config]]:
    """A plugin process over its own wallet, for tests that change or damage things."""
    cfg = make_plugin_wallet(tmp_path / "w")
    proc = PluginProcess()
    yield proc, cfg
    proc.close()


def ours(cfg: Config, index: int = 0, change: bool = False) -> str:
    return descriptor().derive(change, index).address


def audit(cfg: Config, action: str) -> list[Any]:
    with Store.open(cfg.store_path) as store:
        return [e for e in store.audit_log() if e.action == action]


def refusal(answer: Any, code: int = 70) -> dict[str, Any]:
    assert isinstance(answer, dict) and "return" in answer, answer
    error = answer["return"]["error"]
    assert error["code"] == code, error
    return error


CONTINUE = {"result": "continue"}


# --- manifest and init ------------------------------------------------------------------------------


def test_manifest_declares_options_hooks_filters_subscriptions_and_methods() -> None:
    proc = PluginProcess()
    try:
        manifest = proc.result("getmanifest", {"allow-deprecated-apis": False})
    finally:
        proc.close()
    options = {o["name"]: o for o in manifest["options"]}
    assert options["l2custody-policy"]["default"] == "enforce"
    assert options["l2custody-allowed-peer"]["multi"] is True
    hooks = {h["name"]: h for h in manifest["hooks"]}
    assert set(hooks) == {"openchannel", "openchannel2", "rpc_command"}
    assert hooks["rpc_command"]["filters"] == list(FILTERED)
    assert {"withdraw", "close", "signpsbt", "sendpsbt", "multiwithdraw", "txprepare"} <= set(FILTERED)
    assert sorted(manifest["subscriptions"]) == sorted(NOTIFICATIONS)
    assert {m["name"] for m in manifest["rpcmethods"]} == {"custody-status", "custody-address", "custody-reload"}


def test_init_that_cannot_start_exits_with_the_reason(fresh: tuple[PluginProcess, Config], tmp_path: Path) -> None:
    """Exiting (not answering {"disable": ...}) is what stops lightningd for an important-plugin."""
    proc, cfg = fresh
    assert proc.start_fails(cfg, network="bitcoin") == 1
    assert "cannot start, exiting: lightningd runs on mainnet" in proc.log_text()
    for options, fragment in [
        ({"l2custody-policy": "lenient"}, "l2custody-policy='lenient'"),
        ({"l2custody-config": str(tmp_path / "nowhere.toml")}, "no config file at " + str(tmp_path / "nowhere.toml")),
    ]:
        other = PluginProcess()
        try:
            assert other.start_fails(options.pop("l2custody-config", cfg.path), **options) == 1
            assert fragment in other.log_text()
        finally:
            other.close()


# --- openchannel / openchannel2 ------------------------------------------------------------------------


def test_inbound_channels_get_a_fresh_multisig_close_to(plugin: PluginProcess, cfg: Config) -> None:
    first = plugin.hook("openchannel", payload("hook-openchannel-002"))
    second = plugin.hook("openchannel", payload("hook-openchannel-007"))
    v2 = {
        "id": "03864ef025fde8fb587d989186ce6a4a186895ee44a926bfc370e2c366597a3f8f",
        "channel_id": "252d1b0a1e57895e84137f28cf19ab2c35847e284c112fefdecc7afeaa5c1de7",
        "their_funding_msat": 100000000,
        "channel_flags": 1,
        "to_self_delay": 5,
    }
    third = plugin.hook("openchannel2", v2)
    addresses = [a["close_to"] for a in (first, second, third)]
    assert all(a["result"] == "continue" for a in (first, second, third))
    assert len(set(addresses)) == 3
    with Store.open(cfg.store_path) as store:
        for address in addresses:
            rec = store.address_by_script(address_to_script(address, "regtest"))
            assert rec is not None and rec.issued and rec.label.endswith("via cln-test")
    assert [e.details["close_to"] for e in audit(cfg, "inbound-accepted")][-3:] == addresses


def test_inbound_policy_options_reject(fresh: tuple[PluginProcess, Config]) -> None:
    proc, cfg = fresh
    denied = payload("hook-openchannel-002")["id"]
    assert proc.start(cfg, **{"l2custody-min-channel": "600000", "l2custody-denied-peer": [denied]}) is None
    assert proc.hook("openchannel", payload("hook-openchannel-007")) == {
        "result": "reject",
        "error_message": "channel too small: 500000 sat, the minimum is 600000 sat",
    }
    assert proc.hook("openchannel", payload("hook-openchannel-002")) == {
        "result": "reject",
        "error_message": "this node does not accept channels from you",
    }


# --- rpc_command ------------------------------------------------------------------------------------------


def test_withdraw_to_a_foreign_address_is_refused_naming_the_rule(plugin: PluginProcess, cfg: Config) -> None:
    error = refusal(plugin.hook("rpc_command", rpc_command("withdraw-027")))
    assert "rule spend-destination" in error["message"] and CAPTURED_FOREIGN in error["message"]
    assert "allowed_destinations" in error["message"] and str(cfg.path) in error["message"]
    positional = {"id": "cli:withdraw#1", "method": "withdraw", "params": [CAPTURED_FOREIGN, 1000]}
    refusal(plugin.hook("rpc_command", positional))
    assert plugin.hook("rpc_command", rpc_command("withdraw-027", destination=ours(cfg, 4))) == CONTINUE
    assert audit(cfg, "rpc-refused")[0].details["destination"] == CAPTURED_FOREIGN


def test_close_rules(plugin: PluginProcess, cfg: Config) -> None:
    assert plugin.hook("rpc_command", rpc_command("close-012")) == CONTINUE
    assert plugin.hook("rpc_command", rpc_command("close-022", destination=ours(cfg, 6))) == CONTINUE
    error = refusal(plugin.hook("rpc_command", rpc_command("close-012", destination=CAPTURED_FOREIGN)))
    assert "rule close-destination" in error["message"]


def test_opens_with_a_foreign_close_to_and_splices_are_refused(plugin: PluginProcess, cfg: Config) -> None:
    assert "rule close-to" in refusal(plugin.hook("rpc_command", rpc_command("fundchannel_start-002")))["message"]
    mine = rpc_command("fundchannel_start-002", close_to=ours(cfg, 7))
    assert plugin.hook("rpc_command", mine) == CONTINUE
    assert plugin.hook("rpc_command", rpc_command("fundchannel-008")) == CONTINUE
    splice = {"id": "s", "method": "splice_init", "params": {"channel_id": "ab" * 32, "relative_amount": 1}}
    assert "rule splice" in refusal(plugin.hook("rpc_command", splice))["message"]


def test_psbt_paying_only_ours_passes_without_asking_the_node(plugin: PluginProcess, cfg: Config) -> None:
    from l2custody.wallet.psbt import TxOut

    desc = descriptor()
    target = ours(cfg, 9)
    psbt = build_psbt(
        desc,
        coins(desc, [80_000]),
        [TxOut(address_to_script(target, "regtest"), 30_000, target)],
        change_index=3,
        fee_rate=2.0,
        locktime=0,
    )
    request = {"id": "p", "method": "signpsbt", "params": {"psbt": psbt_to_base64(psbt)}}
    assert plugin.hook("rpc_command", request) == CONTINUE


def test_a_session_psbt_passes_whole(plugin: PluginProcess, cfg: Config) -> None:
    """What the CLN backend broadcasts with sendpsbt: a funding session l2custody verified."""
    from l2custody.wallet.psbt import TxOut

    desc = descriptor()
    psbt = build_psbt(
        desc,
        coins(desc, [90_000]),
        [TxOut(address_to_script(CAPTURED_FOREIGN, "regtest"), 50_000, CAPTURED_FOREIGN)],
        change_index=4,
        fee_rate=2.0,
        locktime=0,
    )
    with Store.open(cfg.store_path) as store:
        store.add_psbt(
            "fs-feedbeef", store.wallet().id, "funding", "secured", psbt_to_base64(psbt), psbt_fingerprint(psbt), {}
        )
    request = {"id": "b", "method": "sendpsbt", "params": {"psbt": psbt_to_base64(psbt)}}
    assert plugin.hook("rpc_command", request) == CONTINUE
    assert audit(cfg, "rpc-allowed")[-1].details["session"] == "fs-feedbeef"


def test_psbt_the_node_must_explain_is_refused_when_the_node_cannot_be_asked(plugin: PluginProcess) -> None:
    """No lightningd here: listpeerchannels fails on a missing socket, so the check fails closed."""
    error = refusal(plugin.hook("rpc_command", rpc_command("signpsbt-028")), code=71)
    assert "fails closed" in error["message"]
    error = refusal(plugin.hook("rpc_command", rpc_command("sendpsbt-029")), code=71)
    assert "sendpsbt refused" in error["message"]


def test_malformed_requests_are_refused(plugin: PluginProcess) -> None:
    bad = {"id": "m", "method": "withdraw", "params": "everything"}
    assert "rule malformed-request" in refusal(plugin.hook("rpc_command", bad))["message"]
    refusal(plugin.hook("rpc_command", rpc_command("signpsbt-028", psbt="bm90IGEgcHNidA==")))
    assert "not a JSON-RPC request" in refusal(plugin.hook("rpc_command", ["withdraw"]), code=71)["message"]
    garbled = {**payload("hook-openchannel-002"), "funding_msat": {"msat": 1}}
    assert plugin.hook("openchannel", garbled)["result"] == "reject"


# --- notifications and methods --------------------------------------------------------------------------------


def test_notifications_land_in_the_audit_log(plugin: PluginProcess, cfg: Config) -> None:
    names = [
        "notification-channel_state_changed-026",
        "notification-channel_opened-004",
        "notification-coin_movement-006",
        "notification-connect-001",
        "notification-disconnect-021",
    ]
    for name in names:
        (topic,) = fixture(name)
        plugin.notify(topic, payload(name))
    plugin.result("custody-address", {"label": "sync point"})  # answered after the notifications
    for name in names:
        (topic,) = fixture(name)
        entries = audit(cfg, topic)
        assert entries and entries[-1].details == payload(name) and entries[-1].actor == "cln-plugin"


def test_custody_address_and_status(plugin: PluginProcess, cfg: Config) -> None:
    result = plugin.result("custody-address", ["for chan 9"])
    with Store.open(cfg.store_path) as store:
        rec = store.address_by_script(address_to_script(result["address"], "regtest"))
    assert rec is not None and rec.issued and rec.label == "for chan 9"
    response = plugin.call("custody-status", {})
    assert "error" in response  # no lightningd to list channels here
    assert "No such file" in response["error"]["message"] or "connect" in response["error"]["message"].lower()


def test_audit_mode_never_refuses(fresh: tuple[PluginProcess, Config]) -> None:
    proc, cfg = fresh
    assert proc.start(cfg, **{"l2custody-policy": "audit"}) is None
    assert proc.hook("rpc_command", rpc_command("withdraw-027")) == CONTINUE
    assert proc.hook("rpc_command", rpc_command("signpsbt-028")) == CONTINUE  # even after the failed lookup
    assert [e.details["rule"] for e in audit(cfg, "rpc-would-refuse")] == ["spend-destination"]
    assert len(audit(cfg, "rpc-check-failed")) == 1


def test_fail_closed_after_the_store_is_damaged(fresh: tuple[PluginProcess, Config]) -> None:
    """A real internal error inside the handlers: another process dropped the store's audit table."""
    proc, cfg = fresh
    assert proc.start(cfg) is None
    allowed = rpc_command("withdraw-027", destination=ours(cfg, 2))
    assert proc.hook("rpc_command", allowed) == CONTINUE
    with sqlite3.connect(cfg.store_path) as other:
        other.execute("DROP TABLE audit")
    error = refusal(proc.hook("rpc_command", allowed), code=71)
    assert "withdraw refused by the l2custody plugin: its custody check failed" in error["message"]
    assert proc.hook("openchannel", payload("hook-openchannel-002"))["result"] == "reject"
    proc.notify("connect", payload("notification-connect-001"))
    refusal(proc.hook("rpc_command", rpc_command("close-012")), code=71)  # still alive, still closed
    assert "no such table: audit" in proc.log_text()
    assert proc.proc.poll() is None
