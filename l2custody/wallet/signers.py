"""Signers: who adds signatures to a PSBT, and how.

All signers follow one protocol (``Signer``): a ``name``, the master
``fingerprints`` of the keys they hold, and ``sign(psbt) -> psbt`` which
returns a new PSBT with their signatures added and leaves the argument
untouched. Signers do not judge the transaction: the caller runs
``review.verify`` before every signing.

- SoftwareSigner: a BIP-39 mnemonic or an xprv read from a file that must
  be private to its owner (mode 0600 or stricter) — for regtest and for an
  automated policy cosigner.
- FileSigner: an air-gapped round trip through a directory: ``export``
  writes ``<session>.psbt`` (binary) and ``<session>.psbt.txt`` (base64);
  ``collect`` picks up the signed files dropped back next to them.
- HwiSigner: hardware wallets through HWI, an optional extra imported only
  when used (``pip install 'l2custody[hwi]'``).

Secrets are never put in messages, reprs or logs.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from embit import bip32, bip39
from embit.descriptor.arguments import Key
from embit.descriptor.arguments import KeyOrigin as EmbitKeyOrigin
from embit.networks import NETWORKS
from embit.psbt import PSBT
from embit.transaction import SIGHASH

from l2custody.errors import PsbtError, PsbtTampered, SignerError, SignerUnavailable
from l2custody.private_files import write_private_file
from l2custody.text_files import read_text
from l2custody.user_paths import existing_file, user_path, why
from l2custody.wallet.addresses import normalize_network
from l2custody.wallet.descriptor import KeyOrigin, format_path, parse_path
from l2custody.wallet.psbt import combine, copy_psbt, load_psbt, psbt_txid

HWI_INSTALL_HINT = "pip install 'l2custody[hwi]'"


@runtime_checkable
class Signer(Protocol):
    """Anything that can add its cosigners' signatures to a PSBT."""

    name: str

    @property
    def fingerprints(self) -> frozenset[str]:
        """Master fingerprints (8 hex) of the keys this signer holds; empty if unknown."""
        ...

    def sign(self, psbt: PSBT) -> PSBT:
        """Return a copy of ``psbt`` with this signer's signatures added.

        Raises SignerError if it holds none of the keys asked for,
        SignerUnavailable if the device/file round trip is not ready yet.
        """
        ...


def _signing_inputs_fingerprints(psbt: PSBT) -> set[str]:
    return {der.fingerprint.hex() for inp in psbt.inputs for der in inp.bip32_derivations.values()}


# --- software -------------------------------------------------------------------
def check_secret_file(path: Path) -> None:
    """Refuse a secret file that other users can read or write (must be 0600 or stricter)."""
    path = existing_file(path, "signer key file", SignerError)
    st = path.stat()
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o077:
        raise SignerError(
            f"signer key file {path} has mode {mode:04o}: other users could read the key. "
            f"Run `chmod 600 {path}` and try again"
        )


def write_secret_file(path: Path, text: str) -> None:
    """Create ``path`` with mode 0600 holding ``text``; never overwrites an existing file.

    A missing parent folder is created with mode 0700 (only its owner may list it).
    """
    path = user_path(path, "key file", SignerError)
    try:
        write_private_file(path, (text.rstrip("\n") + "\n").encode(), exclusive=True, durable=True)
    except FileExistsError:
        raise SignerError(f"{path} already exists; refusing to overwrite a key file") from None
    except OSError as exc:
        raise SignerError(f"cannot create key file {path}: {why(exc)}; choose a folder you can write to") from None


