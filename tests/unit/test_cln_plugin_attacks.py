"""The real plugin process under attack, driven over stdio the way lightningd v25.12.1 drives it
(its hook envelope first, the caller's request spliced in token by token, as
``rpc_command_hook_serialize`` copies it).

Every attack is generated (hypothesis, derandomized) over every filtered command. The oracle is
the custody rule written out here, independent of the plugin's code: a request must be refused
when lightningd would act on something the rules forbid, and must run when it preserves
custody. The tallies (attempts, bypasses, false refusals) are printed at the end of the module
(``pytest -s``) and must show zero bypasses and zero false refusals.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from l2custody.config import Config
from l2custody.custody.cln_policy.commands import FILTERED, PARAMS
from l2custody.wallet.addresses import address_to_script
from l2custody.wallet.policy import Policy
from l2custody.wallet.psbt import TxOut, build_psbt, psbt_to_base64
from l2custody.wallet.review import summarize
from tests.support.cln_plugin import CAPTURED_FOREIGN, PluginProcess, payload, rpc_command
from tests.support.wallet import coins, descriptor

PEER = "02" + "11" * 32
OURS = descriptor().derive(False, 5).address
FOREIGN = CAPTURED_FOREIGN
POLICY = Policy()  # the test wallet's [policy]: the default caps
EXAMPLES = settings(
    max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

TALLY: Counter[str] = Counter()


@pytest.fixture(scope="module", autouse=True)
def tally() -> Iterator[None]:
    yield
    print(
        f"\nCLN plugin attacks: {TALLY['attempts']} attempts, {TALLY['bypasses']} bypasses, "
        f"{TALLY['false_refusals']} false refusals ({TALLY['refused']} refused, {TALLY['allowed']} allowed)"
    )


@pytest.fixture(scope="module")
def cfg(tmp_path_factory: pytest.TempPathFactory, make_plugin_wallet: Callable[..., Config]) -> Config:
    return make_plugin_wallet(tmp_path_factory.mktemp("attacks") / "w")


@pytest.fixture(scope="module")
def plugin(cfg: Config) -> Iterator[PluginProcess]:
    proc = PluginProcess()
    assert proc.start(cfg, **{"l2custody-node": "cln-attacked"}) is None
    yield proc
    assert proc.proc.poll() is None, "the plugin died during the attacks"
    proc.close()


def judged(answer: Any, *, must_refuse: bool, rule: str | None = None) -> None:
    """Count one attempt against the oracle, then assert it."""
    refused = isinstance(answer, dict) and "return" in answer and "error" in answer["return"]
    TALLY["attempts"] += 1
    TALLY["refused" if refused else "allowed"] += 1
    if must_refuse and not refused:
        TALLY["bypasses"] += 1
    if refused and not must_refuse:
        TALLY["false_refusals"] += 1
    assert refused == must_refuse, answer
    if refused and rule is not None:
        error = answer["return"]["error"]
        assert error["data"]["rule"] == rule, error


def alive(proc: PluginProcess) -> None:
    """The plugin still answers, and correctly."""
    assert proc.hook("rpc_command", rpc_command("close-012")) == {"result": "continue"}
    assert proc.proc.poll() is None


# --- PSBTs ------------------------------------------------------------------------------------------------


def psbt(*, fee: int = 300, spend: int = 80_000, sighash: int | None = None) -> str:
    """A multisig PSBT paying only our own address: ``spend - fee`` to it."""
    desc = descriptor()
    to_us = TxOut(address_to_script(OURS, "regtest"), spend, OURS)
    built = build_psbt(desc, coins(desc, [spend]), [to_us], None, 1.0, 0, subtract_fee_from=0)
    built.outputs[0].value = spend - fee
    if sighash is not None:
        built.inputs[0].sighash_type = sighash
    return psbt_to_base64(built)


def fee_breaks_policy(text: str) -> bool:
    """The wallet's own review (not the plugin's code) says the fee is above a cap."""
    from l2custody.wallet.psbt import load_psbt

    summary = summarize(load_psbt(text), descriptor())
    assert summary.fee is not None and summary.fee_rate is not None
    return summary.fee > (POLICY.max_fee_sat or 0) or summary.fee_rate > (POLICY.max_fee_rate or 0)


# --- 1. duplicate members ------------------------------------------------------------------------------------

#: Per command: a member whose evil value lightningd would run, and a benign one the plugin allows.
DUPLICATES: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {
    "close": ("destination", {"id": PEER, "destination": FOREIGN}, {"id": PEER}),
    "withdraw": ("destination", {"destination": FOREIGN, "satoshi": 1000}, {"destination": OURS, "satoshi": 1000}),
    "signpsbt": ("psbt", {"psbt": psbt(spend=500_000, fee=150_000)}, {"psbt": psbt()}),
    "sendpsbt": ("psbt", {"psbt": psbt(sighash=0x83)}, {"psbt": psbt()}),
    "fundchannel_start": ("close_to", {"id": PEER, "amount": 100_000, "close_to": FOREIGN}, {"id": PEER, "amount": 1}),
    "fundchannel": ("close_to", {"id": PEER, "amount": 100_000, "close_to": FOREIGN}, {"id": PEER, "amount": 1}),
}


def escaped(name: str, how: int) -> str:
    """``name`` as a raw JSON key: plain, or with one letter written as a \\u escape."""
    if how == 0:
        return name
    i = how % len(name)
    return name[:i] + f"\\u{ord(name[i]):04x}" + name[i + 1 :]


def members(pairs: list[tuple[str, Any]]) -> bytes:
    return ("{" + ",".join(f'"{key}":{json.dumps(value)}' for key, value in pairs) + "}").encode()


@EXAMPLES
@given(
    command=st.sampled_from(sorted(DUPLICATES) + ["splice_init"]),
    where=st.sampled_from(["params", "method", "inner"]),
    evil_first=st.booleans(),
    escape=st.integers(0, 12),
)
def test_duplicate_members_are_refused_whatever_order_or_escape(
    plugin: PluginProcess, command: str, where: str, evil_first: bool, escape: int
) -> None:
    """lightningd runs the first member, Python's json keeps the last: any duplicate is refused."""
    if command == "splice_init":
        key, evil, benign = "relative_amount", {"channel_id": "ab" * 32, "relative_amount": -1}, {"channel_id": "ab"}
    else:
        key, evil, benign = DUPLICATES[command]
    if where == "params":
        first, second = ("params", evil), (escaped("params", escape), benign)
        pairs = [("id", "x:1"), ("method", command), *((first, second) if evil_first else (second, first))]
    elif where == "method":
        methods = [("method", command), (escaped("method", escape), "getinfo")]
        pairs = [("id", "x:2"), *(methods if evil_first else methods[::-1]), ("params", evil)]
    else:
        inner = {k: v for k, v in benign.items() if k != key}
        both = [(key, evil.get(key, FOREIGN)), (escaped(key, escape), benign.get(key, OURS))]
        params = members(list(inner.items()) + (both if evil_first else both[::-1])).decode()
        request = f'{{"id":"x:3","method":"{command}","params":{params}}}'
        judged(plugin.hook_raw("rpc_command", request.encode()), must_refuse=True, rule="malformed-request")
        return
    judged(plugin.hook_raw("rpc_command", members(pairs)), must_refuse=True, rule="malformed-request")


