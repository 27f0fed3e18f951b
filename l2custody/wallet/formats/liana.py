"""Liana: its wallet backup file (JSON), holding the wallet's descriptor.

A backup is ``{"name", "accounts": [{"descriptor", "timestamp", ...}],
"network": "bitcoin" | "testnet" | "testnet4" | "signet" | "regtest", ...}``
(liana-gui ``src/backup.rs``). One account is one wallet; its descriptor is
a recovery wallet's (``wsh(or_d(...))``) and is read by the same parser as
a pasted descriptor. Labels, transactions and PSBTs in the file are not
read; the descriptor's checksum and the network are checked.
"""

from __future__ import annotations

from l2custody.errors import DescriptorError, NetworkMismatch
from l2custody.wallet.addresses import normalize_network
from l2custody.wallet.descriptors import parse_wallet_descriptor
from l2custody.wallet.formats.imported import ImportedWallet
from l2custody.wallet.formats.jsondata import JsonObject

#: rust-bitcoin's network names, as Liana writes them.
_NETWORKS = {"bitcoin": "main", "testnet": "test", "testnet4": "test", "signet": "signet", "regtest": "regtest"}


def is_liana_backup(data: dict[str, object]) -> bool:
    return "accounts" in data and "network" in data


def import_liana(data: object, network: str | None = None) -> ImportedWallet:
    """The wallet of a Liana backup: its one account's descriptor, name and creation time."""
    top = JsonObject(data, "the Liana backup")
    named = top.text("network")
    net = _NETWORKS.get(named)
    if net is None:
        raise DescriptorError(f"Liana network {named[:20]!r} is unknown; expected one of {', '.join(_NETWORKS)}")
    if network is not None and normalize_network(network) != net:
        raise NetworkMismatch(f"the Liana backup is for {named} but this wallet is on {network}")
    accounts = top.array("accounts")
    if len(accounts) != 1:
        raise DescriptorError(
            f"the Liana backup holds {len(accounts)} wallets; l2custody imports one: "
            "export that wallet's backup (or its descriptor) from Liana"
        )
    account = JsonObject(accounts[0], "the Liana backup's account")
    desc = parse_wallet_descriptor(account.text("descriptor"), net)
    return ImportedWallet(
        desc, "liana", name=top.optional_text("name"), timestamp=account.optional_integer("timestamp")
    )
