"""BIP-388 wallet policies (`wallet export --format policy`): what hardware signers register.

Every export format imports back to the same wallet (tests/unit/test_wallet_formats.py
runs them all); here the policy's own promises: placeholders in order of appearance,
``/**`` for ``/<0;1>/*``, and a policy that does not describe one wallet refused.
"""

from __future__ import annotations

import json
import re

import pytest

from l2custody.errors import DescriptorError
from l2custody.wallet.formats import export_wallet, import_wallet
from l2custody.wallet.formats.policy import wallet_policy
from l2custody.wallet.miniscript import RecoveryDescriptor
from tests.support import miniscript
from tests.support.wallet import descriptor


def test_a_multisig_policy_names_each_key_once_in_order() -> None:
    policy = wallet_policy(descriptor())
    assert policy["descriptor_template"] == "wsh(sortedmulti(2,@0/**,@1/**,@2/**))"
    assert policy["keys_info"] == [k.to_string() for k in descriptor().keys]


@pytest.mark.parametrize("text", [miniscript.text(), miniscript.stacked_text()], ids=["one path", "stacked"])
def test_a_recovery_wallet_policy_round_trips(text: str) -> None:
    desc = RecoveryDescriptor.parse(text, network="regtest")
    policy = wallet_policy(desc)
    template = str(policy["descriptor_template"])
    assert "[" not in template and "older(" in template and template.count("@") == len(desc.keys)
    assert [f"@{i}/**" in template for i in range(len(desc.keys))] == [True] * len(desc.keys)
    again = import_wallet(export_wallet(desc, "policy"), network="regtest")
    assert again.source == "policy" and again.descriptor == desc


@pytest.mark.parametrize(
    "change, needle",
    [
        (lambda p: p["keys_info"].pop(), "names @2 but keys_info holds 2 keys"),
        (lambda p: p["keys_info"].append(p["keys_info"][0]), "never uses (@3)"),
        (lambda p: p.update(descriptor_template=p["descriptor_template"].replace("@1/**", "@1")), "placeholder"),
        (lambda p: p["keys_info"].__setitem__(0, 7), "keys_info[0]"),
    ],
    ids=["missing key", "unused key", "bare placeholder", "not a key"],
)
def test_a_policy_that_is_not_one_wallet_is_refused(change, needle: str) -> None:  # type: ignore[no-untyped-def]
    policy = wallet_policy(descriptor())
    change(policy)
    with pytest.raises(DescriptorError, match=re.escape(needle)):
        import_wallet(json.dumps(policy), network="regtest")