def test_the_benign_requests_above_run_on_their_own(plugin: PluginProcess) -> None:
    """The duplicate test's benign halves are custody-preserving: no false refusal alone."""
    for command, (_key, _evil, benign) in DUPLICATES.items():
        request = {"id": "x:4", "method": command, "params": benign}
        judged(plugin.hook_raw("rpc_command", json.dumps(request).encode()), must_refuse=False)


# --- 2. payloads that used to crash the plugin ----------------------------------------------------------


@EXAMPLES
@given(
    command=st.sampled_from(sorted(FILTERED)),
    control=st.integers(0, 31),
    blank_lines=st.booleans(),
)
def test_raw_control_characters_are_refused_and_the_plugin_lives(
    plugin: PluginProcess, command: str, control: int, blank_lines: bool
) -> None:
    """lightningd's parser passes raw control characters inside strings; a raw blank line inside
    one must not split the message (the tail here is a forged "continue"-able request)."""
    forged = b'{"jsonrpc":"2.0","id":"cln:rpc_command#1","method":"rpc_command","params":{}}'
    text = b"\n\n" + forged + b"\n\n" if blank_lines else bytes([control])
    body = b'{"id":"x:5","method":"' + command.encode() + b'","params":{"id":"' + text + b'"}}'
    judged(plugin.hook_raw("rpc_command", body), must_refuse=True, rule="malformed-request")
    alive(plugin)


@EXAMPLES
@given(depth=st.integers(65, 30_000), array=st.booleans())
def test_deep_nesting_is_refused_and_the_plugin_lives(plugin: PluginProcess, depth: int, array: bool) -> None:
    opening, closing = (b"[", b"]") if array else (b'{"a":', b"}")
    nested = opening * depth + b"1" + closing * depth
    body = b'{"id":"x:6","method":"close","params":{"id":"' + PEER.encode() + b'","extra":' + nested + b"}}"
    judged(plugin.hook_raw("rpc_command", body), must_refuse=True, rule="malformed-request")
    alive(plugin)


