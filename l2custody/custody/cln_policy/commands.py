"""The commands the ``rpc_command`` hook polices, and the rule for each.

==========================================  ===========================================
command                                      allowed when
==========================================  ===========================================
``close``                                    no ``destination``, or one of our addresses
``withdraw`` ``multiwithdraw`` ``txprepare``  every destination ours or policy-allowed
``fundchannel`` ``fundchannel_start``        no ``close_to``, or one of our addresses
``multifundchannel`` ``openchannel_init``
``signpsbt`` ``sendpsbt``                    SIGHASH_ALL, fee within the caps, every output
                                             explained (see ``psbt_check``)
``splice_init`` ``splice_update``            never (splices are not checked)
``splice_signed`` ``dev-splice``
``exposesecret``                             never (it hands out the HSM secret)
``plugin``                                   ``list`` only
==========================================  ===========================================

Every numeric feerate (``feerate``, ``funding_feerate``, ``commitment_feerate``, close's
``feerange``) must be within ``[policy] max_fee_rate``.

Parameters may come by name (an object) or by position (an array, as
``lightning-cli`` sends them); positions are lightningd v25.12.1's own
(:data:`PARAMS`). A positional parameter holding an address in a slot that
is not an address slot is refused, so an order mismatch can never hide a
destination from the check.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from l2custody.amounts import format_sats
from l2custody.custody.cln_policy.decision import (
    ALLOW_NO_DESTINATION,
    ALLOW_OURS,
    ALLOW_POLICY,
    ALLOW_UNFILTERED,
    RULE_CLOSE_DESTINATION,
    RULE_CLOSE_TO,
    RULE_FEE,
    RULE_MALFORMED,
    RULE_PLUGIN_CONTROL,
    RULE_SECRET,
    RULE_SPEND_DESTINATION,
    RULE_SPLICE,
    CustodyFacts,
    Verdict,
    allow_hint,
)
from l2custody.custody.cln_policy.psbt_check import Malformed, PsbtCheck, first_pass
from l2custody.errors import NetworkMismatch, UsageError

SPEND_COMMANDS = ("withdraw", "multiwithdraw", "txprepare")
OPEN_COMMANDS = ("fundchannel", "fundchannel_start", "multifundchannel", "openchannel_init")
PSBT_COMMANDS = ("signpsbt", "sendpsbt")
SPLICE_COMMANDS = ("splice_init", "splice_update", "splice_signed", "dev-splice")
SECRET_COMMANDS = ("exposesecret",)
PLUGIN_COMMAND = "plugin"
#: ``plugin`` subcommands that run: ``list`` only. ``stop`` would remove a plugin (this one
#: is not dynamic, so lightningd refuses that too); ``start``, ``startdir`` and ``rescan``
#: run a program as lightningd, which can read the node's secrets or hook commands after us.
PLUGIN_SUBCOMMANDS_ALLOWED = ("list",)
#: Parameters holding a feerate (checked against ``[policy] max_fee_rate``).
FEERATE_PARAMS = ("feerate", "funding_feerate", "commitment_feerate")

#: The methods the plugin registers its rpc_command hook for (lightningd's hook filter).
FILTERED = (
    "close",
    *SPEND_COMMANDS,
    *PSBT_COMMANDS,
    *OPEN_COMMANDS,
    *SPLICE_COMMANDS,
    *SECRET_COMMANDS,
    PLUGIN_COMMAND,
)

#: lightningd's own parameter tables (``cln_params.json``, generated from a v25.12.1 tree by
#: ``tests/tools/cln_params.py``): the positional order is that of each handler's ``param()``
#: call, which is what lightningd runs (``fundchannel``'s schema lists ``close_to`` before
#: ``utxos``; the code takes ``utxos`` at 5, ``push_msat`` at 6, ``close_to`` at 7).
PARAMS: dict[str, Any] = json.loads((Path(__file__).parent / "cln_params.json").read_text())["commands"]
SIGNATURES: dict[str, tuple[str, ...]] = {name: tuple(entry["positional"]) for name, entry in PARAMS.items()}

#: The positional slots that may hold an address.
_ADDRESS_SLOTS = {"destination", "close_to"}


@dataclass(frozen=True)
class Destination:
    """An address a command would pay, and where in the command it sits."""

    where: str  # "destination", "outputs[1]", "destinations[0].close_to"
    address: str
    amount: Any = None

    def amount_text(self) -> str:
        if isinstance(self.amount, int) and not isinstance(self.amount, bool):
            return format_sats(self.amount)
        return str(self.amount) if self.amount is not None else "funds"


def _is_address(value: Any) -> bool:
    from l2custody.wallet.addresses import address_to_script

    if not isinstance(value, str):
        return False
    try:
        address_to_script(value, "regtest")
    except NetworkMismatch:
        return True
    except UsageError:
        return False
    return True


def named_params(method: str, params: Any) -> dict[str, Any]:
    """The command's parameters by name; Malformed if they cannot be read safely."""
    if params is None:
        return {}
    if isinstance(params, dict):
        return dict(params)
    if not isinstance(params, list):
        raise Malformed(f"{method} parameters must be an object or an array, got {type(params).__name__}")
    names = SIGNATURES.get(method)
    if names is None:
        raise Malformed(f"pass the parameters of {method} by name (lightning-cli -k)")
    if len(params) > len(names):
        raise Malformed(f"{method} takes at most {len(names)} parameters, got {len(params)}")
    named = dict(zip(names, params, strict=False))
    for name, value in named.items():
        if name not in _ADDRESS_SLOTS and _is_address(value):
            raise Malformed(
                f"positional parameter {name!r} of {method} holds the address {value}; pass the "
                "parameters by name (lightning-cli -k ...) so the plugin can check the destination"
            )
    return named


