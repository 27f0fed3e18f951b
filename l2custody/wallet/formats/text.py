"""Descriptors as text: plain, Sparrow's export, Coldcard's descriptor and Bitcoin Core exports, Specter-DIY.

- one descriptor (multipath ``/<0;1>/*``, ``/<1;0>/*``, ``/{0,1}/*``), or a
  receive ``/0/*`` and a change ``/1/*`` descriptor; ``#`` comment lines are
  skipped (Sparrow's "Output Descriptor" export writes them);
- Coldcard's "Descriptor" export: the descriptor spread over several lines
  with ``#`` comments, receive branch ``/0/*`` only (Coldcard derives change
  on ``/1/*``);
- Coldcard's "Bitcoin Core" export: ``importdescriptors '[...]'``;
- Specter-DIY's ``addwallet NAME&DESCRIPTOR`` (keys without a suffix mean
  Specter's default ``/{0,1}/*``).
"""

from __future__ import annotations

import re

from l2custody.errors import DescriptorError
from l2custody.wallet.descriptor import MULTIPATH_MARK, MultisigDescriptor, split_keys, strip_checksum
from l2custody.wallet.descriptors import parse_wallet_descriptor, parse_wallet_pair
from l2custody.wallet.formats.core import import_core
from l2custody.wallet.formats.imported import ImportedWallet
from l2custody.wallet.formats.jsondata import load_json

_SCRIPT_START = re.compile(r"^[a-z_]+\(")
COLDCARD_DESCRIPTOR_HEADER = "# Coldcard descriptor export"


def _balanced(line: str) -> bool:
    return line.count("(") == line.count(")") > 0


def descriptor_lines(text: str) -> list[str]:
    """The descriptors in ``text``: one per line, or one spread over several lines (Coldcard's pretty export)."""
    lines = [ln.strip() for ln in text.splitlines()]
    found = [ln for ln in lines if ln and not ln.startswith("#")]
    if not found:
        raise DescriptorError("no descriptor found (only comments or blank lines)")
    if all(_SCRIPT_START.match(ln) and _balanced(ln.split("#")[0]) for ln in found):
        return found
    return ["".join("".join(found).split())]


def import_descriptor_text(text: str, network: str | None = None) -> ImportedWallet:
    """A descriptor, a receive/change pair, a Sparrow export, or a Coldcard descriptor export.

    When a file holds several descriptors (Sparrow writes the multipath one
    and then receive and change separately), the multipath one is used and
    the others must agree with it.
    """
    found = descriptor_lines(text)
    multipath = [ln for ln in found if MULTIPATH_MARK.search(ln)]
    if multipath:
        desc = parse_wallet_descriptor(multipath[0], network)
        others = [ln for ln in found if ln not in multipath]
        if len(others) == 2 and parse_wallet_pair(others[0], others[1], network=network) != desc:
            raise DescriptorError("the file's receive/change descriptors disagree with its multipath descriptor")
        return ImportedWallet(desc, "descriptor")
    if len(found) == 1 and COLDCARD_DESCRIPTOR_HEADER in text and "/0/*" in found[0]:
        return ImportedWallet(coldcard_receive_descriptor(found[0], network), "coldcard")
    return ImportedWallet(parse_wallet_descriptor(" ".join(found), network), "descriptor")


def coldcard_receive_descriptor(receive: str, network: str | None) -> MultisigDescriptor:
    """A Coldcard export names only the receive branch ``/0/*``; its change branch is ``/1/*``."""
    body = strip_checksum(receive)
    if "/1/*" in body or not body.endswith("))"):
        raise DescriptorError("a Coldcard descriptor export names the receive branch /0/* only")
    return MultisigDescriptor.parse_pair(body, body.replace("/0/*", "/1/*"), network=network)


def import_coldcard_core(text: str, network: str | None = None) -> ImportedWallet:
    """Coldcard's "Bitcoin Core" multisig export: ``importdescriptors '[{...}, {...}]'``."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    joined = " ".join(lines)
    m = re.fullmatch(r"importdescriptors\s+'(?P<json>.*)'", joined, re.S)
    if not m:
        raise DescriptorError(
            "expected one line importdescriptors '[...]' (Coldcard's Bitcoin Core export); "
            "the JSON between the quotes is missing or the quotes do not match"
        )
    got = import_core(load_json(m.group("json"), "the importdescriptors argument"), network)
    return ImportedWallet(got.descriptor, "coldcard", name=got.name, timestamp=got.timestamp)


def import_specter_diy(text: str, network: str | None = None) -> ImportedWallet:
    """Specter-DIY's ``addwallet NAME&DESCRIPTOR`` (a key without a suffix means ``/{0,1}/*``)."""
    line = text.strip()
    if "\n" in line:
        raise DescriptorError("an addwallet command is one line: addwallet NAME&DESCRIPTOR")
    rest = line[len("addwallet") :].strip()
    name, sep, descriptor = rest.rpartition("&")
    if not sep or not name.strip() or not descriptor.strip():
        raise DescriptorError("expected addwallet NAME&DESCRIPTOR (Specter-DIY's wallet import line)")
    return ImportedWallet(with_default_branches(descriptor.strip(), network), "specter-diy", name=name.strip())


def with_default_branches(descriptor: str, network: str | None) -> MultisigDescriptor:
    """Parse a descriptor whose keys may lack a suffix; Specter (DIY and Desktop) reads those as ``/{0,1}/*``."""
    body = strip_checksum(descriptor)
    m = re.fullmatch(r"(?P<head>\w+\(\w+\()(?P<k>[^,()]*),(?P<keys>[^()]*)(?P<tail>\)+)", body)
    if not m:
        return MultisigDescriptor.parse(body, network)
    keys = split_keys(m.group("keys"))
    if all(re.fullmatch(r"\[[^\]]*\][1-9A-HJ-NP-Za-km-z]+", key.strip()) for key in keys):
        keys = [key.strip() + "/<0;1>/*" for key in keys]
    elif all(key.strip().endswith("/0/*") for key in keys):  # Specter's receive descriptor; change is /1/*
        receive = f"{m.group('head')}{m.group('k')},{','.join(keys)}{m.group('tail')}"
        return MultisigDescriptor.parse_pair(receive, receive.replace("/0/*", "/1/*"), network=network)
    return MultisigDescriptor.parse(f"{m.group('head')}{m.group('k')},{','.join(keys)}{m.group('tail')}", network)
