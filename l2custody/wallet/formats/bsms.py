"""BSMS (BIP-129) descriptor records: ``BSMS 1.0``, descriptor or template, path restrictions, first address."""

from __future__ import annotations

import re

from l2custody.errors import DescriptorError
from l2custody.wallet.descriptor import MultisigDescriptor, strip_checksum
from l2custody.wallet.formats.imported import ImportedWallet, check_stated_address

_NONE = "no path restrictions"


def _restrictions(line: str) -> tuple[int, int] | None:
    """BIP-129's third line: None for no restrictions (also a blank line), else the (receive, change) branches."""
    text = line.strip()
    if not text or text.lower() == _NONE:
        return None
    paths = [p.strip() for p in text.split(",")]
    branches = [re.fullmatch(r"/(\d+)/\*", p) for p in paths]
    if len(paths) != 2 or not all(branches):
        raise DescriptorError(
            f"BSMS path restrictions {text!r} are not supported; this wallet needs two branches like "
            "/0/*,/1/* (receive, then change)"
        )
    a, b = (int(m.group(1)) for m in branches if m)
    if {a, b} != {0, 1}:
        raise DescriptorError(f"BSMS path restrictions {text!r}: this wallet uses the branches /0/* and /1/*")
    return a, b


def import_bsms(text: str, network: str | None = None) -> ImportedWallet:
    """A BIP-129 descriptor record (4 lines); verifies the first address it states.

    The third line may be blank or ``No path restrictions`` for a descriptor
    that is not a template. Raises DescriptorError if the version is unknown,
    the restrictions cannot be used, or the first address differs from the
    one we derive, which means the record was tampered with or describes
    another wallet (NetworkMismatch if it is another network's address).
    """
    lines = [ln.strip() for ln in text.strip().splitlines()]
    if len(lines) != 4:
        raise DescriptorError(
            f"a BSMS descriptor record has 4 lines (version, descriptor, path restrictions, "
            f"first address); this one has {len(lines)}. Is it an encrypted record or a key record?"
        )
    version, template, restrictions, first_address = lines
    if version != "BSMS 1.0":
        raise DescriptorError(f"unsupported BSMS version {version[:20]!r}; only 'BSMS 1.0' is known")
    branches = _restrictions(restrictions)
    if "/**" in template:
        if branches is None:
            raise DescriptorError(
                "the BSMS record is a template (/**) without path restrictions; BIP-129 requires them (e.g. /0/*,/1/*)"
            )
        body = strip_checksum(template).replace("/**", f"/<{branches[0]};{branches[1]}>/*")
        desc = MultisigDescriptor.parse(body, network)
    else:
        desc = MultisigDescriptor.parse(template, network)
        if branches is not None and branches != desc.branches:
            raise DescriptorError(
                f"the BSMS path restrictions {restrictions!r} do not match the descriptor's branches "
                f"/<{desc.branches[0]};{desc.branches[1]}>/*"
            )
    check_stated_address(desc, first_address, False, 0, "the BSMS record's first address")
    return ImportedWallet(desc, "bsms")
