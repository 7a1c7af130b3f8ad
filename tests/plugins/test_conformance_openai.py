"""The OpenAI Images provider passes the conformance kit, against the fake OpenAI server."""

from __future__ import annotations

import base64
from typing import Any

from fakes.gemini import make_png
from fakes.openai_images import SIZES, fake_openai, success
from nproxy_core.plugins.testing import Case, ProviderConformance
from nproxy_provider_openai import OpenAIProvider

#: The fake's key prefixes (behaviours) that meet each outcome.
BEHAVIOURS = {
    "unauthorized": "invalid_key",
    "forbidden": "region",
    "rate_limited": "rate_limited",
    "out_of_funds": "insufficient_quota",
    "bad_request": "bad_request",
    "content_policy": "moderation_blocked",
    "server_error": "server_error",
    "timeout": "slow",
}


def coloured(index: int):
    """The fake's success answer, with an image of the asked size in a colour of its own."""

    def behaviour(request) -> Any:
        reply = success(request)
        width, height = SIZES.get(str(request.params.get("size") or "auto"), (1024, 1024))
        png = make_png(width, height, (index % 256, (index * 7) % 256, 90))
        reply.body["data"] = [{"b64_json": base64.b64encode(png).decode("ascii")}]
        return reply

    return behaviour


class TestOpenAIConformance(ProviderConformance):
    plugin_name = "openai"

    def setup_fake(self) -> None:
        self._server = fake_openai()
        self.fake = self._server.__enter__()

    def teardown_fake(self) -> None:
        self._server.__exit__(None, None, None)

    def plugin_settings(self) -> dict[str, Any]:
        # PNG answers, so each image's colour survives as sent.
        return {"openai.api_base": self.fake.base_url, "openai.output_format": "png"}

    def make_plugin(self, settings):
        return OpenAIProvider(settings)

    def arrange(self, outcome: str) -> Case:
        key = f"{BEHAVIOURS[outcome]}-conformance-key"
        if outcome == "timeout":
            return Case(api_key=key, settings={"openai.timeout_seconds": "0.3"})
        return Case(api_key=key)

    def arrange_success(self, index: int) -> Case:
        key = f"conformance-key-{index:03d}"
        self.fake.behave(key, coloured(index))
        return Case(api_key=key, request=self.request_for(index))
