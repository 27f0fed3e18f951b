"""JSON-RPC chain source for Bitcoin Core and btcd.

Both speak JSON-RPC 1.0 over HTTP POST with basic auth; btcd only over TLS
with its self-signed ``rpc.cert``, which we pin (the certificate is the trust
anchor, so the host name is not checked: btcd's generated cert often does not
name the host we dial). Bitcoin Core may use its ``.cookie`` file, which is
re-read on every (re)connection because bitcoind rewrites it on restart.

Only the standard library is used (http.client, ssl, json), so importing this
module is cheap. Nothing touches the network before the first call.
"""

from __future__ import annotations

import base64
import http.client
import json
import socket
import ssl
from pathlib import Path
from typing import Any

from l2custody import redact
from l2custody.chain.base import AcceptResult, ChainInfo
from l2custody.errors import (
    BroadcastRejected,
    BroadcastUnknown,
    ChainError,
    ChainUnreachable,
    NetworkMismatch,
)
from l2custody.netaddr import http_url
from l2custody.networks import reported_network
from l2custody.text_files import read_text

# Core: RPC_VERIFY_* codes of sendrawtransaction; btcd: ErrRPCTxError etc.
_METHOD_NOT_FOUND = -32601
_BATCH = 50  # requests per batched HTTP call


