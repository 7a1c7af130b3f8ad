"""HTTP for provider plugins: pooled httpx clients per network path, and one bounded request.

Part of the public plugin interface (the shipped providers use it; a plugin may too). Every
failure to get a complete answer becomes a :class:`TransportError`, which the router counts
against the proxy (when there is one) rather than the key.
"""

from __future__ import annotations

import itertools
import re
import ssl
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from nproxy_core.plugins.providers import KeyRejectedError, ProviderError, TransportError

__all__ = [
    "CLIENTS_PER_PATH",
    "ClientPool",
    "RawResponse",
    "check_key_shape",
    "describe_proxy",
    "fetch",
    "scrub_key",
]

#: Keys shorter than this are not real provider keys and are not scrubbed from messages
#: (scrubbing a one-letter test key would only garble them).
MIN_SCRUBBED_KEY_LENGTH = 8
_KEY_SHAPE = re.compile(r"[\x21-\x7e]+")  # printable ASCII without spaces: a header value


def check_key_shape(api_key: str) -> None:
    """Refuse a key that cannot go in a header: it would fail inside httpx as a protocol
    error and be blamed on the network path."""
    if not _KEY_SHAPE.fullmatch(api_key or ""):
        raise KeyRejectedError("the key is empty or contains characters a key cannot have")


def scrub_key(exc: ProviderError, api_key: str) -> None:
    """Take ``api_key`` out of ``exc``'s message. Nothing a plugin writes contains the key, but
    the provider's own messages and transport errors are quoted in it: scrubbed, a key can
    never reach a log or the admin UI."""
    if len(api_key) >= MIN_SCRUBBED_KEY_LENGTH and api_key in exc.message:
        exc.message = exc.message.replace(api_key, "[key]")
        exc.args = (exc.message,)


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


#: httpx clients per network path. httpcore's pool does work quadratic in its connections on
#: every request and every response closed (it scans them all, and for each idle one counts
#: them all again, each check a socket poll): with 256 calls in flight on one client that was
#: 40 % of a worker's CPU (py-spy, benchmarks/pipeline.py --capacity). Spread over this many
#: clients, each holds a few connections and the scans stay short (the default).
CLIENTS_PER_PATH = 32
#: Idle connections each client keeps, by default: enough for a busy worker to reuse its TLS
#: connections instead of redialling.
KEEPALIVE_CONNECTIONS = 64


class ClientPool:
    """httpx clients by proxy URL (``None`` = direct), created on first use and kept.

    httpx binds a proxy to a client, so each path needs its own clients; keeping them lets
    attempts reuse TLS connections. A path has ``clients_per_path`` clients (default
    :data:`CLIENTS_PER_PATH`), taken in turn, so that no client's pool grows large; they share
    one TLS context (certificates are loaded once). httpx clients are thread-safe, so worker
    threads share them.
    ``trust_env=False`` keeps ``HTTPS_PROXY`` and friends from silently rerouting a "direct"
    attempt.
    """

    def __init__(
        self,
        timeout: httpx.Timeout,
        *,
        user_agent: str,
        clients_per_path: int = CLIENTS_PER_PATH,
        keepalive_connections: int = KEEPALIVE_CONNECTIONS,
    ) -> None:
        self._timeout = timeout
        self._headers = {"user-agent": user_agent}
        self._clients_per_path = clients_per_path
        # No cap of our own on connections per client: the worker's thread count bounds the
        # calls (httpx's default of 100 would queue a worker's calls beyond the hundredth).
        self._limits = httpx.Limits(
            max_connections=None, max_keepalive_connections=keepalive_connections
        )
        self._clients: dict[tuple[str | None, int], httpx.Client] = {}
        self._turns = itertools.count()
        self._tls: ssl.SSLContext | None = None
        self._lock = threading.Lock()

    def client(self, proxy_url: str | None) -> httpx.Client:
        slot = (proxy_url, next(self._turns) % self._clients_per_path)
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
                        limits=self._limits,
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
    service: str,
    content: bytes | None = None,
    data: Mapping[str, Any] | None = None,
    files: list[tuple[str, tuple[str, bytes, str]]] | None = None,
) -> RawResponse:
    """Send one request and read the whole answer, or raise :class:`TransportError`.

    ``content`` is a raw body; ``data`` and ``files`` a multipart form. httpx's read timeout
    bounds each read, not the whole body, so a server trickling bytes could hold an attempt
    forever; ``total_seconds`` bounds the body as a whole. ``path`` ("direct" or the described
    proxy) and ``service`` (whose answer it is: "Gemini") go into messages; the key never does.
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
                        f"{service}'s answer over {path} exceeded {max_bytes} bytes",
                        http_status=response.status_code,
                    )
                if time.monotonic() - started > total_seconds:
                    raise TransportError(
                        f"{service}'s answer over {path} took longer than {total_seconds:g} s",
                        http_status=response.status_code,
                    )
                chunks.append(chunk)
            return RawResponse(response.status_code, response.headers, b"".join(chunks))
    except httpx.TimeoutException as exc:
        raise TransportError(f"{_timeout_kind(exc, service)} over {path}") from exc
    except httpx.ProxyError as exc:
        raise TransportError(f"{path} refused or failed the tunnel: {exc}") from exc
    except httpx.ConnectError as exc:
        raise TransportError(f"could not connect over {path}: {exc}") from exc
    except httpx.RemoteProtocolError as exc:
        raise TransportError(f"connection dropped over {path}: {exc}") from exc
    except httpx.HTTPError as exc:
        # Every other transport failure (decoding, protocol, unsupported proxy protocol…).
        raise TransportError(f"{type(exc).__name__} over {path}: {exc}") from exc


def _timeout_kind(exc: httpx.TimeoutException, service: str) -> str:
    return {
        httpx.ConnectTimeout: "connect timed out",
        httpx.ReadTimeout: f"read timed out waiting for {service}",
        httpx.WriteTimeout: "write timed out sending the request",
        httpx.PoolTimeout: "no free connection in the pool",
    }.get(type(exc), "timed out")
