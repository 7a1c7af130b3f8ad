"""Generation: conversations, generation submissions, the jobs that make the images in a
worker, and the JSON API the chat UI polls (DESIGN 4.4, 6).

Settings (``nproxy.generation.*``): ``lease_seconds`` (120), ``sweep_interval_seconds`` (5),
``requeue_after_seconds`` (60), ``max_attempts`` (3), ``image_threads`` (256),
``completion_signal`` (``auto``: PostgreSQL LISTEN/NOTIFY on PostgreSQL, in-process otherwise).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from pyramid.config import PHASE3_CONFIG

from nproxy_core.db import IDatabase
from nproxy_core.generation.completion import completion_signal
from nproxy_core.generation.fallback import Fallbacks
from nproxy_core.generation.interfaces import (
    ICompletionSignal,
    IFinishedGenerations,
    IGenerationSettings,
    IJobRunner,
)
from nproxy_core.generation.key_usage import GenerationKeyUsage
from nproxy_core.generation.models import GenerationImage
from nproxy_core.generation.polls import FinishedGenerations, GenerationPoll
from nproxy_core.generation.runner import JobRunner
from nproxy_core.generation.settings import GenerationSettings
from nproxy_core.generation.tasks import sweep_generations
from nproxy_core.health.liveness import IWorkerLiveness
from nproxy_core.keypool import IKeyPoolRouter
from nproxy_core.keypool.interfaces import IKeyUsage
from nproxy_core.plugin_registry import IPlugins
from nproxy_core.plugins import ConfigurationError
from nproxy_core.pricing import IUnitPrices
from nproxy_core.storage.media import stored_image_resolver
from nproxy_core.tasks import TASKS
from nproxy_core.wiring import prepare_request, register_shared_service


def _fallbacks(request: Any) -> Fallbacks:
    return Fallbacks.from_settings(
        request.registry.settings, request.find_service(IPlugins).providers
    )


def _runner(request: Any) -> JobRunner:
    return JobRunner(
        request.find_service(IDatabase).session_factory,
        request.find_service(IKeyPoolRouter),
        request.find_service(IGenerationSettings),
        request.find_service(ICompletionSignal),
        request.find_service(IWorkerLiveness),
        fallbacks=_fallbacks(request),
        prices=request.find_service(IUnitPrices),
    )


def _completion_signal(request: Any) -> ICompletionSignal:
    return completion_signal(
        request.find_service(IGenerationSettings).completion_signal,
        request.find_service(IDatabase).engine,
    )


def includeme(config: Any) -> None:
    settings = GenerationSettings.from_settings(config.get_settings())
    config.register_service(settings, IGenerationSettings)
    backend = sa.make_url(config.get_settings()["sqlalchemy.url"]).get_backend_name()
    if settings.completion_signal == "postgres" and backend != "postgresql":
        raise ConfigurationError(
            "nproxy.generation.completion_signal = postgres needs a PostgreSQL database"
        )
    # One per process: in a web process it holds the listener that wakes waiting requests.
    register_shared_service(config, _completion_signal, ICompletionSignal)
    # One runner per process: it keeps lease threads and a pool for the images of batches.
    register_shared_service(config, _runner, IJobRunner)
    # A wrong nproxy.fallback stops start-up with one line, once the plugins are registered.
    config.action(
        None, lambda: _fallbacks(prepare_request(config.registry)), order=PHASE3_CONFIG + 1
    )
    # The chat's poll answers a finished generation from here (polls.py says why never stale).
    finished = FinishedGenerations()
    config.register_service(finished, IFinishedGenerations)
    # The key pool asks, before deleting a key, whether unfinished generations used it.
    config.register_service(GenerationKeyUsage(), IKeyUsage)

    config.add_media_resolver(stored_image_resolver(GenerationImage), name="generated images")
    config.add_stored_objects(GenerationImage, prefix="generations/")
    config.add_stored_objects(GenerationImage, prefix="thumbs/generations/", column="thumb_key")
    config.scan("nproxy_core.generation.tasks", categories=TASKS)
    config.add_periodic_task("generation.sweep", sweep_generations, settings.sweep_interval_seconds)

    config.add_route("api.models", "/api/v1/models")
    config.add_route("api.conversations", "/api/v1/conversations")
    config.add_route("api.conversation", "/api/v1/conversations/{conversation_id}")
    config.add_route(
        "api.conversation.generations", "/api/v1/conversations/{conversation_id}/generations"
    )
    config.add_route("api.generation.retry", "/api/v1/generations/{generation_id}/retry")
    config.add_route("api.images", "/api/v1/images")
    # Read-only: the poll reads in autocommit and hands its connection back while it waits.
    # Its context has the session check read the generation too (polls.py).
    config.add_route(
        "api.generation",
        "/api/v1/generations/{generation_id}",
        read_only=True,
        factory=GenerationPoll.factory(finished),
    )
    config.scan("nproxy_core.generation.views")
