"""Caravan: a wallet configuration file, and its "Download Descriptors" JSON."""

from __future__ import annotations

from l2custody.errors import DescriptorError, NetworkMismatch
from l2custody.wallet.addresses import normalize_network
from l2custody.wallet.descriptor import KeyOrigin, MultisigDescriptor, format_path, parse_path
from l2custody.wallet.formats.imported import ImportedWallet, build
from l2custody.wallet.formats.jsondata import JsonObject

_NETWORKS = {"mainnet": "main", "testnet": "test", "regtest": "regtest", "signet": "signet"}


def _network(top: JsonObject, network: str | None) -> str:
    named = top.text("network")
    ours = _NETWORKS.get(named.lower())
    if ours is None:
        raise DescriptorError(f"Caravan network {named[:20]!r} is unknown; expected one of {', '.join(_NETWORKS)}")
    if network is not None and normalize_network(network) != ours:
        raise NetworkMismatch(f"the Caravan wallet is for {named} but this wallet is on {network}")
    return ours


def import_caravan(data: object, network: str | None = None) -> ImportedWallet:
    """A Caravan wallet configuration (P2WSH only; every key needs ``xpub``, ``xfp`` and ``bip32Path``)."""
    top = JsonObject(data, "the Caravan file")
    address_type = top.text("addressType")
    if address_type.upper() != "P2WSH":
        raise DescriptorError(
            f"Caravan addressType {address_type[:20]!r} is not supported; this wallet is native segwit P2WSH only"
        )
    net = _network(top, network)
    quorum = top.obj("quorum")
    threshold, total = quorum.integer("requiredSigners"), quorum.integer("totalSigners")
    entries = top.array("extendedPublicKeys")
    if total != len(entries):
        raise DescriptorError(f"Caravan quorum says {total} signers but lists {len(entries)} keys")
    keys = [_key(JsonObject(entry, f"Caravan key {i}"), i) for i, entry in enumerate(entries, start=1)]
    return ImportedWallet(build(threshold, keys, net), "caravan", name=top.optional_text("name"))


def _key(entry: JsonObject, i: int) -> KeyOrigin:
    xpub = entry.text("xpub")
    xfp, path = entry.optional_text("xfp"), entry.optional_text("bip32Path")
    if not xfp or not path or path.lower() == "unknown":
        label = entry.optional_text("name") or "?"
        raise DescriptorError(
            f"Caravan key {i} ({label[:30]}) has no fingerprint (xfp) or bip32Path: "
            "hardware signers need both to recognise and sign their inputs; add them in Caravan and export again"
        )
    return KeyOrigin(xfp, format_path(parse_path(path)), xpub)


def import_caravan_descriptors(data: object, network: str | None = None) -> ImportedWallet:
    """Caravan's "Download Descriptors": ``{"receive": "wsh(...)/0/*...", "change": "...", "network": ...}``."""
    top = JsonObject(data, "the Caravan descriptors file")
    net = _network(top, network) if "network" in top else network
    desc = MultisigDescriptor.parse_pair(top.text("receive"), top.text("change"), network=net, ordered=True)
    multipath = top.optional_text("multipath")
    if multipath is not None and MultisigDescriptor.parse(multipath, net) != desc:
        raise DescriptorError("the file's multipath descriptor disagrees with its receive and change descriptors")
    return ImportedWallet(desc, "caravan", name=top.optional_text("name"))
