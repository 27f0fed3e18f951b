"""Text files an operator points l2custody at: read as UTF-8, every fault a typed error.

Config, cookie, password file, key files, wallet exports and batch files are all read
here. Catching ``OSError`` alone let a file of another encoding (or a binary file given
by mistake) end in a ``UnicodeDecodeError`` traceback.
"""

from __future__ import annotations

from pathlib import Path

from l2custody.errors import L2CustodyError
from l2custody.user_paths import user_path, why


def read_text(path: Path | str, what: str, error: type[L2CustodyError], hint: str = "") -> str:
    """The UTF-8 text of ``path``. ``error`` (naming ``what`` the file is, the fault and
    ``hint``) for a missing, unreadable or non-UTF-8 file."""
    path = user_path(path, what, error)
    suffix = f"; {hint}" if hint else ""
    try:
        return path.read_text(encoding="utf-8").removeprefix("\ufeff")  # a BOM is never content
    except UnicodeDecodeError as exc:
        raise error(f"cannot read {what} {path}: it is {not_utf8(exc)}; is it the right file?{suffix}") from None
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {why(exc)}{suffix}") from None


def not_utf8(exc: UnicodeDecodeError) -> str:
    """What was wrong, for a message: ``not UTF-8 text (byte 0xff at offset 0)``."""
    return f"not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start})"
