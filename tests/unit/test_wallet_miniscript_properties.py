"""Property tests of the recovery descriptor: round trips, embit's derivation, and garbage.

Policies are generated over a pool of twelve keys: a ``pk`` or ``multi``
primary path and one to three recovery paths (``pkh``, ``pk``, ``multi``,
``thresh``) with distinct delays, stacked the way Liana writes them or under
one ``or_d``, on either branch order. For each: the text reads back to the
same descriptor, and every derived script and address is embit's. Mutated
and random texts give a descriptor or an L2CustodyError, never another
exception. Derandomized, so a run is reproducible.
"""

from __future__ import annotations

from functools import cache

from embit import bip32
from embit.descriptor import Descriptor
from embit.networks import NETWORKS
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from l2custody.errors import L2CustodyError
from l2custody.wallet import satisfy
from l2custody.wallet.descriptor import KeyOrigin
from l2custody.wallet.descriptors import parse_wallet_descriptor
from l2custody.wallet.fragments import Either, KeyCheck, Node, Timelocked
from l2custody.wallet.miniscript import RecoveryDescriptor

PROPERTY = settings(max_examples=200, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
POOL_SIZE = 12


@cache
def pool() -> tuple[KeyOrigin, ...]:
    """Twelve testnet account keys of distinct seeds."""
    keys = []
    for i in range(POOL_SIZE):
        root = bip32.HDKey.from_seed(bytes([i + 90]) * 32, version=NETWORKS["test"]["xprv"])
        account = root.derive("m/48h/1h/0h/2h").to_public()
        keys.append(KeyOrigin(root.my_fingerprint.hex(), "48h/1h/0h/2h", account.to_base58()))
    return tuple(keys)


@st.composite
def key_check(draw: st.DrawFn, keys: tuple[KeyOrigin, ...], primary: bool) -> KeyCheck:
    if len(keys) == 1:
        return KeyCheck("pk" if primary else draw(st.sampled_from(["pkh", "pk"])), 1, keys)
    form = "multi" if primary else draw(st.sampled_from(["multi", "thresh"]))
    return KeyCheck(form, draw(st.integers(1, len(keys))), keys)


@st.composite
def descriptors(draw: st.DrawFn) -> RecoveryDescriptor:
    order = draw(st.permutations(range(POOL_SIZE)))
    sizes = draw(st.lists(st.integers(1, 3), min_size=2, max_size=4))
    delays = draw(st.lists(st.integers(1, 0xFFFF), min_size=len(sizes) - 1, max_size=len(sizes) - 1, unique=True))
    groups, start = [], 0
    for n in sizes:
        groups.append(tuple(pool()[i] for i in order[start : start + n]))
        start += n
    primary = draw(key_check(groups[0], primary=True))
    paths = [Timelocked(draw(key_check(g, primary=False)), d) for g, d in zip(groups[1:], delays, strict=True)]
    tree: Node
    if draw(st.booleans()):  # Liana: or_i(latest, ... or_d(primary, first))
        tree = Either("or_d", primary, paths[0])
        for path in paths[1:]:
            tree = Either("or_i", path, tree)
    else:  # or_d(primary, or_i(first, or_i(second, ...)))
        rest: Node = paths[-1]
        for path in reversed(paths[:-1]):
            rest = Either("or_i", path, rest)
        tree = Either("or_d", primary, rest)
    event(f"{len(paths)} recovery path(s)")
    return RecoveryDescriptor(tree, "regtest", branches=draw(st.sampled_from([(0, 1), (1, 0)])))


@PROPERTY
@given(desc=descriptors())
def test_text_reads_back_to_the_same_descriptor(desc: RecoveryDescriptor) -> None:
    assert RecoveryDescriptor.parse(desc.to_string(), "regtest") == desc
    assert parse_wallet_descriptor(desc.to_string(checksum=False), "regtest") == desc
    pair = f"{desc.to_string(change=False)} {desc.to_string(change=True)}"
    assert RecoveryDescriptor.parse_pair(*pair.split(), network="regtest", ordered=True) == desc


@PROPERTY
@given(desc=descriptors(), change=st.booleans(), index=st.integers(0, 2**31 - 1))
def test_derivation_agrees_with_embit(desc: RecoveryDescriptor, change: bool, index: int) -> None:
    theirs = Descriptor.from_string(desc.to_string(checksum=False)).derive(index, branch_index=int(change))
    ours = desc.derive(change, index)
    assert ours.witness_script == theirs.witness_script().data
    assert ours.address == theirs.address(NETWORKS["regtest"])
    assert len(ours.bip32) == len(desc.keys)


ALPHABET = "()[]<>{},;:/*#'h0123456789abcdefghijklmnopqrstuvwxyz_ABCDEFGHJKLMNPQRSTUVWXYZ \n"


@st.composite
def mutated(draw: st.DrawFn) -> str:
    text = draw(descriptors()).to_string(checksum=draw(st.booleans()))
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(text)))
        kind = draw(st.sampled_from(["delete", "insert", "replace", "duplicate", "truncate"]))
        if kind == "delete":
            text = text[:at] + text[at + draw(st.integers(1, 40)) :]
        elif kind == "insert":
            text = text[:at] + draw(st.text(ALPHABET, min_size=1, max_size=8)) + text[at:]
        elif kind == "replace":
            text = text[:at] + draw(st.sampled_from(ALPHABET)) + text[at + 1 :]
        elif kind == "duplicate":
            text = text[:at] + text[at : at + draw(st.integers(1, 120))] + text[at:]
        else:
            text = text[:at]
    return text


