"""The signer registry: named signers saved in the store, and loading them to sign.

``l2custody signer add`` registers a software signer (a key file that must be
0600), an air-gapped file signer (a directory PSBTs are written to and
signed files are picked up from) or an HWI hardware wallet (by master
fingerprint). When the store already holds a wallet, a signer whose key is
not one of the wallet's keys is refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from l2custody.config import Config
from l2custody.errors import SignerError, UsageError
from l2custody.private_files import private_dir
from l2custody.store import SignerRecord, Store
from l2custody.user_paths import user_path, why
from l2custody.wallet.actor import default_actor

KINDS = ("software", "file", "hwi")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
#: BIP-48 P2WSH account path used to show a software signer's key for `wallet create`.
DEFAULT_ACCOUNT = {"main": "48h/0h/0h/2h", "test": "48h/1h/0h/2h", "regtest": "48h/1h/0h/2h", "signet": "48h/1h/0h/2h"}


@dataclass(frozen=True)
class SignerInfo:
    name: str
    kind: str
    path: str | None
    fingerprint: str
    key: str | None  # "[fp/48h/1h/0h/2h]tpub..." for software signers (what `wallet create --key` takes)
    in_wallet: bool | None  # None: no wallet yet
    generations: tuple[int, ...] = ()  # the wallet generations holding its key (see `wallet rotate`)


def add_signer(
    config: Config,
    name: str,
    kind: str,
    source: str,
    fingerprint: str | None = None,
    device_type: str | None = None,
    account_path: str | None = None,
) -> SignerInfo:
    """Register a signer. ``source`` is the key file (software), the directory (file) or the
    master fingerprint (hwi). Raises SignerError for unreadable or foreign keys."""
    if not _NAME.match(name or ""):
        raise UsageError(f"signer name {name!r}: use letters, digits, '_', '-' or '.' (up to 64)")
    if kind not in KINDS:
        raise UsageError(f"signer kind {kind!r}: use one of {', '.join(KINDS)}")
    details: dict[str, Any] = {}
    path: str | None = None
    key: str | None = None
    if kind == "software":
        from l2custody.wallet.signers import SoftwareSigner

        file = user_path(source, "signer key file", SignerError)
        signer = SoftwareSigner.from_file(file, name=name)
        signer.check_network(config.embit_network)
        fp = signer.fingerprint
        path = str(file)
        try:
            account = account_path or DEFAULT_ACCOUNT[config.embit_network]
            key = signer.account_key(account, config.embit_network).to_string()
        except SignerError:
            key = None  # an account-level xprv: its key is what it is
        details["key"] = key
    elif kind == "file":
        directory = user_path(source, "signer directory", SignerError)
        try:
            private_dir(directory)
        except OSError as exc:
            raise SignerError(f"cannot use {directory} as the signer directory: {why(exc)}") from None
        path = str(directory)
        fp = (fingerprint or "").lower()
    else:
        fp = (fingerprint or source or "").lower()
        details["device_type"] = device_type
    if fp and not re.fullmatch(r"[0-9a-f]{8}", fp):
        raise UsageError(f"fingerprint {fp!r} must be 8 hex characters (the master key fingerprint)")
    with Store.open(config.store_path) as store:
        _check_not_registered(store, name, kind, fp, path)
        in_wallet = _check_in_wallet(store, name, fp)
        with store.transaction():
            rec = store.add_signer(name, kind, path, fp, details)
            store.audit(
                default_actor(), "signer-added", f"signer {name}", {"kind": kind, "fingerprint": fp, "path": path}
            )
    return _info(rec, in_wallet)


def _check_not_registered(store: Store, name: str, kind: str, fingerprint: str, path: str | None) -> None:
    """One signer per key: the same mnemonic (or device) under two names would count as
    two signers in rehearsals and reports while being one point of failure."""
    for other in store.signers():
        same_key = bool(fingerprint) and other.fingerprint == fingerprint and other.kind == kind
        same_place = path is not None and other.path == path
        if other.name != name and (same_key or same_place):
            what = f"the key {fingerprint}" if same_key else path
            raise SignerError(
                f"{what} is registered already as signer {other.name!r}; sign with that signer "
                "(one key registered twice would count as two signers while being one)"
            )


def _generation_keys(store: Store) -> list[tuple[int, frozenset[str]]]:
    """(generation, master fingerprints of its keys) for every generation of the wallet."""
    from l2custody.wallet.descriptors import parse_wallet_descriptor

    out = []
    for record in store.wallets():
        desc = parse_wallet_descriptor(record.descriptor, network=record.network)
        out.append((record.generation, frozenset(k.fingerprint for k in desc.keys)))
    return out


def _check_in_wallet(store: Store, name: str, fingerprint: str) -> bool | None:
    """A signer must hold a key of some generation of the wallet (the newest one to sign
    new spends, an older one to sign the migration of its coins)."""
    generations = _generation_keys(store)
    if not generations or not fingerprint:
        return None
    if not any(fingerprint in keys for _g, keys in generations):
        fps = ", ".join(sorted(set().union(*(keys for _g, keys in generations))))
        raise SignerError(
            f"signer {name}'s master fingerprint {fingerprint} is not one of the wallet's keys ({fps}); "
            "it could not sign for this wallet"
        )
    return True


def list_signers(config: Config) -> list[SignerInfo]:
    """Every registered signer, with whether its key is in the wallet and in which generations."""
    with Store.open(config.store_path) as store:
        generations = _generation_keys(store)
        return [
            _info(
                r,
                None if not generations or not r.fingerprint else any(r.fingerprint in k for _g, k in generations),
                tuple(g for g, keys in generations if r.fingerprint in keys),
            )
            for r in store.signers()
        ]


def _info(rec: SignerRecord, in_wallet: bool | None, generations: tuple[int, ...] = ()) -> SignerInfo:
    return SignerInfo(rec.name, rec.kind, rec.path, rec.fingerprint, rec.details.get("key"), in_wallet, generations)


def load_signer(rec: SignerRecord, network: str) -> Any:
    """The wallet.signers object for a registered signer (the key file is re-read and re-checked)."""
    from l2custody.wallet import signers

    if rec.kind == "software":
        return signers.SoftwareSigner.from_file(rec.path or "", name=rec.name)
    if rec.kind == "file":
        fingerprints = [rec.fingerprint] if rec.fingerprint else []
        return signers.FileSigner(rec.path or "", name=rec.name, fingerprints=fingerprints)
    if rec.kind == "hwi":
        return signers.HwiSigner(
            rec.fingerprint, device_type=rec.details.get("device_type"), network=network, name=rec.name
        )
    raise SignerError(f"signer {rec.name} has unknown kind {rec.kind!r}")
