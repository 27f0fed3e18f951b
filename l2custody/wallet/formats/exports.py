"""Writing the wallet for other tools: descriptor, BSMS record, Bitcoin Core ``importdescriptors``,
BIP-388 wallet policy (what hardware signers register)."""

from __future__ import annotations

import json

from l2custody.errors import DescriptorError
from l2custody.wallet.descriptors import WalletDescriptor

EXPORT_FORMATS = ("descriptor", "bsms", "core", "policy")


def export_descriptor(desc: WalletDescriptor) -> str:
    """The multipath descriptor with checksum, one line."""
    return desc.to_string()


def export_bsms(desc: WalletDescriptor) -> str:
    """A BIP-129 descriptor record: template with ``/**``, restrictions (``/0/*,/1/*``), first address.

    BIP-129 sets up multisig wallets; a recovery wallet is refused (its signers could not check it).
    """
    if desc.recovery_paths:
        raise DescriptorError(
            "BSMS (BIP-129) records describe k-of-n multisig wallets, and this wallet has time-locked recovery "
            "paths: export it with --format descriptor (Liana and Bitcoin Core read it) or --format core"
        )
    receive, change = desc.branches
    template = desc.to_string(checksum=False).replace(f"/<{receive};{change}>/*", "/**")
    return "\n".join(["BSMS 1.0", template, f"/{receive}/*,/{change}/*", desc.first_address()]) + "\n"


def export_core(desc: WalletDescriptor, timestamp: int | str = "now", range_end: int = 999) -> str:
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


def export_wallet(desc: WalletDescriptor, fmt: str = "descriptor", **options: object) -> str:
    """Dispatch to ``export_<fmt>``; ``fmt`` is one of EXPORT_FORMATS."""
    if fmt == "descriptor":
        return export_descriptor(desc) + "\n"
    if fmt == "bsms":
        return export_bsms(desc)
    if fmt == "core":
        return export_core(desc, **options)  # type: ignore[arg-type]
    if fmt == "policy":
        from l2custody.wallet.formats.policy import export_policy

        return export_policy(desc)
    raise DescriptorError(f"unknown export format {fmt!r}; use one of: {', '.join(EXPORT_FORMATS)}")
