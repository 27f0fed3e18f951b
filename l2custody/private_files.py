"""Files and folders l2custody creates for secrets and the store: folders 0700 at every
level we create, files 0600, written atomically and never left half-written.

``Path.mkdir(parents=True, mode=0o700)`` gives the mode to the last directory only;
the parents it creates get the default (0755 under the usual umask), so the nodes/
folder, a key file's folders and the data dir's parents were readable by every user.
Each writer used to have its own ``NAME.tmp`` + ``os.replace``; one that failed (the
target a directory, a full disk) left the ``.tmp`` behind, and two writers shared it.
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from pathlib import Path


def private_dir(path: Path) -> Path:
    """``path`` and every missing parent, created with mode 0700 (existing ones are left
    as they are: they belong to the operator). Returns ``path``.

    Raises ``OSError`` when ``path`` cannot be a directory: a file is in the way, a part
    of it is a file, a symbolic link loops. Callers translate it into their error."""
    path = Path(path)
    missing = []
    probe = path
    while not os.path.lexists(probe) and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    for directory in reversed(missing):
        try:
            os.mkdir(directory, 0o700)
        except FileExistsError:  # another process made it meanwhile
            continue
        os.chmod(directory, 0o700)  # whatever the umask
    if not stat.S_ISDIR(os.stat(path).st_mode):  # ELOOP/ENOTDIR raise here too
        raise NotADirectoryError(errno.ENOTDIR, "not a directory", str(path))
    return path


def write_private_file(path: Path, data: bytes, *, exclusive: bool = False, durable: bool = False) -> None:
    """Write ``data`` to ``path`` (mode 0600) atomically: readers see the old file or the
    new one, never a part. A temporary file beside it (a unique name) is removed when
    anything fails. ``exclusive`` refuses an existing ``path`` (``FileExistsError``);
    ``durable`` syncs the file and its folder before returning.

    Raises ``OSError`` (translated by the caller, who knows what the file is for)."""
    path = Path(path)
    private_dir(path.parent)
    if exclusive and os.path.lexists(path):
        raise FileExistsError(errno.EEXIST, "file exists", str(path))
    if os.path.isdir(path):
        raise IsADirectoryError(errno.EISDIR, "is a directory", str(path))
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), 0o600)
            fh.write(data)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        if exclusive:
            os.link(tmp, path)  # fails if someone created it meanwhile; never overwrites
            os.unlink(tmp)
        else:
            os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    if durable:
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
