"""The node registry: which Lightning nodes l2custody manages, and how to reach them.

Nodes live in the store's ``nodes`` table (migration 2): name, kind, host and
the *paths* of their credentials; the secrets stay in files. An lndconnect
URI is unpacked into ``<data_dir>/nodes/<name>/tls.cert`` and
``admin.macaroon`` (mode 0600) so that rule holds for it too.

``backend_for(record)`` builds the backend; it imports grpc (through
``backends.lnd``) only when an lnd backend is asked for, so commands that do
not talk to a node do not pay for it. ``check_node`` is ``node check``.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from l2custody.backends.base import NodeBackend
from l2custody.errors import ConfigError, L2CustodyError, NodeNotFound, NotSupported, UsageError
from l2custody.networks import normalize_network

if TYPE_CHECKING:  # pragma: no cover
    from l2custody.store import Store

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_HOST_RE = re.compile(r"^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):[0-9]{1,5}$")
MIN_LND_VERSION = (0, 16)  # skip_finalize, RequiredReserve, CheckMacaroonPermissions


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
    p = Path(path).expanduser().resolve()
    if not p.is_file():
        raise ConfigError(f"{what} {p} does not exist or is not a file")
    if not os.access(p, os.R_OK):
        raise ConfigError(f"{what} {p} is not readable by this user")
    return p


def _write_secret(path: Path, content: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(content)
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
        if timeout <= 0:
            raise UsageError(f"timeout must be positive, got {timeout}")
        if kind == "lnd":
            record = _lnd_record(self.data_dir, name, host, tls_cert, macaroon, lndconnect, timeout)
        elif kind == "cln":
            if host or tls_cert or macaroon or lndconnect:
                raise UsageError("--host/--tls-cert/--macaroon/--lndconnect are for lnd nodes; CLN takes --rpc-file")
            if not rpc_file:
                raise UsageError("a CLN node needs --rpc-file (lightningd's lightning-rpc socket)")
            path = Path(rpc_file).expanduser().resolve()
            if not path.exists():
                raise ConfigError(f"CLN rpc file {path} does not exist; it is <lightning-dir>/<network>/lightning-rpc")
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
    if not _HOST_RE.match(host):
        raise UsageError(f"--host {host!r}: expected HOST:PORT, e.g. 127.0.0.1:10009")
    if not macaroon:
        raise UsageError("an lnd node needs --macaroon PATH (e.g. ~/.lnd/data/chain/bitcoin/mainnet/admin.macaroon)")
    cert = _existing_file(tls_cert, "TLS certificate") if tls_cert else None
    return NodeRecord(
        name, "lnd", host=host, tls_cert=cert, macaroon=_existing_file(macaroon, "macaroon"), timeout=timeout
    )


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


# --- node check -------------------------------------------------------------------------
@dataclass(frozen=True)
class CheckItem:
    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class NodeCheck:
    node: str
    kind: str
    items: tuple[CheckItem, ...]

    @property
    def ok(self) -> bool:
        return all(i.ok for i in self.items)


def _version_tuple(version: str) -> tuple[int, ...]:
    m = re.search(r"(\d+)\.(\d+)", version)  # lnd "0.20.1-beta", CLN "v25.12.1"
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def check_node(record: NodeRecord, network: str, backend: NodeBackend | None = None) -> NodeCheck:
    """Everything ``node check`` reports: reachable, synced, network, version,
    permissions, anchor reserve. Never raises for the node's answers: each
    problem is an item with ``ok=False`` and what to do."""
    items: list[CheckItem] = []

    def add(name: str, ok: bool, detail: str) -> None:
        items.append(CheckItem(name, ok, detail))

    try:
        backend = backend or backend_for(record)
    except NotSupported as exc:
        add("supported", False, exc.message)
        return NodeCheck(record.name, record.kind, tuple(items))
    try:
        info = backend.info()
    except L2CustodyError as exc:
        add("reachable", False, exc.message)
        return NodeCheck(record.name, record.kind, tuple(items))
    add("reachable", True, f"{info.alias or '(no alias)'} {info.pubkey} at {record.host or record.rpc_file}")
    add(
        "synced",
        info.synced_to_chain,
        f"block {info.block_height}"
        if info.synced_to_chain
        else f"not synced to chain (at block {info.block_height}); wait for it",
    )
    want = normalize_network(network)
    add(
        "network",
        info.network == want,
        info.network
        if info.network == want
        else f"node is on {info.network}, the wallet on {want}: wrong node or wrong config",
    )
    from l2custody.backends.cln.convert import MIN_CLN_VERSION

    minimum = {"lnd": MIN_LND_VERSION, "cln": MIN_CLN_VERSION}.get(record.kind, (0, 0))
    too_old = _version_tuple(info.version) < minimum
    product = "Core Lightning" if record.kind == "cln" else record.kind
    add(
        "version",
        not too_old,
        f"{info.version}"
        + (f" is too old: l2custody needs {product} {'.'.join(map(str, minimum))} or newer" if too_old else ""),
    )
    try:
        problems = backend.access_problems()
        fine = (
            "the macaroon allows everything l2custody does"
            if record.kind == "lnd"
            else ("the lightning-rpc socket allows every command")
        )
        add("permissions", not problems, "; ".join(problems) if problems else fine)
    except L2CustodyError as exc:
        add("permissions", False, exc.message)
    try:
        reserve = backend.anchor_reserve(additional_public_channels=1)
        add(
            "anchor reserve",
            reserve.sufficient,
            f"{reserve.available_sat} sat in the node wallet, {reserve.required_sat} sat needed with one more public channel"
            + (
                ""
                if reserve.sufficient
                else f": send {reserve.missing_sat} sat to the node wallet before opening public channels"
            ),
        )
    except NotSupported:
        pass
    except L2CustodyError as exc:
        add("anchor reserve", False, exc.message)
    return NodeCheck(record.name, record.kind, tuple(items))
