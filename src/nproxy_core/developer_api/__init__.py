"""The developer API (DESIGN 4.10): subscribers generate over plain HTTP with Bearer keys, on the
same quota as the chat; keys are made on the account page or through ``/api/v1/api-keys``.

Settings (``nproxy.api.*``): ``rate_limit`` (``60/minute`` per key), ``max_concurrent_jobs``
(8 unfinished generations per key), ``max_wait_seconds`` (60: how long ``POST /v1/generate``
holds the request), ``max_keys`` (10 live keys per user), ``media_url_seconds`` (3600: how long
a signed image URL works).
"""

from __future__ import annotations

from typing import Any

from nproxy_core.config import server_secrets
from nproxy_core.developer_api.interfaces import IApiKeyHasher, IApiRateLimiter, IApiSettings
from nproxy_core.developer_api.keys import KeyHasher
from nproxy_core.developer_api.settings import ApiRateLimiter, ApiSettings


def includeme(config: Any) -> None:
    settings = config.get_settings()
    api = ApiSettings.from_settings(settings)
    config.register_service(api, IApiSettings)
    config.register_service(KeyHasher(server_secrets(settings)), IApiKeyHasher)
    config.register_service(
        ApiRateLimiter(settings["nproxy.ratelimit.storage"], api.rate_limit), IApiRateLimiter
    )

    config.add_route("v1.generate", "/v1/generate")
    # Read-only: the API's poll reads in autocommit, no BEGIN and ROLLBACK around it.
    config.add_route("v1.generation", "/v1/generations/{generation_id}", read_only=True)
    config.add_route("v1.usage", "/v1/usage")
    config.add_route("v1.models", "/v1/models")
    config.add_route("v1.images.generations", "/v1/images/generations")
    config.add_route("v1.images.edits", "/v1/images/edits")
    config.add_route("api.api_keys", "/api/v1/api-keys")
    config.add_route("api.api_key", "/api/v1/api-keys/{key_id}")
    config.add_route("account.api_keys", "/account/api-keys")
    config.add_route("account.api_key_revoke", "/account/api-keys/{key_id}/revoke")
    config.scan("nproxy_core.developer_api.views")
    config.scan("nproxy_core.developer_api.openai_compat")
