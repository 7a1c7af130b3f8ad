"""Network paths: timeouts, dropped connections, a real HTTP proxy and a dead one."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from fakes.gemini import FakeGemini
from nproxy_core.plugins import ImageRequest, Mode, RetryableError, TransportError
from nproxy_provider_nanobanana import NanoBananaProvider

REQUEST = ImageRequest(mode=Mode.TEXT_TO_IMAGE, prompt="a red fox", resolution="square")


def test_read_timeout_is_a_transport_error(make_provider) -> None:
    provider = make_provider({"nanobanana.timeout_seconds": "0.5"})
    started = time.monotonic()
    with pytest.raises(TransportError, match="read timed out") as info:
        provider.generate(REQUEST, api_key="slow-1")  # the fake waits 2 s
    assert time.monotonic() - started < 1.9
    assert info.value.retry_after is None
    assert provider.attempt_deadline == pytest.approx(0.5 + 10 + 30)


def test_slow_but_within_timeout_succeeds(fake: FakeGemini, make_provider) -> None:
    provider = make_provider({"nanobanana.timeout_seconds": "2"})
    fake.behave("k", "slow", delay=0.3)
    assert provider.generate(REQUEST, api_key="k").image.mime == "image/png"


def test_dropped_connection_is_a_transport_error(provider: NanoBananaProvider) -> None:
    with pytest.raises(TransportError, match="dropped"):
        provider.generate(REQUEST, api_key="drop-1")


def test_nothing_listening_is_a_transport_error(unused_port: int) -> None:
    provider = NanoBananaProvider({"nanobanana.api_base": f"http://127.0.0.1:{unused_port}/v1beta"})
    try:
        with pytest.raises(TransportError, match="could not connect over direct"):
            provider.generate(REQUEST, api_key="k")
    finally:
        provider.close()


def test_silent_server_hits_the_read_timeout() -> None:
    """A socket that accepts and never answers (a black-holed path)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    accepted: list[socket.socket] = []
    thread = threading.Thread(target=lambda: accepted.append(listener.accept()[0]), daemon=True)
    thread.start()
    port = listener.getsockname()[1]
    provider = NanoBananaProvider(
        {
            "nanobanana.api_base": f"http://127.0.0.1:{port}/v1beta",
            "nanobanana.timeout_seconds": 0.3,
        }
    )
    try:
        with pytest.raises(TransportError, match="timed out"):
            provider.generate(REQUEST, api_key="k")
    finally:
        provider.close()
        for sock in accepted:
            sock.close()
        listener.close()


def test_body_trickling_past_the_total_bound() -> None:
    """httpx's read timeout bounds each read; the provider also bounds the body as a whole."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()

    def trickle() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n")
            try:
                for _ in range(200):  # one byte every 50 ms: each read is quick, the whole is not
                    conn.sendall(b"x")
                    time.sleep(0.05)
            except OSError:
                pass

    threading.Thread(target=trickle, daemon=True).start()
    provider = NanoBananaProvider(
        {
            "nanobanana.api_base": f"http://127.0.0.1:{listener.getsockname()[1]}/v1beta",
            "nanobanana.timeout_seconds": "0.3",
            "nanobanana.connect_timeout_seconds": "0.3",
        }
    )
    provider.body_margin_seconds = 0.0
    started = time.monotonic()
    try:
        with pytest.raises(TransportError, match="took longer than"):
            provider.generate(REQUEST, api_key="k")
        assert time.monotonic() - started < 3
    finally:
        provider.close()
        listener.close()


# --- proxies --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_request_goes_through_the_proxy(
    fake: FakeGemini, provider: NanoBananaProvider, http_proxy: str
) -> None:
    result = provider.generate(REQUEST, api_key="success-1", proxy_url=http_proxy)
    assert result.image.mime == "image/png"
    (sent,) = fake.requests
    assert sent.headers["via"].startswith("1.1 proxy.py")
    assert sent.headers["x-goog-api-key"] == "success-1"

    # The direct path is a separate client, and does not pass the proxy.
    provider.generate(REQUEST, api_key="success-1")
    assert "via" not in fake.requests[1].headers
    assert {path for path, _ in provider._clients._clients} == {None, http_proxy}


@pytest.mark.slow
def test_errors_through_the_proxy_keep_their_class(
    provider: NanoBananaProvider, http_proxy: str
) -> None:
    with pytest.raises(RetryableError) as info:
        provider.generate(REQUEST, api_key="rate_limited-1", proxy_url=http_proxy)
    assert info.value.retry_after == 37.0
    assert not isinstance(info.value, TransportError)


def test_dead_proxy_is_a_transport_error(provider: NanoBananaProvider, unused_port: int) -> None:
    dead = f"http://127.0.0.1:{unused_port}"
    with pytest.raises(TransportError) as info:
        provider.generate(REQUEST, api_key="success-1", proxy_url=dead)
    assert dead.removeprefix("http://") in info.value.message


def test_proxy_credentials_never_appear(provider: NanoBananaProvider, unused_port: int) -> None:
    dead = f"http://user:hunter2@127.0.0.1:{unused_port}"
    with pytest.raises(TransportError) as info:
        provider.generate(REQUEST, api_key="success-1", proxy_url=dead)
    assert "hunter2" not in info.value.message


def test_unusable_proxy_url_is_a_transport_error(provider: NanoBananaProvider) -> None:
    with pytest.raises(TransportError, match="unusable"):
        provider.generate(REQUEST, api_key="k", proxy_url="gopher://127.0.0.1:1")
