"""Channel backups kept current by ``watch``: the node's static channel backup
(lnd ``ExportAllChannelBackups``, CLN ``staticbackup``), written to the backup
directory whenever the node's channels change.

One file per node, ``<node>.channel-backup``, replaced atomically (written to
a temporary file, synced, renamed) and created with mode 0600 in a 0700
directory: with the node's seed it restores the channels' funds.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from l2custody.backends.base import NodeBackend
from l2custody.errors import ConfigError
from l2custody.private_files import write_private_file
from l2custody.user_paths import why

SUFFIX = ".channel-backup"


@dataclass(frozen=True)
class BackupWritten:
    node: str
    path: Path
    sha256: str
    size: int
    changed: bool  # False: the node handed back exactly the bytes already on disk


def backup_path(directory: Path, node: str) -> Path:
    return Path(directory) / f"{node}{SUFFIX}"


def write_backup(backend: NodeBackend, directory: Path) -> BackupWritten:
    """Ask the node for its channel backup and write it (see the module docstring).

    Raises the node's errors (NotSupported, NodeUnreachable...) and ConfigError
    when the directory cannot be written."""
    data = backend.channel_backup()
    path = backup_path(directory, backend.name)
    digest = hashlib.sha256(data).hexdigest()
    try:
        if path.exists() and hashlib.sha256(path.read_bytes()).hexdigest() == digest:
            return BackupWritten(backend.name, path, digest, len(data), False)
        _write_atomically(path, data)
    except OSError as exc:
        raise ConfigError(
            f"cannot write the channel backup {path}: {why(exc)}; check [watch] backup_dir "
            "(it must be a directory this user can write)"
        ) from None
    return BackupWritten(backend.name, path, digest, len(data), True)


def _write_atomically(path: Path, data: bytes) -> None:
    write_private_file(path, data, durable=True)
