"""Every OpenAI answer class against the fake server, mapped as DESIGN 8 says; the key never
appears in a message."""

from __future__ import annotations

import pytest

from fakes.openai_images import FakeOpenAI
from nproxy_core.plugins import (
    ContentPolicyError,
    ImageRequest,
    InvalidInputError,
    KeyRejectedError,
    Mode,
    OutOfFundsError,
    ProviderError,
    RateLimit,
    RetryableError,
    TransportError,
)
from nproxy_provider_openai import OpenAIProvider

REQUEST = ImageRequest(mode=Mode.TEXT_TO_IMAGE, prompt="a lighthouse", resolution="square")


@pytest.mark.parametrize(
    ("behaviour", "error", "status"),
    [
        ("invalid_key", KeyRejectedError, 401),
        ("region", KeyRejectedError, 403),
        ("org_not_verified", KeyRejectedError, 403),
        ("insufficient_quota", OutOfFundsError, 429),
        ("billing_limit", OutOfFundsError, 400),
        ("moderation_blocked", ContentPolicyError, 400),
        ("content_policy", ContentPolicyError, 400),
        ("bad_request", InvalidInputError, 400),
        ("model_not_found", RetryableError, 404),
        ("server_error", RetryableError, 500),
        ("unavailable", RetryableError, 503),
        ("malformed_json", RetryableError, 200),
        ("not_base64", RetryableError, 200),
        ("not_image", RetryableError, 200),
        ("url_only", RetryableError, 200),
    ],
)
def test_answer_classes(
    fake: FakeOpenAI, provider: OpenAIProvider, behaviour: str, error: type, status: int
) -> None:
    key = f"{behaviour}-0123456789abcdef"
    with pytest.raises(error) as caught:
        provider.generate(REQUEST, api_key=key)
    exc = caught.value
    assert type(exc) is error  # not a subclass standing in: the exact class
    assert exc.http_status == status
    assert key not in exc.message
    assert fake.requests[0].behaviour == behaviour


def test_classes_are_the_routers() -> None:
    # What the router acts on: the outcome, and the code users see for their own faults.
    assert ContentPolicyError.outcome == InvalidInputError.outcome == "user_caused"
    assert ContentPolicyError.code == "content_policy"
    assert InvalidInputError.code == "invalid_input"


def test_messages_say_what_openai_said(provider: OpenAIProvider) -> None:
    with pytest.raises(OutOfFundsError) as caught:
        provider.generate(REQUEST, api_key="insufficient_quota-0123456789")
    assert caught.value.message.startswith("OpenAI answered 429 insufficient_quota: You exceeded")
    with pytest.raises(ContentPolicyError) as policy:
        provider.generate(REQUEST, api_key="moderation_blocked-0123456789")
    assert "OpenAI's safety system" in policy.value.message
    assert "Try rephrasing" in policy.value.message
    with pytest.raises(RetryableError) as broken:
        provider.generate(REQUEST, api_key="not_image-0123456789")
    assert "not an image" in broken.value.message


def test_rate_limit_honours_retry_after(fake: FakeOpenAI, provider: OpenAIProvider) -> None:
    fake.behave("k-0123456789", "rate_limited", retry_after="7")
    with pytest.raises(RetryableError) as caught:
        provider.generate(REQUEST, api_key="k-0123456789")
    exc = caught.value
    assert type(exc) is RetryableError
    assert (exc.http_status, exc.retry_after, exc.rate_limit) == (429, 7.0, RateLimit.SHORT)
    assert "rate_limit_exceeded" in exc.message

    fake.behave("k-0123456789", "rate_limited", retry_after=None)
    with pytest.raises(RetryableError) as without:
        provider.generate(REQUEST, api_key="k-0123456789")
    assert (without.value.retry_after, without.value.rate_limit) == (None, RateLimit.SHORT)


def test_insufficient_quota_is_not_a_rate_limit(provider: OpenAIProvider) -> None:
    with pytest.raises(ProviderError) as caught:
        provider.generate(REQUEST, api_key="insufficient_quota-0123456789")
    assert not isinstance(caught.value, RetryableError)


def test_key_is_scrubbed_from_messages(fake: FakeOpenAI, provider: OpenAIProvider) -> None:
    key = "echo_key-sk-proj-abcdefghijklmnop"
    with pytest.raises(KeyRejectedError) as caught:
        provider.generate(REQUEST, api_key=key)
    assert key not in caught.value.message
    assert key not in str(caught.value)
    assert "[key]" in caught.value.message
    with pytest.raises(KeyRejectedError) as checked:
        provider.check_key(api_key=key)
    assert key not in str(checked.value)
    assert "[key]" in checked.value.message


def test_dropped_connection_is_a_transport_error(provider: OpenAIProvider) -> None:
    with pytest.raises(TransportError, match="over direct"):
        provider.generate(REQUEST, api_key="drop-0123456789")


def test_timeout_is_a_transport_error(fake: FakeOpenAI, make_provider) -> None:
    provider = make_provider({"openai.timeout_seconds": "0.3"})
    fake.behave("k-0123456789", "slow", delay=3)
    with pytest.raises(TransportError, match="read timed out waiting for OpenAI"):
        provider.generate(REQUEST, api_key="k-0123456789")


def test_refused_connection_is_a_transport_error(unused_port: int) -> None:
    provider = OpenAIProvider({"openai.api_base": f"http://127.0.0.1:{unused_port}/v1"})
    try:
        with pytest.raises(TransportError, match="could not connect over direct"):
            provider.generate(REQUEST, api_key="k-0123456789")
    finally:
        provider.close()


def test_dead_and_unusable_proxies_are_transport_errors(
    provider: OpenAIProvider, unused_port: int
) -> None:
    dead = f"http://user:hunter22@127.0.0.1:{unused_port}"
    with pytest.raises(TransportError) as caught:
        provider.generate(REQUEST, api_key="k-0123456789", proxy_url=dead)
    assert "hunter22" not in caught.value.message
    with pytest.raises(TransportError, match="unusable"):
        provider.generate(REQUEST, api_key="k-0123456789", proxy_url="gopher://127.0.0.1:1")


def test_errors_through_a_proxy_keep_their_class(provider: OpenAIProvider, http_proxy: str):
    with pytest.raises(OutOfFundsError):
        provider.generate(REQUEST, api_key="insufficient_quota-0123456789", proxy_url=http_proxy)


def test_the_fake_refuses_malformed_requests(fake: FakeOpenAI) -> None:
    """The fake's own checks, so that a provider bug would show up as a 400."""
    import httpx

    url = fake.base_url
    auth = {"authorization": "Bearer k-0123456789"}
    bad_size = httpx.post(
        f"{url}/images/generations",
        json={"model": "gpt-image-1", "prompt": "x", "size": "999x999"},
        headers=auth,
    )
    assert bad_size.status_code == 400
    assert bad_size.json()["error"]["param"] == "size"
    no_image = httpx.post(
        f"{url}/images/edits", data={"model": "gpt-image-1", "prompt": "x"}, headers=auth
    )
    assert (no_image.status_code, no_image.json()["error"]["param"]) == (400, "image")
    no_key = httpx.post(f"{url}/images/generations", json={"model": "m", "prompt": "x"})
    assert no_key.status_code == 401
