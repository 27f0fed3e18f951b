"""The plugin runtime on a real regtest custody wallet (store, descriptor, config), in-process:
start checks, inbound decisions, command verdicts with their audit entries, notifications,
status, reload, and the fail-closed answers after a real store failure."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from l2custody.config import Config
from l2custody.custody.cln_policy.node import RpcNodeLookup
from l2custody.custody.cln_policy.runtime import (
    INBOUND_ERROR,
    CustodyPlugin,
    PendingCommand,
)
from l2custody.errors import ConfigError, NetworkMismatch, UsageError, WalletNotFound
from l2custody.store import Store
from l2custody.wallet.addresses import address_to_script
from l2custody.wallet.psbt import build_psbt, psbt_fingerprint, psbt_to_base64
from tests.support.cln_plugin import (
    CAPTURED_FOREIGN,
    FUNDCHANNEL_CHANGE,
    RecordedNode,
    fixture,
    payload,
    rpc_command,
)
from tests.support.wallet import coins, descriptor, outside_address


@pytest.fixture
def cfg(tmp_path: Path, make_plugin_wallet: Callable[..., Config]) -> Config:
    return make_plugin_wallet(tmp_path / "w")


def start(cfg: Config, logs: list[tuple[str, str]] | None = None, **options: Any) -> CustodyPlugin:
    sink = logs if logs is not None else []
    opts = {"l2custody-config": str(cfg.path), **{k.replace("_", "-"): v for k, v in options.items()}}
    return CustodyPlugin.start(opts, {"network": "regtest"}, lambda msg, level: sink.append((level, msg)))


def audit(rt: CustodyPlugin, action: str | None = None) -> list[Any]:
    return [e for e in rt.wallet.store.audit_log() if action is None or e.action == action]


def our_address(rt: CustodyPlugin, index: int = 0) -> str:
    return rt.wallet.descriptor.derive(False, index).address


def error_of(answer: Any) -> dict[str, Any]:
    assert isinstance(answer, dict) and "return" in answer, answer
    return answer["return"]["error"]


# --- start ---------------------------------------------------------------------------------------------


def test_start_derives_the_gap_window_and_audits(cfg: Config) -> None:
    rt = start(cfg)
    try:
        assert rt.network == "regtest" and rt.options.enforce
        assert rt.ours(address_to_script(our_address(rt, 19), "regtest"))
        assert rt.ours(rt.wallet.descriptor.derive(True, 19).script_pubkey)
        assert not rt.ours(address_to_script(CAPTURED_FOREIGN, "regtest"))
        (entry,) = audit(rt, "plugin-started")
        assert entry.actor == "cln-plugin" and entry.details["mode"] == "enforce"
    finally:
        rt.close()


def test_start_refuses_a_node_on_another_network(cfg: Config) -> None:
    with pytest.raises(NetworkMismatch) as err:
        CustodyPlugin.start({"l2custody-config": str(cfg.path)}, {"network": "bitcoin"}, lambda m, lv: None)
    assert "lightningd runs on mainnet" in err.value.message and "regtest" in err.value.message
    with pytest.raises(UsageError, match="network"):
        CustodyPlugin.start({"l2custody-config": str(cfg.path)}, {}, lambda m, lv: None)


def test_start_without_a_wallet_or_config_says_so(tmp_path: Path) -> None:
    from l2custody.config import init_config

    empty = init_config(tmp_path / "c.toml", "regtest", data_dir=tmp_path / "d")
    with pytest.raises(WalletNotFound):
        start(empty)
    with pytest.raises(ConfigError) as err:
        CustodyPlugin.start(
            {"l2custody-config": str(tmp_path / "missing.toml")}, {"network": "regtest"}, lambda m, lv: None
        )
    assert "missing.toml" in err.value.message


# --- inbound ---------------------------------------------------------------------------------------


def test_inbound_channel_gets_a_fresh_issued_multisig_close_to(cfg: Config) -> None:
    rt = start(cfg)
    try:
        first = rt.on_openchannel("openchannel", payload("hook-openchannel-002"))
        second = rt.on_openchannel("openchannel", payload("hook-openchannel-007"))
        assert first["result"] == second["result"] == "continue"
        assert first["close_to"] != second["close_to"]
        for answer in (first, second):
            rec = rt.wallet.store.address_by_script(address_to_script(answer["close_to"], "regtest"))
            assert rec is not None and rec.issued and not rec.change and rec.label.startswith("inbound ")
        entries = audit(rt, "inbound-accepted")
        assert [e.details["close_to"] for e in entries] == [first["close_to"], second["close_to"]]
        assert entries[0].subject == "peer 027210acef2180e87a345078daed81e63b8fded84eaccf7b2d6a9441eb220d24c4"
    finally:
        rt.close()


def test_inbound_policy_rejects_and_audit_mode_only_records(cfg: Config) -> None:
    rt = start(cfg, l2custody_min_channel="600000sat")
    try:
        answer = rt.on_openchannel("openchannel", payload("hook-openchannel-007"))  # 500k sat
        assert answer == {
            "result": "reject",
            "error_message": "channel too small: 500000 sat, the minimum is 600000 sat",
        }
        assert rt.on_openchannel("openchannel", payload("hook-openchannel-002"))["result"] == "continue"
        assert [e.details["reason"] for e in audit(rt, "inbound-rejected")] == [answer["error_message"]]
    finally:
        rt.close()
    rt = start(cfg, l2custody_min_channel="600000sat", l2custody_policy="audit")
    try:
        answer = rt.on_openchannel("openchannel", payload("hook-openchannel-007"))
        assert answer["result"] == "continue" and answer["close_to"].startswith("bcrt1q")
        assert len(audit(rt, "inbound-would-reject")) == 1
    finally:
        rt.close()


def test_malformed_inbound_payload_is_rejected_without_internals(cfg: Config) -> None:
    logs: list[tuple[str, str]] = []
    rt = start(cfg, logs)
    try:
        body = {**payload("hook-openchannel-002"), "funding_msat": "lots"}
        assert rt.on_openchannel("openchannel", body) == {"result": "reject", "error_message": INBOUND_ERROR}
        (entry,) = audit(rt, "inbound-check-failed")
        assert "funding_msat must be an amount" in entry.details["error"]
        assert any(level == "error" and "Traceback" in msg for level, msg in logs)
    finally:
        rt.close()


# --- rpc_command --------------------------------------------------------------------------------------


def test_refusals_and_allowances_are_audited(cfg: Config) -> None:
    rt = start(cfg)
    try:
        answer = rt.on_rpc_command(rpc_command("withdraw-027"))
        err = error_of(answer)
        assert err["code"] == 70 and err["data"]["rule"] == "spend-destination"
        assert CAPTURED_FOREIGN in err["message"] and str(cfg.path) in err["message"]
        assert rt.on_rpc_command(rpc_command("withdraw-027", destination=our_address(rt, 5))) == {"result": "continue"}
        assert rt.on_rpc_command(rpc_command("close-012")) == {"result": "continue"}
        (refused,) = audit(rt, "rpc-refused")
        assert refused.subject == "withdraw" and refused.details["request_id"] == "drive:withdraw#12"
        assert [e.details["rule"] for e in audit(rt, "rpc-allowed")] == ["ours", "no-destination"]
        assert rt.counters.refused == 1 and rt.counters.allowed == 2
    finally:
        rt.close()


def test_audit_mode_lets_through_but_records(cfg: Config) -> None:
    logs: list[tuple[str, str]] = []
    rt = start(cfg, logs, l2custody_policy="audit")
    try:
        assert rt.on_rpc_command(rpc_command("withdraw-027")) == {"result": "continue"}
        (entry,) = audit(rt, "rpc-would-refuse")
        assert entry.details["rule"] == "spend-destination"
        assert any(level == "warn" and "audit mode" in msg for level, msg in logs)
    finally:
        rt.close()


def test_psbt_commands_finish_with_the_nodes_answers(cfg: Config) -> None:
    rt = start(cfg)
    try:
        pending = rt.on_rpc_command(rpc_command("signpsbt-012"))
        assert isinstance(pending, PendingCommand) and pending.request_id.endswith("signpsbt#8")
        node = RecordedNode(addresses=(FUNDCHANNEL_CHANGE,))
        assert rt.finish_command(pending, RpcNodeLookup(node)) == {"result": "continue"}
        refused = rt.finish_command(pending, RpcNodeLookup(RecordedNode()))
        assert error_of(refused)["data"]["rule"] == "psbt-outputs"
        assert [e.details["rule"] for e in audit(rt, "rpc-allowed")] == ["node"]
    finally:
        rt.close()


def _psbt_paying(rt: CustodyPlugin, address: str) -> Any:
    from l2custody.wallet.psbt import TxOut

    desc = descriptor()
    out = TxOut(address_to_script(address, "regtest"), 40_000, address)
    return build_psbt(desc, coins(desc, [100_000]), [out], change_index=7, fee_rate=2.0, locktime=0, shuffle=False)


def test_a_live_session_psbt_is_allowed_whole_an_aborted_one_is_not(cfg: Config) -> None:
    rt = start(cfg)
    try:
        psbt = _psbt_paying(rt, CAPTURED_FOREIGN)  # as a funding output would be: foreign to the policy
        store = rt.wallet.store
        store.add_psbt(
            "fs-00000001", rt.wallet.record.id, "funding", "secured", psbt_to_base64(psbt), psbt_fingerprint(psbt), {}
        )
        request = {"id": "x", "method": "sendpsbt", "params": {"psbt": psbt_to_base64(psbt)}}
        assert rt.on_rpc_command(request) == {"result": "continue"}
        assert audit(rt, "rpc-allowed")[-1].details["session"] == "fs-00000001"
        store.update_psbt("fs-00000001", state="aborted")
        pending = rt.on_rpc_command(request)
        assert isinstance(pending, PendingCommand)
        assert [o.index for o in pending.check.unexplained] == [0]  # output 1 is our change
    finally:
        rt.close()


def test_a_broken_store_refuses_with_code_71(cfg: Config) -> None:
    """A real internal error: another process damaged the store (dropped the audit table)."""
    logs: list[tuple[str, str]] = []
    rt = start(cfg, logs)
    try:
        with sqlite3.connect(cfg.store_path) as other:
            other.execute("DROP TABLE audit")
        allowed_before = rpc_command("withdraw-027", destination=our_address(rt, 1))
        err = error_of(rt.on_rpc_command(allowed_before))
        assert err["code"] == 71 and "fails closed" in err["message"] and "audit" in err["message"]
        assert rt.on_openchannel("openchannel", payload("hook-openchannel-002")) == {
            "result": "reject",
            "error_message": INBOUND_ERROR,
        }
        rt.on_notification("connect", payload("notification-connect-001"))  # logged, not raised
        assert rt.counters.notification_errors == 1 and rt.counters.check_failed == 2
        assert any("could not audit the failed check" in msg for _, msg in logs)
    finally:
        rt.close()


def test_audit_mode_lets_commands_through_after_an_internal_error(cfg: Config) -> None:
    rt = start(cfg, l2custody_policy="audit")
    try:
        assert rt.on_rpc_command({"method": 42}) == {"result": "continue"}
        assert rt.on_openchannel("openchannel", {"id": "x"}) == {"result": "continue"}
    finally:
        rt.close()


def test_a_request_that_is_not_json_rpc_is_refused(cfg: Config) -> None:
    rt = start(cfg)
    try:
        err = error_of(rt.on_rpc_command("withdraw everything"))
        assert err["code"] == 71 and "not a JSON-RPC request" in err["message"]
        err = error_of(rt.on_rpc_command({"id": 1, "method": "withdraw", "params": 7}))
        assert err["code"] == 70 and err["data"]["rule"] == "malformed-request"
    finally:
        rt.close()


# --- notifications, status, address, reload --------------------------------------------------------------


@pytest.mark.parametrize(
    "name, subject",
    [
        (
            "notification-channel_state_changed-003",
            "channel c44c2d3f11162a09155e60d0b2aca11d68064500e0a4a7884b0276018f68d803",
        ),
        ("notification-channel_opened-004", "peer 027210acef2180e87a345078daed81e63b8fded84eaccf7b2d6a9441eb220d24c4"),
        ("notification-coin_movement-006", "account c44c2d3f11162a09155e60d0b2aca11d68064500e0a4a7884b0276018f68d803"),
        ("notification-connect-001", "peer 027210acef2180e87a345078daed81e63b8fded84eaccf7b2d6a9441eb220d24c4"),
        ("notification-disconnect-021", "peer 02c221931a5713cb2d14f28921daf8a17b952665ddd55a8e7cffb43243f7ce4633"),
    ],
)
def test_notifications_are_audited(cfg: Config, name: str, subject: str) -> None:
    rt = start(cfg)
    try:
        (topic,) = fixture(name)
        rt.on_notification(topic, payload(name))
        (entry,) = audit(rt, topic)
        assert entry.actor == "cln-plugin" and entry.subject == subject
        assert entry.details == payload(name)
    finally:
        rt.close()


def test_status_classifies_where_each_close_pays(cfg: Config) -> None:
    rt = start(cfg)
    try:
        node = RecordedNode(addresses=("bcrt1ph3yueg684c4ccsymxjc4tggy6n7hfcj4vap3jycrnkpvtruc8dsqwg80jf",))
        status = rt.status(node)
        assert [c["custody"] for c in status["channels"]] == ["foreign", "node-wallet"]
        ours = our_address(rt, 2)
        first = node.channels["channels"][0]
        first["close_to"], first["close_to_addr"] = address_to_script(ours, "regtest").hex(), ours
        second = node.channels["channels"][1]
        del second["close_to"], second["close_to_addr"]
        status = rt.status(node)
        assert [c["custody"] for c in status["channels"]] == ["multisig", "unset"]
        assert status["wallet"]["policy"] == "2-of-3" and status["mode"] == "enforce"
        assert status["decisions"]["refused"] == 0
    finally:
        rt.close()


def test_custody_address_is_issued_and_labelled(cfg: Config) -> None:
    rt = start(cfg)
    try:
        a = rt.new_address("for the close of chan 7")
        b = rt.new_address()
        assert (a["index"], b["index"]) == (0, 1) and a["network"] == "regtest"
        rec = rt.wallet.store.address_by_script(address_to_script(a["address"], "regtest"))
        assert rec is not None and rec.issued and rec.label == "for the close of chan 7"
    finally:
        rt.close()


def test_reload_picks_up_a_new_allowed_destination_and_keeps_the_old_policy_on_error(cfg: Config) -> None:
    rt = start(cfg)
    try:
        assert error_of(rt.on_rpc_command(rpc_command("withdraw-027")))["code"] == 70
        text = cfg.path.read_text()
        cfg.path.write_text(text.replace("allowed_destinations = []", f'allowed_destinations = ["{CAPTURED_FOREIGN}"]'))
        assert rt.reload()["allowed_destinations"] == [CAPTURED_FOREIGN]
        assert rt.on_rpc_command(rpc_command("withdraw-027")) == {"result": "continue"}
        cfg.path.write_text(text.replace("allowed_destinations = []", 'allowed_destinations = ["oops"]'))
        with pytest.raises(ConfigError, match="allowed_destinations"):
            rt.reload()
        assert rt.on_rpc_command(rpc_command("withdraw-027")) == {"result": "continue"}
        assert len(audit(rt, "policy-reloaded")) == 1
    finally:
        rt.close()


def test_the_store_is_shared_with_other_l2custody_processes(cfg: Config) -> None:
    """An address the CLI issues after the plugin started is recognised as ours."""
    rt = start(cfg)
    try:
        from l2custody.wallet.service import Wallet

        with Wallet.open(cfg) as cli_wallet:
            for _ in range(25):  # beyond the plugin's initial gap window
                address = cli_wallet.next_address(label="cli").address
        assert rt.on_rpc_command(rpc_command("close-012", destination=address)) == {"result": "continue"}
        with Store.open(cfg.store_path) as store:
            assert any(e.action == "rpc-allowed" for e in store.audit_log())
        assert outside_address() != address
    finally:
        rt.close()
