"""Generation: conversations, generation submissions, the jobs that make the images in a
worker, and the JSON API the chat UI polls (DESIGN 4.4, 6).

Settings (``nproxy.generation.*``): ``lease_seconds`` (120), ``sweep_interval_seconds`` (30),
``requeue_after_seconds`` (60), ``max_attempts`` (3), ``image_threads`` (256).
"""

from __future__ import annotations

from typing import Any

from nproxy_core.generation.settings import REGISTRY_KEY, GenerationSettings

RUNNER_KEY = "nproxy.generation.runner"


def includeme(config: Any) -> None:
    from nproxy_core.config import ConfigurationError
    from nproxy_core.generation.models import GenerationImage
    from nproxy_core.generation.runner import JobRunner
    from nproxy_core.generation.tasks import sweep_generations
    from nproxy_core.keypool import get_router
    from nproxy_core.plugins import PluginSettingError
    from nproxy_core.storage.media import stored_image_resolver

    try:
        settings = GenerationSettings.from_settings(config.get_settings())
    except PluginSettingError as exc:
        raise ConfigurationError(str(exc)) from None
    registry = config.registry
    registry[REGISTRY_KEY] = settings
    # Needs the key pool's router, included before this feature.
    registry[RUNNER_KEY] = JobRunner(registry["db.session_factory"], get_router(registry), settings)

    config.add_media_resolver(stored_image_resolver(GenerationImage), name="generated images")
    config.add_periodic_task("generation.sweep", sweep_generations, settings.sweep_interval_seconds)

    config.add_route("api.models", "/api/v1/models")
    config.add_route("api.conversations", "/api/v1/conversations")
    config.add_route("api.conversation", "/api/v1/conversations/{conversation_id}")
    config.add_route(
        "api.conversation.generations", "/api/v1/conversations/{conversation_id}/generations"
    )
    config.add_route("api.generation", "/api/v1/generations/{generation_id}")
    config.scan("nproxy_core.generation.views")
