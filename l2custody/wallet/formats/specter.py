"""Specter Desktop wallet JSON (its backup, and the ``label``/``descriptor`` export other wallets share)."""

from __future__ import annotations

from l2custody.wallet.descriptor import MultisigDescriptor
from l2custody.wallet.formats.imported import ImportedWallet, check_stated_address
from l2custody.wallet.formats.jsondata import JsonObject
from l2custody.wallet.formats.text import with_default_branches


def import_specter(data: object, network: str | None = None) -> ImportedWallet:
    """A Specter Desktop wallet file.

    Its backup holds ``recv_descriptor`` and ``change_descriptor`` (and the
    current ``address``/``change_address`` with their indexes, which we
    check); the export for other wallets holds ``label`` and one
    ``descriptor``: Specter's receive branch ``/0/*`` (change is ``/1/*``),
    or keys without a suffix, which Specter reads the same way.
    """
    top = JsonObject(data, "the Specter wallet file")
    name = top.optional_text("name") or top.optional_text("label")
    if "recv_descriptor" in top:
        desc = MultisigDescriptor.parse_pair(
            top.text("recv_descriptor"), top.text("change_descriptor"), network, ordered=True
        )
        for key, index_key, change in (("address", "address_index", False), ("change_address", "change_index", True)):
            stated, index = top.optional_text(key), top.optional_integer(index_key)
            if stated is not None and index is not None:
                check_stated_address(desc, stated, change, index, f"the Specter file's {key}")
    else:
        desc = with_default_branches(top.text("descriptor"), network)
    return ImportedWallet(desc, "specter", name=name)