def outcome(text: str) -> str:
    """Parse; any exception other than an L2CustodyError fails the test."""
    try:
        desc = parse_wallet_descriptor(text, "regtest")
    except L2CustodyError as exc:
        assert exc.message
        return type(exc).__name__
    assert desc.address(True, 3)
    return "parsed"


@settings(PROPERTY, max_examples=400)
@given(text=mutated())
def test_mutated_descriptors_parse_or_raise_descriptor_errors(text: str) -> None:
    event(outcome(text))


@settings(PROPERTY, max_examples=400)
@given(text=st.one_of(st.text(max_size=200), st.text(ALPHABET, max_size=200).map(lambda t: "wsh(" + t)))
def test_garbage_raises_descriptor_errors(text: str) -> None:
    event(outcome(text))


@PROPERTY
@given(desc=descriptors(), data=st.data())
def test_every_path_fills_checks_and_weighs_consistently(desc: RecoveryDescriptor, data: st.DataObject) -> None:
    """A witness filled for a path passes ``matches`` for that path, fits its weight, and fails others."""
    pubkeys = desc.pubkeys_at(False, 1)
    script_len = len(desc.derive(False, 1).witness_script)
    fake = {pub: bytes([i + 1]) * data.draw(st.integers(71, 72)) for i, pub in enumerate(pubkeys.values())}
    paths = desc.spending_paths
    for path in paths:
        slots = satisfy.template(desc.tree, pubkeys, path.delay)
        assert slots is not None
        signers = {pubkeys[k.fingerprint] for k in path.keys}
        items = satisfy.fill(slots, {p: s for p, s in fake.items() if p in signers})
        assert items is not None
        assert satisfy.matches(slots, items, lambda pub, sig: fake.get(pub) == sig)
        assert satisfy.items_weight(items, script_len) <= satisfy.witness_weight(slots, script_len)
        found = satisfy.matching_path(desc.tree, pubkeys, items, lambda pub, sig: fake.get(pub) == sig, 0xFFFF)
        assert found == path
        short = [k for k in path.keys][: path.threshold - 1]
        assert satisfy.fill(slots, {pubkeys[k.fingerprint]: fake[pubkeys[k.fingerprint]] for k in short}) is None
