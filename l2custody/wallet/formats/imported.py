"""What every reader returns, and the checks several readers share."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from l2custody.errors import DescriptorError, NetworkMismatch, UsageError
from l2custody.wallet.addresses import address_to_script
from l2custody.wallet.descriptor import DEFAULT_BRANCHES, Branches, KeyOrigin, MultisigDescriptor
from l2custody.wallet.descriptors import WalletDescriptor


@dataclass(frozen=True)
class ImportedWallet:
    """What an import found: the descriptor and, where the format carries them, a name and birthday."""

    descriptor: WalletDescriptor
    #: "descriptor" | "core" | "bsms" | "caravan" | "coldcard" | "specter" | "specter-diy" | "electrum" | "liana" | "policy"
    source: str
    name: str | None = None
    timestamp: int | None = None  # unix time of the wallet's creation (Core exports)


def key_network(keys: Sequence[KeyOrigin], network: str | None) -> str:
    """The wallet's network: the one asked for, else what the keys say (xpub mainnet, tpub testnet)."""
    if network is not None:
        return network
    return "main" if keys and keys[0].family == "main" else "test"


def build(
    threshold: int, keys: Sequence[KeyOrigin], network: str | None, branches: Branches = DEFAULT_BRANCHES
) -> MultisigDescriptor:
    """The descriptor of ``keys`` (all validation is MultisigDescriptor's)."""
    if not keys:
        raise DescriptorError("the file lists no cosigner keys")
    return MultisigDescriptor(threshold, keys, key_network(keys, network), branches)


def check_stated_address(desc: WalletDescriptor, stated: str, change: bool, index: int, where: str) -> None:
    """Compare an address a file states with ours (same network, same script; BIP-173 upper case is the same).

    NetworkMismatch if it is another network's address, DescriptorError if it
    is not an address or not the one the descriptor gives.
    """
    text = stated.strip()
    if text != text.lower() and text != text.upper() and text[:3].lower() in ("bc1", "tb1", "bcr"):
        raise DescriptorError(f"{where} {text} mixes upper and lower case, which no bech32 address may; copy it again")
    ours = desc.derive(change, index)
    try:
        script = address_to_script(text, desc.network)
    except NetworkMismatch as exc:
        raise NetworkMismatch(f"{where}: {exc.message}") from exc
    except UsageError as exc:
        raise DescriptorError(f"{where}: {exc.message}") from exc
    if script != ours.script_pubkey:
        branch = "change" if change else "receive"
        raise DescriptorError(
            f"{where} is {text} but the file's descriptor gives {ours.address} ({branch} address {index}): "
            "the file was altered or describes another wallet; do not use it"
        )