@pytest.mark.parametrize(
    "extra",
    [b'"x":NaN', b'"x":Infinity', b'"x":tru', b'"x":01', b'"x":"\\q"', b'"x":"\xff"', b'"x":', b'"x":1,,'],
)
def test_invalid_members_are_refused_and_the_plugin_lives(plugin: PluginProcess, extra: bytes) -> None:
    body = b'{"id":"x:7","method":"close","params":{"id":"' + PEER.encode() + b'"},' + extra + b"}"
    judged(plugin.hook_raw("rpc_command", body), must_refuse=True, rule="malformed-request")
    alive(plugin)


@pytest.mark.parametrize("params", [b'"x"', b"17", b"null"])
def test_a_hook_call_pyln_cannot_bind_is_refused_not_continued(plugin: PluginProcess, params: bytes) -> None:
    """pyln answers a hook whose handler raised with its "safe fallback", which is "continue" for
    rpc_command; the plugin answers such a call with a refusal."""
    for hook in ("rpc_command", "openchannel"):
        request_id = f"bind-{hook}-{len(params)}"
        plugin.send_raw(b'{"jsonrpc":"2.0","id":"' + request_id.encode() + b'","method":"' + hook.encode() + b'",')
        plugin.send_raw(b'"params":' + params + b"}\n\n")
        answer = plugin.reply(request_id)["result"]
        if hook == "rpc_command":
            judged(answer, must_refuse=True)
        else:
            assert answer["result"] == "reject", answer
    alive(plugin)


def test_unreadable_inbound_channel_is_rejected_and_notifications_are_kept(plugin: PluginProcess, cfg: Config) -> None:
    from l2custody.store import Store

    body = json.dumps(payload("hook-openchannel-002")).encode()[:-1] + b',"id":"dup"}'
    assert plugin.hook_raw("openchannel", body)["result"] == "reject"
    plugin.send_raw(b'{"jsonrpc":"2.0","method":"connect","params":{"connect":{"id":"\t"}}}\n\n')
    plugin.send_raw(b"not json at all\n\n")
    alive(plugin)
    with Store.open(cfg.store_path) as store:
        actions = [e.action for e in store.audit_log()]
    assert "connect-unreadable" in actions and "inbound-check-failed" in actions


# --- 3. sighash -------------------------------------------------------------------------------------------------


@EXAMPLES
@given(sighash=st.one_of(st.sampled_from([0, 1, 2, 3, 0x81, 0x82, 0x83]), st.integers(0, 0xFF)))
def test_every_sighash_but_all_is_refused(plugin: PluginProcess, sighash: int) -> None:
    for command in ("signpsbt", "sendpsbt"):
        request = {"id": "x:8", "method": command, "params": {"psbt": psbt(sighash=sighash)}}
        judged(plugin.hook("rpc_command", request), must_refuse=sighash not in (0, 1), rule="psbt-sighash")


# --- 4. fee -------------------------------------------------------------------------------------------------------


def test_two_btc_spent_with_one_small_output_to_us_is_refused(plugin: PluginProcess) -> None:
    drained = psbt(spend=200_000_000, fee=200_000_000 - 10_000)
    for command in ("signpsbt", "sendpsbt"):
        answer = plugin.hook("rpc_command", {"id": "x:9", "method": command, "params": {"psbt": drained}})
        judged(answer, must_refuse=True, rule="fee")
        assert "max_fee_sat" in answer["return"]["error"]["message"]


@EXAMPLES
@given(
    spend=st.sampled_from([20_000, 150_000, 5_000_000, 200_000_000]),
    share=st.one_of(st.integers(100, 2_000), st.integers(2_000, 199_999_000)),
)
def test_fee_extremes_follow_the_policy_caps(plugin: PluginProcess, spend: int, share: int) -> None:
    fee = min(share, spend - 1_000)
    text = psbt(spend=spend, fee=fee)
    request = {"id": "x:10", "method": "signpsbt", "params": {"psbt": text}}
    judged(plugin.hook("rpc_command", request), must_refuse=fee_breaks_policy(text), rule="fee")