class JsonRpcChain:
    """A ChainSource over Bitcoin Core's or btcd's JSON-RPC."""

    def __init__(
        self,
        url: str,
        user: str | None = None,
        password: str | None = None,
        cookie: Path | None = None,
        cert: Path | None = None,
        timeout: float = 30.0,
        kind: str = "auto",
    ) -> None:
        parts = http_url(url)
        self.url = redact.url(url)  # for messages and logs: the login is never shown
        self.kind = kind
        self._user, self._password, self._cookie, self._cert = user, password, cookie, cert
        self._timeout = timeout
        self._host, self._port, self._tls, self._path = parts.host, parts.port, parts.tls, parts.path
        self._conn: http.client.HTTPConnection | None = None
        self._ssl: ssl.SSLContext | None = None
        self._auth: str | None = None
        self._id = 0

    @classmethod
    def from_config(cls, chain: Any) -> "JsonRpcChain":
        """Build from a :class:`l2custody.config.ChainConfig` (reads password_file)."""
        from l2custody.config import chain_password

        return cls(
            chain.url,
            user=chain.user,
            password=chain_password(chain),
            cookie=chain.cookie,
            cert=chain.cert,
            timeout=chain.timeout,
            kind=chain.kind,
        )

    def __repr__(self) -> str:
        return f"JsonRpcChain({self.url!r})"

    # --- transport -----------------------------------------------------------------

    def _connect(self) -> http.client.HTTPConnection:
        if self._conn is not None:
            return self._conn
        if self._tls:
            self._conn = http.client.HTTPSConnection(
                self._host, self._port, timeout=self._timeout, context=self._tls_context()
            )
        else:
            self._conn = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)
        return self._conn

    def _tls_context(self) -> ssl.SSLContext:
        # built once: loading certificates costs more than the request (btcd closes every connection)
        if self._ssl is None:
            if self._cert is None:
                self._ssl = ssl.create_default_context()
            else:
                try:
                    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                    ctx.load_verify_locations(cafile=str(self._cert))
                except (OSError, ssl.SSLError) as exc:
                    raise ChainUnreachable(
                        f"cannot load the TLS certificate {self._cert} for {self.url}: {exc}; "
                        "set [chain] cert to btcd's rpc.cert"
                    ) from None
                ctx.check_hostname = False  # the pinned cert is the trust anchor
                self._ssl = ctx
        return self._ssl

    def _authorization(self) -> str:
        if self._auth is None:
            if self._cookie is not None:
                userpass = read_text(
                    self._cookie,
                    f"the RPC cookie for {self.url}",
                    ChainUnreachable,
                    "is bitcoind running, and is [chain] cookie the right path?",
                ).strip()
            else:
                userpass = f"{self._user or ''}:{self._password or ''}"
            self._auth = "Basic " + base64.b64encode(userpass.encode()).decode()
        return self._auth

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _post(self, body: bytes, method: str) -> Any:
        """POST one request body and return the decoded JSON (one retry on a stale connection)."""
        for attempt in (0, 1):
            conn = self._connect()
            try:
                conn.request(
                    "POST",
                    self._path,
                    body=body,
                    headers={"Authorization": self._authorization(), "Content-Type": "application/json"},
                )
                resp = conn.getresponse()
                data = resp.read()
                if resp.will_close:
                    self.close()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as exc:
                self.close()
                if attempt == 0 and method != "sendrawtransaction":
                    continue
                raise _Unreachable(self, method, exc) from None
            except (socket.timeout, TimeoutError) as exc:
                self.close()
                raise _Timeout(self, method, exc) from None
            except ConnectionRefusedError as exc:
                self.close()
                raise _Unreachable(self, method, exc, sent=False) from None
            except ssl.SSLCertVerificationError as exc:  # the handshake failed: nothing was sent
                self.close()
                raise ChainUnreachable(
                    f"TLS to the chain source {self.url} failed ({exc.reason or exc}); "
                    "check [chain] cert is the node's rpc.cert and url is https://"
                ) from None
            except OSError as exc:
                self.close()
                raise _Unreachable(self, method, exc) from None
            if resp.status in (401, 403):
                self._auth = None
                raise ChainUnreachable(
                    f"the chain source {self.url} refused our credentials (HTTP {resp.status}); "
                    "check [chain] user/password (or cookie) in the config"
                )
            try:
                return json.loads(data)
            except ValueError:
                raise ChainError(
                    f"{method} on {self.url}: answer is not JSON (HTTP {resp.status}: {data[:200]!r}); "
                    "is the url the node's RPC port?"
                ) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def call(self, method: str, *params: Any) -> Any:
        """One JSON-RPC call; raises ChainError with the node's message on an RPC error."""
        self._id += 1
        body = json.dumps({"jsonrpc": "1.0", "id": self._id, "method": method, "params": list(params)})
        reply = self._post(body.encode(), method)
        return _result(self, method, reply)

    def call_batch(self, method: str, params_list: list[list[Any]]) -> list[Any]:
        """The same method with several parameter lists, in batched HTTP requests."""
        results: list[Any] = []
        for start in range(0, len(params_list), _BATCH):
            chunk = params_list[start : start + _BATCH]
            first = self._id + 1
            requests = [{"jsonrpc": "1.0", "id": first + i, "method": method, "params": p} for i, p in enumerate(chunk)]
            self._id += len(chunk)
            reply = self._post(json.dumps(requests).encode(), method)
            if not isinstance(reply, list):
                # a node without batch support answers with one error object
                results.extend(self.call(method, *p) for p in chunk)
                continue
            by_id = {r.get("id"): r for r in reply}
            for i in range(len(chunk)):
                item = by_id.get(first + i)
                if item is None:
                    raise ChainError(f"{method} on {self.url}: batched answer is missing entry {i}")
                results.append(_result(self, method, item))
        return results

    # --- ChainSource -----------------------------------------------------------------

    def info(self) -> ChainInfo:
        r = self.call("getblockchaininfo")
        name = str(r.get("chain", ""))
        kind = self.kind
        if kind == "auto":
            # btcd's answer has no initialblockdownload field; Core's always does
            kind = "bitcoind" if "initialblockdownload" in r else "btcd"
        return ChainInfo(
            network=reported_network(name),
            height=int(r["blocks"]),
            best_hash=str(r["bestblockhash"]),
            kind=kind,
            initial_download=bool(r.get("initialblockdownload", False)),
        )

    def check_network(self, network: str) -> ChainInfo:
        info = self.info()
        if info.network != network:
            raise NetworkMismatch(
                f"the chain source {self.url} is on {info.network}, but the wallet is on {network}; "
                "point [chain] url at a node of the wallet's network"
            )
        return info

    def tip_height(self) -> int:
        return int(self.call("getblockcount"))

    def block_hash(self, height: int) -> str:
        return str(self.call("getblockhash", height))

    def block_hashes(self, start: int, count: int) -> list[str]:
        return [str(h) for h in self.call_batch("getblockhash", [[h] for h in range(start, start + count)])]

    def raw_block(self, block_hash: str) -> bytes:
        return bytes.fromhex(self.call("getblock", block_hash, 0))

    def raw_blocks(self, block_hashes: list[str]) -> list[bytes]:
        return [bytes.fromhex(h) for h in self.call_batch("getblock", [[b, 0] for b in block_hashes])]

    def raw_transaction(self, txid: str) -> bytes:
        return bytes.fromhex(self.call("getrawtransaction", txid, 0))

    def mempool_txids(self) -> list[str]:
        return [str(t) for t in self.call("getrawmempool")]

    def broadcast(self, raw_tx: bytes) -> str:
        self.close()  # a fresh connection: a stale keep-alive would make the outcome unknown
        try:
            return str(self.call("sendrawtransaction", raw_tx.hex()))
        except RpcFailure as exc:
            raise BroadcastRejected(
                f"{self.url} rejected the transaction: {exc.node_message} (code {exc.rpc_code}); nothing was broadcast"
            ) from None
        except _Unreachable as exc:
            if not exc.sent:
                raise
            raise BroadcastUnknown(
                f"lost the connection to {self.url} while broadcasting ({exc.cause}); the transaction may "
                "or may not have gone out: check the chain (the mempool or the next blocks) before retrying"
            ) from None
        except _Timeout as exc:
            raise BroadcastUnknown(
                f"lost the connection to {self.url} while broadcasting ({exc.cause}); the transaction may "
                "or may not have gone out: check the chain (the mempool or the next blocks) before retrying"
            ) from None

    def test_accept(self, raw_tx: bytes) -> AcceptResult | None:
        try:
            r = self.call("testmempoolaccept", [raw_tx.hex()], 0.10)  # btcd needs maxfeerate
        except RpcFailure as exc:
            if exc.rpc_code == _METHOD_NOT_FOUND:
                return None
            return AcceptResult(txid="", allowed=False, reason=exc.node_message)
        item = r[0]
        return AcceptResult(
            txid=str(item.get("txid", "")),
            allowed=bool(item.get("allowed", False)),
            reason=item.get("reject-reason") or item.get("reject_reason") or item.get("package-error") or None,
        )

    def estimate_fee_rate(self, target_blocks: int = 6) -> float | None:
        try:
            if self.kind == "btcd" or (self.kind == "auto" and self._tls):
                btc_per_kb = float(self.call("estimatefee", target_blocks))
            else:
                r = self.call("estimatesmartfee", target_blocks)
                if "feerate" not in r:
                    return None
                btc_per_kb = float(r["feerate"])
        except RpcFailure:
            return None
        if btc_per_kb <= 0:
            return None
        return btc_per_kb * 100_000_000 / 1000  # BTC/kvB -> sat/vB


