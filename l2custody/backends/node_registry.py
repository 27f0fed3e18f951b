"""The node registry: which Lightning nodes l2custody manages, and how to reach them.

Nodes live in the store's ``nodes`` table (migration 2): name, kind, host and
the *paths* of their credentials; the secrets stay in files. An lndconnect
URI is unpacked into ``<data_dir>/nodes/<name>/tls.cert`` and
``admin.macaroon`` (mode 0600) so that rule holds for it too.

``backend_for(record)`` builds the backend; it imports grpc (through
``backends.lnd``) only when an lnd backend is asked for, so commands that do
not talk to a node do not pay for it. ``node check`` is in ``node_check.py``.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from l2custody.backends.base import NodeBackend
from l2custody.errors import ConfigError, NodeNotFound, NotSupported, UsageError
from l2custody.netaddr import host_port
from l2custody.numbers import is_positive
from l2custody.private_files import write_private_file
from l2custody.user_paths import PathKind, existing_file, path_kind, user_path, why

if TYPE_CHECKING:  # pragma: no cover
    from l2custody.store import Store

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class NodeRecord:
    name: str
    kind: str  # lnd | cln
    host: str | None = None
    tls_cert: Path | None = None
    macaroon: Path | None = None
    rpc_file: Path | None = None
    timeout: float = 30.0
    created: float = field(default=0.0, compare=False)


def _validate_name(name: str) -> None:
    if not _NAME_RE.match(name):
        raise UsageError(f"node name {name!r}: use letters, digits, '.', '_' or '-' (up to 64), e.g. lnd-west")


def _existing_file(path: Path | str, what: str) -> Path:
    return existing_file(path, what, ConfigError).resolve()


def _write_secret(path: Path, content: bytes) -> Path:
    try:
        write_private_file(path, content)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {why(exc)}; check the data_dir") from None
    return path


_COLUMNS = "name, kind, host, tls_cert, macaroon, rpc_file, timeout, created"


class NodeRegistry:
    """The ``nodes`` table of one open store. ``data_dir`` is where credential
    files unpacked from lndconnect URIs go."""

    def __init__(self, store: Store, data_dir: Path) -> None:
        self.store = store
        self.data_dir = Path(data_dir)

    def add(
        self,
        name: str,
        kind: str,
        *,
        host: str | None = None,
        tls_cert: Path | str | None = None,
        macaroon: Path | str | None = None,
        lndconnect: str | None = None,
        rpc_file: Path | str | None = None,
        timeout: float = 30.0,
    ) -> NodeRecord:
        """Validate and record a node. No network access: ``check_node`` does that.

        lnd needs ``host`` + ``macaroon`` (+ ``tls_cert`` unless lnd's certificate
        is CA-signed) or ``lndconnect``; CLN needs ``rpc_file``. UsageError /
        ConfigError name what is missing or wrong; nothing is stored then.
        """
        _validate_name(name)
        if self.store.execute("SELECT 1 FROM nodes WHERE name = ?", (name,)).fetchone():
            raise UsageError(f"a node named {name!r} exists already; `l2custody node remove {name}` first")
        if not is_positive(timeout):
            raise UsageError(f"timeout must be positive, got {timeout}")
        if kind == "lnd":
            record = _lnd_record(self.data_dir, name, host, tls_cert, macaroon, lndconnect, timeout)
        elif kind == "cln":
            if host or tls_cert or macaroon or lndconnect:
                raise UsageError("--host/--tls-cert/--macaroon/--lndconnect are for lnd nodes; CLN takes --rpc-file")
            if not rpc_file:
                raise UsageError("a CLN node needs --rpc-file (lightningd's lightning-rpc socket)")
            path = user_path(rpc_file, "CLN rpc file", ConfigError)
            found = path_kind(path, "CLN rpc file", ConfigError)
            if found in (PathKind.MISSING, PathKind.DIRECTORY):
                what = "is a directory" if found is PathKind.DIRECTORY else "does not exist"
                raise ConfigError(f"CLN rpc file {path} {what}; it is <lightning-dir>/<network>/lightning-rpc")
            path = path.resolve()
            record = NodeRecord(name, "cln", rpc_file=path, timeout=timeout)
        else:
            raise UsageError(f"unknown node kind {kind!r}: choose --lnd or --cln")
        record = dataclasses.replace(record, created=time.time())
        with self.store.transaction():
            self.store.execute(
                f"INSERT INTO nodes ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.name,
                    record.kind,
                    record.host,
                    str(record.tls_cert) if record.tls_cert else None,
                    str(record.macaroon) if record.macaroon else None,
                    str(record.rpc_file) if record.rpc_file else None,
                    record.timeout,
                    record.created,
                ),
            )
            self.store.audit("cli", "node-add", name, {"kind": record.kind, "host": record.host})
        return record

    def all(self) -> list[NodeRecord]:
        rows = self.store.execute(f"SELECT {_COLUMNS} FROM nodes ORDER BY name").fetchall()
        return [_row(r) for r in rows]

    def get(self, name: str) -> NodeRecord:
        row = self.store.execute(f"SELECT {_COLUMNS} FROM nodes WHERE name = ?", (name,)).fetchone()
        if row is None:
            known = ", ".join(r.name for r in self.all()) or "none yet"
            raise NodeNotFound(f"no node named {name!r} (known: {known}); add it with `l2custody node add`")
        return _row(row)

    def remove(self, name: str) -> NodeRecord:
        """Forget a node (and the credential files we wrote for it from an lndconnect URI)."""
        record = self.get(name)
        with self.store.transaction():
            self.store.execute("DELETE FROM nodes WHERE name = ?", (name,))
            self.store.audit("cli", "node-remove", name, {"kind": record.kind})
        ours = (self.data_dir / "nodes" / name).resolve()
        if record.macaroon and record.macaroon.resolve().parent == ours:
            shutil.rmtree(ours, ignore_errors=True)
        return record

    def backend(self, name: str) -> NodeBackend:
        """``backend_for(self.get(name))``."""
        return backend_for(self.get(name))


def _lnd_record(
    data_dir: Path,
    name: str,
    host: str | None,
    tls_cert: Path | str | None,
    macaroon: Path | str | None,
    lndconnect: str | None,
    timeout: float,
) -> NodeRecord:
    from l2custody.backends.lnd.connect import parse_lndconnect

    if lndconnect:
        if host or tls_cert or macaroon:
            raise UsageError("give either --lndconnect or --host/--tls-cert/--macaroon, not both")
        info = parse_lndconnect(lndconnect)
        directory = Path(data_dir) / "nodes" / name
        cert_path = _write_secret(directory / "tls.cert", info.tls_cert_pem) if info.tls_cert_pem else None
        mac_path = _write_secret(directory / "admin.macaroon", info.macaroon)
        return NodeRecord(name, "lnd", host=info.host, tls_cert=cert_path, macaroon=mac_path, timeout=timeout)
    if not host:
        raise UsageError("an lnd node needs --host HOST:PORT (lnd's rpclisten, default port 10009) or --lndconnect")
    host_port(host, "--host")
    if not macaroon:
        raise UsageError("an lnd node needs --macaroon PATH (e.g. ~/.lnd/data/chain/bitcoin/mainnet/admin.macaroon)")
    cert = _existing_file(tls_cert, "TLS certificate") if tls_cert else None
    return NodeRecord(name, "lnd", host=host, tls_cert=cert, macaroon=_checked_macaroon(macaroon), timeout=timeout)


def _checked_macaroon(path: Path | str) -> Path:
    """The macaroon file, refused now (not at the first call) when it holds no lnd macaroon."""
    from l2custody.backends.lnd.connect import macaroon_bytes

    checked = _existing_file(path, "macaroon")
    try:
        raw = checked.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the macaroon file {checked}: {why(exc)}") from None
    macaroon_bytes(raw, checked)
    return checked


def _row(row: Any) -> NodeRecord:
    name, kind, host, cert, mac, rpc, timeout, created = row
    return NodeRecord(
        name,
        kind,
        host,
        Path(cert) if cert else None,
        Path(mac) if mac else None,
        Path(rpc) if rpc else None,
        timeout,
        created,
    )


def backend_for(record: NodeRecord) -> NodeBackend:
    """The backend for a stored node. Touches no network (and imports grpc for lnd only)."""
    if record.kind == "lnd":
        from l2custody.backends.lnd.backend import LndBackend
        from l2custody.backends.lnd.connect import LndCredentials

        assert record.host and record.macaroon
        return LndBackend(record.name, LndCredentials(record.host, record.tls_cert, record.macaroon, record.timeout))
    if record.kind == "cln":
        from l2custody.backends.cln.backend import ClnBackend

        assert record.rpc_file
        return ClnBackend(record.name, record.rpc_file, record.timeout)
    raise NotSupported(f"node {record.name!r} has unknown kind {record.kind!r}")
