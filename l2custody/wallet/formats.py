"""Reading and writing wallet descriptors in the formats other tools use.

Imports (``import_wallet`` detects the format):
- a descriptor with or without checksum (multipath ``/<0;1>/*``, or a
  receive ``/0/*`` and a change ``/1/*`` descriptor), also as a Sparrow
  "Output Descriptor" export (``#`` comment lines are skipped);
- a Bitcoin Core ``listdescriptors`` result (``{"descriptors": [...]}``) or
  an ``importdescriptors`` request (a list of ``{"desc": ...}``);
- a BSMS (BIP-129) descriptor record: ``BSMS 1.0``, descriptor or template
  with ``/**``, path restrictions, first address — the first address is
  checked against our own derivation;
- a Caravan wallet configuration (JSON with ``quorum`` and
  ``extendedPublicKeys``);
- a Coldcard multisig setup file as Sparrow writes it (``Policy: 2 of 3``,
  ``Derivation:``, ``Format: P2WSH``, ``FINGERPRINT: xpub`` lines).

Exports: ``descriptor`` (multipath with checksum), ``bsms`` (BIP-129
record) and ``core`` (an ``importdescriptors`` request for Bitcoin Core,
receive and change descriptors with checksums).

Every import returns an ImportedWallet or raises DescriptorError /
NetworkMismatch saying what was wrong with the input.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from l2custody.errors import DescriptorError, NetworkMismatch
from l2custody.wallet.addresses import normalize_network
from l2custody.wallet.descriptor import (
    KeyOrigin,
    MultisigDescriptor,
    format_path,
    parse_path,
    strip_checksum,
)

EXPORT_FORMATS = ("descriptor", "bsms", "core")


@dataclass(frozen=True)
class ImportedWallet:
    """What an import found: the descriptor and, where the format carries them, a name and birthday."""

    descriptor: MultisigDescriptor
    source: str  # "descriptor" | "core" | "bsms" | "caravan" | "coldcard"
    name: str | None = None
    timestamp: int | None = None  # unix time of the wallet's creation (Core exports)


def import_wallet(text: str, network: str | None = None) -> ImportedWallet:
    """Detect the format of ``text`` and read the multisig descriptor from it.

    ``network`` (main/test/regtest/signet) tells which test network tpub keys
    are for; it is checked against formats that name a network themselves.
    """
    stripped = (text or "").strip()
    if not stripped:
        raise DescriptorError("nothing to import: the input is empty")
    if stripped.startswith("BSMS"):
        return import_bsms(stripped, network)
    if stripped[0] in "[{":
        try:
            data = json.loads(stripped)
        except json.JSONDecodeError:
            data = None  # not JSON: read it as descriptor text below
        if isinstance(data, dict) and ("quorum" in data or "extendedPublicKeys" in data):
            return import_caravan(data, network)
        if isinstance(data, (dict, list)):
            return import_core(data, network)
    if re.search(r"^\s*Policy\s*:", stripped, re.M | re.I):
        return import_coldcard(stripped, network)
    return import_descriptor_text(stripped, network)


def import_descriptor_text(text: str, network: str | None = None) -> ImportedWallet:
    """A descriptor, a receive/change pair, or a Sparrow descriptor export with ``#`` comments.

    When a file holds several descriptors (Sparrow writes the multipath one
    and then receive and change separately), the multipath one is used and
    the others must agree with it.
    """
    lines = [ln.strip() for ln in text.splitlines()]
    found = [ln for ln in lines if ln and not ln.startswith("#")]
    if not found:
        raise DescriptorError("no descriptor found (only comments or blank lines)")
    multipath = [ln for ln in found if "<0;1>" in ln or "/**" in ln or "{0,1}" in ln]
    if multipath:
        desc = MultisigDescriptor.parse(multipath[0], network)
        others = [ln for ln in found if ln not in multipath]
        if len(others) == 2 and MultisigDescriptor.parse_pair(others[0], others[1], network=network) != desc:
            raise DescriptorError("the file's receive/change descriptors disagree with its multipath descriptor")
        return ImportedWallet(desc, "descriptor")
    return ImportedWallet(MultisigDescriptor.parse(" ".join(found), network), "descriptor")


def import_core(data: dict | list, network: str | None = None) -> ImportedWallet:
    """A Core ``listdescriptors`` result or ``importdescriptors`` request.

    Takes the active ``wsh(sortedmulti(...))`` pair (internal=false receive,
    internal=true change) or one multipath descriptor. Refuses files with
    several different multisig wallets and asks which one to use.
    """
    name = data.get("wallet_name") if isinstance(data, dict) else None
    entries = data.get("descriptors") if isinstance(data, dict) else data
    if not isinstance(entries, list) or not all(isinstance(e, dict) and "desc" in e for e in entries):
        raise DescriptorError(
            "this JSON is neither a Bitcoin Core `listdescriptors` result nor an `importdescriptors` "
            'list of {"desc": ...} entries, nor a Caravan wallet file'
        )
    multisig = [e for e in entries if str(e["desc"]).startswith("wsh(sortedmulti(")]
    if not multisig:
        raise DescriptorError("the Core export contains no wsh(sortedmulti(...)) descriptor")
    active = [e for e in multisig if e.get("active", True)] or multisig
    timestamps = [e["timestamp"] for e in active if isinstance(e.get("timestamp"), int)]
    timestamp = min(timestamps) if timestamps else None
    multipath = [e for e in active if "<0;1>" in e["desc"]]
    if multipath:
        descs = {MultisigDescriptor.parse(e["desc"], network) for e in multipath}
    else:
        receive = [e for e in active if not e.get("internal", False)]
        change = [e for e in active if e.get("internal", False)]
        if not receive or not change:
            raise DescriptorError(
                "the Core export needs both the receive (internal: false) and the change "
                "(internal: true) multisig descriptor"
            )
        descs = {
            MultisigDescriptor.parse_pair(r["desc"], c["desc"], network=network)
            for r in receive
            for c in change
            if _same_keys(r["desc"], c["desc"])
        }
    if len(descs) != 1:
        raise DescriptorError(
            f"the Core export holds {len(descs) or 'no matching'} multisig wallets; export the one "
            "you want, or import its descriptor directly"
        )
    return ImportedWallet(descs.pop(), "core", name=name, timestamp=timestamp)


def _same_keys(a: str, b: str) -> bool:
    def strip(desc: str) -> str:
        return re.sub(r"/[01]/\*", "", desc.split("#")[0])

    return strip(a) == strip(b)


def import_bsms(text: str, network: str | None = None) -> ImportedWallet:
    """A BIP-129 descriptor record (4 lines); verifies the first address it states.

    Raises DescriptorError if the version is unknown, the path restrictions
    are not ``/0/*,/1/*`` (or none, for a multipath descriptor), or the
    first address differs from the one we derive — which means the record
    was tampered with or describes another wallet.
    """
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    if len(lines) != 4:
        raise DescriptorError(
            f"a BSMS descriptor record has 4 lines (version, descriptor, path restrictions, "
            f"first address); this one has {len(lines)}. Is it an encrypted record or a key record?"
        )
    version, template, restrictions, first_address = lines
    if version != "BSMS 1.0":
        raise DescriptorError(f"unsupported BSMS version {version!r}; only 'BSMS 1.0' is known")
    restr = restrictions.replace(" ", "")
    if "/**" in template:
        if restr != "/0/*,/1/*":
            raise DescriptorError(
                f"BSMS path restrictions {restrictions!r} are not supported; this wallet uses /0/*,/1/*"
            )
        body = strip_checksum(template)
    elif restrictions.lower() == "no path restrictions" or restr == "/0/*,/1/*":
        body = template
    else:
        raise DescriptorError(f"BSMS path restrictions {restrictions!r} are not supported")
    desc = MultisigDescriptor.parse(body, network)
    if desc.first_address() != first_address:
        raise DescriptorError(
            f"the BSMS record says the first address is {first_address} but its descriptor gives "
            f"{desc.first_address()}: the record was altered or is for another network; do not use it"
        )
    return ImportedWallet(desc, "bsms")


_CARAVAN_NETWORKS = {"mainnet": "main", "testnet": "test", "regtest": "regtest", "signet": "signet"}


def import_caravan(data: dict, network: str | None = None) -> ImportedWallet:
    """A Caravan wallet configuration (P2WSH only; every key needs ``xfp`` and ``bip32Path``)."""
    if str(data.get("addressType", "")).upper() != "P2WSH":
        raise DescriptorError(
            f"Caravan addressType {data.get('addressType')!r} is not supported; this wallet is native segwit P2WSH"
        )
    caravan_net = _CARAVAN_NETWORKS.get(str(data.get("network", "")).lower())
    if caravan_net is None:
        raise DescriptorError(f"Caravan network {data.get('network')!r} is unknown")
    if network is not None and normalize_network(network) != caravan_net:
        raise NetworkMismatch(f"the Caravan wallet is for {data.get('network')} but this wallet is on {network}")
    try:
        threshold = int(data["quorum"]["requiredSigners"])
        total = int(data["quorum"]["totalSigners"])
        key_entries = list(data["extendedPublicKeys"])
    except (KeyError, TypeError, ValueError) as exc:
        raise DescriptorError(f"Caravan file lacks quorum or extendedPublicKeys ({exc})") from exc
    if total != len(key_entries):
        raise DescriptorError(f"Caravan quorum says {total} signers but lists {len(key_entries)} keys")
    keys = []
    for i, entry in enumerate(key_entries, start=1):
        xfp, path = entry.get("xfp"), entry.get("bip32Path")
        if not xfp or not path or str(path).lower() == "unknown":
            raise DescriptorError(
                f"Caravan key {i} ({entry.get('name', '?')}) has no fingerprint (xfp) or bip32Path: "
                "hardware signers need both to recognise and sign their inputs; add them in Caravan and export again"
            )
        keys.append(KeyOrigin(xfp, format_path(parse_path(path)), entry["xpub"]))
    desc = MultisigDescriptor(threshold, keys, caravan_net)
    return ImportedWallet(desc, "caravan", name=data.get("name"))


@dataclass
class _ColdcardSetup:
    """The fields of a Coldcard multisig setup file, as read so far."""

    name: str | None = None
    threshold: int | None = None
    derivation: str | None = None
    fmt: str | None = None
    keys: list[KeyOrigin] = field(default_factory=list)


def import_coldcard(text: str, network: str | None = None) -> ImportedWallet:
    """A Coldcard multisig setup file (also written by Sparrow): P2WSH only."""
    setup = _read_coldcard_setup(text)
    if setup.fmt not in (None, "P2WSH"):
        raise DescriptorError(f"multisig format {setup.fmt} is not supported; this wallet is native segwit P2WSH")
    if setup.threshold is None:
        raise DescriptorError("the multisig file has no 'Policy: K of N' line")
    keys = setup.keys
    fam_net = network or ("main" if keys and keys[0].family == "main" else "test")
    return ImportedWallet(MultisigDescriptor(setup.threshold, keys, fam_net), "coldcard", name=setup.name)


def _read_coldcard_setup(text: str) -> _ColdcardSetup:
    """Read the ``Label: value`` lines (and Sparrow's ``# derivation:`` comment) in order."""
    setup = _ColdcardSetup()
    for raw in text.splitlines():
        line = raw.strip()
        if line.lower().startswith("# derivation:"):
            setup.derivation = line.split(":", 1)[1].strip()
            continue
        if not line or line.startswith("#") or ":" not in line:
            continue
        label, value = (part.strip() for part in line.split(":", 1))
        _read_coldcard_field(setup, label, value)
    return setup


def _read_coldcard_field(setup: _ColdcardSetup, label: str, value: str) -> None:
    key = label.lower()
    if key == "name":
        setup.name = value
    elif key == "policy":
        m = re.fullmatch(r"(\d+)\s*(?:of|/)\s*(\d+)", value, re.I)
        if not m:
            raise DescriptorError(f"cannot read policy {value!r}; expected e.g. '2 of 3'")
        setup.threshold = int(m.group(1))
    elif key == "derivation":
        setup.derivation = value
    elif key == "format":
        setup.fmt = value.upper()
    elif re.fullmatch(r"[0-9a-fA-F]{8}", label):
        if setup.derivation is None:
            raise DescriptorError(
                f"key {label} comes before any 'Derivation:' line: its origin path is unknown, "
                "and hardware signers need it to sign"
            )
        setup.keys.append(KeyOrigin(label, format_path(parse_path(setup.derivation)), value))


# --- exports ------------------------------------------------------------------
def export_descriptor(desc: MultisigDescriptor) -> str:
    """The multipath descriptor with checksum, one line."""
    return desc.to_string()


def export_bsms(desc: MultisigDescriptor) -> str:
    """A BIP-129 descriptor record: template with ``/**``, restrictions ``/0/*,/1/*``, first address."""
    template = desc.to_string(checksum=False).replace("/<0;1>/*", "/**")
    return "\n".join(["BSMS 1.0", template, "/0/*,/1/*", desc.first_address()]) + "\n"


def export_core(desc: MultisigDescriptor, timestamp: int | str = "now", range_end: int = 999) -> str:
    """A Bitcoin Core ``importdescriptors`` request (JSON) for a watch-only wallet.

    ``timestamp`` is the wallet birthday (unix time) or ``"now"``; ``range_end``
    the last index Core keeps derived ahead.
    """
    entries = [
        {
            "desc": desc.to_string(change=change),
            "active": True,
            "internal": change,
            "range": [0, range_end],
            "timestamp": timestamp,
        }
        for change in (False, True)
    ]
    return json.dumps(entries, indent=2) + "\n"


def export_wallet(desc: MultisigDescriptor, fmt: str = "descriptor", **options: object) -> str:
    """Dispatch to ``export_<fmt>``; ``fmt`` is one of EXPORT_FORMATS."""
    if fmt == "descriptor":
        return export_descriptor(desc) + "\n"
    if fmt == "bsms":
        return export_bsms(desc)
    if fmt == "core":
        return export_core(desc, **options)  # type: ignore[arg-type]
    raise DescriptorError(f"unknown export format {fmt!r}; use one of: {', '.join(EXPORT_FORMATS)}")