def generate_mnemonic(words: int = 24) -> str:
    """A new BIP-39 mnemonic from the OS random source (12, 15, 18, 21 or 24 words)."""
    if words not in (12, 15, 18, 21, 24):
        raise SignerError(f"a BIP-39 mnemonic has 12, 15, 18, 21 or 24 words, not {words}")
    return bip39.mnemonic_from_bytes(os.urandom(words * 4 // 3))


class SoftwareSigner:
    """Signs with a private key held in memory, loaded from a mnemonic or xprv.

    The key is either a master key (from a mnemonic or a depth-0 xprv) or an
    account xprv with its origin (``[fingerprint/path]xprv...``).
    """

    def __init__(
        self,
        key: bip32.HDKey,
        *,
        origin_path: Sequence[int] | None = None,
        master_fingerprint: str | None = None,
        name: str = "software",
    ) -> None:
        if not key.is_private:
            raise SignerError("a software signer needs a private key (xprv/tprv), not an xpub")
        if key.depth != 0 and (origin_path is None or master_fingerprint is None):
            raise SignerError("this xprv is not a master key; write it with its origin as [fingerprint/path]xprv...")
        if origin_path is not None and len(origin_path) != key.depth:
            raise SignerError(f"the xprv has depth {key.depth} but its origin path has {len(origin_path)} steps")
        self._key = key
        self._origin_path = list(origin_path or [])
        self._fingerprint = (master_fingerprint or key.my_fingerprint.hex()).lower()
        self._from_mnemonic = False
        self.name = name

    def __repr__(self) -> str:
        return f"SoftwareSigner(name={self.name!r}, fingerprint={self._fingerprint})"

    @property
    def fingerprints(self) -> frozenset[str]:
        return frozenset({self._fingerprint})

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    def check_network(self, network: str) -> None:
        """NetworkMismatch when the key file holds an extended key of another network
        (an ``xprv`` for a regtest wallet, a ``tprv`` for mainnet). A mnemonic has none."""
        from l2custody.errors import NetworkMismatch

        if self._from_mnemonic:
            return
        net = normalize_network(network)
        if self._key.version != NETWORKS[net]["xprv"]:
            mainnet = self._key.version == NETWORKS["main"]["xprv"]
            raise NetworkMismatch(
                f"the key file holds a {'mainnet xprv' if mainnet else 'test-network tprv'}, but this l2custody "
                f"is on {network}: use the key of the {network} setup, or the config of the other network"
            )

    @classmethod
    def from_mnemonic(cls, mnemonic: str, passphrase: str = "", name: str = "software") -> SoftwareSigner:
        words = " ".join(mnemonic.lower().split())
        if not bip39.mnemonic_is_valid(words):
            raise SignerError("the mnemonic is not a valid BIP-39 phrase (unknown word or bad checksum)")
        root = bip32.HDKey.from_seed(bip39.mnemonic_to_seed(words, passphrase), version=NETWORKS["test"]["xprv"])
        signer = cls(root, name=name)
        signer._from_mnemonic = True
        return signer

    @classmethod
    def from_text(cls, text: str, passphrase: str = "", name: str = "software") -> SoftwareSigner:
        """Read a mnemonic, a master xprv, or ``[fp/path]xprv`` from text (``#`` lines are comments)."""
        body = " ".join(line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#"))
        if not body:
            raise SignerError("the key file is empty")
        if body.startswith("[") and "]" in body:
            prefix, _, xprv = body[1:].partition("]")
            fp, _, path = prefix.partition("/")
            if len(fp) != 8:
                raise SignerError("the key origin must start with an 8-hex-digit master fingerprint")
            key = cls._parse_xprv(xprv.strip())
            return cls(key, origin_path=parse_path(path), master_fingerprint=fp, name=name)
        if body[1:4] == "prv":
            return cls(cls._parse_xprv(body), name=name)
        if body[1:4] == "pub":
            raise SignerError("the key file holds a public key; a signer needs the private key (xprv or mnemonic)")
        return cls.from_mnemonic(body, passphrase, name=name)

    @staticmethod
    def _parse_xprv(text: str) -> bip32.HDKey:
        try:
            return bip32.HDKey.from_base58(text)
        except Exception as exc:
            raise SignerError("the key file's xprv is not valid (base58 checksum or length)") from exc

    @classmethod
    def from_file(
        cls, path: str | os.PathLike[str], *, passphrase: str = "", name: str | None = None
    ) -> SoftwareSigner:
        """Load from a key file that must be mode 0600 (or stricter); SignerError otherwise."""
        p = Path(path)
        check_secret_file(p)
        return cls.from_text(read_text(p, "the key file", SignerError), passphrase, name=name or p.stem)

    def account_key(self, path: str = "48h/1h/0h/2h", network: str = "regtest") -> KeyOrigin:
        """The ``[fingerprint/path]xpub`` of an account, to put into the wallet descriptor."""
        net = normalize_network(network)
        indexes = parse_path(path)
        if self._key.depth != 0:
            raise SignerError("an account-level xprv cannot derive other accounts; use a mnemonic or master xprv")
        account = self._key.derive(indexes).to_public(version=NETWORKS[net]["xpub"])
        return KeyOrigin(self._fingerprint, format_path(indexes), account.to_base58())

    def sign(self, psbt: PSBT) -> PSBT:
        """Sign every input that asks for a key derived from ours (SIGHASH_ALL only)."""
        signed = copy_psbt(psbt)
        if self._key.depth == 0:
            root: object = self._key
        else:
            root = Key(self._key, origin=EmbitKeyOrigin(bytes.fromhex(self._fingerprint), self._origin_path))
        try:
            count = signed.sign_with(root, sighash=SIGHASH.ALL)
        except Exception as exc:
            raise SignerError(f"signer {self.name} could not sign: {exc}") from exc
        if count == 0:
            wanted = ", ".join(sorted(_signing_inputs_fingerprints(psbt))) or "none listed"
            raise SignerError(
                f"signer {self.name} (fingerprint {self._fingerprint}) holds none of the keys this PSBT "
                f"asks for (its inputs name fingerprints: {wanted})"
            )
        return signed


# --- air-gapped files -----------------------------------------------------------
class FileSigner:
    """An air-gapped signer reached through a directory (USB stick, shared folder).

    ``export`` writes the PSBT as ``<session>.psbt`` (binary) and
    ``<session>.psbt.txt`` (base64). The operator signs it elsewhere and drops
    the result back into the same directory under any name that starts with
    the session id (e.g. ``<session>-signed.psbt``, Coldcard style) or by
    overwriting ``<session>.psbt``; ``collect`` reads them.
    """

    SUFFIXES = (".psbt", ".txt", ".b64", ".base64", ".hex")

    def __init__(
        self, directory: str | os.PathLike[str], *, name: str = "file", fingerprints: Sequence[str] = ()
    ) -> None:
        self.directory = Path(directory)
        self.name = name
        self._fingerprints = frozenset(f.lower() for f in fingerprints)

    def __repr__(self) -> str:
        return f"FileSigner(name={self.name!r}, directory={str(self.directory)!r})"

    @property
    def fingerprints(self) -> frozenset[str]:
        return self._fingerprints

    @staticmethod
    def session_for(psbt: PSBT) -> str:
        """The default session id of a PSBT: the first 16 hex digits of its txid."""
        return psbt_txid(psbt)[:16]

    def export(self, psbt: PSBT, session_id: str) -> list[Path]:
        """Write ``<session>.psbt`` and ``<session>.psbt.txt``; returns their paths."""
        if not session_id or "/" in session_id or session_id.startswith("."):
            raise SignerError(f"session id {session_id!r} cannot be used as a file name")
        binary = self.directory / f"{session_id}.psbt"
        text = self.directory / f"{session_id}.psbt.txt"
        try:
            write_private_file(binary, psbt.serialize())
            write_private_file(text, (psbt.to_base64() + "\n").encode())
        except OSError as exc:
            raise SignerUnavailable(f"cannot write the PSBT to {self.directory}: {why(exc)}") from None
        return [binary, text]

    def collect(self, session_id: str, unsigned: PSBT | None = None) -> list[PSBT]:
        """Signed PSBTs dropped back for ``session_id`` (files without signatures are skipped).

        With ``unsigned``, every file must be for the same transaction, else
        PsbtTampered names the file. Unreadable files raise PsbtError naming them.
        """
        return [psbt for _path, psbt in self._files(session_id, unsigned) if _has_signatures(psbt)]

    def returned(self, session_id: str, unsigned: PSBT | None = None) -> list[tuple[Path, PSBT]]:
        """The PSBT files handed back for ``session_id`` under a name of their own (not the
        two files ``export`` wrote), signed or not: what the air-gapped signer returned.
        Checked as in :meth:`collect`."""
        exported = {f"{session_id}.psbt", f"{session_id}.psbt.txt"}
        return [(path, psbt) for path, psbt in self._files(session_id, unsigned) if path.name not in exported]

    def _files(self, session_id: str, unsigned: PSBT | None) -> list[tuple[Path, PSBT]]:
        if not self.directory.is_dir():
            return []
        found = []
        for path in sorted(self.directory.iterdir()):
            if not path.name.startswith(session_id) or not path.is_file():
                continue
            if not any(path.name.lower().endswith(s) for s in self.SUFFIXES):
                continue
            try:
                psbt = load_psbt(path.read_bytes())
            except PsbtError as exc:
                raise PsbtError(f"{path}: {exc.message}") from exc
            if unsigned is not None and psbt.tx.serialize() != unsigned.tx.serialize():
                raise PsbtTampered(
                    f"{path} is for transaction {psbt_txid(psbt)}, not {psbt_txid(unsigned)}; "
                    "it was not made from the exported PSBT — remove it"
                )
            found.append((path, psbt))
        return found

    def sign(self, psbt: PSBT) -> PSBT:
        """Combine signed files already dropped back; otherwise export and raise SignerUnavailable."""
        session = self.session_for(psbt)
        collected = self.collect(session, unsigned=psbt)
        if collected:
            return combine([psbt, *collected])
        paths = self.export(psbt, session)
        raise SignerUnavailable(
            f"PSBT written to {paths[0]} (and base64 in {paths[1].name}). Sign it on the air-gapped "
            f"device and put the signed file back into {self.directory} as {session}-signed.psbt, "
            "then run the signing step again"
        )


def _has_signatures(psbt: PSBT) -> bool:
    return any(inp.partial_sigs or (inp.final_scriptwitness and inp.final_scriptwitness.items) for inp in psbt.inputs)


# --- hardware wallets through HWI ------------------------------------------------
class HwiSigner:
    """A hardware wallet reached through HWI; nothing is imported or opened until ``sign``."""

    _CHAINS = {"main": "MAIN", "test": "TEST", "regtest": "REGTEST", "signet": "SIGNET"}

    def __init__(
        self, fingerprint: str, *, device_type: str | None = None, network: str = "main", name: str | None = None
    ) -> None:
        self._fingerprint = fingerprint.lower()
        self.device_type = device_type
        self.network = normalize_network(network)
        self.name = name or f"hwi-{self._fingerprint}"

    def __repr__(self) -> str:
        return f"HwiSigner(name={self.name!r}, fingerprint={self._fingerprint}, device_type={self.device_type!r})"

    @property
    def fingerprints(self) -> frozenset[str]:
        return frozenset({self._fingerprint})

    @staticmethod
    def _hwilib():
        try:
            from hwilib import commands
            from hwilib.common import Chain
        except ImportError as exc:
            raise SignerUnavailable(
                f"hardware wallet signing needs HWI, which is not installed; install it with: {HWI_INSTALL_HINT}"
            ) from exc
        return commands, Chain

    def _open(self) -> tuple[Any, Any]:
        """HWI's ``commands`` and a client for the connected device with our fingerprint."""
        commands, chain_enum = self._hwilib()
        chain = getattr(chain_enum, self._CHAINS[self.network])
        try:
            client = commands.find_device(device_type=self.device_type, fingerprint=self._fingerprint, chain=chain)
        except Exception as exc:
            raise SignerUnavailable(f"cannot talk to hardware wallet {self._fingerprint}: {exc}") from exc
        if client is None:
            raise SignerUnavailable(
                f"no hardware wallet with fingerprint {self._fingerprint} found; connect and unlock it "
                "(and open the Bitcoin app), then try again"
            )
        return commands, client

    @staticmethod
    def _close(client: Any) -> None:
        try:
            client.close()
        except Exception:
            pass

    def sign(self, psbt: PSBT) -> PSBT:
        """Ask the connected device with our fingerprint to sign (it shows the outputs to confirm)."""
        commands, client = self._open()
        try:
            result = commands.signtx(client, psbt.to_base64())
        except Exception as exc:
            raise SignerError(f"hardware wallet {self._fingerprint} did not sign: {exc}") from exc
        finally:
            self._close(client)
        if not isinstance(result, dict) or "psbt" not in result:
            raise SignerError(f"hardware wallet {self._fingerprint} returned no PSBT: {result!r}"[:300])
        return combine([psbt, load_psbt(result["psbt"])])

    def display_address(self, descriptor: str) -> str:
        """Show the address of a one-address multisig ``descriptor`` (keys with their full
        derivation, see ``MultisigDescriptor.address_descriptor``) on the device's screen
        with HWI ``displayaddress``; returns the address the device derived. Devices that
        keep registered multisig wallets (Ledger, Coldcard) need the wallet registered."""
        commands, client = self._open()
        try:
            result = commands.displayaddress(client, desc=descriptor)
        except Exception as exc:
            raise SignerError(f"hardware wallet {self._fingerprint} could not show the address: {exc}") from exc
        finally:
            self._close(client)
        if not isinstance(result, dict) or not isinstance(result.get("address"), str):
            raise SignerError(f"hardware wallet {self._fingerprint} showed no address: {result!r}"[:300])
        return str(result["address"])
