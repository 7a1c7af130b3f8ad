"""Every failure Gemini can answer with lands in the right core error class, and no error
message ever contains the key."""

from __future__ import annotations

import pytest

from fakes.gemini import BEHAVIOURS, FakeGemini, Reply
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
    UserCausedError,
)
from nproxy_provider_nanobanana import NanoBananaProvider, NoImageError

REQUEST = ImageRequest(mode=Mode.TEXT_TO_IMAGE, prompt="a red fox", resolution="square")
SECRET = "AIzaSyD-very-secret-part-0123456789"


def attempt(provider: NanoBananaProvider, behaviour: str) -> ProviderError:
    with pytest.raises(ProviderError) as info:
        provider.generate(REQUEST, api_key=f"{behaviour}-{SECRET}")
    return info.value


@pytest.mark.parametrize(
    ("behaviour", "error_class", "status"),
    [
        ("server_error", RetryableError, 500),
        ("bad_gateway", RetryableError, 502),
        ("unavailable", RetryableError, 503),
        ("gateway_timeout", RetryableError, 504),
        ("model_not_found", RetryableError, 404),
        ("depleted", OutOfFundsError, 402),
        ("prepayment_depleted", OutOfFundsError, 429),
        ("spending_cap", OutOfFundsError, 429),
        ("free_tier_zero", OutOfFundsError, 429),
        ("invalid_key", KeyRejectedError, 400),
        ("expired_key", KeyRejectedError, 400),
        ("unauthenticated", KeyRejectedError, 401),
        ("leaked_key", KeyRejectedError, 403),
        ("service_disabled", KeyRejectedError, 403),
        ("bad_argument", InvalidInputError, 400),
        ("payload_too_large", InvalidInputError, 413),
        ("location_unsupported", TransportError, 400),
    ],
)
def test_http_errors(
    provider: NanoBananaProvider, behaviour: str, error_class: type, status: int
) -> None:
    error = attempt(provider, behaviour)
    assert type(error) is error_class
    assert error.http_status == status


def test_rate_limit_honours_retry_delay(fake: FakeGemini, provider) -> None:
    error = attempt(provider, "rate_limited")
    assert type(error) is RetryableError
    assert error.http_status == 429
    assert error.retry_after == 37.0
    assert "exceeded your current quota" in error.message  # "billing" here is not out of funds

    fake.behave("fractional", "rate_limited", retry_delay="1.5s")
    with pytest.raises(RetryableError) as info:
        provider.generate(REQUEST, api_key="fractional")
    assert info.value.retry_after == 1.5


def test_a_per_minute_429_is_a_short_rate_limit_and_a_per_day_429_a_daily_one(fake, provider):
    minute = attempt(provider, "rate_limited")
    assert (minute.rate_limit, minute.retry_after) == (RateLimit.SHORT, 37.0)
    day = attempt(provider, "daily_quota")
    assert type(day) is RetryableError
    assert (day.http_status, day.rate_limit, day.retry_after) == (429, RateLimit.DAILY, 19.0)
    # Only a 429 says which quota was exceeded; an outage is no rate limit at all.
    assert attempt(provider, "unavailable").rate_limit is None
    assert provider.quota_day_zone == "America/Los_Angeles"


def test_a_429_without_quota_details_is_a_short_rate_limit(fake, provider) -> None:
    fake.behave("bare", lambda request: Reply(429, b'{"error": {"code": 429}}', {}))
    with pytest.raises(RetryableError) as info:
        provider.generate(REQUEST, api_key="bare")
    assert info.value.rate_limit is RateLimit.SHORT


def test_rate_limit_without_delay_falls_back_to_retry_after_header(fake, provider) -> None:
    fake.behave("plain", "rate_limited", retry_delay=None)
    with pytest.raises(RetryableError) as info:
        provider.generate(REQUEST, api_key="plain")
    assert info.value.retry_after is None

    fake.behave("header", lambda request: Reply(429, b"", {"Retry-After": "12"}))
    with pytest.raises(RetryableError) as info:
        provider.generate(REQUEST, api_key="header")
    assert info.value.retry_after == 12.0


@pytest.mark.parametrize(
    ("behaviour", "words"),
    [
        ("image_safety", "generated image was withheld"),
        ("safety", "safety filters"),
        ("prohibited_content", "prohibited content"),
        ("prompt_blocked", "prompt was blocked"),
    ],
)
def test_content_policy(provider: NanoBananaProvider, behaviour: str, words: str) -> None:
    error = attempt(provider, behaviour)
    assert type(error) is ContentPolicyError
    assert isinstance(error, UserCausedError)
    assert words in error.message
    assert "rephras" in error.message
    assert error.http_status == 200


