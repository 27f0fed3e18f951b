"""Directories that hold secrets or the store: created 0700 at every level we create.

``Path.mkdir(parents=True, mode=0o700)`` gives the mode to the last directory only;
the parents it creates get the default (0755 under the usual umask), so the nodes/
folder, a key file's folders and the data dir's parents were readable by every user.
"""

from __future__ import annotations

import os
from pathlib import Path


def private_dir(path: Path) -> Path:
    """``path`` and every missing parent, created with mode 0700 (existing ones are left
    as they are: they belong to the operator). Returns ``path``."""
    path = Path(path)
    missing = []
    probe = path
    while not probe.exists() and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    for directory in reversed(missing):
        try:
            os.mkdir(directory, 0o700)
        except FileExistsError:  # another process made it meanwhile
            continue
        os.chmod(directory, 0o700)  # whatever the umask
    return path
