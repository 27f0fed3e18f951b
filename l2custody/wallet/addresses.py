"""Network names and address <-> scriptPubKey conversion, network-checked.

One place decides which network an address belongs to, so a mainnet
address never slips into a regtest wallet (or the other way round): every
conversion takes the wallet's network and raises NetworkMismatch when the
address belongs to another one.
"""

from __future__ import annotations

from embit import base58, bech32
from embit.networks import NETWORKS

from l2custody.errors import NetworkMismatch, UsageError

# normalize_network lives in l2custody.networks (no embit there); the wallet modules take it from here
from l2custody.networks import normalize_network

_HUMAN = {"main": "mainnet", "test": "testnet", "regtest": "regtest", "signet": "signet"}


def human_network(network: str) -> str:
    """``main`` -> ``mainnet`` (for messages)."""
    return _HUMAN.get(network, network)


def embit_network(network: str) -> dict:
    """embit's parameter dict for a network name."""
    return NETWORKS[normalize_network(network)]


def script_to_address(script_pubkey: bytes, network: str) -> str | None:
    """The address of a scriptPubKey on ``network``, or None if it has none (OP_RETURN, bare scripts)."""
    from embit.script import Script

    sc = Script(bytes(script_pubkey))
    if sc.script_type() is None:
        return None
    return sc.address(embit_network(network))


def _networks_of_address(address: str) -> set[str]:
    """The network names an address could belong to (empty if it is not an address)."""
    hrp = address.lower().rsplit("1", 1)[0] if "1" in address else ""
    found = {name for name, params in NETWORKS.items() if params["bech32"] == hrp}
    if found:
        return found
    try:
        raw = base58.decode_check(address)
    except Exception:
        return set()
    prefix = raw[:1]
    return {name for name, params in NETWORKS.items() if prefix in (params["p2pkh"], params["p2sh"])}


def address_to_script(address: str, network: str) -> bytes:
    """The scriptPubKey an address pays to, refusing addresses of another network.

    Raises UsageError if ``address`` is not a valid address at all and
    NetworkMismatch if it is valid but belongs to another network than
    ``network``.
    """
    network = normalize_network(network)
    text = (address or "").strip()
    nets = _networks_of_address(text)
    if not nets:
        raise UsageError(f"{address!r} is not a bitcoin address (bech32 bc1/tb1/bcrt1 or base58); check for typos")
    if network not in nets:
        theirs = " or ".join(sorted(human_network(n) for n in nets))
        raise NetworkMismatch(
            f"address {text} is a {theirs} address but this wallet is on "
            f"{human_network(network)}; use an address of the wallet's network"
        )
    params = NETWORKS[network]
    if text.lower().startswith(params["bech32"] + "1"):
        ver, prog = bech32.decode(params["bech32"], text)
        if ver is None:
            raise UsageError(f"{text} is not a valid bech32/bech32m address (checksum or length); check for typos")
        op = ver + 0x50 if ver else 0
        return bytes([op, len(prog)]) + bytes(prog)
    raw = base58.decode_check(text)
    if len(raw) != 21:
        raise UsageError(f"{text} is not a valid base58 address (wrong length)")
    if raw[:1] == params["p2pkh"]:
        return b"\x76\xa9\x14" + raw[1:] + b"\x88\xac"
    return b"\xa9\x14" + raw[1:] + b"\x87"
