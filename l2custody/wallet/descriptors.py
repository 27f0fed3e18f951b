"""Which descriptor a wallet has: ``parse_wallet_descriptor`` reads either kind.

- ``wsh(sortedmulti(K, ...))``: a k-of-n multisig (``descriptor.MultisigDescriptor``);
- ``wsh(<miniscript>)``: a multisig with time-locked recovery paths
  (``miniscript.RecoveryDescriptor``).

Both offer what the wallet pipeline uses (``kind`` says which one it is);
``WalletDescriptor`` is the type of either.
"""

from __future__ import annotations

from l2custody.wallet.descriptor import MultisigDescriptor
from l2custody.wallet.miniscript import RecoveryDescriptor

WalletDescriptor = MultisigDescriptor | RecoveryDescriptor

#: What a plain multisig descriptor starts with; any other ``wsh(`` is read as a miniscript.
_MULTISIG_HEADS = ("wsh(sortedmulti(", "wsh(multi(")


def is_miniscript(text: str) -> bool:
    """True if ``text`` (one descriptor or a receive/change pair) is a ``wsh`` miniscript, not a multisig."""
    words = (text or "").split()
    if not words:
        return False
    body = words[0].split("#")[0]
    return body.startswith("wsh(") and not body.startswith(_MULTISIG_HEADS)


def parse_wallet_descriptor(text: str, network: str | None = None) -> WalletDescriptor:
    """The wallet descriptor in ``text``: a MultisigDescriptor or a RecoveryDescriptor.

    Same rules as their ``parse``: a checksum is verified when present, and
    ``network`` (else what the keys say) is checked against the keys.
    """
    if is_miniscript(text):
        return RecoveryDescriptor.parse(text, network)
    return MultisigDescriptor.parse(text, network)


def parse_wallet_pair(receive: str, change: str, network: str | None = None, ordered: bool = False) -> WalletDescriptor:
    """A receive (``/0/*``) and a change (``/1/*``) descriptor of one wallet, of either kind."""
    if is_miniscript(receive):
        return RecoveryDescriptor.parse_pair(receive, change, network=network, ordered=ordered)
    return MultisigDescriptor.parse_pair(receive, change, network=network, ordered=ordered)


__all__ = ["WalletDescriptor", "is_miniscript", "parse_wallet_descriptor", "parse_wallet_pair"]
