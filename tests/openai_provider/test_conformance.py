"""The OpenAI provider passes the plugin conformance kit, against the fake OpenAI server."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from fakes.gemini import make_png
from fakes.openai_images import fake_openai
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


class TestOpenAIConformance(ProviderConformance):
    plugin_name = "openai"

    def setup_fake(self) -> None:
        self._server = fake_openai()
        self.fake = self._server.__enter__()

    def teardown_fake(self) -> None:
        self._server.__exit__(None, None, None)

    def plugin_settings(self) -> dict[str, Any]:
        return {"openai.api_base": self.fake.base_url}

    def make_plugin(self, settings):
        return OpenAIProvider(settings)

    def arrange(self, outcome: str) -> Case:
        key = f"{BEHAVIOURS[outcome]}-conformance-key"
        if outcome == "timeout":
            return Case(api_key=key, settings={"openai.timeout_seconds": "0.3"})
        return Case(api_key=key)

    def arrange_success(self, index: int) -> Case:
        # A square image of its own colour for each index, asked for as a square preset.
        key = f"conformance-key-{index:03d}"
        colour = (index % 256, (index * 7) % 256, 200)
        self.fake.behave(key, "success", image=make_png(1024, 1024, colour))
        request = self.request_for(index)
        return Case(api_key=key, request=replace(request, resolution="square"))
