"""HTTP to OpenAI: pooled httpx clients per network path, and one bounded request.

Every failure to get a complete answer becomes a :class:`TransportError`, which the router
counts against the proxy (when there is one) rather than the key.
"""

from __future__ import annotations

import itertools
import ssl
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from nproxy_core.plugins import TransportError

__all__ = ["ClientPool", "RawResponse", "describe_proxy", "fetch"]


def describe_proxy(proxy_url: str | None) -> str:
    """A proxy URL fit for a log line: scheme, host and port, never its credentials."""
    if proxy_url is None:
        return "direct"
    try:
        parts = urlsplit(proxy_url)
        host = parts.hostname or "?"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "proxy <unparseable URL>"
    return f"proxy {parts.scheme}://{host}{port}"


#: httpx clients per network path. httpcore's pool scans all its connections on every request,
#: so a worker's many threads are spread over several clients to keep each pool small.
CLIENTS_PER_PATH = 16
#: No cap of our own on connections per client (the worker's thread count bounds the calls).
CONNECTION_LIMITS = httpx.Limits(max_connections=None, max_keepalive_connections=32)


class ClientPool:
    """httpx clients by proxy URL (``None`` = direct), created on first use and kept.

    httpx binds a proxy to a client, so each path needs its own clients; keeping them lets
    attempts reuse TLS connections. The clients of a path are taken in turn and share one TLS
    context. httpx clients are thread-safe, so worker threads share them; the pool's own state
    is guarded by a lock. ``trust_env=False`` keeps ``HTTPS_PROXY`` and friends from silently
    rerouting a "direct" attempt.
    """

    def __init__(self, timeout: httpx.Timeout, *, user_agent: str) -> None:
        self._timeout = timeout
        self._headers = {"user-agent": user_agent}
        self._clients: dict[tuple[str | None, int], httpx.Client] = {}
        self._turns = itertools.count()
        self._tls: ssl.SSLContext | None = None
        self._lock = threading.Lock()

    def client(self, proxy_url: str | None) -> httpx.Client:
        slot = (proxy_url, next(self._turns) % CLIENTS_PER_PATH)
        client = self._clients.get(slot)
        if client is not None:
            return client
        with self._lock:
            client = self._clients.get(slot)
            if client is None:
                if self._tls is None:
                    self._tls = httpx.create_ssl_context()
                try:
                    client = httpx.Client(
                        proxy=proxy_url,
                        timeout=self._timeout,
                        trust_env=False,
                        headers=self._headers,
                        follow_redirects=False,
                        verify=self._tls,
                        limits=CONNECTION_LIMITS,
                    )
                except (ValueError, ImportError, httpx.InvalidURL) as exc:
                    # An unknown scheme, a malformed URL, or SOCKS without httpx[socks]: the
                    # path is unusable, which is the proxy's fault, not the key's.
                    raise TransportError(
                        f"{describe_proxy(proxy_url)} is unusable: {type(exc).__name__}"
                    ) from exc
                self._clients[slot] = client
            return client

    def close(self) -> None:
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            client.close()


@dataclass(frozen=True)
class RawResponse:
    status: int
    headers: httpx.Headers
    body: bytes


def fetch(
    client: httpx.Client,
    method: str,
    url: str | httpx.URL,
    *,
    headers: dict[str, str],
    total_seconds: float,
    max_bytes: int,
    path: str,
    content: bytes | None = None,
    data: Mapping[str, Any] | None = None,
    files: list[tuple[str, tuple[str, bytes, str]]] | None = None,
) -> RawResponse:
    """Send one request and read the whole answer, or raise :class:`TransportError`.

    ``content`` is a raw body; ``data`` and ``files`` a multipart form. httpx's read timeout
    bounds each read, not the whole body, so a server trickling bytes could hold an attempt
    forever; ``total_seconds`` bounds the body as a whole. ``path`` ("direct" or the described
    proxy) goes into messages; the key never does.
    """
    started = time.monotonic()
    try:
        with client.stream(
            method, url, content=content, data=data, files=files, headers=headers
        ) as response:
            chunks: list[bytes] = []
            size = 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > max_bytes:
                    raise TransportError(
                        f"OpenAI's answer over {path} exceeded {max_bytes} bytes",
                        http_status=response.status_code,
                    )
                if time.monotonic() - started > total_seconds:
                    raise TransportError(
                        f"OpenAI's answer over {path} took longer than {total_seconds:g} s",
                        http_status=response.status_code,
                    )
                chunks.append(chunk)
            return RawResponse(response.status_code, response.headers, b"".join(chunks))
    except httpx.TimeoutException as exc:
        raise TransportError(f"{_timeout_kind(exc)} over {path}") from exc
    except httpx.ProxyError as exc:
        raise TransportError(f"{path} refused or failed the tunnel: {exc}") from exc
    except httpx.ConnectError as exc:
        raise TransportError(f"could not connect over {path}: {exc}") from exc
    except httpx.RemoteProtocolError as exc:
        raise TransportError(f"connection dropped over {path}: {exc}") from exc
    except httpx.HTTPError as exc:
        # Every other transport failure (decoding, protocol, unsupported proxy protocol…).
        raise TransportError(f"{type(exc).__name__} over {path}: {exc}") from exc


def _timeout_kind(exc: httpx.TimeoutException) -> str:
    return {
        httpx.ConnectTimeout: "connect timed out",
        httpx.ReadTimeout: "read timed out waiting for OpenAI",
        httpx.WriteTimeout: "write timed out sending the request",
        httpx.PoolTimeout: "no free connection in the pool",
    }.get(type(exc), "timed out")
