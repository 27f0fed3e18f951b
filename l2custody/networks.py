"""Bitcoin network names: the one table mapping what configs, nodes and chain
sources call a network to the wallet's (embit's) names.

Standard library only, so the backends and the chain source can use it
without importing embit.
"""

from __future__ import annotations

from l2custody.errors import UsageError

#: The network names the wallet layer uses (embit's names).
NETWORK_NAMES = ("main", "test", "regtest", "signet")

_ALIASES = {
    "main": "main",
    "mainnet": "main",
    "bitcoin": "main",
    "test": "test",
    "testnet": "test",
    "testnet3": "test",
    "testnet4": "test",
    "regtest": "regtest",
    "signet": "signet",
}


def normalize_network(name: str) -> str:
    """Map ``mainnet``/``bitcoin``/``testnet``/... to ``main``/``test``/``regtest``/``signet``.

    Raises UsageError for an unknown name.
    """
    key = (name or "").strip().lower()
    if key not in _ALIASES:
        raise UsageError(f"unknown network {name!r}: use one of mainnet, testnet, signet, regtest")
    return _ALIASES[key]


def reported_network(name: str) -> str:
    """The network a node or chain source reports, in the wallet's names where it
    has one; anything else (btcd's ``simnet``, ``liquid``) is returned as reported,
    so a network check says it does not match instead of failing to read it."""
    try:
        return normalize_network(name)
    except UsageError:
        return name
