"""BIP-388 wallet policies: what a hardware signer registers before it signs for a wallet.

A policy is a descriptor template whose keys are placeholders ``@i/**`` (``/**`` standing
for ``/<0;1>/*``, or ``@i/<M;N>/*``), numbered in order of appearance, plus the keys'
``[fingerprint/path]xpub`` (``keys_info``). Ledger's Bitcoin app, BitBox02 and Jade register
multisig and miniscript wallets in this form (Liana's device setup does it too); the
device then shows the policy once for approval and can tell our keys and change apart.
``wallet export --format policy`` writes it as ``{"descriptor_template", "keys_info"}``
JSON, and ``wallet import`` reads that back.
"""

from __future__ import annotations

import json
import re

from l2custody.errors import DescriptorError
from l2custody.wallet.descriptors import WalletDescriptor, parse_wallet_descriptor
from l2custody.wallet.formats.imported import ImportedWallet
from l2custody.wallet.formats.jsondata import JsonObject

_PLACEHOLDER = re.compile(r"@(\d+)(/\*\*|/<\d+;\d+>/\*)")


def wallet_policy(desc: WalletDescriptor) -> dict[str, object]:
    """The policy of ``desc``: template and keys (see the module docstring)."""
    receive, change = desc.branches
    text = desc.to_string(checksum=False)
    suffix = f"/<{receive};{change}>/*"
    placeholder = "/**" if (receive, change) == (0, 1) else suffix
    keys = sorted(desc.keys, key=lambda k: text.index(k.to_string() + suffix))
    template = text
    for i, key in enumerate(keys):
        template = template.replace(key.to_string() + suffix, f"@{i}{placeholder}")
    return {"descriptor_template": template, "keys_info": [k.to_string() for k in keys]}


def export_policy(desc: WalletDescriptor) -> str:
    return json.dumps(wallet_policy(desc), indent=2) + "\n"


def is_wallet_policy(data: dict[str, object]) -> bool:
    return "descriptor_template" in data and "keys_info" in data


def import_policy(data: object, network: str | None = None) -> ImportedWallet:
    """The wallet of a policy: each placeholder replaced by its key; every key used."""
    top = JsonObject(data, "the wallet policy")
    template = top.text("descriptor_template")
    keys = []
    for i, item in enumerate(top.array("keys_info")):
        if not isinstance(item, str):
            raise DescriptorError(f"the wallet policy's keys_info[{i}] is not a key [fp/path]xpub")
        keys.append(item.strip())
    used: set[int] = set()

    def expand(match: re.Match[str]) -> str:
        index = int(match[1])
        if index >= len(keys):
            raise DescriptorError(f"the wallet policy names @{index} but keys_info holds {len(keys)} keys")
        used.add(index)
        return keys[index] + ("/<0;1>/*" if match[2] == "/**" else match[2])

    text = _PLACEHOLDER.sub(expand, template)
    if "@" in text:
        raise DescriptorError("the wallet policy's template has a key placeholder that is not @N/** or @N/<M;N>/*")
    if used != set(range(len(keys))):
        unused = ", ".join(f"@{i}" for i in sorted(set(range(len(keys))) - used))
        raise DescriptorError(f"the wallet policy's keys_info holds keys its template never uses ({unused})")
    return ImportedWallet(parse_wallet_descriptor(text, network), "policy")
