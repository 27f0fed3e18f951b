"""Shared material for the recovery-wallet tests: keys, signers and descriptors of Liana's shapes.

The primary keys are the 2-of-3 vector wallet's (tests/vectors/wallet_2of3.json).
Recovery keys come from BIP-39 mnemonics of fixed entropy (0xa0.. repeated),
so every key has its own master fingerprint, as the descriptor requires.
"""

from __future__ import annotations

from functools import cache

from embit import bip39

from l2custody.wallet.miniscript import RecoveryDescriptor
from l2custody.wallet.signers import SoftwareSigner
from tests.support.wallet import NETWORK, WALLET
from tests.support.wallet import signers as primary_signers

ACCOUNT = "48h/1h/0h/2h"
SUFFIX = "/<0;1>/*"
#: The delay of the recovery path in the usual test wallet (blocks).
DELAY = 10


@cache
def recovery_mnemonics() -> tuple[str, ...]:
    return tuple(bip39.mnemonic_from_bytes(bytes([0xA0 + i]) * 16) for i in range(4))


def recovery_signers() -> list[SoftwareSigner]:
    return [SoftwareSigner.from_mnemonic(m, name=f"r{i}") for i, m in enumerate(recovery_mnemonics())]


def signers() -> list[SoftwareSigner]:
    """The three primary signers, then the four recovery signers."""
    return primary_signers() + recovery_signers()


@cache
def _keys(network: str) -> tuple[str, ...]:
    return tuple(s.account_key(ACCOUNT, network).to_string() + SUFFIX for s in signers())


def keys(network: str = NETWORK) -> tuple[str, ...]:
    """``[fp/48h/1h/0h/2h]tpub.../<0;1>/*`` of A, B, C (primary) then R1..R4 (recovery)."""
    return _keys(network)


def text(delay: int = DELAY, network: str = NETWORK) -> str:
    """2-of-3 primary, R1 alone after ``delay`` blocks: the issue's example."""
    a, b, c, r1 = keys(network)[:4]
    return f"wsh(or_d(multi(2,{a},{b},{c}),and_v(v:pkh({r1}),older({delay}))))"


def stacked_text(network: str = NETWORK) -> str:
    """As Liana stacks two recovery paths: R1 after 10 blocks, then 2-of-(R2,R3) after 20."""
    a, b, c, r1, r2, r3 = keys(network)[:6]
    return (
        f"wsh(or_i(and_v(v:thresh(2,pkh({r2}),a:pkh({r3})),older(20)),"
        f"or_d(multi(2,{a},{b},{c}),and_v(v:pkh({r1}),older(10)))))"
    )


def descriptor(delay: int = DELAY, network: str = NETWORK) -> RecoveryDescriptor:
    return RecoveryDescriptor.parse(text(delay, network), network=network)


def stacked(network: str = NETWORK) -> RecoveryDescriptor:
    return RecoveryDescriptor.parse(stacked_text(network), network=network)


__all__ = ["ACCOUNT", "DELAY", "NETWORK", "WALLET", "descriptor", "keys", "recovery_signers", "signers", "stacked"]
