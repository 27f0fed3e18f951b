"""The CLN plugin's rules on captured lightningd payloads, without lightningd or a plugin process.

``Facts`` answers "ours?"/"allowed?" from explicit script sets (the runtime tests use a real
wallet); node answers come from captured ``listpeerchannels`` output and the
``listaddresses`` shape lightningd v25.12.1 returned (``{"addresses": [{"keyidx", "p2tr"}]}``).
"""

from __future__ import annotations

from typing import Any

import pytest

from l2custody.backends.inbound import InboundRequest
from l2custody.custody.cln_policy.commands import (
    FILTERED,
    SIGNATURES,
    check_command,
    named_params,
)
from l2custody.custody.cln_policy.decision import Verdict
from l2custody.custody.cln_policy.inbound import accept, inbound_request, reject
from l2custody.custody.cln_policy.node import RpcNodeLookup, parse_channels
from l2custody.custody.cln_policy.options import OPTIONS, PluginOptions
from l2custody.custody.cln_policy.psbt_check import Malformed, PsbtCheck, second_pass
from l2custody.errors import UsageError
from l2custody.wallet.addresses import address_to_script
from l2custody.wallet.policy import Policy
from tests.support.cln_plugin import (
    CAPTURED_FOREIGN,
    FUNDCHANNEL_CHANGE,
    MAINNET_ADDRESS,
    RecordedNode,
    fixture,
    payload,
    rpc_command,
)
from tests.support.wallet import descriptor, outside_address

OURS = descriptor().derive(False, 3).address
ALLOWED = outside_address()
#: The node's change output in the captured withdraw (signpsbt-028).
WITHDRAW_CHANGE = "bcrt1pa89rzclu4l234u57qhlegx9eur832umxjgy40q9aezmpnyg6aqvq9hcruk"


class Facts:
    """CustodyFacts over explicit sets (the real ones read the store)."""

    network = "regtest"
    config_path = "/etc/l2custody/config.toml"
    policy = Policy()  # the default fee caps

    def __init__(self, ours: tuple[str, ...] = (OURS,), allowed: tuple[str, ...] = (), session: str | None = None):
        self._ours = {address_to_script(a, "regtest") for a in ours}
        self._allowed = {address_to_script(a, "regtest") for a in allowed}
        self.session = session

    def ours(self, script: bytes) -> bool:
        return bytes(script) in self._ours

    def allowed(self, script: bytes) -> bool:
        return bytes(script) in self._allowed

    def session_of(self, psbt: Any) -> str | None:
        return self.session


def check(name: str, facts: Facts | None = None, **params: Any) -> Verdict | PsbtCheck:
    req = rpc_command(name, **params)
    return check_command(req["method"], req["params"], facts or Facts())


def refused(result: Verdict | PsbtCheck, rule: str, *fragments: str) -> Verdict:
    assert isinstance(result, Verdict) and not result.allow, result
    assert result.rule == rule
    for fragment in fragments:
        assert fragment in result.message
    return result


def allowed(result: Verdict | PsbtCheck, rule: str) -> Verdict:
    assert isinstance(result, Verdict) and result.allow, result
    assert result.rule == rule
    return result


# --- parameters ----------------------------------------------------------------------------------


def test_named_and_positional_parameters() -> None:
    assert named_params("withdraw", {"destination": OURS}) == {"destination": OURS}
    assert named_params("withdraw", [OURS, "all"]) == {"destination": OURS, "satoshi": "all"}
    assert named_params("close", None) == {}
    assert set(FILTERED) >= set(SIGNATURES)


def test_positional_address_in_a_non_address_slot_is_refused() -> None:
    # close id, unilateraltimeout, destination: an address given as the timeout would dodge the check
    with pytest.raises(Malformed, match="pass the parameters by name"):
        named_params("close", ["02" + "11" * 32, CAPTURED_FOREIGN])
    with pytest.raises(Malformed, match="at most 5 parameters"):
        named_params("withdraw", [OURS, 1, 2, 3, 4, 5])
    with pytest.raises(Malformed, match="object or an array"):
        named_params("withdraw", "bcrt1q")


# --- close -----------------------------------------------------------------------------------------


def test_close_without_destination_is_allowed() -> None:
    allowed(check("close-012"), "no-destination")
    allowed(check("close-022"), "no-destination")


def test_close_to_our_address_is_allowed_and_elsewhere_refused() -> None:
    allowed(check("close-012", destination=OURS), "ours")
    refused(
        check("close-012", destination=CAPTURED_FOREIGN),
        "close-destination",
        CAPTURED_FOREIGN,
        "must pay the custody multisig",
        "custody-address",
    )
    # the policy allowlist does not open closes: they must come home
    refused(check("close-012", Facts(allowed=(CAPTURED_FOREIGN,)), destination=CAPTURED_FOREIGN), "close-destination")
    refused(check("close-012", destination=MAINNET_ADDRESS), "close-destination", MAINNET_ADDRESS)
    refused(check("close-012", destination="not-an-address"), "malformed-request", "not a bitcoin address")


