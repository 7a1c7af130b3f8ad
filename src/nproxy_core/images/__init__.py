"""Image tools (DESIGN 4.17): what a person does with one of their generated images: vary it,
upscale it to a larger preset, mark it a favourite, share it on a public page (revocable), and
delete it. Vary and upscale are submissions like any other (the generation service, its quota
hold and units); another user's image is always a 404.

Routes: ``GET/PATCH/DELETE /api/v1/images/{id}``, ``POST /api/v1/images/{id}/vary``,
``POST /api/v1/images/{id}/upscale``, ``POST/DELETE /api/v1/images/{id}/share``, and the public
``GET /s/{token}`` with its image ``GET /s/{token}/image``.
"""

from __future__ import annotations

from typing import Any


def includeme(config: Any) -> None:
    config.add_route("api.image", "/api/v1/images/{image_id}")
    config.add_route("api.image.vary", "/api/v1/images/{image_id}/vary")
    config.add_route("api.image.upscale", "/api/v1/images/{image_id}/upscale")
    config.add_route("api.image.share", "/api/v1/images/{image_id}/share")
    config.add_route("share", "/s/{token}")
    config.add_route("share.image", "/s/{token}/image")
    config.scan("nproxy_core.images.views")
