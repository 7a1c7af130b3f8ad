"""Uploads: input images for image-to-image generations, checked by content and stored."""

from __future__ import annotations

from typing import Any

from nproxy_core.config import ConfigurationError, _positive_int
from nproxy_core.plugins import PluginSettingError, setting
from nproxy_core.storage.media import stored_image_resolver
from nproxy_core.uploads.models import Upload
from nproxy_core.uploads.services import LIMITS_KEY, UploadLimits


def includeme(config: Any) -> None:
    settings = config.get_settings()
    defaults = UploadLimits()
    try:
        limits = UploadLimits(
            max_bytes=setting(
                settings, "nproxy.uploads.max_bytes", default=defaults.max_bytes, cast=_positive_int
            ),
            max_side=setting(
                settings, "nproxy.uploads.max_side", default=defaults.max_side, cast=_positive_int
            ),
        )
    except PluginSettingError as exc:
        raise ConfigurationError(str(exc)) from None
    config.registry[LIMITS_KEY] = limits

    config.add_media_resolver(stored_image_resolver(Upload), name="uploads")
    config.add_route("api.uploads", "/api/v1/uploads")
    config.scan("nproxy_core.uploads.views")