@EXAMPLES
@given(
    command=st.sampled_from(["withdraw", "fundchannel", "fundchannel_start", "multifundchannel", "txprepare"]),
    rate=st.one_of(
        st.sampled_from(["slow", "normal", "urgent", "minimum", "6blocks"]),
        st.integers(1, 2_000_000).map(lambda n: f"{n}perkw"),
        st.integers(1, 2_000_000).map(lambda n: f"{n}perkb"),
        st.integers(1, 2_000_000),
    ),
)
def test_feerates_above_the_cap_are_refused(plugin: PluginProcess, command: str, rate: Any) -> None:
    params: dict[str, Any] = {
        "withdraw": {"destination": OURS, "satoshi": 10_000},
        "txprepare": {"outputs": [{OURS: 10_000}]},
        "fundchannel": {"id": PEER, "amount": 100_000},
        "fundchannel_start": {"id": PEER, "amount": 100_000},
        "multifundchannel": {"destinations": [{"id": PEER, "amount": 100_000}]},
    }[command]
    text = str(rate)
    if text.endswith("perkw"):
        sat_vb = int(text[:-5]) * 4 / 1000
    elif text[0].isdigit() and not text.endswith("blocks"):
        sat_vb = int(text.removesuffix("perkb")) / 1000
    else:
        sat_vb = 0.0  # the node's estimate
    request = {"id": "x:11", "method": command, "params": {**params, "feerate": rate}}
    judged(plugin.hook("rpc_command", request), must_refuse=sat_vb > (POLICY.max_fee_rate or 0), rule="fee")


# --- 5, 8. lifecycle and secrets ------------------------------------------------------------------------------


def test_the_plugin_is_not_dynamic_and_plugin_control_and_exposesecret_are_refused(plugin: PluginProcess) -> None:
    other = PluginProcess()
    try:
        assert other.result("getmanifest", {"allow-deprecated-apis": False})["dynamic"] is False
    finally:
        other.close()
    for params in (["stop", "l2custody_plugin.py"], {"subcommand": "stop", "plugin": "/x/l2custody_plugin.py"}):
        judged(plugin.hook("rpc_command", {"id": "p", "method": "plugin", "params": params}), must_refuse=True)
    for sub in ("start", "startdir", "rescan"):
        judged(plugin.hook("rpc_command", {"id": "p", "method": "plugin", "params": [sub, "/tmp/x"]}), must_refuse=True)
    judged(plugin.hook("rpc_command", {"id": "p", "method": "plugin", "params": ["list"]}), must_refuse=False)
    for params in ({"passphrase": "hunter2"}, ["hunter2", "id"]):
        answer = plugin.hook("rpc_command", {"id": "s", "method": "exposesecret", "params": params})
        judged(answer, must_refuse=True, rule="secret")
        assert "hunter2" not in answer["return"]["error"]["message"]


# --- 7. positional parameters -----------------------------------------------------------------------------------

ADDRESS = st.sampled_from([OURS, FOREIGN])
VALUES: dict[str, st.SearchStrategy[Any]] = {
    "id": st.just(PEER),
    "channel_id": st.just("ab" * 32),
    "destination": st.one_of(st.none(), ADDRESS),
    "close_to": st.one_of(st.none(), ADDRESS),
    "satoshi": st.just(10_000),
    "amount": st.just(100_000),
    "relative_amount": st.just(1_000),
    "outputs": st.lists(ADDRESS.map(lambda a: {a: 10_000}), min_size=1, max_size=3),
    "destinations": st.lists(
        st.builds(lambda c: {"id": PEER, "amount": 100_000, **({"close_to": c} if c else {})}, st.none() | ADDRESS),
        min_size=1,
        max_size=2,
    ),
    "feerate": st.sampled_from([None, "normal", "1000perkw", "900000perkw"]),
    "psbt": st.sampled_from([psbt(), psbt(spend=500_000, fee=150_000), psbt(sighash=2)]),
    "subcommand": st.sampled_from(["list", "stop", "start", "rescan"]),
    "plugin": st.just("l2custody_plugin.py"),
    "passphrase": st.just("x"),
    "unilateraltimeout": st.sampled_from([None, 30]),
    "announce": st.sampled_from([None, True]),
    "push_msat": st.sampled_from([None, 0]),
    "minconf": st.sampled_from([None, 1]),
}


def custody_refuses(command: str, named: dict[str, Any]) -> bool:
    """The custody rules, written out: True when lightningd would do something they forbid."""
    if command in ("exposesecret", "splice_init", "splice_update", "splice_signed", "dev-splice"):
        return True
    if command == "plugin":
        return named.get("subcommand") != "list"
    feerate = named.get("feerate")
    if isinstance(feerate, str) and feerate.endswith("perkw") and int(feerate[:-5]) * 4 / 1000 > 200:
        return True
    if named.get("destination") == FOREIGN and command in ("close", "withdraw"):
        return True
    if named.get("close_to") == FOREIGN:
        return True
    if any(FOREIGN in out for out in named.get("outputs") or ()):
        return True
    if any(d.get("close_to") == FOREIGN for d in named.get("destinations") or ()):
        return True
    text = named.get("psbt")
    if text is not None:
        from l2custody.wallet.psbt import load_psbt

        return fee_breaks_policy(text) or any(p.sighash_type not in (None, 0, 1) for p in load_psbt(text).inputs)
    return False


