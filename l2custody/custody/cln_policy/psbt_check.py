"""``signpsbt`` / ``sendpsbt``: may the node sign or broadcast this PSBT?

First, lightningd must sign with ``SIGHASH_ALL`` and the fee must be within the ``[policy]``
caps (``psbt_limits``), for every PSBT, a session's included. Then every output must be
explained, else the command is refused:

1. the whole PSBT is a live l2custody session (same unsigned transaction and
   spent outputs as a session the wallet verified: its outputs were checked
   before any signer saw it, funding outputs of LND and CLN legs included);
2. otherwise output by output: an address of our multisig, or a destination
   the policy allows;
3. what is left must be the node's own: a channel funding output the node
   committed to (``listpeerchannels``: funding or in-flight outpoint equal to
   this PSBT's txid and output index), or an address of the node's wallet
   (``listaddresses``: change of ``withdraw``, ``fundchannel``...).

Steps 1-2 need only the store (:func:`first_pass`); step 3 asks the node
(:func:`second_pass`), which the plugin does outside lightningd's hook
thread, so no RPC call is made while lightningd waits on the hook.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from l2custody.amounts import format_sats
from l2custody.custody.cln_policy.decision import (
    ALLOW_NODE,
    ALLOW_OURS,
    ALLOW_POLICY,
    ALLOW_SESSION,
    RULE_FEE,
    RULE_PSBT_OUTPUTS,
    RULE_SIGHASH,
    CustodyFacts,
    NodeLookup,
    Verdict,
    allow_hint,
)
from l2custody.errors import PsbtError, UsageError


class Malformed(UsageError):
    """A parameter the plugin cannot read; the command is refused."""


@dataclass(frozen=True)
class OutputFact:
    """One PSBT output the wallet and the policy could not explain."""

    index: int
    value: int
    script: bytes
    address: str | None

    def describe(self) -> str:
        where = self.address or f"script {self.script.hex()}"
        return f"output {self.index} pays {format_sats(self.value)} to {where}"


@dataclass(frozen=True)
class PsbtCheck:
    """A PSBT whose remaining outputs only the node can explain (see :func:`second_pass`)."""

    command: str
    txid: str
    config_path: str
    unexplained: tuple[OutputFact, ...]
    details: dict[str, Any] = field(default_factory=dict)


def read_psbt(command: str, text: Any) -> Any:
    """The embit PSBT of a ``psbt`` parameter; Malformed if absent or unreadable."""
    from l2custody.wallet.psbt import load_psbt

    if not isinstance(text, str) or not text.strip():
        raise Malformed(f"{command} has no readable `psbt` parameter")
    try:
        return load_psbt(text)
    except PsbtError as exc:
        raise Malformed(f"cannot read the PSBT given to {command}: {exc.message}") from None


def first_pass(command: str, text: Any, facts: CustodyFacts) -> Verdict | PsbtCheck:
    """Steps 1-2 (store only): a verdict, or a :class:`PsbtCheck` for the node."""
    from l2custody.custody.psbt_limits import fee_problem, sighash_problem
    from l2custody.wallet.addresses import script_to_address
    from l2custody.wallet.psbt import psbt_txid

    psbt = read_psbt(command, text)
    txid = psbt_txid(psbt)
    problem = sighash_problem(psbt)
    if problem is not None:
        return Verdict.refuse(
            command,
            RULE_SIGHASH,
            f"{command} refused by the l2custody plugin (rule {RULE_SIGHASH}): {problem}",
            txid=txid,
        )
    problem = fee_problem(psbt, facts.policy)
    if problem is not None:
        return Verdict.refuse(
            command,
            RULE_FEE,
            f"{command} refused by the l2custody plugin (rule {RULE_FEE}): {problem} (in {facts.config_path})",
            txid=txid,
        )
    session = facts.session_of(psbt)
    if session is not None:
        return Verdict.ok(command, ALLOW_SESSION, txid=txid, session=session)
    reasons: list[str] = []
    unexplained: list[OutputFact] = []
    for i, out in enumerate(psbt.outputs):
        script = bytes(out.script_pubkey.data)
        if facts.ours(script):
            reasons.append(ALLOW_OURS)
        elif facts.allowed(script):
            reasons.append(ALLOW_POLICY)
        else:
            reasons.append("?")
            unexplained.append(OutputFact(i, int(out.value), script, script_to_address(script, facts.network)))
    details = {"txid": txid, "outputs": reasons}
    if not unexplained:
        rule = ALLOW_POLICY if ALLOW_POLICY in reasons else ALLOW_OURS
        return Verdict.ok(command, rule, **details)
    return PsbtCheck(command, txid, facts.config_path, tuple(unexplained), details)


def second_pass(check: PsbtCheck, node: NodeLookup) -> Verdict:
    """Step 3: every remaining output must be the node's channel funding or wallet."""
    reasons = list(check.details["outputs"])
    outpoints = node.funding_outpoints()
    for out in check.unexplained:
        if (check.txid, out.index) in outpoints:
            reasons[out.index] = "channel-funding"
        elif out.address is not None and node.owns_address(out.address):
            reasons[out.index] = "node-wallet"
        else:
            return Verdict.refuse(
                check.command,
                RULE_PSBT_OUTPUTS,
                f"{check.command} refused by the l2custody plugin (rule {RULE_PSBT_OUTPUTS}): "
                f"{out.describe()}, which is not an address of the custody wallet, not an allowed "
                f"destination, not this node's wallet and not a funding output of this node's "
                f"channels; {allow_hint(check.config_path)}",
                txid=check.txid,
                output=out.index,
                address=out.address,
                value=out.value,
            )
    return Verdict.ok(check.command, ALLOW_NODE, txid=check.txid, outputs=reasons)
