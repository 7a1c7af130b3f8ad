"""The Nano Banana provider passes the conformance kit, against the fake Gemini server."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from fakes.gemini import fake_gemini, make_png
from nproxy_core.plugins.testing import Case, ProviderConformance
from nproxy_provider_nanobanana import NanoBananaProvider

#: The fake's key prefixes (behaviours) that meet each outcome.
BEHAVIOURS = {
    "unauthorized": "unauthenticated",
    "forbidden": "leaked_key",
    "rate_limited": "rate_limited",
    "out_of_funds": "depleted",
    "bad_request": "bad_argument",
    "content_policy": "safety",
    "server_error": "unavailable",
    "timeout": "slow",
}


class TestNanoBananaConformance(ProviderConformance):
    plugin_name = "nanobanana"

    def setup_fake(self) -> None:
        self._server = fake_gemini()
        self.fake = self._server.__enter__()

    def teardown_fake(self) -> None:
        self._server.__exit__(None, None, None)

    def plugin_settings(self) -> dict[str, Any]:
        return {"nanobanana.api_base": self.fake.base_url}

    def make_plugin(self, settings):
        return NanoBananaProvider(settings)

    def arrange(self, outcome: str) -> Case:
        key = f"{BEHAVIOURS[outcome]}-conformance-key"
        if outcome == "timeout":
            return Case(api_key=key, settings={"nanobanana.timeout_seconds": "0.3"})
        return Case(api_key=key)

    def arrange_success(self, index: int) -> Case:
        # A square image of its own colour for each index.
        key = f"conformance-key-{index:03d}"
        colour = (index % 256, (index * 7) % 256, 200)
        self.fake.behave(key, "success", image=make_png(1024, 1024, colour))
        request = self.request_for(index)
        square = self.build().capabilities()[0].aspect_ratios
        preset = next(p for p, r in square.items() if r == "1:1")
        return Case(api_key=key, request=replace(request, resolution=preset))
