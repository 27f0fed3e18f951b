"""Reading and writing wallet descriptors in the formats other tools use (one module per tool).

Imports (``import_wallet`` detects the format):
- descriptor text (``text``): a descriptor with or without checksum
  (``/<0;1>/*``, ``/<1;0>/*``, ``/{0,1}/*``, or a ``/0/*`` + ``/1/*`` pair),
  Sparrow's "Output Descriptor" export, Coldcard's Descriptor export and its
  Bitcoin Core export (``importdescriptors '...'``), Specter-DIY's
  ``addwallet NAME&DESCRIPTOR``;
- Bitcoin Core ``listdescriptors`` / ``importdescriptors`` JSON (``core``);
- BSMS (BIP-129) descriptor records (``bsms``), first address checked;
- Caravan wallet configurations and "Download Descriptors" JSON (``caravan``);
- Coldcard multisig setup files, also as Sparrow, BlueWallet and Cobo write
  them (``coldcard``);
- Specter Desktop wallet JSON (``specter``);
- Electrum multisig wallet files (``electrum``);
- Liana wallet backups (``liana``).

Only native segwit ``wsh(sortedmulti(...))`` wallets, and recovery wallets
(``wsh`` miniscript of Liana's shapes, ``wallet/miniscript.py``; as text,
in Core exports and in Liana backups) are imported; anything
else is refused with the reason, never converted. Every import returns an
ImportedWallet or raises DescriptorError / NetworkMismatch (an
L2CustodyError) saying what was wrong with the input; JSON values are read
through ``jsondata.JsonObject``, which checks their types.

Exports: ``descriptor`` (multipath with checksum), ``bsms`` (BIP-129 record;
multisig only) and ``core`` (an ``importdescriptors`` request for Bitcoin Core).
"""

from __future__ import annotations

from l2custody.errors import DescriptorError
from l2custody.wallet.formats.bsms import import_bsms
from l2custody.wallet.formats.caravan import import_caravan, import_caravan_descriptors
from l2custody.wallet.formats.coldcard import import_coldcard, looks_like_setup_file
from l2custody.wallet.formats.core import import_core
from l2custody.wallet.formats.electrum import import_electrum, is_electrum_multisig
from l2custody.wallet.formats.exports import (
    EXPORT_FORMATS,
    export_bsms,
    export_core,
    export_descriptor,
    export_wallet,
)
from l2custody.wallet.formats.imported import ImportedWallet
from l2custody.wallet.formats.jsondata import load_json
from l2custody.wallet.formats.liana import import_liana, is_liana_backup
from l2custody.wallet.formats.policy import import_policy, is_wallet_policy
from l2custody.wallet.formats.specter import import_specter
from l2custody.wallet.formats.text import import_coldcard_core, import_descriptor_text, import_specter_diy

__all__ = [
    "EXPORT_FORMATS",
    "ImportedWallet",
    "export_bsms",
    "export_core",
    "export_descriptor",
    "export_wallet",
    "import_bsms",
    "import_caravan",
    "import_coldcard",
    "import_core",
    "import_descriptor_text",
    "import_electrum",
    "import_liana",
    "import_specter",
    "import_specter_diy",
    "import_wallet",
]


def import_wallet(text: str, network: str | None = None) -> ImportedWallet:
    """Detect the format of ``text`` and read the multisig descriptor from it.

    ``network`` (main/test/regtest/signet) tells which test network tpub keys
    are for; it is checked against formats that name a network themselves.
    """
    if not isinstance(text, str):
        raise DescriptorError("the wallet file must be text")
    stripped = text.strip().lstrip("\ufeff")
    if not stripped:
        raise DescriptorError("nothing to import: the input is empty")
    if stripped.startswith("BSMS"):
        return import_bsms(stripped, network)
    if stripped.startswith("addwallet"):
        return import_specter_diy(stripped, network)
    if stripped.startswith(("BIE1", "QklFM")):
        raise DescriptorError(
            "this is an encrypted Electrum wallet file; open it in Electrum, remove the file password, and import again"
        )
    if stripped[0] in "[{":
        return _import_json(load_json(stripped, "the wallet file"), network)
    body = [ln for ln in stripped.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    if body and body[0].strip().startswith("importdescriptors"):
        return import_coldcard_core(stripped, network)
    if looks_like_setup_file(stripped):
        return import_coldcard(stripped, network)
    return import_descriptor_text(stripped, network)


def _import_json(data: object, network: str | None) -> ImportedWallet:
    if isinstance(data, list):
        return import_core(data, network)
    if not isinstance(data, dict):
        raise DescriptorError("the wallet file's JSON is neither an object nor a list")
    if "quorum" in data or "extendedPublicKeys" in data:
        return import_caravan(data, network)
    if is_electrum_multisig(data):
        return import_electrum(data, network)
    if "descriptors" in data:
        return import_core(data, network)
    if is_liana_backup(data):
        return import_liana(data, network)
    if is_wallet_policy(data):
        return import_policy(data, network)
    if "recv_descriptor" in data or "descriptor" in data:
        return import_specter(data, network)
    if "receive" in data and "change" in data:
        return import_caravan_descriptors(data, network)
    raise DescriptorError(
        "this JSON is none of the wallet files l2custody reads: a Bitcoin Core `listdescriptors` result or "
        'an `importdescriptors` list of {"desc": ...} entries, a Caravan, Specter, Electrum or Liana wallet file, '
        "or a BIP-388 wallet policy"
    )
