"""Fallback models (DESIGN 4.13, opt-in): when every key of a model's provider is exhausted, an
image is made by the model named for it in ``nproxy.fallback`` and charged the lower price.

    nproxy.fallback = nanobanana:gemini-3-pro-image-preview=openai:gpt-image-1

Whitespace separates pairs; each side is ``provider:model`` of an enabled provider. The image
keeps its shape: the fallback's preset of the same aspect ratio (the nearest one otherwise).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from nproxy_core.plugins import ConfigurationError, ImageRequest, ModelCapabilities, Provider

SETTING = "nproxy.fallback"


@dataclasses.dataclass(frozen=True)
class Route:
    """Where a failed image goes instead: the provider, its model, and the request for it."""

    provider: str
    capabilities: ModelCapabilities
    request: ImageRequest


def _ratio(caps: ModelCapabilities, preset: str) -> float | None:
    ratio = caps.aspect_ratios.get(preset, "")
    width, _, height = ratio.partition(":")
    try:
        return float(width) / float(height)
    except (ValueError, ZeroDivisionError):
        size = caps.sizes.get(preset)
        return None if not size else size[0] / size[1]


class Fallbacks:
    """The parsed ``nproxy.fallback`` table, checked against the enabled providers."""

    def __init__(
        self,
        table: Mapping[tuple[str, str], tuple[str, str]],
        providers: Mapping[str, Provider],
    ) -> None:
        self._table = dict(table)
        self._providers = providers

    @classmethod
    def from_settings(
        cls, settings: Mapping[str, Any], providers: Mapping[str, Provider]
    ) -> Fallbacks:
        """Raises ConfigurationError naming the pair at fault."""
        table: dict[tuple[str, str], tuple[str, str]] = {}
        for pair in str(settings.get(SETTING) or "").split():
            source, sep, target = pair.partition("=")
            if not sep:
                raise ConfigurationError(
                    f"{SETTING}: {pair!r} is not provider:model=provider:model"
                )
            ends = [cls._end(pair, side, providers) for side in (source, target)]
            if ends[0] == ends[1]:
                raise ConfigurationError(f"{SETTING}: {pair!r} falls back to itself")
            if ends[0] in table:
                raise ConfigurationError(f"{SETTING}: {source!r} has two fallbacks")
            table[ends[0]] = ends[1]
        return cls(table, providers)

    @staticmethod
    def _end(pair: str, side: str, providers: Mapping[str, Provider]) -> tuple[str, str]:
        provider, sep, model = side.partition(":")
        if not sep or not provider or not model:
            raise ConfigurationError(f"{SETTING}: {pair!r}: {side!r} is not provider:model")
        if provider not in providers:
            raise ConfigurationError(
                f"{SETTING}: {pair!r}: the provider {provider!r} is not enabled (nproxy.providers)"
            )
        if model not in {caps.model for caps in providers[provider].capabilities()}:
            raise ConfigurationError(
                f"{SETTING}: {pair!r}: the provider {provider!r} offers no model {model!r}"
            )
        return provider, model

    def __bool__(self) -> bool:
        return bool(self._table)

    def _caps(self, provider: str, model: str) -> ModelCapabilities | None:
        found = self._providers.get(provider)
        if found is None:
            return None
        return next((c for c in found.capabilities() if c.model == model), None)

    def route(self, provider: str, request: ImageRequest) -> Route | None:
        """Where ``request`` (to ``provider``) goes when that provider's pool is exhausted, or
        None: no fallback, or one that cannot make this image (mode, number of inputs)."""
        source_model = request.model or ""
        target = self._table.get((provider, source_model))
        if target is None:
            return None
        source = self._caps(provider, source_model)
        caps = self._caps(*target)
        if source is None or caps is None or request.mode not in caps.modes:
            return None
        if len(request.inputs) > caps.max_input_images:
            return None
        wanted = _ratio(source, request.resolution)
        resolution = caps.resolutions[0]
        if request.resolution in caps.resolutions:
            resolution = request.resolution
        elif wanted is not None:
            # The first preset of the nearest shape: the smallest size tier of it.
            resolution = min(
                caps.resolutions,
                key=lambda p: abs((_ratio(caps, p) or wanted) - wanted),
            )
        return Route(
            target[0],
            caps,
            dataclasses.replace(
                request,
                model=caps.model,
                resolution=resolution,
                # A continuation belongs to the model that made the image.
                inputs=tuple(dataclasses.replace(i, continuation=None) for i in request.inputs),
                strength=request.strength if caps.supports_strength else None,
            ),
        )