def check_command(method: str, params: Any, facts: CustodyFacts) -> Verdict | PsbtCheck:
    """The verdict on one command (or, for PSBTs, what remains for the node to explain)."""
    try:
        named = named_params(method, params)
        if method in SECRET_COMMANDS:
            return Verdict.refuse(
                method,
                RULE_SECRET,
                f"{method} refused by the l2custody plugin (rule {RULE_SECRET}): it hands out the node's HSM "
                "secret, which controls the node's funds and channels outside any custody check; read "
                "hsm_secret on the node's machine if you must back it up",
            )
        if method == PLUGIN_COMMAND:
            return _check_plugin(named)
        fee = _check_feerates(method, named, facts)
        if fee is not None:
            return fee
        if method == "close":
            return _check_close(named, facts)
        if method in SPEND_COMMANDS:
            return _check_spend(method, named, facts)
        if method in OPEN_COMMANDS:
            return _check_open(method, named, facts)
        if method in PSBT_COMMANDS:
            return first_pass(method, named.get("psbt"), facts)
        if method in SPLICE_COMMANDS:
            return Verdict.refuse(
                method,
                RULE_SPLICE,
                f"{method} refused by the l2custody plugin (rule {RULE_SPLICE}): a splice can pay "
                "channel funds to any output and the plugin does not check splices; start the plugin "
                "with l2custody-policy=audit to splice",
            )
    except Malformed as exc:
        return Verdict.refuse(
            method, RULE_MALFORMED, f"{method} refused by the l2custody plugin (rule {RULE_MALFORMED}): {exc.message}"
        )
    return Verdict.ok(method, ALLOW_UNFILTERED)


def _script(dest: Destination, method: str, facts: CustodyFacts) -> bytes | None:
    """The destination's script, None for an address of another network; Malformed if no address."""
    from l2custody.wallet.addresses import address_to_script

    if not isinstance(dest.address, str):
        raise Malformed(f"{method} {dest.where} must be an address string, got {dest.address!r}")
    try:
        return address_to_script(dest.address, facts.network)
    except NetworkMismatch:
        return None
    except UsageError as exc:
        raise Malformed(f"{method} {dest.where}: {exc.message}") from None


def _check_close(named: dict[str, Any], facts: CustodyFacts) -> Verdict:
    if named.get("destination") is None:
        return Verdict.ok("close", ALLOW_NO_DESTINATION)
    dest = Destination("destination", named["destination"])
    script = _script(dest, "close", facts)
    if script is not None and facts.ours(script):
        return Verdict.ok("close", ALLOW_OURS, destination=dest.address)
    return Verdict.refuse(
        "close",
        RULE_CLOSE_DESTINATION,
        f"close of {named.get('id')} to {dest.address} refused by the l2custody plugin (rule "
        f"{RULE_CLOSE_DESTINATION}): cooperative closes must pay the custody multisig and "
        f"{dest.address} is not one of its addresses; close without a destination (the channel's "
        "upfront close_to, or the node wallet, which l2custody sweeps) or to an address from "
        "`lightning-cli custody-address`",
        destination=dest.address,
    )


def _spend_destinations(method: str, named: dict[str, Any]) -> list[Destination]:
    if method == "withdraw":
        if named.get("destination") is None:
            raise Malformed("withdraw has no destination")
        return [Destination("destination", named["destination"], named.get("satoshi"))]
    outputs = named.get("outputs")
    if not isinstance(outputs, list) or not outputs:
        raise Malformed(f"{method} outputs must be a non-empty array of {{address: amount}} objects")
    dests: list[Destination] = []
    for i, item in enumerate(outputs):
        if not isinstance(item, dict) or not item:
            raise Malformed(f"{method} outputs[{i}] must be an {{address: amount}} object, got {item!r}")
        dests.extend(Destination(f"outputs[{i}]", address, amount) for address, amount in item.items())
    return dests


