"""The treasury's descriptor: ``wsh(sortedmulti(K, [fp/path]xpub/<0;1>/*, ...))``.

A MultisigDescriptor is a k-of-n P2WSH multisig over extended public keys,
each with its key origin (master fingerprint and derivation path). Branch 0
is for receiving, branch 1 for change (BIP-389 multipath ``/<0;1>/*``).
Pubkeys are sorted inside the script (BIP-67), so the order of the keys in
the descriptor does not change any address.

Promises:
- construction validates everything: 1 <= K <= N <= 20 (the CHECKMULTISIG
  key limit, which P2WSH keeps), no duplicate keys or master fingerprints, every
  key has an origin that fits its depth, all keys on one network (mixed
  networks raise NetworkMismatch); anything else raises DescriptorError
  with a message saying what to fix;
- a checksum, when present, must match (BIP-380); ``to_string()`` always
  writes one;
- ``derive`` is deterministic and pure (no I/O); results are cached.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from embit import base58, bip32, hashes
from embit.descriptor.checksum import checksum as _bip380_checksum
from embit.networks import NETWORKS

from l2custody import redact
from l2custody.errors import DescriptorError, NetworkMismatch
from l2custody.numbers import is_decimal
from l2custody.wallet import size
from l2custody.wallet.addresses import (
    human_network,
    normalize_network,
    script_to_address,
)

HARDENED = 0x80000000
#: At most 20 cosigners: CHECKMULTISIG's limit, which P2WSH keeps (the 15 of
#: P2SH came from its 520-byte redeem script; Bitcoin Core's wsh(sortedmulti)
#: takes 20 too). Some hardware signers stop at 15; that is theirs to refuse.
MAX_KEYS = 20
RECEIVE, CHANGE = 0, 1
#: The branch pair of the usual ``/<0;1>/*``: receive on 0, change on 1.
DEFAULT_BRANCHES = (RECEIVE, CHANGE)

_WHY_ORIGIN = (
    "every key needs its origin, written [fingerprint/derivation]xpub "
    "(e.g. [f57ec65d/48h/1h/0h/2h]tpub...): hardware and air-gapped signers "
    "use the master fingerprint and path in the PSBT to recognise their own "
    "inputs and change and to derive the key that signs; without it they refuse to sign"
)

_KEY_RE = re.compile(
    r"^\[(?P<fp>[0-9a-fA-F]{8})(?P<path>(?:/[0-9]+[hH']?)*)\](?P<xpub>[1-9A-HJ-NP-Za-km-z]+)(?P<suffix>/.*)?$"
)
#: Multipath suffixes: BIP-389 ``/<a;b>/*`` and the older ``/{a,b}/*`` (Specter);
#: the first branch is for receiving, the second for change.
_MULTIPATH_RE = re.compile(r"/(?:<(\d+);(\d+)>|\{(\d+),(\d+)\})/\*")
#: Whether a descriptor's text names both branches (multipath, or BIP-129's ``/**`` template).
MULTIPATH_MARK = re.compile(r"<\d+;\d+>|\{\d+,\d+\}|/\*\*")
#: What a key's suffix stands for: a (receive, change) branch pair, or one branch.
Branches = tuple[int, int]
SuffixKind = Branches | int
_SLIP132_PUB = {
    ver: ("main" if net == "main" else "test")
    for net, params in NETWORKS.items()
    for name, ver in params.items()
    if isinstance(ver, bytes) and len(ver) == 4 and name.endswith("pub")
}
_XPUB_VERSION = {"main": NETWORKS["main"]["xpub"], "test": NETWORKS["test"]["xpub"]}


def descriptor_checksum(text: str) -> str:
    """The 8-character BIP-380 checksum of a descriptor (without ``#``)."""
    try:
        return _bip380_checksum(text)
    except Exception as exc:
        raise DescriptorError(f"descriptor contains a character descriptors cannot hold: {exc}") from exc


def parse_path(path: str) -> list[int]:
    """``"m/48h/1'/0H/2h"`` or ``"48h/1h/0h/2h"`` -> list of indexes (hardened | 0x80000000)."""
    text = path.strip()
    if text in ("", "m"):
        return []
    if text.startswith("m/"):
        text = text[2:]
    out = []
    for part in text.strip("/").split("/"):
        hardened = part[-1:] in ("h", "H", "'")
        digits = part[:-1] if hardened else part
        if not is_decimal(digits) or int(digits) >= HARDENED:
            raise DescriptorError(f"bad derivation path {path!r}: {part!r} is not an index like 48h or 0")
        out.append(int(digits) + (HARDENED if hardened else 0))
    return out


def format_path(indexes: Iterable[int]) -> str:
    """List of indexes -> ``"48h/1h/0h/2h"`` (no leading ``m/``)."""
    return "/".join(f"{i - HARDENED}h" if i >= HARDENED else str(i) for i in indexes)


@lru_cache(maxsize=256)
def _decode_xpub(xpub: str) -> tuple[bip32.HDKey, str]:
    """Parse an extended public key; SLIP-132 variants (Zpub, Vpub...) become xpub/tpub.

    Returns the HDKey and its network family ("main" or "test").
    """
    try:
        raw = base58.decode_check(xpub)
    except Exception as exc:
        raise DescriptorError(f"{redact.shown(xpub, 12)} is not a valid extended key (base58 checksum failed)") from exc
    if len(raw) != 78:
        raise DescriptorError(f"{redact.shown(xpub, 12)} is not an extended key (78 bytes expected, got {len(raw)})")
    version = raw[:4]
    if raw[45] == 0 or version in {p[k] for p in NETWORKS.values() for k in p if k.endswith("prv")}:
        raise DescriptorError(
            f"{xpub[:4]}... is a private extended key: the wallet descriptor holds public keys only. "
            "Give the matching xpub/tpub here and add the private key as a signer (`l2custody signer add`)"
        )
    family = _SLIP132_PUB.get(version)
    if family is None:
        raise DescriptorError(f"{redact.shown(xpub, 12)} has an unknown extended key version {version.hex()}")
    try:
        key = bip32.HDKey.parse(_XPUB_VERSION[family] + raw[4:])
    except Exception as exc:
        raise DescriptorError(f"{redact.shown(xpub, 12)} is not a valid extended public key: {exc}") from exc
    return key, family


@dataclass(frozen=True)
class KeyOrigin:
    """One cosigner key: master fingerprint (8 hex), origin path ("48h/1h/0h/2h") and xpub.

    Normalised on construction: lowercase fingerprint, ``h`` for hardened,
    SLIP-132 versions converted to xpub/tpub. Invalid values raise DescriptorError.
    """

    fingerprint: str
    path: str
    xpub: str

    def __post_init__(self) -> None:
        fp = self.fingerprint.strip().lower()
        if not re.fullmatch(r"[0-9a-f]{8}", fp):
            raise DescriptorError(f"master fingerprint {self.fingerprint!r} must be 8 hex characters")
        indexes = parse_path(self.path)
        key, _family = _decode_xpub(self.xpub.strip())
        object.__setattr__(self, "fingerprint", fp)
        object.__setattr__(self, "path", format_path(indexes))
        object.__setattr__(self, "xpub", key.to_base58())
        if key.depth != len(indexes):
            raise DescriptorError(
                f"key [{fp}/{self.path}] has depth {key.depth} but its origin path has "
                f"{len(indexes)} steps: the origin does not belong to this xpub. Export the key "
                "again from the signer together with its origin"
            )
        if key.depth == 0 and key.my_fingerprint.hex() != fp:
            raise DescriptorError(
                f"key [{fp}] is a master key whose fingerprint is {key.my_fingerprint.hex()}, not {fp}"
            )
        if key.depth == 1 and key.fingerprint.hex() != fp:
            raise DescriptorError(
                f"key [{fp}/{self.path}] was derived from master {key.fingerprint.hex()}, not {fp}; "
                "the fingerprint in the origin is wrong"
            )

    @classmethod
    def parse(cls, text: str) -> KeyOrigin:
        """Parse ``[fp/path]xpub`` (an optional ``/<0;1>/*`` suffix is accepted and ignored)."""
        origin, suffix = parse_key_expression(text.strip(), position=None)
        if suffix not in (None, DEFAULT_BRANCHES):
            raise DescriptorError(f"key {redact.shown(text)}: give the account key, with /<0;1>/* or no suffix")
        return origin

    @property
    def indexes(self) -> list[int]:
        """The origin path as a list of indexes."""
        return parse_path(self.path)

    @property
    def fingerprint_bytes(self) -> bytes:
        return bytes.fromhex(self.fingerprint)

    @property
    def hdkey(self) -> bip32.HDKey:
        """The embit HDKey of the xpub."""
        return _decode_xpub(self.xpub)[0]

    @property
    def family(self) -> str:
        """``main`` for xpub keys, ``test`` for tpub keys (testnet, signet and regtest share them)."""
        return _decode_xpub(self.xpub)[1]

    def to_string(self) -> str:
        """``[fp/path]xpub``."""
        inner = self.fingerprint + ("/" + self.path if self.path else "")
        return f"[{inner}]{self.xpub}"


@dataclass(frozen=True)
class Derived:
    """One derived address of the descriptor, with everything a PSBT needs about it.

    ``bip32`` maps each 33-byte pubkey to (master fingerprint bytes, full path
    from the master as a list of indexes).
    """

    change: bool
    index: int
    script_pubkey: bytes
    address: str
    witness_script: bytes
    bip32: dict[bytes, tuple[bytes, list[int]]] = field(compare=False)
    pubkeys: tuple[bytes, ...] = ()
    threshold: int = 0


def script_number(value: int) -> bytes:
    """How a script pushes a small number: OP_1..OP_16, above that a one-byte push (17..20 keys)."""
    return bytes([0x50 + value]) if 1 <= value <= 16 else bytes([1, value])


def _suffix_kind(suffix_text: str, where: str) -> SuffixKind:
    """The branches a key suffix stands for; DescriptorError for anything but the standard forms."""
    normal = suffix_text.replace("'", "h")
    if normal in ("/**", "/<0;1>/*"):  # ``/**``: BIP-129 template with its usual /0/*,/1/* restrictions
        return DEFAULT_BRANCHES
    if normal == "/0/*":
        return RECEIVE
    if normal == "/1/*":
        return CHANGE
    m = _MULTIPATH_RE.fullmatch(normal)
    if m:
        a, b = (int(x) for x in (m.group(1, 2) if m.group(1) is not None else m.group(3, 4)))
        if {a, b} == {RECEIVE, CHANGE}:
            return (a, b)
    raise DescriptorError(
        f"{where} ends with {suffix_text!r}; this wallet uses the standard branches 0 and 1: "
        "/<0;1>/* (also written /{0,1}/*; /<1;0>/* receives on 1), or /0/* and /1/* as a pair"
    )


def split_keys(text: str) -> list[str]:
    """Split a sortedmulti argument list at its top-level commas (``{0,1}`` stays whole)."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch in "{<[":
            depth += 1
        elif ch in "}>]":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def parse_key_expression(text: str, position: int | None) -> tuple[KeyOrigin, SuffixKind | None]:
    """Parse one key of a descriptor; returns the KeyOrigin and the branch kind of its suffix."""
    where = f"key {position}" if position is not None else "key"
    if not text.startswith("["):
        raise DescriptorError(f"{where} ({redact.shown(text, 16)}) has no origin: {_WHY_ORIGIN}")
    m = _KEY_RE.match(text)
    if not m and re.fullmatch(r"\[[^\]]*\](?:02|03)[0-9a-fA-F]{64}", text):
        raise DescriptorError(
            f"{where} is a single public key, not an extended key (xpub): its script would be the same "
            "for every payment; this wallet needs [fingerprint/path]xpub/<0;1>/* keys to derive addresses"
        )
    if not m:
        raise DescriptorError(f"{where} ({redact.shown(text)}) is not of the form [fingerprint/path]xpub/<0;1>/*")
    suffix_text = m.group("suffix")
    suffix = None if suffix_text is None else _suffix_kind(suffix_text, where)
    origin = KeyOrigin(m.group("fp"), m.group("path"), m.group("xpub"))
    return origin, suffix


def account_key(text: str, position: int) -> KeyOrigin:
    """An account key given to build a wallet: ``[fp/path]xpub``, with ``/<0;1>/*`` or no suffix."""
    origin, suffix = parse_key_expression(text.strip(), position=position)
    if suffix not in (None, DEFAULT_BRANCHES):
        raise DescriptorError(f"key {position}: give the account key with /<0;1>/* or no suffix")
    return origin


def strip_checksum(text: str) -> str:
    """Strip and verify a ``#checksum`` (DescriptorError on mismatch); returns the descriptor body."""
    body, sep, given = text.strip().partition("#")
    body = body.strip()
    if sep:
        expected = descriptor_checksum(body)
        if given.strip() != expected:
            raise DescriptorError(
                f"descriptor checksum mismatch: it says #{given.strip()} but its text gives "
                f"#{expected}. The descriptor was altered or mistyped; copy it again from the source"
            )
    return body


def _parse_single(text: str) -> tuple[int, list[KeyOrigin], SuffixKind]:
    """Parse one descriptor string into (threshold, keys, branch kind)."""
    body = strip_checksum(text)
    m = re.fullmatch(r"wsh\(sortedmulti\((?P<k>[^,()]+),(?P<keys>[^()]*)\)\)", body)
    if not m:
        if body.startswith("wsh(multi("):
            raise DescriptorError(
                "wsh(multi(...)) keeps keys in the given order; this wallet uses "
                "wsh(sortedmulti(...)) so that every signer derives the same script"
            )
        if body.startswith("sh("):
            raise DescriptorError("nested sh(...) multisig is not supported; use native segwit wsh(sortedmulti(...))")
        raise DescriptorError(f"{body[:40]}... is not a wsh(sortedmulti(K, [fp/path]xpub/<0;1>/*, ...)) descriptor")
    k_text = m.group("k").strip()
    if not is_decimal(k_text):
        raise DescriptorError(f"threshold {k_text!r} is not a number")
    parsed = [parse_key_expression(part.strip(), position=i + 1) for i, part in enumerate(split_keys(m.group("keys")))]
    if any(suffix is None for _, suffix in parsed):
        raise DescriptorError(
            "every key needs the derivation suffix /<0;1>/* (or /0/* and /1/*) so that "
            "addresses can be derived; a fixed key would reuse one address forever"
        )
    kinds = {suffix for _, suffix in parsed if suffix is not None}
    if len(kinds) != 1:
        raise DescriptorError("all keys must use the same branches (/<0;1>/* everywhere, or /0/* or /1/*)")
    return int(k_text), [origin for origin, _ in parsed], kinds.pop()


def coin_type_warnings(keys: Sequence[KeyOrigin], network: str) -> list[str]:
    """A BIP-48 key path whose coin type is another network's (legal, probably a mistake)."""
    out = []
    coin = 0 if network == "main" else 1
    for i, key in enumerate(keys, start=1):
        idx = key.indexes
        if len(idx) >= 2 and idx[0] == 48 + HARDENED and idx[1] != coin + HARDENED:
            out.append(
                f"key {i} path {key.path} uses coin type {idx[1] - HARDENED}h; "
                f"BIP-48 uses {coin}h on {human_network(network)}"
            )
    return out


class KeyLookup:
    """Finding our keys by master fingerprint and PSBT derivation path: what both wallet
    descriptors (this module's and wallet/miniscript.py's) answer from ``keys`` and ``branches``."""

    keys: tuple[KeyOrigin, ...]
    branches: Branches

    def key_for_fingerprint(self, fingerprint: str | bytes) -> KeyOrigin | None:
        fp = fingerprint.hex() if isinstance(fingerprint, bytes) else fingerprint.lower()
        return next((k for k in self.keys if k.fingerprint == fp), None)

    def contains_key(self, fingerprint: str | bytes) -> bool:
        """True if a key with this master fingerprint is in the descriptor (any path of it)."""
        return self.key_for_fingerprint(fingerprint) is not None

    def match_derivation(self, fingerprint: bytes, path: Sequence[int]) -> tuple[bool, int] | None:
        """If (fingerprint, path) is one of our keys' ``origin/branch/index``, return (change, index)."""
        key = self.key_for_fingerprint(fingerprint)
        if key is None:
            return None
        origin = key.indexes
        rest = list(path)[len(origin) :]
        if list(path)[: len(origin)] != origin or len(rest) != 2:
            return None
        branch, index = rest
        if branch not in self.branches or index >= HARDENED:
            return None
        return branch == self.branches[1], index


class MultisigDescriptor(KeyLookup):
    """A validated k-of-n ``wsh(sortedmulti(...))`` descriptor over key origins."""

    kind = "multisig"

    def __init__(
        self, threshold: int, keys: Sequence[KeyOrigin], network: str, branches: Branches = DEFAULT_BRANCHES
    ) -> None:
        self.network = normalize_network(network)
        self.threshold = int(threshold)
        self.keys: tuple[KeyOrigin, ...] = tuple(keys)
        self.branches: Branches = (int(branches[0]), int(branches[1]))
        self._cache: dict[tuple[bool, int], Derived] = {}
        self._branch_keys: dict[int, list[bip32.HDKey]] = {}
        self._validate()

    # --- construction -----------------------------------------------------
    def _validate(self) -> None:
        n = len(self.keys)
        if n == 0:
            raise DescriptorError("a multisig needs at least one key")
        if n > MAX_KEYS:
            raise DescriptorError(f"{n} keys given; a P2WSH CHECKMULTISIG allows at most {MAX_KEYS}")
        if self.threshold < 1:
            raise DescriptorError(f"threshold K={self.threshold} must be at least 1")
        if self.threshold > n:
            raise DescriptorError(
                f"threshold K={self.threshold} is more than the {n} keys given: the funds could never be spent"
            )
        if set(self.branches) != {RECEIVE, CHANGE}:
            raise DescriptorError(f"branches {self.branches}: receive and change use the branches 0 and 1")
        families = {k.family for k in self.keys}
        if len(families) > 1:
            detail = ", ".join(
                f"key {i + 1} is {'xpub (mainnet)' if k.family == 'main' else 'tpub (test networks)'}"
                for i, k in enumerate(self.keys)
            )
            raise NetworkMismatch(f"keys from mixed networks: {detail}; all keys must be of one network")
        wanted = "main" if self.network == "main" else "test"
        if families.pop() != wanted:
            raise NetworkMismatch(
                f"the keys are {'mainnet xpubs' if wanted == 'test' else 'test-network tpubs'} but the "
                f"wallet network is {human_network(self.network)}; export the keys for the right network"
            )
        seen_keys: dict[bytes, int] = {}
        seen_fps: dict[str, int] = {}
        for i, key in enumerate(self.keys, start=1):
            sec = key.hdkey.sec()
            if sec in seen_keys:
                raise DescriptorError(
                    f"key {i} is the same key as key {seen_keys[sec]}: one signer would count twice; "
                    "every cosigner must bring its own key"
                )
            if key.fingerprint in seen_fps:
                raise DescriptorError(
                    f"keys {seen_fps[key.fingerprint]} and {i} come from the same master key "
                    f"(fingerprint {key.fingerprint}): one seed would hold two of the {len(self.keys)} "
                    "keys; use a separate seed or device for every cosigner"
                )
            seen_keys[sec] = i
            seen_fps[key.fingerprint] = i

    @classmethod
    def parse(cls, text: str, network: str | None = None) -> MultisigDescriptor:
        """Parse a descriptor (checksum optional but verified when present).

        Accepts the multipath form ``/<0;1>/*`` (also BIP-129's ``/**``), or
        two descriptors separated by whitespace: receive ``/0/*`` and change
        ``/1/*``. Without ``network``, xpub keys mean mainnet and tpub keys
        mean testnet; pass ``network`` for regtest or signet (it is checked
        against the keys).
        """
        parts = [p for p in re.split(r"\s+", (text or "").strip()) if p]
        if len(parts) == 2:
            return cls.parse_pair(parts[0], parts[1], network=network)
        if len(parts) != 1:
            raise DescriptorError(
                "expected one descriptor with /<0;1>/*, or a receive (/0/*) and a change (/1/*) descriptor"
            )
        threshold, keys, kind = _parse_single(parts[0])
        if not isinstance(kind, tuple):
            branch = "receive (/0/*)" if kind == RECEIVE else "change (/1/*)"
            raise DescriptorError(
                f"this descriptor covers only the {branch} branch; give the receive and the change "
                "descriptor together, or the multipath form /<0;1>/*"
            )
        return cls(threshold, keys, network or ("main" if keys[0].family == "main" else "test"), branches=kind)

    @classmethod
    def parse_pair(
        cls, receive: str, change: str, network: str | None = None, ordered: bool = False
    ) -> MultisigDescriptor:
        """Combine a receive (``/0/*``) and a change (``/1/*``) descriptor of the same keys.

        Without ``ordered`` the two may come in either order (``/0/*`` is the
        receive branch). With ``ordered`` the caller knows which is which (a
        Core export's ``internal`` flag), so receive ``/1/*`` with change
        ``/0/*`` is the ``/<1;0>/*`` wallet.
        """
        k1, keys1, kind1 = _parse_single(receive)
        k2, keys2, kind2 = _parse_single(change)
        if (kind1, kind2) == (CHANGE, RECEIVE) and not ordered:
            k1, keys1, kind1, k2, keys2, kind2 = k2, keys2, kind2, k1, keys1, kind1
        if not (isinstance(kind1, int) and isinstance(kind2, int) and {kind1, kind2} == {RECEIVE, CHANGE}):
            raise DescriptorError("expected one receive (/0/*) and one change (/1/*) descriptor")
        if k1 != k2 or keys1 != keys2:
            raise DescriptorError(
                "the receive and change descriptors have different keys or thresholds; they must describe one wallet"
            )
        return cls(k1, keys1, network or ("main" if keys1[0].family == "main" else "test"), branches=(kind1, kind2))

    @classmethod
    def from_keys(cls, threshold: int, keys: Sequence[str | KeyOrigin], network: str) -> MultisigDescriptor:
        """Build from ``[fp/path]xpub`` strings (or KeyOrigins) on ``network``."""
        origins = [key if isinstance(key, KeyOrigin) else account_key(key, i) for i, key in enumerate(keys, start=1)]
        return cls(threshold, origins, network)

    # --- output -----------------------------------------------------------
    def to_string(self, change: bool | None = None, checksum: bool = True) -> str:
        """The descriptor text: multipath ``/<0;1>/*`` when ``change`` is None, else one branch."""
        receive, change_branch = self.branches
        suffix = f"/<{receive};{change_branch}>/*" if change is None else f"/{change_branch if change else receive}/*"
        keys = ",".join(k.to_string() + suffix for k in self.keys)
        body = f"wsh(sortedmulti({self.threshold},{keys}))"
        return f"{body}#{descriptor_checksum(body)}" if checksum else body

    def address_descriptor(self, change: bool, index: int) -> str:
        """The descriptor of the one address at ``/<change>/<index>`` (each key with its full
        derivation), as hardware wallets take it to show that address (HWI ``displayaddress``)."""
        branch = self.branches[1] if change else self.branches[0]
        keys = ",".join(f"{k.to_string()}/{branch}/{int(index)}" for k in self.keys)
        body = f"wsh(sortedmulti({self.threshold},{keys}))"
        return f"{body}#{descriptor_checksum(body)}"

    def __str__(self) -> str:
        return self.to_string()

    def __repr__(self) -> str:
        return f"MultisigDescriptor({self.threshold}-of-{self.n}, {self.network}, id={self.descriptor_id})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MultisigDescriptor):
            return NotImplemented
        return (self.threshold, self.network, self.branches, frozenset(self.keys)) == (
            other.threshold,
            other.network,
            other.branches,
            frozenset(other.keys),
        )

    def __hash__(self) -> int:
        return hash((self.threshold, self.network, self.branches, frozenset(self.keys)))

    @property
    def n(self) -> int:
        return len(self.keys)

    @property
    def primary_keys(self) -> tuple[KeyOrigin, ...]:
        """The keys of the path that spends at any time: all of them here (a recovery
        wallet, wallet/miniscript.py, has time-locked keys besides)."""
        return self.keys

    @property
    def recovery_paths(self) -> tuple[()]:
        """None: a multisig has no time-locked recovery path (``miniscript.RecoveryDescriptor`` has)."""
        return ()

    @property
    def descriptor_id(self) -> str:
        """A short stable id: same keys (in any order), threshold and network give the same id."""
        keys = sorted(k.to_string() for k in self.keys)
        text = f"{self.network}:{self.threshold}:" + ",".join(keys)
        if self.branches != DEFAULT_BRANCHES:  # ids of /<0;1>/* wallets stay what they were
            text += f":<{self.branches[0]};{self.branches[1]}>"
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def warnings(self) -> list[str]:
        """Things that are legal but probably a mistake (e.g. BIP-48 coin type of another network)."""
        return coin_type_warnings(self.keys, self.network)

    # --- derivation -------------------------------------------------------
    def _branch(self, branch: int) -> list[bip32.HDKey]:
        if branch not in self._branch_keys:
            self._branch_keys[branch] = [k.hdkey.child(branch) for k in self.keys]
        return self._branch_keys[branch]

    def derive(self, change: bool, index: int) -> Derived:
        """The address at ``/<change>/<index>`` with its script and BIP-32 metadata."""
        index = int(index)
        if not 0 <= index < HARDENED:
            raise DescriptorError(f"address index {index} out of range 0..{HARDENED - 1}")
        key = (bool(change), index)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        branch = self.branches[1] if change else self.branches[0]
        bip32_map: dict[bytes, tuple[bytes, list[int]]] = {}
        for origin, branch_key in zip(self.keys, self._branch(branch), strict=True):
            sec = branch_key.child(index).sec()
            bip32_map[sec] = (origin.fingerprint_bytes, origin.indexes + [branch, index])
        pubkeys = tuple(sorted(bip32_map))
        witness_script = (
            script_number(self.threshold)
            + b"".join(b"\x21" + pk for pk in pubkeys)
            + script_number(len(pubkeys))
            + b"\xae"
        )
        script_pubkey = b"\x00\x20" + hashes.sha256(witness_script)
        derived = Derived(
            change=bool(change),
            index=index,
            script_pubkey=script_pubkey,
            address=script_to_address(script_pubkey, self.network) or "",
            witness_script=witness_script,
            bip32=bip32_map,
            pubkeys=pubkeys,
            threshold=self.threshold,
        )
        if len(self._cache) < 100_000:
            self._cache[key] = derived
        return derived

    def address(self, change: bool, index: int) -> str:
        return self.derive(change, index).address

    def first_address(self) -> str:
        """Receive address 0, the one BIP-129 asks every party to compare."""
        return self.address(False, 0)

    def input_weight(self, recovery: int | None = None) -> int:
        """Worst-case weight of one input spending an address (``size.multisig_input_weight``)."""
        if recovery is not None:
            raise DescriptorError("a wsh(sortedmulti) wallet has no recovery path; spend with K of its keys")
        return size.multisig_input_weight(self.threshold, self.n)
