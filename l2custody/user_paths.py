"""Paths an operator gives us (options, config values, "text or a file" arguments).

Every such path goes through :func:`user_path` once, where it enters: ``~`` and
``~user`` are expanded (an unknown user is a typed error, not ``RuntimeError``), an
empty path, a NUL byte or a name longer than the file system allows is refused, and the
result is absolute. :func:`path_kind` then asks the file system what is there; a symlink
loop, a path through a regular file or a folder we may not enter is a typed error that
names the path, never an ``OSError`` traceback or a silently "missing" file.
"""

from __future__ import annotations

import errno
import os
import stat
from enum import Enum
from pathlib import Path

from l2custody.errors import L2CustodyError

#: POSIX limits of Linux and macOS file systems: one name, a whole path (bytes).
NAME_MAX = 255
PATH_MAX = 4095


class PathKind(Enum):
    FILE = "file"
    DIRECTORY = "directory"
    MISSING = "missing"
    OTHER = "other"  # a socket, a FIFO, a device


def user_path(value: str | Path, what: str, error: type[L2CustodyError], relative_to: Path | None = None) -> Path:
    """``value`` as an absolute path with ``~`` expanded (a relative one taken from
    ``relative_to``, default the working directory); ``error`` naming ``what`` when it
    cannot be a path at all."""
    text = os.fspath(value)
    if not text.strip():
        raise error(f"{what}: the path is empty; give a path")
    if "\x00" in text:
        raise error(f"{what}: the path holds a NUL character; check what was pasted")
    try:
        path = Path(text).expanduser()
    except RuntimeError:
        user = text[1:].split("/", 1)[0] or "(the current user)"
        raise error(f"{what} {text}: there is no user {user!r} whose home '~{user}' could stand for") from None
    path = relative_to / path if relative_to is not None and not path.is_absolute() else path.absolute()
    raw = os.fsencode(path)
    longest = max((len(os.fsencode(part)) for part in path.parts), default=0)
    if longest > NAME_MAX or len(raw) > PATH_MAX:
        raise error(
            f"{what}: {_short(text)} is too long to be a path (a name may have {NAME_MAX} bytes, "
            f"a path {PATH_MAX}); is this the right argument?"
        )
    return path


def path_kind(path: Path, what: str, error: type[L2CustodyError]) -> PathKind:
    """What is at ``path`` (following symlinks). ``error`` for a symlink loop, a path
    through a regular file or a folder this user may not enter."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return PathKind.MISSING
    except OSError as exc:
        raise error(f"{what} {_short(str(path))}: {why(exc)}") from None
    if stat.S_ISREG(mode):
        return PathKind.FILE
    if stat.S_ISDIR(mode):
        return PathKind.DIRECTORY
    return PathKind.OTHER


def existing_file(value: str | Path, what: str, error: type[L2CustodyError], hint: str = "") -> Path:
    """``value`` as the path of an existing regular file this user can read."""
    path = user_path(value, what, error)
    kind = path_kind(path, what, error)
    suffix = f"; {hint}" if hint else ""
    if kind is PathKind.MISSING:
        raise error(f"{what} {path} does not exist{suffix}")
    if kind is not PathKind.FILE:
        raise error(f"{what} {path} is a {kind.value}, not a file{suffix}")
    if not os.access(path, os.R_OK):
        raise error(f"{what} {path} is not readable by this user{suffix}")
    return path


def is_existing_file(text: str) -> bool:
    """For arguments that are either text or the path of a file holding it: True only
    when ``text`` names a regular file. Never raises: what is no path is text."""
    if not text or "\n" in text or "\x00" in text or len(text) > PATH_MAX:
        return False
    try:
        return stat.S_ISREG(os.stat(Path(text).expanduser()).st_mode)
    except (OSError, RuntimeError, ValueError):
        return False


def why(exc: OSError) -> str:
    """An ``OSError`` in words an operator acts on."""
    if exc.errno == errno.ELOOP:
        return "a symbolic link loop (a link that points back to itself); fix or remove the link"
    if exc.errno == errno.ENOTDIR:
        return "a part of the path is a file, not a folder; check the path"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied on a folder of the path"
    if exc.errno == errno.ENAMETOOLONG:
        return "the path is too long"
    if exc.errno == errno.EISDIR:
        return "it is a directory, not a file"
    if exc.errno == errno.ENOSPC:
        return "the disk is full"
    if exc.errno == errno.EROFS:
        return "the file system is read-only"
    return exc.strerror or str(exc)


def _short(text: str) -> str:
    return text if len(text) <= 80 else f"{text[:60]}... ({len(text)} characters)"