def _check_spend(method: str, named: dict[str, Any], facts: CustodyFacts) -> Verdict:
    reasons = []
    for dest in _spend_destinations(method, named):
        script = _script(dest, method, facts)
        if script is not None and facts.ours(script):
            reasons.append((dest.address, ALLOW_OURS))
        elif script is not None and facts.allowed(script):
            reasons.append((dest.address, ALLOW_POLICY))
        else:
            return Verdict.refuse(
                method,
                RULE_SPEND_DESTINATION,
                f"{method} refused by the l2custody plugin (rule {RULE_SPEND_DESTINATION}): "
                f"{dest.where} pays {dest.amount_text()} to {dest.address}, which is neither an address "
                f"of the custody wallet nor an allowed destination; {allow_hint(facts.config_path)}",
                destination=dest.address,
                where=dest.where,
            )
    rule = ALLOW_POLICY if any(r == ALLOW_POLICY for _, r in reasons) else ALLOW_OURS
    return Verdict.ok(method, rule, destinations=[{"address": a, "reason": r} for a, r in reasons])


def _close_tos(method: str, named: dict[str, Any]) -> list[Destination]:
    if method != "multifundchannel":
        value = named.get("close_to")
        return [] if value is None else [Destination("close_to", value)]
    destinations = named.get("destinations")
    if not isinstance(destinations, list):
        raise Malformed("multifundchannel destinations must be an array of objects")
    found = []
    for i, item in enumerate(destinations):
        if not isinstance(item, dict):
            raise Malformed(f"multifundchannel destinations[{i}] must be an object, got {item!r}")
        if item.get("close_to") is not None:
            found.append(Destination(f"destinations[{i}].close_to", item["close_to"]))
    return found


def _check_open(method: str, named: dict[str, Any], facts: CustodyFacts) -> Verdict:
    close_tos = _close_tos(method, named)
    for dest in close_tos:
        script = _script(dest, method, facts)
        if script is None or not facts.ours(script):
            return Verdict.refuse(
                method,
                RULE_CLOSE_TO,
                f"{method} refused by the l2custody plugin (rule {RULE_CLOSE_TO}): {dest.where} "
                f"{dest.address} is not an address of the custody multisig, and channel closes must "
                "pay the multisig; omit close_to or use an address from `lightning-cli custody-address`",
                close_to=dest.address,
                where=dest.where,
            )
    if not close_tos:
        return Verdict.ok(method, ALLOW_NO_DESTINATION)
    return Verdict.ok(method, ALLOW_OURS, close_to=[d.address for d in close_tos])


def _check_plugin(named: dict[str, Any]) -> Verdict:
    subcommand = named.get("subcommand")
    if subcommand in PLUGIN_SUBCOMMANDS_ALLOWED:
        return Verdict.ok(PLUGIN_COMMAND, ALLOW_NO_DESTINATION, subcommand=subcommand)
    target = named.get("plugin") or named.get("directory")
    what = f"plugin {subcommand}" + (f" {target}" if isinstance(target, str) else "")
    return Verdict.refuse(
        PLUGIN_COMMAND,
        RULE_PLUGIN_CONTROL,
        f"{what} refused by the l2custody plugin (rule {RULE_PLUGIN_CONTROL}): only `plugin list` runs while "
        "the custody plugin guards this node; stopping a plugin removes a guard, and starting one runs a "
        f"program with the node's secrets. Change the plugins in lightningd's config and restart it (the "
        "custody plugin itself is not dynamic)",
        subcommand=subcommand if isinstance(subcommand, str) else repr(subcommand),
    )


def _check_feerates(method: str, named: dict[str, Any], facts: CustodyFacts) -> Verdict | None:
    """A numeric feerate above ``[policy] max_fee_rate`` refuses the command."""
    from l2custody.custody.cln_policy.feerate import sat_per_vbyte

    cap = facts.policy.max_fee_rate
    rates: list[tuple[str, Any]] = [(name, named[name]) for name in FEERATE_PARAMS if named.get(name) is not None]
    feerange = named.get("feerange") if method == "close" else None
    if feerange is not None:
        if not isinstance(feerange, list):
            raise Malformed(f"close feerange must be an array of two feerates, got {feerange!r}")
        rates += [(f"feerange[{i}]", value) for i, value in enumerate(feerange)]
    for name, value in rates:
        rate = sat_per_vbyte(name, value)
        if rate is not None and cap is not None and rate > cap + 1e-9:
            return Verdict.refuse(
                method,
                RULE_FEE,
                f"{method} refused by the l2custody plugin (rule {RULE_FEE}): {name}={value} is {rate:g} sat/vB, "
                f"above the cap of {cap:g} sat/vB ([policy] max_fee_rate in {facts.config_path}); lower it, "
                "or raise the cap if this is intended",
                where=name,
            )
    return None
