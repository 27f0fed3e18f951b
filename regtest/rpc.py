"""A minimal JSON-RPC client for btcd (HTTPS with its own certificate) and bitcoind (HTTP)."""

from __future__ import annotations

import base64
import http.client
import json
import ssl
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from regtest.errors import ChainRpcError


class JsonRpc:
    """Calls ``method(*params)`` on a Bitcoin-style JSON-RPC server.

    Constructing it touches no network. One keep-alive connection is reused
    (a TLS handshake per call would make scanning hundreds of blocks slow),
    guarded by a lock so the client can be shared between threads.
    """

    def __init__(self, url: str, user: str, password: str, cafile: Path | None = None, timeout: float = 60.0) -> None:
        self.url = url
        parts = urlsplit(url)
        self._https = parts.scheme == "https"
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or (443 if self._https else 80)
        self._auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        self._cafile = cafile
        self._timeout = timeout
        self._next_id = 0
        self._conn: http.client.HTTPConnection | None = None
        self._lock = threading.Lock()

    def _connection(self) -> http.client.HTTPConnection:
        if self._https:
            ctx = ssl.create_default_context(cafile=str(self._cafile) if self._cafile else None)
            return http.client.HTTPSConnection(self._host, self._port, timeout=self._timeout, context=ctx)
        return http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)

    def call(self, method: str, *params: Any) -> Any:
        """Return the call's ``result``; raise ChainRpcError on an error reply or no reply."""
        self._next_id += 1
        body = json.dumps({"jsonrpc": "1.0", "id": self._next_id, "method": method, "params": list(params)})
        with self._lock:
            status, raw = self._post(method, body)
        if status == 401:
            raise ChainRpcError(f"chain RPC at {self.url} refused our credentials (HTTP 401)")
        try:
            reply = json.loads(raw)
        except ValueError as exc:
            raise ChainRpcError(
                f"chain RPC {method} at {self.url} answered HTTP {status} with non-JSON: {raw[:200]!r}"
            ) from exc
        error = reply.get("error")
        if error:
            code = error.get("code") if isinstance(error, dict) else None
            text = error.get("message") if isinstance(error, dict) else str(error)
            raise ChainRpcError(f"chain RPC {method} failed: {text} (code {code})", code)
        return reply.get("result")

    def batch(self, calls: list[tuple[str, list[Any]]]) -> list[Any]:
        """Several calls in one request (JSON-RPC 2.0 batch); results in order.

        Raises ChainRpcError for the first call that failed.
        """
        if not calls:
            return []
        body = json.dumps(
            [{"jsonrpc": "2.0", "id": i, "method": m, "params": list(p)} for i, (m, p) in enumerate(calls)]
        )
        with self._lock:
            status, raw = self._post(calls[0][0], body)
        try:
            replies = {r["id"]: r for r in json.loads(raw)}
        except (ValueError, TypeError, KeyError) as exc:
            raise ChainRpcError(f"chain RPC batch at {self.url} answered HTTP {status} with {raw[:200]!r}") from exc
        results = []
        for i, (method, _) in enumerate(calls):
            reply = replies.get(i) or {"error": {"message": "no reply in batch"}}
            error = reply.get("error")
            if error:
                raise ChainRpcError(
                    f"chain RPC {method} failed: {error.get('message')} (code {error.get('code')})", error.get("code")
                )
            results.append(reply.get("result"))
        return results

    def _post(self, method: str, body: str) -> tuple[int, bytes]:
        headers = {"Authorization": self._auth, "Content-Type": "application/json"}
        for attempt in (1, 2):
            reused = self._conn is not None
            if self._conn is None:
                self._conn = self._connection()
            try:
                self._conn.request("POST", "/", body, headers)
                resp = self._conn.getresponse()
                return resp.status, resp.read()
            except (OSError, http.client.HTTPException) as exc:
                self._conn.close()
                self._conn = None
                # A kept-alive connection the server has closed fails before the
                # request is processed: try once more on a fresh one.
                stale = isinstance(exc, (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError))
                if attempt == 1 and reused and stale:
                    continue
                raise ChainRpcError(f"chain RPC {method} at {self.url} failed: {exc}") from exc
        raise AssertionError("unreachable")

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
