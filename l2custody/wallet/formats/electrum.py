"""Electrum multisig wallet files (``wallet_type: "2of3"``, keystores ``x1/`` .. ``xN/``).

Electrum tells the script type by the key's SLIP-132 prefix: Zpub/Vpub are
P2WSH, Ypub/Upub P2SH-P2WSH, xpub/tpub P2SH. Only P2WSH is imported. Seeds
and private keys a file may hold are never read.
"""

from __future__ import annotations

import re

from l2custody.errors import DescriptorError
from l2custody.wallet.descriptor import KeyOrigin, format_path, parse_path
from l2custody.wallet.formats.imported import ImportedWallet, build
from l2custody.wallet.formats.jsondata import JsonObject

_TYPES = {"Zpub": "P2WSH", "Vpub": "P2WSH", "Ypub": "P2SH-P2WSH", "Upub": "P2SH-P2WSH", "xpub": "P2SH", "tpub": "P2SH"}


def is_electrum_multisig(data: object) -> bool:
    return isinstance(data, dict) and "wallet_type" in data and "x1/" in data


def import_electrum(data: object, network: str | None = None) -> ImportedWallet:
    """An Electrum multisig wallet file (not encrypted): P2WSH, every keystore with fingerprint and path."""
    top = JsonObject(data, "the Electrum wallet file")
    wallet_type = top.text("wallet_type")
    m = re.fullmatch(r"(\d{1,2})of(\d{1,2})", wallet_type)
    if not m:
        raise DescriptorError(f"Electrum wallet_type {wallet_type[:20]!r} is not a multisig type like '2of3'")
    threshold, n = int(m.group(1)), int(m.group(2))
    keys = [_keystore(top.obj(f"x{i}/", f"Electrum keystore x{i}/"), i) for i in range(1, n + 1)]
    extra = [k for k in top.keys() if re.fullmatch(r"x\d+/", k) and int(k[1:-1]) > n]
    if extra:
        raise DescriptorError(f"the Electrum file says {wallet_type} but also has keystore {extra[0]}")
    return ImportedWallet(build(threshold, keys, network), "electrum")


def _keystore(store: JsonObject, i: int) -> KeyOrigin:
    xpub = store.text("xpub")
    script_type = _TYPES.get(xpub[:4])
    if script_type != "P2WSH":
        raise DescriptorError(
            f"Electrum keystore x{i}/ has a {xpub[:4]}... key, which Electrum uses for "
            f"{script_type or 'an unknown script type'}; l2custody supports native segwit P2WSH (Zpub/Vpub) only"
        )
    if "ckcc_xfp" in store:  # Coldcard writes the fingerprint as a little-endian integer
        xfp = store.integer("ckcc_xfp")
        if not 0 <= xfp < 2**32:
            raise DescriptorError(f"Electrum keystore x{i}/: ckcc_xfp {xfp} is not a 4-byte fingerprint")
        fingerprint = xfp.to_bytes(4, "little").hex()
    else:
        fingerprint = store.optional_text("root_fingerprint") or ""
    path = store.optional_text("derivation")
    if not fingerprint or path is None:
        raise DescriptorError(
            f"Electrum keystore x{i}/ has no root_fingerprint or derivation: hardware signers need both "
            "to sign; export the wallet from a recent Electrum"
        )
    return KeyOrigin(fingerprint, format_path(parse_path(path)), xpub)
