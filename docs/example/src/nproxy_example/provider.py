"""The Example image provider: one attempt with one key, answered or classified.

Wire format: ``POST {example.api_base}/images`` with ``Authorization: Bearer KEY`` and JSON
``{"model", "prompt", "width", "height", "seed"}``; a 200 answers the PNG itself, an error
answers ``{"error": {"code", "message"}}`` with its HTTP status.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from decimal import Decimal

from nproxy_core.plugins import (
    AttemptResult,
    ContentPolicyError,
    GeneratedImage,
    ImageRequest,
    InvalidInputError,
    KeyRejectedError,
    Mode,
    ModelCapabilities,
    OutOfFundsError,
    Provider,
    ProviderError,
    RateLimit,
    RetryableError,
    TransportError,
    http_url,
    identify_image,
    positive_float,
    setting,
)

#: Preset name → (width, height, aspect ratio).
PRESETS = {
    "square": (512, 512, "1:1"),
    "wide": (768, 432, "16:9"),
    "tall": (432, 768, "9:16"),
}
USD_PER_IMAGE = Decimal("0.02")


class ExampleProvider(Provider):
    contract_version = "1.1"

    def __init__(self, settings):
        super().__init__(settings)
        # Only "example.*" keys are here (plus nproxy.public_url, nproxy.env and a secret
        # derived for this plugin). Read everything once: generate() runs on many threads.
        self.api_base = setting(settings, "example.api_base", required=True, cast=http_url)
        self.timeout = setting(
            settings, "example.timeout_seconds", default=60.0, cast=positive_float
        )

    def capabilities(self):
        return [
            ModelCapabilities(
                model="example-1",
                label="Example",
                modes=(Mode.TEXT_TO_IMAGE,),
                resolutions=tuple(PRESETS),
                max_batch=4,
                aspect_ratios={name: ratio for name, (_w, _h, ratio) in PRESETS.items()},
                sizes={name: (w, h) for name, (w, h, _r) in PRESETS.items()},
                usd_per_image=dict.fromkeys(PRESETS, USD_PER_IMAGE),
            )
        ]

    @property
    def attempt_deadline(self) -> float:
        return self.timeout + 10

    @property
    def price_per_image(self):
        return USD_PER_IMAGE

    def generate(self, request: ImageRequest, *, api_key: str, proxy_url=None):
        if request.resolution not in PRESETS:
            raise InvalidInputError(f"unknown resolution {request.resolution!r}")
        width, height, _ratio = PRESETS[request.resolution]
        body = json.dumps(
            {
                "model": request.model or "example-1",
                "prompt": request.prompt,
                "width": width,
                "height": height,
                "seed": request.index,
            }
        ).encode()
        call = urllib.request.Request(  # noqa: S310 - api_base is checked: http(s) only
            f"{self.api_base}/images",
            data=body,
            method="POST",
            headers={"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"},
        )
        # A proxy, when the key has one; never the environment's (an opener per call: nothing
        # shared between threads).
        proxies = {"http": proxy_url, "https": proxy_url} if proxy_url else {}
        opener = urllib.request.build_opener(urllib.request.ProxyHandler(proxies))
        try:
            with opener.open(call, timeout=self.timeout) as answer:
                data = answer.read()
        except urllib.error.HTTPError as error:
            raise classify(error.code, error.read(), error.headers.get("Retry-After")) from None
        except (urllib.error.URLError, TimeoutError, OSError) as error:
            # No answer: never quote the URL's query or the request (the key is in a header,
            # but say only what failed).
            reason = type(error).__name__
            raise TransportError(f"no answer from the Example API: {reason}") from None
        found = identify_image(data)
        if found is None:
            raise RetryableError("the Example API answered 200 without an image", http_status=200)
        return AttemptResult(
            image=GeneratedImage(
                data=data, mime=found.mime, width=found.width, height=found.height
            ),
            estimated_cost=USD_PER_IMAGE,
        )


def classify(status: int, body: bytes, retry_after: str | None) -> ProviderError:
    """The error class of an Example API error answer."""
    try:
        error = json.loads(body)["error"]
        message = f"{status} {error['code']}: {error['message']}"[:300]
    except (ValueError, KeyError, TypeError):
        message = f"{status} (no error body)"
    if status in (401, 403):
        return KeyRejectedError(message, http_status=status)
    if status == 402:
        return OutOfFundsError(message, http_status=status)
    if status == 429:
        seconds = float(retry_after) if retry_after and retry_after.isdigit() else None
        return RetryableError(
            message, http_status=status, retry_after=seconds, rate_limit=RateLimit.SHORT
        )
    if status == 422:
        return ContentPolicyError(message, http_status=status)
    if status == 400:
        return InvalidInputError(message, http_status=status)
    return RetryableError(message, http_status=status)
