"""Uploads: input images for image-to-image generations, checked by content and stored."""

from __future__ import annotations

from typing import Any

from nproxy_core.plugins import positive_int, setting
from nproxy_core.storage.media import stored_image_resolver
from nproxy_core.tasks import TASKS
from nproxy_core.uploads.interfaces import IUploadLimits
from nproxy_core.uploads.models import Upload
from nproxy_core.uploads.services import UploadLimits
from nproxy_core.uploads.tasks import delete_unused_uploads


def includeme(config: Any) -> None:
    settings = config.get_settings()
    defaults = UploadLimits()
    limits = UploadLimits(
        max_bytes=setting(
            settings, "nproxy.uploads.max_bytes", default=defaults.max_bytes, cast=positive_int
        ),
        max_side=setting(
            settings, "nproxy.uploads.max_side", default=defaults.max_side, cast=positive_int
        ),
    )
    config.register_service(limits, IUploadLimits)
    config.add_media_resolver(stored_image_resolver(Upload), name="uploads")
    config.add_stored_objects(Upload, prefix="uploads/")
    config.scan("nproxy_core.uploads.tasks", categories=TASKS)
    config.add_periodic_task("uploads.delete_unused", delete_unused_uploads, 3600)
    config.add_route("api.uploads", "/api/v1/uploads")
    config.scan("nproxy_core.uploads.views")
