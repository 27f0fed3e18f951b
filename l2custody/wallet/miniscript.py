"""The recovery wallet's descriptor: a k-of-n primary path and time-locked recovery paths.

``RecoveryDescriptor`` is a P2WSH miniscript descriptor of the shape Liana
writes::

    wsh(or_d(multi(K,A,B,C),and_v(v:pkh(R),older(N))))
    wsh(or_d(pk(A),and_v(v:pkh(R),older(N))))                  (one primary key)
    wsh(or_i(and_v(v:pkh(R2),older(N2)),or_d(multi(K,...),and_v(v:pkh(R1),older(N1)))))

The primary path (``multi`` or ``pk``) spends at any time. Each recovery
path (``and_v(v:KEYS,older(N))``, KEYS being ``pkh(R)``, ``pk(R)``,
``multi(k,R1,R2,...)`` or ``thresh(k,pkh(R1),a:pkh(R2),...)``) spends once
the coin is N blocks old. Several recovery paths stack with ``or_i`` the way
Liana writes them (the longest delay outermost); ``or_d(PRIMARY,or_i(...))``
is read too. Every key is ``[fingerprint/path]xpub/<0;1>/*``.

Promises (what construction checks; anything else is DescriptorError,
keys of mixed networks NetworkMismatch, each message saying what to fix):
- exactly one path without a timelock (the primary, ``multi`` or ``pk``) and
  at least one recovery path; every path needs signatures;
- ``older(N)`` with 1 <= N <= 65535 blocks; time-based relative locks,
  ``after()`` absolute locks and hash locks are refused as not supported;
- recovery delays differ from one another;
- no key twice anywhere (no master fingerprint twice either);
- ``multi``/``thresh``: 1 <= k <= n <= 20;
- the script within P2WSH standardness: at most 3600 bytes and 201 opcodes;
- embit's miniscript reads the same descriptor to the same witness script.

It offers what the wallet pipeline uses of ``MultisigDescriptor``;
``threshold``, ``n`` and ``Derived.pubkeys`` are the primary path's, while
``keys`` and ``Derived.bip32`` cover every key (recovery keys too).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

from embit import bip32, hashes
from embit.descriptor import Descriptor as EmbitDescriptor

from l2custody import redact
from l2custody.errors import DescriptorError, NetworkMismatch
from l2custody.numbers import is_decimal
from l2custody.wallet import satisfy
from l2custody.wallet.addresses import human_network, normalize_network, script_to_address
from l2custody.wallet.descriptor import (
    CHANGE,
    DEFAULT_BRANCHES,
    HARDENED,
    MAX_KEYS,
    RECEIVE,
    Branches,
    Derived,
    KeyLookup,
    KeyOrigin,
    account_key,
    coin_type_warnings,
    descriptor_checksum,
    split_keys,
)
from l2custody.wallet.fragments import Either, KeyCheck, Node, SpendingPath, Timelocked, all_keys
from l2custody.wallet.miniscript_parse import MAX_DELAY, SHAPE, check_delay, parse_text

#: P2WSH standardness (Bitcoin Core policy): script size and opcode count.
MAX_SCRIPT_SIZE = 3600
MAX_OPS = 201
MAX_WITNESS_ITEMS = 100


@dataclass(frozen=True)
class RecoveryPath:
    """A recovery path: ``threshold`` of ``keys`` may spend a coin ``delay`` blocks after it confirmed."""

    delay: int
    threshold: int
    keys: tuple[KeyOrigin, ...]

    @classmethod
    def parse(cls, text: str, first_key: int = 1) -> RecoveryPath:
        """``KEY@BLOCKS``, or ``K:KEY1,KEY2,...@BLOCKS`` for K of several keys (``wallet create --recovery``).

        Keys are ``[fingerprint/path]xpub`` (``/<0;1>/*`` or no suffix);
        ``first_key`` numbers them in messages.
        """
        body, at, blocks = (text or "").strip().rpartition("@")
        if not at or not body:
            raise DescriptorError(
                f"recovery path {redact.shown(text, 24)} must be KEY@BLOCKS, or K:KEY1,KEY2,...@BLOCKS for K of "
                "several keys (e.g. '[fp/48h/1h/0h/2h]tpub...@52560': that key alone, about a year after a coin confirms)"
            )
        if not is_decimal(blocks.strip()) or len(blocks.strip()) > 10:
            raise DescriptorError(f"recovery path delay {blocks!r} is not a number of blocks (144 is about a day)")
        delay = check_delay(int(blocks.strip()))
        m = re.fullmatch(r"(\d{1,2}):(.*)", body.strip(), flags=re.DOTALL)
        threshold_text, keys_text = (m.group(1), m.group(2)) if m else (None, body)
        parts = split_keys(keys_text)
        keys = tuple(account_key(k, first_key + i) for i, k in enumerate(parts))
        if threshold_text is None and len(keys) > 1:
            raise DescriptorError(
                f"the recovery path after {delay} blocks lists {len(keys)} keys: say how many must sign, "
                f"e.g. 2:KEY1,KEY2,...@{delay}"
            )
        return cls(delay, int(threshold_text or 1), keys)


# --- the descriptor -------------------------------------------------------------------------------
class RecoveryDescriptor(KeyLookup):
    """A validated ``wsh(miniscript)`` with one primary path and time-locked recovery paths."""

    kind = "miniscript"

    def __init__(self, tree: Node, network: str, branches: Branches = DEFAULT_BRANCHES) -> None:
        self.network = normalize_network(network)
        self.tree = tree
        self.branches: Branches = (int(branches[0]), int(branches[1]))
        self.keys: tuple[KeyOrigin, ...] = ()
        self._cache: dict[tuple[bool, int], Derived] = {}
        self._branch_keys: dict[int, list[bip32.HDKey]] = {}
        self._validate()

    # --- construction -----------------------------------------------------
    def _validate(self) -> None:
        paths = self.tree.spending_paths()
        primary = [p for p in paths if p.delay is None]
        recovery = sorted((p for p in paths if p.delay is not None), key=lambda p: p.delay or 0)
        if len(primary) != 1:
            raise DescriptorError(
                f"the descriptor has {len(primary)} spending paths without a timelock; it needs exactly one, "
                f"the primary multi(K,...) or pk(A). {SHAPE}"
            )
        if not recovery:
            raise DescriptorError(
                "the descriptor has no recovery path: add and_v(v:pkh(R),older(N)), or use a plain "
                "wsh(sortedmulti(...)) wallet"
            )
        if primary[0].check.form not in ("multi", "pk"):
            raise DescriptorError(f"the primary path is {primary[0].check.form}(); write it multi(K,...) or pk(A)")
        delays = [p.delay for p in recovery]
        if len(set(delays)) != len(delays):
            raise DescriptorError(
                f"two recovery paths open after the same delay ({', '.join(map(str, delays))} blocks); "
                "stacked recovery paths need increasing delays"
            )
        self._primary = primary[0]
        self._recovery = tuple(recovery)
        self.keys = tuple(k for p in (self._primary, *self._recovery) for k in p.keys)
        _check_tree(self.tree)
        for path in (self._primary, *self._recovery):
            _check_threshold(path)
        _check_networks(self.keys, self.network)
        _check_unique(self.keys)
        if set(self.branches) != {RECEIVE, CHANGE}:
            raise DescriptorError(f"branches {self.branches}: receive and change use the branches 0 and 1")
        self._check_limits()
        self._check_embit_agrees()

    def _check_limits(self) -> None:
        script = self.derive(False, 0).witness_script
        if len(script) > MAX_SCRIPT_SIZE:
            raise DescriptorError(
                f"the witness script is {len(script)} bytes; P2WSH standardness allows {MAX_SCRIPT_SIZE}: use fewer keys"
            )
        if self.tree.ops() > MAX_OPS:
            raise DescriptorError(
                f"the script has {self.tree.ops()} opcodes; P2WSH standardness allows {MAX_OPS}: use fewer keys or paths"
            )
        pubkeys = self.pubkeys_at(False, 0)
        for path in self.spending_paths:
            items = satisfy.item_count(satisfy.template(self.tree, pubkeys, path.delay) or [])
            if items > MAX_WITNESS_ITEMS:
                raise DescriptorError(
                    f"spending with {_path_name(path)} takes {items} witness items; P2WSH standardness "
                    f"allows {MAX_WITNESS_ITEMS}: use fewer keys or paths"
                )

    def _check_embit_agrees(self) -> None:
        """embit's miniscript must read the text to the same script (a second reading of every rule)."""
        try:
            theirs = EmbitDescriptor.from_string(self.to_string(checksum=False))
            script = theirs.derive(0, branch_index=0).witness_script().data
        except Exception as exc:
            raise DescriptorError(f"the miniscript is not valid: {exc}") from None
        if script != self.derive(False, 0).witness_script:  # pragma: no cover - a bug here or in embit
            raise DescriptorError("embit derives another witness script from this descriptor; refusing it")

    @classmethod
    def parse(cls, text: str, network: str | None = None) -> RecoveryDescriptor:
        """Parse a descriptor (checksum optional but verified when present).

        One multipath descriptor (``/<0;1>/*``), or a receive (``/0/*``) and a
        change (``/1/*``) descriptor separated by whitespace. Without
        ``network``, xpub keys mean mainnet and tpub keys testnet.
        """
        parts = [p for p in re.split(r"\s+", (text or "").strip()) if p]
        if len(parts) == 2:
            return cls.parse_pair(parts[0], parts[1], network=network)
        if len(parts) != 1:
            raise DescriptorError(
                "expected one descriptor with /<0;1>/*, or a receive (/0/*) and a change (/1/*) descriptor"
            )
        tree, kind = parse_text(parts[0])
        if not isinstance(kind, tuple):
            branch = "receive (/0/*)" if kind == RECEIVE else "change (/1/*)"
            raise DescriptorError(
                f"this descriptor covers only the {branch} branch; give the receive and the change "
                "descriptor together, or the multipath form /<0;1>/*"
            )
        return cls(tree, network or _family_network(tree), branches=kind)

    @classmethod
    def parse_pair(
        cls, receive: str, change: str, network: str | None = None, ordered: bool = False
    ) -> RecoveryDescriptor:
        """Combine a receive (``/0/*``) and a change (``/1/*``) descriptor of the same policy."""
        tree1, kind1 = parse_text(receive)
        tree2, kind2 = parse_text(change)
        if (kind1, kind2) == (CHANGE, RECEIVE) and not ordered:
            tree1, kind1, tree2, kind2 = tree2, kind2, tree1, kind1
        if not (isinstance(kind1, int) and isinstance(kind2, int) and {kind1, kind2} == {RECEIVE, CHANGE}):
            raise DescriptorError("expected one receive (/0/*) and one change (/1/*) descriptor")
        if tree1 != tree2:
            raise DescriptorError(
                "the receive and change descriptors have different keys or policies; they must describe one wallet"
            )
        return cls(tree1, network or _family_network(tree1), branches=(kind1, kind2))

    @classmethod
    def from_keys(
        cls,
        threshold: int,
        keys: Sequence[str | KeyOrigin],
        recovery: Sequence[str | RecoveryPath],
        network: str,
    ) -> RecoveryDescriptor:
        """Build from ``[fp/path]xpub`` strings and ``KEY@BLOCKS`` recovery paths (see ``build``)."""
        origins = [key if isinstance(key, KeyOrigin) else account_key(key, i) for i, key in enumerate(keys, start=1)]
        paths: list[RecoveryPath] = []
        for spec in recovery:
            first = len(origins) + sum(len(p.keys) for p in paths) + 1
            paths.append(spec if isinstance(spec, RecoveryPath) else RecoveryPath.parse(spec, first))
        return cls.build(threshold, origins, paths, network)

    @classmethod
    def build(
        cls,
        threshold: int,
        keys: Sequence[KeyOrigin],
        recovery: Sequence[RecoveryPath],
        network: str,
    ) -> RecoveryDescriptor:
        """The descriptor Liana would write: ``pk``/``multi`` primary, recovery paths stacked by delay.

        A recovery path of one key is ``pkh(R)``, of several ``multi(k,...)``.
        """
        if not recovery:
            raise DescriptorError("give at least one recovery path (KEY@BLOCKS)")
        primary = KeyCheck("pk" if len(keys) == 1 and threshold == 1 else "multi", int(threshold), tuple(keys))
        paths = sorted(recovery, key=lambda p: p.delay)
        checks = [
            Timelocked(KeyCheck("pkh" if len(p.keys) == 1 else "multi", int(p.threshold), tuple(p.keys)), p.delay)
            for p in paths
        ]
        for p in paths:
            check_delay(int(p.delay))
        tree: Node = Either("or_d", primary, checks[0])
        for check in checks[1:]:
            tree = Either("or_i", check, tree)
        return cls(tree, network)

    # --- the policy -------------------------------------------------------
    @property
    def threshold(self) -> int:
        """K of the primary path."""
        return self._primary.threshold

    @property
    def n(self) -> int:
        """The number of primary keys."""
        return len(self._primary.keys)

    @property
    def primary_keys(self) -> tuple[KeyOrigin, ...]:
        return self._primary.keys

    @property
    def recovery_paths(self) -> tuple[RecoveryPath, ...]:
        """The recovery paths, shortest delay first."""
        return tuple(RecoveryPath(p.delay or 0, p.threshold, p.keys) for p in self._recovery)

    @property
    def spending_paths(self) -> tuple[SpendingPath, ...]:
        """The primary path, then the recovery paths by delay."""
        return (self._primary, *self._recovery)

    def recovery_path(self, delay: int) -> RecoveryPath:
        """The recovery path opening after ``delay`` blocks; DescriptorError naming the others if none."""
        for path in self.recovery_paths:
            if path.delay == delay:
                return path
        known = ", ".join(str(p.delay) for p in self.recovery_paths)
        raise DescriptorError(f"this wallet has no recovery path after {delay} blocks; its paths open after {known}")

    # --- output -----------------------------------------------------------
    def to_string(self, change: bool | None = None, checksum: bool = True) -> str:
        """The descriptor text: multipath ``/<0;1>/*`` when ``change`` is None, else one branch."""
        receive, change_branch = self.branches
        suffix = f"/<{receive};{change_branch}>/*" if change is None else f"/{change_branch if change else receive}/*"
        body = f"wsh({self.tree.text(suffix)})"
        return f"{body}#{descriptor_checksum(body)}" if checksum else body

    def address_descriptor(self, change: bool, index: int) -> str:
        """The descriptor of the one address at ``/<change>/<index>`` (each key with its full
        derivation), as hardware wallets take it to show that address (HWI ``displayaddress``)."""
        branch = self.branches[1] if change else self.branches[0]
        body = f"wsh({self.tree.text(f'/{branch}/{int(index)}')})"
        return f"{body}#{descriptor_checksum(body)}"

    def __str__(self) -> str:
        return self.to_string()

    def __repr__(self) -> str:
        delays = ",".join(str(p.delay) for p in self.recovery_paths)
        return (
            f"RecoveryDescriptor({self.threshold}-of-{self.n}, recovery after {delays} blocks, "
            f"{self.network}, id={self.descriptor_id})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RecoveryDescriptor):
            return NotImplemented
        return (self.tree, self.network, self.branches) == (other.tree, other.network, other.branches)

    def __hash__(self) -> int:
        return hash((self.tree, self.network, self.branches))

    @property
    def descriptor_id(self) -> str:
        """A short stable id of the network and the policy (key order matters in a miniscript)."""
        text = f"{self.network}:" + self.to_string(checksum=False)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def warnings(self) -> list[str]:
        """Legal but probably a mistake: a BIP-48 coin type of another network, a recovery path within a day."""
        out = coin_type_warnings(self.keys, self.network)
        first = self.recovery_paths[0].delay
        if first < 144 and self.network == "main":
            out.append(
                f"the first recovery path opens {first} blocks after a coin confirms (less than a day): "
                "its keys could then spend alone"
            )
        return out

    # --- derivation -------------------------------------------------------
    def _branch(self, branch: int) -> list[bip32.HDKey]:
        if branch not in self._branch_keys:
            self._branch_keys[branch] = [k.hdkey.child(branch) for k in self.keys]
        return self._branch_keys[branch]

    def pubkeys_at(self, change: bool, index: int) -> dict[str, bytes]:
        """Each key's derived pubkey at ``/<change>/<index>``, by master fingerprint."""
        derived = self.derive(change, index)
        return {fp.hex(): pub for pub, (fp, _path) in derived.bip32.items()}

    def derive(self, change: bool, index: int) -> Derived:
        """The address at ``/<change>/<index>`` with its script and the BIP-32 origin of every key."""
        index = int(index)
        if not 0 <= index < HARDENED:
            raise DescriptorError(f"address index {index} out of range 0..{HARDENED - 1}")
        hit = self._cache.get((bool(change), index))
        if hit is not None:
            return hit
        branch = self.branches[1] if change else self.branches[0]
        bip32_map: dict[bytes, tuple[bytes, list[int]]] = {}
        by_fingerprint: dict[str, bytes] = {}
        for origin, branch_key in zip(self.keys, self._branch(branch), strict=True):
            sec = branch_key.child(index).sec()
            bip32_map[sec] = (origin.fingerprint_bytes, origin.indexes + [branch, index])
            by_fingerprint[origin.fingerprint] = sec
        witness_script = self.tree.script(lambda key: by_fingerprint[key.fingerprint])
        script_pubkey = b"\x00\x20" + hashes.sha256(witness_script)
        derived = Derived(
            change=bool(change),
            index=index,
            script_pubkey=script_pubkey,
            address=script_to_address(script_pubkey, self.network) or "",
            witness_script=witness_script,
            bip32=bip32_map,
            pubkeys=tuple(by_fingerprint[k.fingerprint] for k in self._primary.keys),
            threshold=self.threshold,
        )
        if len(self._cache) < 100_000:
            self._cache[(bool(change), index)] = derived
        return derived

    def address(self, change: bool, index: int) -> str:
        return self.derive(change, index).address

    def input_weight(self, recovery: int | None = None) -> int:
        """Worst-case weight of one input spent on the primary path, or on the recovery path
        opening after ``recovery`` blocks (every address has the same script size)."""
        delay = None if recovery is None else self.recovery_path(recovery).delay
        slots = satisfy.template(self.tree, self.pubkeys_at(False, 0), delay) or []
        return satisfy.input_weight(slots, len(self.derive(False, 0).witness_script))

    def first_address(self) -> str:
        """Receive address 0."""
        return self.address(False, 0)


# --- checks ---------------------------------------------------------------------------------------
def _family_network(tree: Node) -> str:
    keys = all_keys(tree)
    return "main" if keys and keys[0].family == "main" else "test"


def _check_tree(node: Node) -> None:
    """or_d(X,Z) needs X dissatisfiable without a signature: a key check (miniscript type ``d``)."""
    if isinstance(node, Either):
        if node.kind == "or_d" and not isinstance(node.left, KeyCheck):
            raise DescriptorError(
                "or_d(X,Z) needs a key check as X (multi, pk, pkh, thresh); a timelocked X cannot be "
                f"dissatisfied, so this is not valid miniscript. {SHAPE}"
            )
        _check_tree(node.left)
        _check_tree(node.right)


def _path_name(path: SpendingPath) -> str:
    return "the primary path" if path.delay is None else f"the recovery path after {path.delay} blocks"


def _check_threshold(path: SpendingPath) -> None:
    check, n = path.check, len(path.keys)
    where = _path_name(path)
    if n > MAX_KEYS:
        raise DescriptorError(f"{where} has {n} keys; {check.form}() takes at most {MAX_KEYS}")
    if check.threshold < 1:
        raise DescriptorError(f"{where} needs {check.threshold} signatures; every path must need at least one")
    if check.threshold > n:
        raise DescriptorError(f"{where} needs {check.threshold} signatures from {n} keys: it could never be used")


def _check_networks(keys: Sequence[KeyOrigin], network: str) -> None:
    families = {k.family for k in keys}
    if len(families) > 1:
        detail = ", ".join(
            f"key {i + 1} is {'xpub (mainnet)' if k.family == 'main' else 'tpub (test networks)'}"
            for i, k in enumerate(keys)
        )
        raise NetworkMismatch(f"keys from mixed networks: {detail}; all keys must be of one network")
    wanted = "main" if network == "main" else "test"
    if families.pop() != wanted:
        raise NetworkMismatch(
            f"the keys are {'mainnet xpubs' if wanted == 'test' else 'test-network tpubs'} but the "
            f"wallet network is {human_network(network)}; export the keys for the right network"
        )


def _check_unique(keys: Sequence[KeyOrigin]) -> None:
    """No key twice and no master fingerprint twice, across every path."""
    seen_keys: dict[bytes, int] = {}
    seen_fps: dict[str, int] = {}
    for i, key in enumerate(keys, start=1):
        sec = key.hdkey.sec()
        if sec in seen_keys:
            raise DescriptorError(
                f"key {i} is the same key as key {seen_keys[sec]}; every path needs keys of its own "
                "(a key in two paths would let one signer count where two should)"
            )
        if key.fingerprint in seen_fps:
            raise DescriptorError(
                f"keys {seen_fps[key.fingerprint]} and {i} come from the same master key (fingerprint "
                f"{key.fingerprint}); use a separate seed or device for every key, recovery keys included"
            )
        seen_keys[sec] = i
        seen_fps[key.fingerprint] = i


__all__ = ["MAX_DELAY", "RecoveryDescriptor", "RecoveryPath"]
