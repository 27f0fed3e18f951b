"""What may be shown of input that can hold a secret.

Error messages quote what the operator gave so they can see the mistake; but a private
key or seed pasted where a public key belongs, a URL with a password in it, or a
password in the config must never be repeated (terminals, logs and alert webhooks keep
them). Everything that echoes such input goes through here.
"""

from __future__ import annotations

import functools
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


_URL_LOGIN = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@]*@")
_WORD = re.compile(r"[A-Za-z]+")


def text(message: str) -> str:
    """``message`` as it may leave l2custody (error output, logs, alerts): private keys,
    logins in URLs and runs of six or more BIP-39 words anywhere in it are replaced.

    The edges apply it to whole messages, so a secret quoted by code that forgot
    :func:`shown` (or by a library's own error text) is still not repeated."""
    message = _PRIVATE_KEY.sub("(a private key: not shown)", message)
    message = _URL_LOGIN.sub(lambda m: f"{m.group(1)}***@", message)
    return _without_seed_words(message)


def _without_seed_words(message: str) -> str:
    words = list(_WORD.finditer(message))
    wordlist = _bip39_words()
    spans: list[tuple[int, int]] = []
    run: list[re.Match[str]] = []
    for match in [*words, None]:
        if match is not None and match.group().lower() in wordlist and (not run or _adjacent(message, run[-1], match)):
            run.append(match)
            continue
        if len(run) >= 6:
            spans.append((run[0].start(), run[-1].end()))
        run = [match] if match is not None and match.group().lower() in wordlist else []
    for start, end in reversed(spans):
        message = f"{message[:start]}(seed words: not shown){message[end:]}"
    return message


def _adjacent(message: str, before: re.Match[str], after: re.Match[str]) -> bool:
    return message[before.end() : after.start()].strip(" \t\n,") == ""


@functools.cache
def _bip39_words() -> frozenset[str]:
    from embit.wordlists.bip39 import WORDLIST  # only when a message is redacted

    return frozenset(WORDLIST)


def url(text: str) -> str:
    """``text`` without the ``user:password@`` part of a URL."""
    scheme, sep, rest = text.partition("://")
    if sep and "@" in rest.split("/", 1)[0]:
        return f"{scheme}{sep}***@{rest.split('@', 1)[1]}"
    return text
