"""Witnesses for a recovery wallet's script: build them, check them, weigh them.

A spending path's witness follows from the fragments (miniscript spec,
"satisfaction" and "dissatisfaction"). Listed bottom of the stack first, as
a segwit witness is written, the script last:

- ``multi(k,...)``: an empty dummy (CHECKMULTISIG's off-by-one), then k
  signatures in key order; dissatisfied by k+1 empty items;
- ``pk(K)``: a signature; dissatisfied by an empty item;
- ``pkh(K)``: a signature and the pubkey; dissatisfied by empty + pubkey;
- ``thresh(k,pkh(K1),a:pkh(K2),...)``: for each key from the last to the
  first, a signature or an empty item, and its pubkey (exactly k signed);
- ``and_v(v:KEYS,older(N))``: KEYS' satisfaction (older needs nothing on
  the stack, but the input's nSequence must be at least N: BIP-68);
- ``or_d(X,Z)``: X's satisfaction, or Z's satisfaction then X's
  dissatisfaction on top;
- ``or_i(X,Z)``: X's satisfaction and ``1``, or Z's and an empty item.

``template`` gives a path's witness as slots (fixed bytes, or signatures of
given keys); ``fill`` puts signatures in, ``matches`` checks a finished
witness, ``weight`` sizes it (every signature 72 bytes, the worst case).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass

from l2custody.wallet import size
from l2custody.wallet.fragments import Either, KeyCheck, Node, SpendingPath, Timelocked

#: BIP-68: nSequence bit 31 disables the relative lock, bit 22 makes it time-based (512 s units).
SEQUENCE_DISABLE_FLAG = 1 << 31
SEQUENCE_TYPE_FLAG = 1 << 22
SEQUENCE_MASK = 0xFFFF
#: The bytes of one input before its witness: outpoint, empty scriptSig, nSequence.
_INPUT_BASE = 36 + 1 + 4


@dataclass(frozen=True)
class Push:
    """Exactly these bytes (an empty item, the ``1`` of or_i, a pubkey)."""

    data: bytes


@dataclass(frozen=True)
class Sig:
    """A signature by ``pubkey``."""

    pubkey: bytes


@dataclass(frozen=True)
class MultiSigs:
    """``threshold`` signatures by keys of ``pubkeys``, in their order (CHECKMULTISIG)."""

    threshold: int
    pubkeys: tuple[bytes, ...]


@dataclass(frozen=True)
class ThreshSigs:
    """thresh(k, pkh...): per key from the last to the first, a signature or empty, then the pubkey."""

    threshold: int
    pubkeys: tuple[bytes, ...]


Slot = Push | Sig | MultiSigs | ThreshSigs


def relative_lock(sequence: int, tx_version: int) -> int | None:
    """The block-based relative lock an input's nSequence gives it (BIP-68), or None if none."""
    if tx_version < 2 or sequence & SEQUENCE_DISABLE_FLAG or sequence & SEQUENCE_TYPE_FLAG:
        return None
    return sequence & SEQUENCE_MASK


# --- templates --------------------------------------------------------------------------------
def template(node: Node, pubkeys: Mapping[str, bytes], delay: int | None) -> list[Slot] | None:
    """The witness slots of the path with ``delay`` (None: the primary path), or None if not in ``node``."""
    if isinstance(node, KeyCheck):
        return _satisfy_keys(node, pubkeys) if delay is None else None
    if isinstance(node, Timelocked):
        return _satisfy_keys(node.keys, pubkeys) if delay == node.delay else None
    left = template(node.left, pubkeys, delay)
    if left is not None:
        return left if node.kind == "or_d" else left + [Push(b"\x01")]
    right = template(node.right, pubkeys, delay)
    if right is None:
        return None
    if node.kind == "or_i":
        return right + [Push(b"")]
    return right + _dissatisfy_keys(_key_check(node), pubkeys)


def _key_check(node: Either) -> KeyCheck:
    if not isinstance(node.left, KeyCheck):  # pragma: no cover - RecoveryDescriptor refuses such trees
        raise ValueError("or_d's first branch must be a key check")
    return node.left