def test_positional_close_is_checked_too() -> None:
    result = check_command("close", ["c44c2d3f", None, CAPTURED_FOREIGN], Facts())
    refused(result, "close-destination", CAPTURED_FOREIGN)


# --- withdraw, multiwithdraw, txprepare --------------------------------------------------------------


def test_captured_withdraw_to_an_outside_address_is_refused_naming_the_rule_and_the_fix() -> None:
    verdict = refused(
        check("withdraw-027"),
        "spend-destination",
        CAPTURED_FOREIGN,
        "100,000 sat",
        "[policy] allowed_destinations",
        "/etc/l2custody/config.toml",
        "custody-reload",
    )
    assert verdict.details["destination"] == CAPTURED_FOREIGN


def test_withdraw_to_ours_or_an_allowed_destination_passes() -> None:
    allowed(check("withdraw-027", destination=OURS), "ours")
    allowed(check("withdraw-027", Facts(allowed=(CAPTURED_FOREIGN,))), "policy")
    refused(check("withdraw-027", destination=MAINNET_ADDRESS), "spend-destination")


def test_multiwithdraw_and_txprepare_check_every_output() -> None:
    outputs = [{OURS: 1000}, {CAPTURED_FOREIGN: "2000sat"}]
    refused(
        check_command("multiwithdraw", {"outputs": outputs}, Facts()),
        "spend-destination",
        "outputs[1]",
        "2000sat",
        CAPTURED_FOREIGN,
    )
    ok = check_command("txprepare", [[{OURS: 1000}, {ALLOWED: 5}]], Facts(allowed=(ALLOWED,)))
    assert allowed(ok, "policy").details["destinations"] == [
        {"address": OURS, "reason": "ours"},
        {"address": ALLOWED, "reason": "policy"},
    ]
    refused(check_command("txprepare", {"outputs": [OURS]}, Facts()), "malformed-request", "outputs[0]")
    refused(check_command("withdraw", {"satoshi": 5}, Facts()), "malformed-request", "no destination")


# --- channel opens ---------------------------------------------------------------------------------------


def test_open_with_a_foreign_close_to_is_refused() -> None:
    refused(check("fundchannel_start-002"), "close-to", "bcrt1qkhgwwehusgv789e8f4myqcrrj04pjspq25u73v")
    allowed(check("fundchannel_start-002", close_to=OURS), "ours")
    allowed(check("fundchannel_start-009"), "no-destination")
    allowed(check("fundchannel-008"), "no-destination")
    dests = [
        {"id": "02" + "11" * 32, "amount": 100000, "close_to": OURS},
        {"id": "03" + "22" * 32, "amount": 100000, "close_to": CAPTURED_FOREIGN},
    ]
    refused(check_command("multifundchannel", {"destinations": dests}, Facts()), "close-to", "destinations[1].close_to")


def test_splices_are_refused_and_other_commands_are_not_checked() -> None:
    refused(
        check_command("splice_init", {"channel_id": "ab", "relative_amount": -5000}, Facts()),
        "splice",
        "l2custody-policy=audit",
    )
    allowed(check_command("getinfo", {}, Facts()), "not-checked")


# --- PSBTs -------------------------------------------------------------------------------------------------


def test_psbt_outputs_nobody_explains_go_to_the_node_then_are_refused() -> None:
    first = check("signpsbt-028")
    assert isinstance(first, PsbtCheck)
    assert [o.index for o in first.unexplained] == [0, 1]
    node = RecordedNode(addresses=(WITHDRAW_CHANGE,))
    verdict = refused(
        second_pass(first, RpcNodeLookup(node)),
        "psbt-outputs",
        "output 0 pays 100,000 sat to " + CAPTURED_FOREIGN,
        "not this node's wallet",
    )
    assert verdict.details["output"] == 0


def test_captured_wallet_fundchannel_psbt_is_explained_by_the_node() -> None:
    """signpsbt-012: output 0 funds the channel listpeerchannels reports, output 1 is the node's change."""
    first = check("signpsbt-012")
    assert isinstance(first, PsbtCheck)
    node = RecordedNode(addresses=(FUNDCHANNEL_CHANGE,))
    verdict = allowed(second_pass(first, RpcNodeLookup(node)), "node")
    assert verdict.details["outputs"] == ["channel-funding", "node-wallet"]
    # the change is not the node's: refused
    refused(second_pass(first, RpcNodeLookup(RecordedNode())), "psbt-outputs", "output 1")


def test_psbt_paying_ours_or_allowed_needs_no_node_and_a_session_is_allowed_whole() -> None:
    facts = Facts(ours=(CAPTURED_FOREIGN,), allowed=(WITHDRAW_CHANGE,))
    assert allowed(check("sendpsbt-029", facts), "policy").details["outputs"] == ["ours", "policy"]
    allowed(check("sendpsbt-013", Facts(session="fs-1234abcd")), "session")


def test_unreadable_psbt_is_refused() -> None:
    refused(check("signpsbt-028", psbt="cHNidP8BAAAA"), "malformed-request", "cannot read the PSBT")
    refused(check("sendpsbt-029", psbt=None), "malformed-request", "no readable `psbt`")


