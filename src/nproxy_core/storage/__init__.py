"""Storage: the object store for generated images and uploads (S3 or a local folder), chosen by
the ``nproxy.storage`` setting, and the ``/media/{asset_id}`` route that serves what it holds."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nproxy_core.config import server_secrets
from nproxy_core.plugins import (
    ConfigurationError,
    boolean,
    http_url,
    positive_int,
    setting,
)
from nproxy_core.storage.images import (
    FORMATS,
    THUMB_MIME,
    ImageUnreadable,
    convert,
    make_thumbnail,
    store_thumbnail,
    thumbnail_key,
)
from nproxy_core.storage.interfaces import (
    InvalidKey,
    IStorage,
    ObjectBytes,
    ObjectNotFound,
    StorageError,
    StoredObject,
)
from nproxy_core.storage.keys import generation_key, upload_key, validate_key
from nproxy_core.storage.links import IMediaLinks, LinkCheck, MediaLinks
from nproxy_core.storage.media import MediaAsset, MediaResolver, add_media_resolver
from nproxy_core.storage.orphans import add_stored_objects, delete_after_commit
from nproxy_core.storage.tasks import sweep_orphans
from nproxy_core.tasks import TASKS

__all__ = [
    "FORMATS",
    "THUMB_MIME",
    "IMediaLinks",
    "IStorage",
    "ImageUnreadable",
    "InvalidKey",
    "LinkCheck",
    "MediaAsset",
    "MediaResolver",
    "ObjectBytes",
    "ObjectNotFound",
    "StorageError",
    "StoredObject",
    "add_media_resolver",
    "convert",
    "delete_after_commit",
    "generation_key",
    "make_storage",
    "make_thumbnail",
    "store_thumbnail",
    "thumbnail_key",
    "upload_key",
    "validate_key",
]

DEFAULT_LOCAL_PATH = "var/media"


def make_storage(settings: Mapping[str, Any]) -> Any:
    """Build the backend named by ``nproxy.storage`` from the settings.

    Raises :class:`ConfigurationError` naming a missing or malformed setting.
    """
    backend = settings.get("nproxy.storage", "local")
    if backend == "local":
        from nproxy_core.storage.local import LocalStorage

        return LocalStorage(setting(settings, "storage.local.path", default=DEFAULT_LOCAL_PATH))
    if backend == "s3":
        # boto3 is imported only when S3 is used: the embedded default starts faster.
        from nproxy_core.storage.s3 import S3Settings, S3Storage

        return S3Storage(
            S3Settings(
                bucket=setting(settings, "storage.s3.bucket", required=True),
                access_key=setting(settings, "storage.s3.access_key", required=True),
                secret_key=setting(settings, "storage.s3.secret_key", required=True),
                endpoint_url=setting(settings, "storage.s3.endpoint_url", cast=http_url),
                region=setting(settings, "storage.s3.region", default="us-east-1"),
                create_bucket=setting(
                    settings, "storage.s3.create_bucket", default=True, cast=boolean
                ),
                presign_seconds=setting(
                    settings, "storage.s3.presign_seconds", default=300, cast=positive_int
                ),
                public_endpoint_url=setting(
                    settings, "storage.s3.public_endpoint_url", cast=http_url
                ),
            )
        )
    raise ConfigurationError(f"malformed setting 'nproxy.storage': {backend!r}")


def includeme(config: Any) -> None:
    settings = config.get_settings()
    config.register_service(make_storage(settings), IStorage)
    config.register_service(
        MediaLinks(server_secrets(settings), settings["nproxy.public_url"]), IMediaLinks
    )
    config.add_directive("add_media_resolver", add_media_resolver)
    config.add_directive("add_stored_objects", add_stored_objects)
    config.scan("nproxy_core.storage.tasks", categories=TASKS)
    config.add_periodic_task("storage.sweep_orphans", sweep_orphans, 24 * 3600)
    config.add_route("media", "/media/{asset_id}")
    config.scan("nproxy_core.storage.views")