def _satisfy_keys(check: KeyCheck, pubkeys: Mapping[str, bytes]) -> list[Slot]:
    pubs = tuple(pubkeys[k.fingerprint] for k in check.keys)
    if check.form == "pk":
        return [Sig(pubs[0])]
    if check.form == "pkh":
        return [Sig(pubs[0]), Push(pubs[0])]
    if check.form == "multi":
        return [Push(b""), MultiSigs(check.threshold, pubs)]
    return [ThreshSigs(check.threshold, pubs)]


def _dissatisfy_keys(check: KeyCheck, pubkeys: Mapping[str, bytes]) -> list[Slot]:
    pubs = [pubkeys[k.fingerprint] for k in check.keys]
    if check.form == "pk":
        return [Push(b"")]
    if check.form == "pkh":
        return [Push(b""), Push(pubs[0])]
    if check.form == "multi":
        return [Push(b"")] * (check.threshold + 1)
    return [slot for pub in reversed(pubs) for slot in (Push(b""), Push(pub))]


def item_count(slots: Sequence[Slot]) -> int:
    """Witness items of a template, the script not counted (standardness allows 100)."""
    return sum(_items(s) for s in slots)


def _items(slot: Slot) -> int:
    if isinstance(slot, MultiSigs):
        return slot.threshold
    if isinstance(slot, ThreshSigs):
        return 2 * len(slot.pubkeys)
    return 1


# --- filling, checking, weighing -----------------------------------------------------------------
def fill(slots: Sequence[Slot], sigs: Mapping[bytes, bytes]) -> list[bytes] | None:
    """The witness items (script not included) from ``sigs`` (pubkey -> signature); None if short."""
    out: list[bytes] = []
    for slot in slots:
        if isinstance(slot, Push):
            out.append(slot.data)
        elif isinstance(slot, Sig):
            if slot.pubkey not in sigs:
                return None
            out.append(sigs[slot.pubkey])
        elif isinstance(slot, MultiSigs):
            chosen = [sigs[p] for p in slot.pubkeys if p in sigs][: slot.threshold]
            if len(chosen) < slot.threshold:
                return None
            out.extend(chosen)
        else:
            signing = [p for p in slot.pubkeys if p in sigs][: slot.threshold]
            if len(signing) < slot.threshold:
                return None
            for pub in reversed(slot.pubkeys):
                out.extend([sigs[pub] if pub in signing else b"", pub])
    return out


def matches(slots: Sequence[Slot], items: Sequence[bytes], valid: Callable[[bytes, bytes], bool]) -> bool:
    """True if ``items`` (the witness without its script) fill ``slots`` with valid signatures.

    ``valid(pubkey, signature)`` judges one signature. A non-empty signature
    that does not verify fails the whole witness, as NULLFAIL makes it.
    """
    if item_count(slots) != len(items):
        return False
    pos = 0
    for slot in slots:
        count = _items(slot)
        part = list(items[pos : pos + count])
        pos += count
        if isinstance(slot, Push):
            ok = part[0] == slot.data
        elif isinstance(slot, Sig):
            ok = valid(slot.pubkey, part[0])
        elif isinstance(slot, MultiSigs):
            ok = _multisig_order(part, slot.pubkeys, valid)
        else:
            ok = _thresh_items(part, slot, valid)
        if not ok:
            return False
    return True


def _multisig_order(sigs: list[bytes], pubkeys: Sequence[bytes], valid: Callable[[bytes, bytes], bool]) -> bool:
    """CHECKMULTISIG: every signature matches a key after the previous signature's key."""
    keys = iter(pubkeys)
    for sig in sigs:
        if not any(valid(pub, sig) for pub in keys):
            return False
    return True


def _thresh_items(part: list[bytes], slot: ThreshSigs, valid: Callable[[bytes, bytes], bool]) -> bool:
    signed = 0
    for j, pub in enumerate(reversed(slot.pubkeys)):
        sig, given = part[2 * j], part[2 * j + 1]
        if given != pub:
            return False
        if sig:
            if not valid(pub, sig):
                return False
            signed += 1
    return signed == slot.threshold


