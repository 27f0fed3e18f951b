"""The miniscript fragments a recovery wallet is made of, as typed values.

Only the few fragments a time-locked recovery wallet needs (the forms Liana
writes) exist here:

- ``KeyCheck``: who must sign. ``pk(A)``, ``pkh(A)``, ``multi(k,A,B,...)`` or
  ``thresh(k,pkh(A),a:pkh(B),...)``;
- ``Timelocked``: ``and_v(v:KEYCHECK,older(N))``, keys that may sign only
  once the coin is N blocks old (BIP-68 relative lock, CHECKSEQUENCEVERIFY);
- ``Either``: ``or_d(X,Z)`` or ``or_i(X,Z)``, one of two spending paths.

Each fragment writes its descriptor text (``text``) and its script
(``script``, given the derived public key of every key by master
fingerprint), and lists its spending paths (``spending_paths``). Parsing and
the sanity rules live in ``wallet/miniscript.py``; witnesses in
``wallet/satisfy.py``. Opcodes and encodings are the miniscript spec's
(bitcoin.sipa.be/miniscript).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from embit import hashes

from l2custody.wallet.descriptor import KeyOrigin

OP_0, OP_1 = 0x00, 0x51
OP_IF, OP_NOTIF, OP_ELSE, OP_ENDIF, OP_VERIFY = 0x63, 0x64, 0x67, 0x68, 0x69
OP_TOALTSTACK, OP_FROMALTSTACK, OP_IFDUP, OP_DUP = 0x6B, 0x6C, 0x73, 0x76
OP_EQUAL, OP_EQUALVERIFY, OP_ADD, OP_HASH160 = 0x87, 0x88, 0x93, 0xA9
OP_CHECKSIG, OP_CHECKSIGVERIFY, OP_CHECKMULTISIG, OP_CHECKMULTISIGVERIFY = 0xAC, 0xAD, 0xAE, 0xAF
OP_CHECKSEQUENCEVERIFY = 0xB2

#: The key-check forms, as the descriptor writes them.
KEY_FORMS = ("pk", "pkh", "multi", "thresh")

#: A key's derived 33-byte public key, by the key's master fingerprint (unique in a wallet).
PubkeyOf = Callable[[KeyOrigin], bytes]


def script_num(value: int) -> bytes:
    """The minimal push of a number: OP_0, OP_1..OP_16, else its CScriptNum bytes (older(N), k)."""
    if value == 0:
        return bytes([OP_0])
    if 1 <= value <= 16:
        return bytes([OP_1 - 1 + value])
    data = value.to_bytes((value.bit_length() + 7) // 8, "little")
    if data[-1] & 0x80:  # the top bit is the sign: a positive number needs one more byte
        data += b"\x00"
    return bytes([len(data)]) + data


def _push_key(pub: bytes) -> bytes:
    return bytes([len(pub)]) + pub


@dataclass(frozen=True)
class KeyCheck:
    """``threshold`` of ``keys`` must sign, written as ``form`` (pk, pkh, multi or thresh)."""

    form: str
    threshold: int
    keys: tuple[KeyOrigin, ...]

    def text(self, suffix: str, wrapper: str = "") -> str:
        """The descriptor text, each key followed by ``suffix`` (``/<0;1>/*``), ``v:`` wrapped if asked."""
        keys = [k.to_string() + suffix for k in self.keys]
        if self.form == "multi":
            body = f"multi({self.threshold},{','.join(keys)})"
        elif self.form == "thresh":
            subs = [f"pkh({keys[0]})"] + [f"a:pkh({k})" for k in keys[1:]]
            body = f"thresh({self.threshold},{','.join(subs)})"
        else:
            body = f"{self.form}({keys[0]})"
        return f"{wrapper}:{body}" if wrapper else body

    def script(self, pub: PubkeyOf, verify: bool = False) -> bytes:
        """The script (its ``v:`` form with ``verify``): the last opcode becomes its VERIFY twin."""
        pubs = [pub(k) for k in self.keys]
        if self.form == "pk":
            return _push_key(pubs[0]) + bytes([OP_CHECKSIGVERIFY if verify else OP_CHECKSIG])
        if self.form == "pkh":
            return _pkh(pubs[0]) + bytes([OP_CHECKSIGVERIFY if verify else OP_CHECKSIG])
        if self.form == "multi":
            return (
                script_num(self.threshold)
                + b"".join(_push_key(p) for p in pubs)
                + script_num(len(pubs))
                + bytes([OP_CHECKMULTISIGVERIFY if verify else OP_CHECKMULTISIG])
            )
        body = _pkh(pubs[0]) + bytes([OP_CHECKSIG])
        for p in pubs[1:]:  # a:pkh(K) = TOALTSTACK <pkh(K)> FROMALTSTACK, then ADD
            body += bytes([OP_TOALTSTACK]) + _pkh(p) + bytes([OP_CHECKSIG, OP_FROMALTSTACK, OP_ADD])
        return body + script_num(self.threshold) + bytes([OP_EQUALVERIFY if verify else OP_EQUAL])

    def ops(self) -> int:
        """Non-push opcodes, counting CHECKMULTISIG's keys as the interpreter does (limit 201)."""
        if self.form == "pk":
            return 1
        if self.form == "pkh":
            return 4
        if self.form == "multi":
            return 1 + len(self.keys)
        return 4 + 7 * (len(self.keys) - 1) + 1  # pkh, then TOALTSTACK pkh FROMALTSTACK ADD each, EQUAL

    def spending_paths(self) -> list[SpendingPath]:
        return [SpendingPath(None, self)]


def _pkh(pub: bytes) -> bytes:
    return bytes([OP_DUP, OP_HASH160, 20]) + hashes.hash160(pub) + bytes([OP_EQUALVERIFY])


@dataclass(frozen=True)
class Timelocked:
    """``and_v(v:KEYS,older(delay))``: ``keys`` may spend once the coin is ``delay`` blocks old."""

    keys: KeyCheck
    delay: int

    def text(self, suffix: str) -> str:
        return f"and_v({self.keys.text(suffix, wrapper='v')},older({self.delay}))"

    def script(self, pub: PubkeyOf) -> bytes:
        return self.keys.script(pub, verify=True) + script_num(self.delay) + bytes([OP_CHECKSEQUENCEVERIFY])

    def ops(self) -> int:
        return self.keys.ops() + 1

    def spending_paths(self) -> list[SpendingPath]:
        return [SpendingPath(self.delay, self.keys)]


@dataclass(frozen=True)
class Either:
    """``or_d(left,right)`` (left tried first, dissatisfied to take right) or ``or_i`` (an IF)."""

    kind: str  # "or_d" | "or_i"
    left: Node
    right: Node

    def text(self, suffix: str) -> str:
        return f"{self.kind}({self.left.text(suffix)},{self.right.text(suffix)})"

    def script(self, pub: PubkeyOf) -> bytes:
        left, right = self.left.script(pub), self.right.script(pub)
        if self.kind == "or_d":  # [X] IFDUP NOTIF [Z] ENDIF
            return left + bytes([OP_IFDUP, OP_NOTIF]) + right + bytes([OP_ENDIF])
        return bytes([OP_IF]) + left + bytes([OP_ELSE]) + right + bytes([OP_ENDIF])  # IF [X] ELSE [Z] ENDIF

    def ops(self) -> int:
        return self.left.ops() + self.right.ops() + 3  # IFDUP NOTIF ENDIF, or IF ELSE ENDIF

    def spending_paths(self) -> list[SpendingPath]:
        return self.left.spending_paths() + self.right.spending_paths()


Node = KeyCheck | Timelocked | Either


@dataclass(frozen=True)
class SpendingPath:
    """One way to spend: ``keys`` (a KeyCheck) sign, after ``delay`` blocks (None: at any time)."""

    delay: int | None
    check: KeyCheck

    @property
    def threshold(self) -> int:
        return self.check.threshold

    @property
    def keys(self) -> tuple[KeyOrigin, ...]:
        return self.check.keys


def all_keys(node: Node) -> list[KeyOrigin]:
    """Every key of the tree, in the order the descriptor writes them."""
    return [k for path in node.spending_paths() for k in path.keys]


def derived_script(node: Node, pubkeys: Mapping[str, bytes]) -> bytes:
    """The witness script with each key's derived pubkey looked up by master fingerprint."""
    return node.script(lambda key: pubkeys[key.fingerprint])