def positional(command: str, named: dict[str, Any]) -> list[Any]:
    """The same request as lightning-cli sends it: lightningd's order, null for a skipped slot."""
    order = PARAMS[command]["positional"]
    values = [named.get(name) for name in order]
    while values and values[-1] is None:
        values.pop()
    return values


@pytest.mark.parametrize("command", sorted(FILTERED))
@settings(max_examples=15, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_every_filtered_command_named_and_positional(plugin: PluginProcess, command: str, data: Any) -> None:
    """Both forms of one request get the same verdict, and it is the custody rule's."""
    order = PARAMS[command]["positional"]
    named = {}
    required = PARAMS[command]["required"]
    for name in order:
        if name in VALUES:
            strategy = VALUES[name].filter(lambda v: v is not None) if name in required else VALUES[name]
            value = data.draw(strategy, label=name)
            if value is not None:
                named[name] = value
    must_refuse = custody_refuses(command, named)
    for params in (named, positional(command, named)):
        judged(plugin.hook("rpc_command", {"id": "x:12", "method": command, "params": params}), must_refuse=must_refuse)


def test_fundchannel_positional_order_is_lightningds(plugin: PluginProcess) -> None:
    """v25.12.1 fundchannel: id amount feerate announce minconf utxos push_msat close_to."""
    ours = [PEER, 100_000, None, None, None, None, 0, OURS]
    judged(plugin.hook("rpc_command", {"id": "f", "method": "fundchannel", "params": ours}), must_refuse=False)
    foreign = [PEER, 100_000, None, None, None, None, None, FOREIGN]
    judged(plugin.hook("rpc_command", {"id": "f", "method": "fundchannel", "params": foreign}), must_refuse=True)


# --- 6. store faults --------------------------------------------------------------------------------------------


@pytest.fixture
def fresh(tmp_path: Path, make_plugin_wallet: Callable[..., Config]) -> Iterator[tuple[PluginProcess, Config]]:
    cfg = make_plugin_wallet(tmp_path / "w")
    proc = PluginProcess()
    assert proc.start(cfg) is None
    yield proc, cfg
    proc.close()


def test_a_deleted_or_replaced_store_refuses_everything(fresh: tuple[PluginProcess, Config]) -> None:
    proc, cfg = fresh
    allowed = rpc_command("withdraw-027", destination=OURS)
    judged(proc.hook("rpc_command", allowed), must_refuse=False)
    saved = cfg.data_dir.with_name("saved")
    shutil.copytree(cfg.data_dir, saved)
    shutil.rmtree(cfg.data_dir)
    answer = proc.hook("rpc_command", allowed)
    judged(answer, must_refuse=True)
    assert "was deleted while l2custody had it open" in answer["return"]["error"]["message"]
    assert proc.hook("openchannel", payload("hook-openchannel-002"))["result"] == "reject"
    assert "error" in proc.call("custody-address", {})
    assert "was deleted" in proc.call("custody-status", {})["error"]["message"]
    shutil.copytree(saved, cfg.data_dir)  # a restored backup is another file: still refused
    answer = proc.hook("rpc_command", allowed)
    judged(answer, must_refuse=True)
    assert "was replaced by another file" in answer["return"]["error"]["message"]
    assert proc.proc.poll() is None


def test_a_locked_store_refuses_within_the_bound(fresh: tuple[PluginProcess, Config]) -> None:
    proc, cfg = fresh
    allowed = rpc_command("withdraw-027", destination=OURS)
    holder = sqlite3.connect(cfg.store_path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        started = time.monotonic()
        answer = proc.hook("rpc_command", allowed)
        waited = time.monotonic() - started
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    judged(answer, must_refuse=True)
    assert "locked" in answer["return"]["error"]["message"]
    assert 1.5 < waited < 6.0, waited
    judged(proc.hook("rpc_command", allowed), must_refuse=False)


def test_no_bypass_and_no_false_refusal() -> None:
    """The tally over this module (runs last in the file)."""
    assert TALLY["attempts"] > 0 and TALLY["bypasses"] == 0 and TALLY["false_refusals"] == 0, TALLY
    if os.environ.get("L2CUSTODY_ATTACK_TALLY"):
        Path(os.environ["L2CUSTODY_ATTACK_TALLY"]).write_text(json.dumps(dict(TALLY)))