# --- errors ------------------------------------------------------------------------


class RpcFailure(ChainError):
    """The node answered with a JSON-RPC error."""

    def __init__(self, chain: JsonRpcChain, method: str, code: int, message: str) -> None:
        super().__init__(f"{method} on {chain.url} failed: {message} (code {code})")
        self.rpc_code, self.node_message = code, message


class _Unreachable(ChainUnreachable):
    def __init__(self, chain: JsonRpcChain, method: str, cause: BaseException, sent: bool = True) -> None:
        self.cause, self.sent = cause, sent
        super().__init__(
            f"cannot reach the chain source at {chain.url} ({method}: {cause}); check that "
            "bitcoind/btcd is running and that [chain] url, user/password or cookie, and cert are right"
        )


class _Timeout(ChainUnreachable):
    def __init__(self, chain: JsonRpcChain, method: str, cause: BaseException) -> None:
        self.cause = cause
        super().__init__(
            f"the chain source at {chain.url} did not answer {method} within its timeout; "
            "check the node is not overloaded, or raise [chain] timeout"
        )


def _result(chain: JsonRpcChain, method: str, reply: Any) -> Any:
    if not isinstance(reply, dict):
        raise ChainError(f"{method} on {chain.url}: unexpected answer {str(reply)[:200]}")
    err = reply.get("error")
    if err:
        if isinstance(err, dict):
            raise RpcFailure(chain, method, int(err.get("code", 0)), str(err.get("message", err)))
        raise RpcFailure(chain, method, 0, str(err))
    return reply.get("result")
