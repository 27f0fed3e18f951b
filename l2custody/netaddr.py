"""Host:port and http(s) URLs as operators write them, checked in one place.

``urlsplit`` raises ``ValueError`` on ``http://[::1`` and its ``.port`` on ``:99999``; a
host pattern of one to five digits accepted port 99999. Every address l2custody reads
(node hosts, peer addresses, the chain URL, the metrics listener) goes through here
and fails with a UsageError or ConfigError that says what is wrong.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from l2custody import redact
from l2custody.errors import ConfigError, L2CustodyError, UsageError
from l2custody.numbers import is_decimal


def port_number(text: str, what: str, *, allow_zero: bool = False, error: type[L2CustodyError] = UsageError) -> int:
    """``text`` as a TCP port (1-65535; 0 too with ``allow_zero``)."""
    if not is_decimal(text) or not (0 if allow_zero else 1) <= int(text) <= 65535:
        raise error(f"{what}: port {text!r} is not a number from 1 to 65535")
    return int(text)


def host_port(text: str, what: str, *, allow_zero: bool = False) -> tuple[str, int]:
    """``HOST:PORT`` or ``[IPv6]:PORT`` -> (host without brackets, port)."""
    host, sep, port = text.strip().rpartition(":")
    if host.startswith("[") != host.endswith("]"):
        raise UsageError(f"{what} {text!r}: unbalanced brackets around the IPv6 address")
    host = host[1:-1] if host.startswith("[") else host
    if not sep or not host or any(c.isspace() for c in host):
        raise UsageError(f"{what} {text!r}: expected HOST:PORT, e.g. 127.0.0.1:10009")
    if ":" in host and not text.strip().startswith("["):
        raise UsageError(f"{what} {text!r}: write an IPv6 address in brackets, e.g. [::1]:10009")
    return host, port_number(port, f"{what} {text!r}", allow_zero=allow_zero)


@dataclass(frozen=True)
class HttpUrl:
    scheme: str
    host: str
    port: int
    path: str

    @property
    def tls(self) -> bool:
        return self.scheme == "https"


def http_url(url: str, what: str = "chain url") -> HttpUrl:
    """An ``http(s)://host[:port][/path]`` URL (ConfigError naming what is wrong)."""
    hint = "expected http(s)://host:port"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"{what} {_shown(url)}: {exc}; {hint}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{what} {_shown(url)} is not http(s)://host:port: it must start with http:// or https://")
    if port == 0:
        raise ConfigError(f"{what} {_shown(url)}: port 0; {hint}")
    default = 443 if parts.scheme == "https" else 80
    return HttpUrl(parts.scheme, parts.hostname, port or default, parts.path or "/")


def _shown(url: str) -> str:
    return repr(redact.url(url))