def test_node_lookup_errors_propagate_so_the_caller_refuses() -> None:
    def broken(method: str, params: dict[str, Any]) -> Any:
        raise OSError("connection refused")

    with pytest.raises(OSError):
        second_pass(check("signpsbt-028"), RpcNodeLookup(broken))  # type: ignore[arg-type]


# --- node answers ------------------------------------------------------------------------------------------


def test_listpeerchannels_parsing() -> None:
    chans = parse_channels(fixture("listpeerchannels.two"))
    assert [(c.opener, c.total_sat, c.funding_outnum) for c in chans] == [
        ("local", 1_000_000, 1),
        ("remote", 500_000, 0),
    ]
    assert chans[0].close_to_addr == "bcrt1qkhgwwehusgv789e8f4myqcrrj04pjspq25u73v"
    assert chans[1].outpoints() == {("0b20c167eebf8ef81c5ff301232e5f03f87661b4c6cc92801e7ab2efdd06bd69", 0)}
    node = RecordedNode()
    lookup = RpcNodeLookup(node)
    lookup.funding_outpoints()
    lookup.funding_outpoints()
    assert node.calls == ["listpeerchannels"]  # fetched once per check


# --- inbound ------------------------------------------------------------------------------------------------


def test_openchannel_payloads_become_inbound_requests() -> None:
    req = inbound_request("openchannel", payload("hook-openchannel-002"), "cln")
    assert isinstance(req, InboundRequest)
    assert (req.peer_pubkey, req.funding_sat, req.push_sat, req.private, req.csv_delay) == (
        "027210acef2180e87a345078daed81e63b8fded84eaccf7b2d6a9441eb220d24c4",
        1_000_000,
        0,
        True,
        6,
    )
    assert req.channel_reserve_sat == 10_000 and not req.wants_zero_conf
    # openchannel2 (layout of CLN's hook documentation: their_funding_msat, channel_id, no push)
    v2 = {
        "id": "03864ef025fde8fb587d989186ce6a4a186895ee44a926bfc370e2c366597a3f8f",
        "channel_id": "252d1b0a1e57895e84137f28cf19ab2c35847e284c112fefdecc7afeaa5c1de7",
        "their_funding_msat": 100000000,
        "channel_flags": 1,
        "to_self_delay": 5,
        "channel_type": {"bits": [12, 22, 50], "names": ["static_remotekey/even", "anchors/even", "zeroconf/even"]},
    }
    req2 = inbound_request("openchannel2", v2, "cln")
    assert (req2.funding_sat, req2.private, req2.wants_zero_conf, req2.pending_chan_id[:4]) == (
        100_000,
        False,
        True,
        "252d",
    )


@pytest.mark.parametrize(
    "body, fragment",
    [
        ({"id": "02" + "11" * 32, "funding_msat": "lots"}, "funding_msat must be an amount"),
        ({"funding_msat": 1000}, "no peer id"),
        ({"id": "02" + "11" * 32}, "no funding_msat"),
        ("not an object", "must be an object"),
    ],
)
def test_malformed_openchannel_payloads(body: Any, fragment: str) -> None:
    with pytest.raises(Malformed, match=fragment):
        inbound_request("openchannel", body, "cln")


def test_hook_answers() -> None:
    assert accept("bcrt1qxyz") == {"result": "continue", "close_to": "bcrt1qxyz"}
    assert accept(None) == {"result": "continue"}
    assert reject("x" * 600)["error_message"] == "x" * 500


# --- options --------------------------------------------------------------------------------------------------


def test_options_defaults_and_validation() -> None:
    opts = PluginOptions.parse({})
    assert (opts.config_path, opts.mode, opts.node, opts.enforce) == (None, "enforce", "cln", True)
    assert opts.inbound.min_channel_sat == 0 and opts.inbound.allow_private
    opts = PluginOptions.parse(
        {
            "l2custody-policy": "AUDIT",
            "l2custody-min-channel": "0.001btc",
            "l2custody-max-channel": "2000000sat",
            "l2custody-allow-private": False,
            "l2custody-allowed-peer": ["02" + "11" * 32],
        }
    )
    assert not opts.enforce and opts.inbound.min_channel_sat == 100_000
    assert opts.inbound.max_channel_sat == 2_000_000 and not opts.inbound.allow_private
    assert set(OPTIONS) >= {"l2custody-config", "l2custody-policy"}


@pytest.mark.parametrize(
    "options, fragment",
    [
        ({"l2custody-policy": "strict"}, "l2custody-policy='strict'"),
        ({"l2custody-min-channel": "ten"}, "l2custody-min-channel='ten'"),
        ({"l2custody-min-channel": "5000", "l2custody-max-channel": "1000"}, "l2custody-max-channel (1000 sat)"),
        ({"l2custody-allowed-peer": ["nope"]}, "l2custody-allowed-peer/l2custody-denied-peer"),
        ({"l2custody-node": " "}, "l2custody-node must not be empty"),
    ],
)
def test_bad_options_name_the_option(options: dict[str, Any], fragment: str) -> None:
    with pytest.raises(UsageError) as err:
        PluginOptions.parse(options)
    assert fragment in err.value.message