def witness_weight(slots: Sequence[Slot], script_len: int) -> int:
    """Worst-case weight of the witness (item count, items, script); signatures 72 bytes."""
    items = 0
    body = 0
    for slot in slots:
        items += _items(slot)
        if isinstance(slot, Push):
            body += size.varint_size(len(slot.data)) + len(slot.data)
        elif isinstance(slot, Sig):
            body += 1 + size.MAX_SIGNATURE_SIZE
        elif isinstance(slot, MultiSigs):
            body += slot.threshold * (1 + size.MAX_SIGNATURE_SIZE)
        else:
            n, k = len(slot.pubkeys), slot.threshold
            body += k * (1 + size.MAX_SIGNATURE_SIZE) + (n - k) + n * (1 + 33)
    return size.varint_size(items + 1) + body + size.varint_size(script_len) + script_len


def input_weight(slots: Sequence[Slot], script_len: int) -> int:
    """Worst-case weight of a whole input spent with this witness."""
    return 4 * _INPUT_BASE + witness_weight(slots, script_len)


def items_weight(items: Sequence[bytes], script_len: int) -> int:
    """The weight of a finished witness (its items, then a script of ``script_len`` bytes)."""
    body = sum(size.varint_size(len(i)) + len(i) for i in items)
    return size.varint_size(len(items) + 1) + body + size.varint_size(script_len) + script_len


# --- choosing the path ------------------------------------------------------------------------
@dataclass(frozen=True)
class Satisfaction:
    """The witness chosen for an input: its path and items (the script goes after them)."""

    path: SpendingPath
    items: tuple[bytes, ...]


def cheapest(
    node: Node, pubkeys: Mapping[str, bytes], sigs: Mapping[bytes, bytes], script_len: int, lock: int | None
) -> Satisfaction | None:
    """The lightest witness the signatures make, among the paths the relative ``lock`` opens.

    ``lock`` is the input's block-based relative lock (``relative_lock``);
    a recovery path with delay N needs ``lock >= N``. None if no path can be
    satisfied; the primary path wins a tie.
    """
    best: tuple[int, Satisfaction] | None = None
    for path in node.spending_paths():
        if path.delay is not None and (lock is None or lock < path.delay):
            continue
        slots = template(node, pubkeys, path.delay)
        items = fill(slots, sigs) if slots is not None else None
        if items is None:
            continue
        weight = items_weight(items, script_len)
        if best is None or weight < best[0]:
            best = (weight, Satisfaction(path, tuple(items)))
    return best[1] if best else None


def satisfiable(
    node: Node, pubkeys: Mapping[str, bytes], signed: Collection[bytes], lock: int | None
) -> SpendingPath | None:
    """The cheapest path the keys that ``signed`` (pubkeys) complete, or None: whether an input is done."""
    found = cheapest(node, pubkeys, {pub: bytes(size.MAX_SIGNATURE_SIZE) for pub in signed}, 0, lock)
    return found.path if found else None


def matching_path(
    node: Node,
    pubkeys: Mapping[str, bytes],
    items: Sequence[bytes],
    valid: Callable[[bytes, bytes], bool],
    lock: int | None,
) -> SpendingPath | None:
    """The path a finished witness satisfies (the relative ``lock`` must open it), or None."""
    for path in node.spending_paths():
        if path.delay is not None and (lock is None or lock < path.delay):
            continue
        slots = template(node, pubkeys, path.delay)
        if slots is not None and matches(slots, items, valid):
            return path
    return None


__all__ = [
    "MultiSigs",
    "Push",
    "Satisfaction",
    "Sig",
    "Slot",
    "ThreshSigs",
    "cheapest",
    "fill",
    "input_weight",
    "item_count",
    "matches",
    "matching_path",
    "relative_lock",
    "satisfiable",
    "template",
    "witness_weight",
]
