"""Reading a recovery wallet's descriptor text into fragments (``wallet/fragments.py``).

A small recursive-descent reader for the shapes ``RecoveryDescriptor`` takes
(see ``wallet/miniscript.py``): ``or_d``/``or_i`` of key checks (``pk``,
``pkh``, ``multi``, ``thresh(k,pkh,a:pkh...)``) and recovery paths
``and_v(v:KEYS,older(N))``. Keys are read by ``descriptor.parse_key_expression``
and keep their suffix kind for one check at the end. Anything else is a
DescriptorError that names the place, or says what is not supported
(``after()``, hash locks, time-based or out-of-range ``older()``). The
policy rules (one primary path, distinct delays, ...) are the descriptor's.
"""

from __future__ import annotations

import re

from l2custody import redact
from l2custody.errors import DescriptorError
from l2custody.numbers import is_decimal
from l2custody.wallet.descriptor import KeyOrigin, SuffixKind, parse_key_expression, strip_checksum
from l2custody.wallet.fragments import KEY_FORMS, Either, KeyCheck, Node, Timelocked

#: BIP-68 block-based delays are 16 bits.
MAX_DELAY = 0xFFFF

SHAPE = (
    "the wallet takes wsh(or_d(multi(K,...),and_v(v:pkh(R),older(N)))) — the primary path, then "
    "recovery paths and_v(v:pkh(R),older(N)) or and_v(v:multi(k,R1,R2,...),older(N)), stacked as "
    "Liana writes them: or_i(and_v(...,older(N2)),or_d(multi(K,...),and_v(...,older(N1))))"
)
_NOT_SUPPORTED = {
    "after": "after() is an absolute timelock (a height or a date); not supported: recovery paths use a "
    "relative older(N) in blocks",
    "sha256": "hash locks (sha256, hash256, ripemd160, hash160) are not supported: every path must need signatures",
    "sortedmulti": "sortedmulti() inside a miniscript is not supported; write multi() (its keys keep their order)",
    "multi_a": "multi_a() is for taproot; this wallet is P2WSH: use multi()",
}
for _hash in ("hash256", "ripemd160", "hash160"):
    _NOT_SUPPORTED[_hash] = _NOT_SUPPORTED["sha256"]
_NOT_SUPPORTED["sortedmulti_a"] = _NOT_SUPPORTED["multi_a"]


class _Reader:
    """A cursor over the inside of ``wsh(...)``; errors name the place."""

    def __init__(self, text: str) -> None:
        self.text, self.pos = text, 0

    def fail(self, what: str) -> DescriptorError:
        near = self.text[self.pos : self.pos + 24] or "the end"
        return DescriptorError(f"{what} (at character {self.pos}: {near!r}); {SHAPE}")

    def expect(self, token: str) -> None:
        if not self.text.startswith(token, self.pos):
            raise self.fail(f"expected {token!r}")
        self.pos += len(token)

    def name(self) -> str:
        m = re.compile(r"[a-z_0-9]+(?::[a-z_0-9]+)?").match(self.text, self.pos)
        if not m:
            raise self.fail("expected a miniscript fragment such as or_d(, multi( or and_v(")
        self.pos = m.end()
        return m.group(0)

    def number(self, what: str) -> int:
        m = re.compile(r"[^,()]*").match(self.text, self.pos)
        word = m.group(0) if m else ""
        if not is_decimal(word) or len(word) > 10:
            raise self.fail(f"{what} {word!r} is not a number")
        self.pos += len(word)
        return int(word)

    def key(self, position: int) -> tuple[KeyOrigin, SuffixKind | None]:
        depth, start = 0, self.pos
        while self.pos < len(self.text):
            ch = self.text[self.pos]
            if ch in "[<{":
                depth += 1
            elif ch in "]>}":
                depth -= 1
            elif ch in ",()" and depth == 0:
                break
            self.pos += 1
        return parse_key_expression(self.text[start : self.pos].strip(), position)


