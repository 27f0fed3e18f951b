"""Bitcoin Core: a ``listdescriptors`` result or an ``importdescriptors`` request."""

from __future__ import annotations

import re

from l2custody.errors import DescriptorError
from l2custody.wallet.descriptor import MULTIPATH_MARK, MultisigDescriptor
from l2custody.wallet.descriptors import is_miniscript, parse_wallet_descriptor, parse_wallet_pair
from l2custody.wallet.formats.imported import ImportedWallet
from l2custody.wallet.formats.jsondata import JsonObject, kind_of

_MULTISIG = re.compile(r"^(?:sh\()?(?:wsh\()?(?:sorted)?multi\(|^wsh\(|^sh\(wsh\(")


def import_core(data: object, network: str | None = None) -> ImportedWallet:
    """A Core ``listdescriptors`` result or ``importdescriptors`` request.

    Takes the active multisig pair (internal=false receive, internal=true
    change) or one multipath descriptor; anything but ``wsh(sortedmulti(...))``
    or a recovery wallet's ``wsh(miniscript)`` is refused by the descriptor
    parser with its reason. Refuses files with several different multisig
    wallets and asks which one to use.
    """
    name = None
    if isinstance(data, dict):
        top = JsonObject(data, "the Core export")
        name = top.optional_text("wallet_name")
        raw_entries = top.array("descriptors")
    elif isinstance(data, list):
        raw_entries = data
    else:
        raise DescriptorError(f"a Core export is a JSON object or list, not {kind_of(data)}")
    entries = [JsonObject(e, f"descriptor entry {i}") for i, e in enumerate(raw_entries, start=1)]
    descs = {i: e.text("desc") for i, e in enumerate(entries)}
    multisig = [i for i, d in descs.items() if d.startswith("wsh(sortedmulti(") or is_miniscript(d)]
    if not multisig:
        others = [d for d in descs.values() if "multi(" in d and _MULTISIG.match(d)]
        if others:  # sh(...), wsh(multi(...)): the parser says why it is not supported
            MultisigDescriptor.parse(others[0], network)
        raise DescriptorError("the Core export contains no wsh(sortedmulti(...)) descriptor")
    active = [i for i in multisig if entries[i].flag("active", True)] or multisig
    timestamps = [t for i in active if (t := _timestamp(entries[i])) is not None]
    timestamp = min(timestamps) if timestamps else None
    multipath = [i for i in active if MULTIPATH_MARK.search(descs[i])]
    if multipath:
        wallets = {parse_wallet_descriptor(descs[i], network) for i in multipath}
    else:
        receive = [i for i in active if not entries[i].flag("internal", False)]
        change = [i for i in active if entries[i].flag("internal", False)]
        if not receive or not change:
            raise DescriptorError(
                "the Core export needs both the receive (internal: false) and the change "
                "(internal: true) multisig descriptor"
            )
        wallets = {
            parse_wallet_pair(descs[r], descs[c], network=network, ordered=True)
            for r in receive
            for c in change
            if _same_keys(descs[r], descs[c])
        }
    if len(wallets) != 1:
        raise DescriptorError(
            f"the Core export holds {len(wallets) or 'no matching'} multisig wallets; export the one "
            "you want, or import its descriptor directly"
        )
    return ImportedWallet(wallets.pop(), "core", name=name, timestamp=timestamp)


def _timestamp(entry: JsonObject) -> int | None:
    """Core's ``timestamp``: unix time, or ``"now"`` (no birthday known)."""
    value = entry.data.get("timestamp")
    if value is None or value == "now":
        return None
    return entry.integer("timestamp")


def _same_keys(a: str, b: str) -> bool:
    def strip(desc: str) -> str:
        return re.sub(r"/[01]/\*", "", desc.split("#")[0].replace("'", "h"))

    return strip(a) == strip(b)
