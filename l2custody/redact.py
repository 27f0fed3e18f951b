"""What may be shown of input that can hold a secret.

Error messages quote what the operator gave so they can see the mistake; but a private
key or seed pasted where a public key belongs, a URL with a password in it, or a
password in the config must never be repeated (terminals, logs and alert webhooks keep
them). Everything that echoes such input goes through here.
"""

from __future__ import annotations

import re

_PRIVATE_KEY = re.compile(r"[tuvxyzTUVXYZ]prv[1-9A-HJ-NP-Za-km-z]{8,}")
_WORDS = re.compile(r"[a-z]{3,8}(?:\s+[a-z]{3,8}){5,}")  # six or more seed-like words


def looks_secret(text: str) -> bool:
    """A BIP-32 private key (xprv, tprv, ...) or a run of seed words."""
    return bool(_PRIVATE_KEY.search(text) or _WORDS.search(text.strip().lower()))


def shown(text: str, limit: int = 24) -> str:
    """The start of ``text`` for a message, or a placeholder when it looks like a secret."""
    if looks_secret(text):
        return "(a private key or seed words: not shown)"
    return f"{text[:limit]}..." if len(text) > limit else text


def url(text: str) -> str:
    """``text`` without the ``user:password@`` part of a URL."""
    scheme, sep, rest = text.partition("://")
    if sep and "@" in rest.split("/", 1)[0]:
        return f"{scheme}{sep}***@{rest.split('@', 1)[1]}"
    return text
