"""The vocabulary of the plugin's decisions: verdicts, rule names, and what a
check may ask of the wallet (:class:`CustodyFacts`) and of the node
(:class:`NodeLookup`).

A :class:`Verdict` says whether lightningd may run a command and which rule
decided; a refusal's ``message`` is what the caller of the command reads, so
it names the rule and how to allow the action.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # pragma: no cover
    from l2custody.wallet.policy import Policy

#: The audit log's actor for everything the plugin writes (watch reads its channel notifications).
PLUGIN_ACTOR = "cln-plugin"

#: Rules that refuse (their names appear in messages and in the audit log).
RULE_CLOSE_DESTINATION = "close-destination"  # close(destination=...) must pay the multisig
RULE_CLOSE_TO = "close-to"  # fundchannel & co: an explicit close_to must be the multisig
RULE_SPEND_DESTINATION = "spend-destination"  # withdraw/multiwithdraw/txprepare outputs
RULE_PSBT_OUTPUTS = "psbt-outputs"  # signpsbt/sendpsbt: every output explained
RULE_SPLICE = "splice"  # splices are not checked, so refused
RULE_SIGHASH = "psbt-sighash"  # signpsbt/sendpsbt: only SIGHASH_ALL (or the default) is signed
RULE_FEE = "fee"  # a PSBT's fee or a command's feerate above the [policy] caps
RULE_SECRET = "secret"  # exposesecret hands out the node's HSM secret
RULE_PLUGIN_CONTROL = "plugin-control"  # plugin stop/start/startdir/rescan
RULE_MALFORMED = "malformed-request"  # parameters we cannot read
RULE_CHECK_FAILED = "check-failed"  # an internal error: fail closed

#: Reasons that allow.
ALLOW_OURS = "ours"  # pays the custody multisig
ALLOW_POLICY = "policy"  # in [policy] allowed_destinations (or allow_any_destination)
ALLOW_NO_DESTINATION = "no-destination"  # nothing leaves: node wallet / upfront close_to
ALLOW_SESSION = "session"  # the PSBT is a funding/spend session l2custody verified
ALLOW_NODE = "node"  # node wallet change or this node's channel funding outputs
ALLOW_UNFILTERED = "not-checked"  # a command the plugin does not police

KEY_ALLOWED = "[policy] allowed_destinations"


@dataclass(frozen=True)
class Verdict:
    """Whether lightningd may run ``command``; ``rule`` names the deciding rule."""

    allow: bool
    rule: str
    command: str
    message: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def ok(cls, command: str, rule: str, **details: Any) -> Verdict:
        return cls(True, rule, command, "", details)

    @classmethod
    def refuse(cls, command: str, rule: str, message: str, **details: Any) -> Verdict:
        return cls(False, rule, command, message, details)

    def to_dict(self) -> dict[str, Any]:
        return {
            "allow": self.allow,
            "rule": self.rule,
            "command": self.command,
            "message": self.message,
            **self.details,
        }


class CustodyFacts(Protocol):
    """What the checks need to know about the custody wallet (no network)."""

    network: str  # embit name of the node's (= the wallet's) network
    config_path: str  # quoted in "how to allow" messages

    @property
    def policy(self) -> Policy:
        """The ``[policy]`` section: its fee caps apply to every spend."""

    def ours(self, script: bytes) -> bool:
        """True if ``script`` is an address of our descriptor (within the gap window)."""

    def allowed(self, script: bytes) -> bool:
        """True if the operator's policy allows paying ``script``."""

    def session_of(self, psbt: Any) -> str | None:
        """The id of a live l2custody session whose unsigned transaction is ``psbt``'s."""


class NodeLookup(Protocol):
    """What only the node knows. May raise (the caller then refuses)."""

    def owns_address(self, address: str) -> bool:
        """True if ``address`` belongs to the node's own on-chain wallet."""

    def funding_outpoints(self) -> set[tuple[str, int]]:
        """(txid, output index) of every channel funding output the node committed to."""


def allow_hint(config_path: str) -> str:
    """How an operator allows a destination (the tail of a refusal message)."""
    return (
        f"to allow it, add the address to {KEY_ALLOWED} in {config_path} and run "
        "`lightning-cli custody-reload` (or start the plugin with l2custody-policy=audit "
        "to only log such commands)"
    )