class _Parser:
    """Reads the fragments of ``SHAPE``; keys keep their suffix kinds for one check at the end."""

    def __init__(self, text: str) -> None:
        self.r = _Reader(text)
        self.suffixes: list[SuffixKind | None] = []

    def tree(self) -> Node:
        node = self.node()
        if self.r.pos != len(self.r.text):
            raise self.r.fail("unexpected text after the miniscript")
        return node

    def node(self) -> Node:
        start = self.r.pos
        name = self.r.name()
        if name in ("or_d", "or_i"):
            self.r.expect("(")
            left = self.node()
            self.r.expect(",")
            right = self.node()
            self.r.expect(")")
            return Either(name, left, right)
        if name == "and_v":
            self.r.expect("(")
            if not self.r.text.startswith("v:", self.r.pos):
                raise self.r.fail("a recovery path is written and_v(v:KEYS,older(N))")
            self.r.pos += 2
            keys = self.key_check(self.r.name())
            self.r.expect(",")
            lock = self.r.name()
            if lock in _NOT_SUPPORTED:
                raise DescriptorError(_NOT_SUPPORTED[lock])
            if lock != "older":
                raise self.r.fail("a recovery path ends with older(N), a delay in blocks")
            self.r.expect("(")
            delay = check_delay(self.r.number("the delay of older()"))
            self.r.expect(")")
            self.r.expect(")")
            return Timelocked(keys, delay)
        if name in KEY_FORMS:
            return self.key_check(name)
        self.r.pos = start
        raise self.unsupported(name)

    def unsupported(self, name: str) -> DescriptorError:
        bare = name.split(":")[-1]
        if bare in _NOT_SUPPORTED:
            return DescriptorError(_NOT_SUPPORTED[bare])
        if bare == "older":
            return self.r.fail("older(N) must come with the keys that may spend after it: and_v(v:pkh(R),older(N))")
        return self.r.fail(f"{name}() is not supported here")

    def key_check(self, name: str) -> KeyCheck:
        if name not in KEY_FORMS:
            raise self.unsupported(name)
        self.r.expect("(")
        if name in ("pk", "pkh"):
            keys = [self.key()]
            threshold = 1
        elif name == "multi":
            threshold = self.r.number("the threshold of multi()")
            keys = []
            while self.r.text.startswith(",", self.r.pos):
                self.r.pos += 1
                keys.append(self.key())
        else:
            threshold = self.r.number("the threshold of thresh()")
            keys = []
            while self.r.text.startswith(",", self.r.pos):
                self.r.pos += 1
                wrapper = "pkh" if not keys else "a:pkh"
                if self.r.name() != wrapper:
                    raise self.r.fail(f"thresh() is read as thresh(k,pkh(R1),a:pkh(R2),...); expected {wrapper}(")
                self.r.expect("(")
                keys.append(self.key())
                self.r.expect(")")
        self.r.expect(")")
        return KeyCheck(name, threshold, tuple(keys))

    def key(self) -> KeyOrigin:
        origin, suffix = self.r.key(len(self.suffixes) + 1)
        self.suffixes.append(suffix)
        return origin

    def branches(self) -> SuffixKind:
        if any(s is None for s in self.suffixes):
            raise DescriptorError(
                "every key needs the derivation suffix /<0;1>/* so that addresses can be derived; "
                "a fixed key would reuse one address forever"
            )
        kinds = {s for s in self.suffixes if s is not None}
        if len(kinds) != 1:
            raise DescriptorError("all keys must use the same branches (/<0;1>/* everywhere, or /0/* or /1/*)")
        return kinds.pop()


def check_delay(value: int) -> int:
    """A block-based relative delay, 1..65535 (BIP-68); other older() values are refused."""
    if value & (1 << 31):
        raise DescriptorError(f"older({value}) sets the BIP-68 disable flag (bit 31): it is no timelock at all")
    if value & (1 << 22):
        raise DescriptorError(
            f"older({value}) is a time-based relative lock (bit 22, units of 512 seconds); not supported: "
            "give the delay in blocks, older(1) to older(65535) (about 144 blocks a day)"
        )
    if value == 0:
        raise DescriptorError("older(0) would open the recovery path at once; the delay must be at least 1 block")
    if value > MAX_DELAY:
        raise DescriptorError(
            f"older({value}): a delay in blocks is at most {MAX_DELAY} (BIP-68 keeps 16 bits, about 455 days)"
        )
    return value


def parse_text(text: str) -> tuple[Node, SuffixKind]:
    """The fragments of one descriptor (checksum verified when present) and its keys' suffix kind."""
    body = strip_checksum(text)
    if not (body.startswith("wsh(") and body.endswith(")")):
        raise DescriptorError(f"{redact.shown(body, 24)} is not a wsh(...) miniscript descriptor; {SHAPE}")
    parser = _Parser(body[4:-1])
    tree = parser.tree()
    return tree, parser.branches()


__all__ = ["MAX_DELAY", "SHAPE", "check_delay", "parse_text"]
