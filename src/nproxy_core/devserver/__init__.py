"""``nproxy dev``: the whole product in one process on the embedded defaults.

Waitress serves the web app; a Celery worker (thread pool) and Celery beat run in background
threads of the same process, on the same configuration, so generation jobs and the periodic
jobs (the generation sweeper among them) work with no broker server, no second process.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from typing import Any

import sqlalchemy as sa
import waitress
from celery.beat import EmbeddedService

from nproxy_core.audit import Surface
from nproxy_core.generation.tasks import sweep_now
from nproxy_core.keypool import ISecretBox, services
from nproxy_core.keypool.models import ProviderKey
from nproxy_core.plugin_registry import IPlugins
from nproxy_core.tasks import CELERY_APP, size_worker_threads, worker_concurrency
from nproxy_core.wiring import find_service

log = logging.getLogger(__name__)

#: Threads of the web server: a chat tab holds one long poll per generation in flight, and
#: the rest of the page must stay responsive meanwhile.
DEV_WEB_THREADS = 48
#: The demo provider's key in a fresh embedded database: the pool needs one to route to.
DEMO_KEY_SECRET = "demo-key-embedded-default"  # noqa: S105 - not a secret: the demo fakes calls


def ensure_demo_key(cli: Any) -> None:
    """Give the demo provider a key on first start, so a fresh checkout can generate at once."""
    enabled = list(find_service(cli.registry, IPlugins).providers)
    if "demo" not in enabled:
        return
    with cli.transaction() as db:
        if db.scalar(sa.select(ProviderKey.id).where(ProviderKey.provider == "demo").limit(1)):
            return
        services.add_key(
            db,
            find_service(cli.registry, ISecretBox),
            provider="demo",
            secret=DEMO_KEY_SECRET,
            enabled_providers=enabled,
            actor=services.Actor("nproxy dev", Surface.SYSTEM),
            label="demo (added by nproxy dev)",
        )
        log.info("added a key for the demo provider to the key pool")


def start_worker(registry: Any) -> Any:
    """A Celery worker (thread pool) and Celery beat in daemon threads of this process."""
    app = registry[CELERY_APP]
    # The pool's threads find the app through Celery's default app, not this thread's
    # current one: without this they would run the tasks on a bare app of their own.
    app.set_default()
    size_worker_threads()
    worker = app.WorkController(
        app=app,
        pool="threads",
        # Threads waiting for the database queue on its connection pool, SQLite included.
        concurrency=worker_concurrency(registry.settings),
        hostname=f"dev-{os.getpid()}@{socket.gethostname()}",
        without_heartbeat=True,
        without_mingle=True,
        without_gossip=True,
        ready_callback=None,
    )
    threading.Thread(target=worker.start, name="nproxy-dev-worker", daemon=True).start()

    schedule = registry.settings.get("celery.beat_schedule_file") or os.path.join(
        os.path.dirname(registry.settings.get("celery.filesystem_folder", "var/queue")),
        "celerybeat-schedule",
    )
    beat = EmbeddedService(app, thread=True, schedule_filename=schedule)
    beat.start()

    # Jobs left queued by a previous run need not wait for beat's first sweep.
    try:
        sweep_now(registry)
    except Exception:
        log.exception("the start-up sweep failed; beat's next sweep will do it")
    return worker


def serve(cli: Any, *, host: str, port: int) -> None:
    app = cli.make_wsgi_app()
    ensure_demo_key(cli)
    worker = start_worker(cli.registry)
    settings = cli.registry.settings
    bots = [
        name
        for name, key in (
            ("admin", "telegram.bot_token"),
            ("customer", "telegram.customer_bot_token"),
        )
        if (settings.get(key) or "").strip()
    ]
    if bots:
        from nproxy_core.adminbot.bot import start_in_thread

        start_in_thread(cli.registry)
        log.info(
            "the Telegram %s bot%s polling", " and ".join(bots), "s are" if len(bots) > 1 else " is"
        )
    log.info("nproxy is serving on http://%s:%s/ (with a worker and beat)", host, port)
    try:
        # The server's own ceiling; the app refuses bodies over nproxy.max_body_bytes first.
        limit = cli.registry.settings["nproxy.max_body_bytes"] + 4 * 1024 * 1024
        waitress.serve(
            app, host=host, port=port, threads=DEV_WEB_THREADS, max_request_body_size=limit
        )
    finally:
        worker.stop(in_sighandler=False)