@pytest.mark.parametrize(
    "reason",
    [
        "SAFETY",
        "PROHIBITED_CONTENT",
        "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT",
        "BLOCKLIST",
        "SPII",
        "RECITATION",
        "IMAGE_RECITATION",
    ],
)
def test_every_policy_finish_reason(fake: FakeGemini, provider, reason: str) -> None:
    fake.behave("k", "finish_reason", reason=reason)
    with pytest.raises(ContentPolicyError):
        provider.generate(REQUEST, api_key="k")


@pytest.mark.parametrize("reason", ["OTHER", "BLOCKLIST", "PROHIBITED_CONTENT"])
def test_every_prompt_block_reason(fake: FakeGemini, provider, reason: str) -> None:
    fake.behave("k", "prompt_blocked", reason=reason)
    with pytest.raises(ContentPolicyError):
        provider.generate(REQUEST, api_key="k")


@pytest.mark.parametrize("reason", ["NO_IMAGE", "IMAGE_OTHER", "OTHER", "MAX_TOKENS"])
def test_finished_without_image_is_user_caused(fake: FakeGemini, provider, reason: str) -> None:
    fake.behave("k", "finish_reason", reason=reason)
    with pytest.raises(NoImageError) as info:
        provider.generate(REQUEST, api_key="k")
    assert isinstance(info.value, InvalidInputError)
    assert reason in info.value.message


def test_stop_without_image_quotes_the_model(provider: NanoBananaProvider) -> None:
    error = attempt(provider, "text_only")
    assert type(error) is NoImageError
    assert "did not produce an image" in error.message
    assert "I can only describe this scene" in error.message


def test_no_image_finish(provider: NanoBananaProvider) -> None:
    assert type(attempt(provider, "no_image")) is NoImageError


@pytest.mark.parametrize(
    "body",
    [
        b'{"candidates": [',
        b"<html>oops</html>",
        b"[]",
        b"{}",
        b'{"candidates": [{"content": {"parts": []}}]}',  # no image and no finish reason
        b'{"candidates": [{"content": {"parts": [{"inlineData": {"data": "%%%"}}]},'
        b' "finishReason": "STOP"}]}',
        b'{"candidates": [{"content": {"parts": [{"inlineData": {"data": "aGVsbG8="}}]},'
        b' "finishReason": "STOP"}]}',  # base64 of "hello": not an image
    ],
)
def test_unusable_200_bodies_are_retryable(fake: FakeGemini, provider, body: bytes) -> None:
    fake.behave("k", lambda request: Reply(200, body))
    with pytest.raises(RetryableError) as info:
        provider.generate(REQUEST, api_key="k")
    assert not isinstance(info.value, TransportError)


def test_malformed_json_behaviour(provider: NanoBananaProvider) -> None:
    error = attempt(provider, "malformed_json")
    assert type(error) is RetryableError
    assert "not JSON" in error.message


def test_odd_statuses_are_retryable(fake: FakeGemini, provider) -> None:
    for status in (408, 409, 418, 501):
        fake.behave("k", lambda request, status=status: Reply(status, b"nope"))
        with pytest.raises(RetryableError) as info:
            provider.generate(REQUEST, api_key="k")
        assert type(info.value) is RetryableError
        assert info.value.http_status == status


def test_unusable_key_is_rejected_without_a_call(fake: FakeGemini, provider) -> None:
    for key in ("", "has space", "ключ", "line\nbreak", "trailing-newline\n"):
        with pytest.raises(KeyRejectedError):
            provider.generate(REQUEST, api_key=key)
    assert fake.requests == []


# --- the key never leaks --------------------------------------------------------------------------

FAILING = sorted(set(BEHAVIOURS) - {"success", "thoughts", "multiple_images", "wrong_mime"})


def _chain(error: BaseException) -> str:
    """Everything a traceback log would print about the error and its causes."""
    texts = []
    while error is not None:
        texts += [str(error), repr(error), repr(error.args)]
        error = error.__cause__ or error.__context__
    return "\n".join(texts)


@pytest.mark.parametrize("behaviour", FAILING)
def test_key_never_appears_in_errors(make_provider, behaviour: str) -> None:
    provider = make_provider({"nanobanana.timeout_seconds": "0.5"})
    error = attempt(provider, behaviour)
    assert SECRET not in _chain(error)
    assert SECRET not in error.message


def test_a_key_echoed_by_the_server_is_scrubbed(fake: FakeGemini, provider) -> None:
    def echo(request):
        return Reply(
            400, {"error": {"code": 400, "message": f"bad key {request.api_key}", "status": "X"}}
        )

    fake.behave(SECRET, echo)
    with pytest.raises(InvalidInputError) as info:
        provider.generate(REQUEST, api_key=SECRET)
    assert SECRET not in str(info.value)
    assert SECRET not in info.value.message
    assert "bad key [key]" in info.value.message
