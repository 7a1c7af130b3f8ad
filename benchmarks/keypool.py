"""Key pool router overhead on PostgreSQL: choice and state updates per image, provider excluded.

Creates its own database (``nproxy_bench_PID``), 100 keys of a provider that answers instantly,
routes images and prints p50/p95 of the router's own time per image; then the added latency of
one failover (first key retryable, second succeeds); then the project run: 100 keys in 10
projects, one project rate-limited (every key of it answers 429): provider calls wasted on the
limited project per image after its first 429, with ``group_rate_limits`` on and off, and the
router's time per image next to the plain run's. Drops the database at the end.

    .venv/bin/python benchmarks/keypool.py [--images 1000]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import time
from collections.abc import Sequence
from decimal import Decimal

import psycopg
import sqlalchemy as sa

from nproxy_core.audit import Surface
from nproxy_core.db import create_engine, session_factory
from nproxy_core.keypool import KeyPoolRouter, services
from nproxy_core.keypool.crypto import SecretBox
from nproxy_core.keypool.models import KeyCursor, KeyState, ProviderKey
from nproxy_core.migrations import upgrade
from nproxy_core.plugins import (
    AttemptResult,
    GeneratedImage,
    ImageRequest,
    Mode,
    ModelCapabilities,
    Provider,
    RateLimit,
    RetryableError,
)

ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
# One database per run, so that two runs side by side never drop each other's.
DB_NAME = f"nproxy_bench_{os.getpid()}"
SECRET = "benchmark-secret-" + "x" * 40
KEYS = 100
PROJECTS = 10
IMAGE = ImageRequest(mode=Mode.TEXT_TO_IMAGE, prompt="bench", resolution="square")


class InstantProvider(Provider):
    """Answers at once; keys starting with ``fail`` answer 503, keys starting with ``limited``
    429 (a per-minute quota). Keeps the time spent inside ``generate`` so it can be taken out
    of the measurement, and counts the rate-limited calls."""

    def __init__(self) -> None:
        super().__init__({})
        self.spent = 0.0
        self.limited_calls = 0
        self.image = GeneratedImage(data=b"\x89PNG bench", mime="image/png")

    def capabilities(self) -> Sequence[ModelCapabilities]:
        return [ModelCapabilities(model="instant", modes=(Mode.TEXT_TO_IMAGE,), resolutions=())]

    def generate(
        self, request: ImageRequest, *, api_key: str, proxy_url: str | None = None
    ) -> AttemptResult:
        started = time.perf_counter()
        try:
            if api_key.startswith("fail"):
                raise RetryableError("benchmark failure", http_status=503)
            if api_key.startswith("limited"):
                self.limited_calls += 1
                raise RetryableError(
                    "quota exceeded", http_status=429, retry_after=37, rate_limit=RateLimit.SHORT
                )
            return AttemptResult(image=self.image, estimated_cost=Decimal("0.039"))
        finally:
            self.spent += time.perf_counter() - started


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


CPU: list[float] = []


def measure(router: KeyPoolRouter, provider: InstantProvider, name: str, count: int) -> list[float]:
    """Milliseconds of router time per image (wall time minus time inside the provider).

    The router's CPU time in this process is kept in ``CPU``: on a busy machine wall time is
    mostly waiting for a core, and CPU time shows what the router itself costs.
    """
    samples = []
    CPU.clear()
    for _ in range(count):
        provider.spent = 0.0
        started, cpu = time.perf_counter(), time.process_time()
        router.route_image(name, IMAGE)
        samples.append((time.perf_counter() - started - provider.spent) * 1000)
        CPU.append((time.process_time() - cpu) * 1000)
    return samples


def reference_commit(engine: sa.Engine, count: int = 300) -> list[float]:
    """One UPDATE and a durable COMMIT, for scale: the floor the machine sets right now."""
    samples = []
    with engine.connect() as conn:
        for _ in range(count):
            started = time.perf_counter()
            with conn.begin():
                conn.execute(sa.text("UPDATE key_cursors SET turns = turns WHERE false"))
                conn.execute(sa.text("SELECT 1"))
            samples.append((time.perf_counter() - started) * 1000)
    return samples


def report(title: str, samples: list[float]) -> None:
    print(
        f"{title:<34} n={len(samples):<5} p50={percentile(samples, 0.50):6.2f} ms  "
        f"p95={percentile(samples, 0.95):6.2f} ms  p99={percentile(samples, 0.99):6.2f} ms  "
        f"mean={statistics.fmean(samples):6.2f} ms"
    )


def project_run(
    factory: sa.orm.sessionmaker, box: SecretBox, provider: InstantProvider, images: int
) -> list[float]:
    """The project run: ``KEYS`` keys of provider ``projects`` in ``PROJECTS`` projects, key
    ``n`` in project ``n % PROJECTS``, project 0 rate-limited. Returns the router's time per
    image with group_rate_limits on (the default), after printing the wasted calls."""
    samples: list[float] = []
    for grouped in (False, True):  # on last: its figures stay in CPU
        with factory.begin() as db:  # every key back in service, cursor at the start
            db.execute(
                sa.update(ProviderKey)
                .where(ProviderKey.provider == "projects")
                .values(state=KeyState.ACTIVE, cooldown_until=None, consecutive_failures=0)
            )
            db.execute(sa.delete(KeyCursor).where(KeyCursor.provider == "projects"))
        router = KeyPoolRouter(
            factory,
            {"projects": provider},
            box,
            group_rate_limits=grouped,
            alert=lambda *a, **k: None,
        )
        provider.limited_calls = 0
        measured = measure(router, provider, "projects", images)
        wasted = max(provider.limited_calls - 1, 0)
        print(
            f"project run, group_rate_limits={'on ' if grouped else 'off'}: "
            f"{provider.limited_calls} calls to the limited project for {images} images; "
            f"wasted after its first 429: {wasted} ({wasted / images:.4f} per image)"
        )
        if grouped:
            samples = measured
    return samples


def run(images: int) -> None:
    settings = {"sqlalchemy.url": f"postgresql+psycopg://postgres@127.0.0.1:5432/{DB_NAME}"}
    upgrade(settings)
    engine = create_engine(settings)
    factory = session_factory(engine)
    box = SecretBox(SECRET)
    actor = services.Actor("benchmark", Surface.SYSTEM)
    with factory.begin() as db:
        for n in range(KEYS):
            services.add_key(
                db,
                box,
                provider="instant",
                secret=f"ok-bench-{n:05d}",
                enabled_providers=["instant", "flaky"],
                actor=actor,
            )
            # Alternating failing / healthy keys: every image fails over exactly once.
            services.add_key(
                db,
                box,
                provider="flaky",
                secret=f"{'fail' if n % 2 == 0 else 'ok'}-flaky-{n:05d}",
                enabled_providers=["instant", "flaky"],
                actor=actor,
            )
            # Ten projects of ten keys, interleaved by id; project 0 is rate-limited.
            services.add_key(
                db,
                box,
                provider="projects",
                secret=f"{'limited' if n % PROJECTS == 0 else 'ok'}-project-{n:05d}",
                enabled_providers=["projects"],
                actor=actor,
                project=f"project-{n % PROJECTS}",
            )
    provider = InstantProvider()
    router = KeyPoolRouter(
        factory,
        {"instant": provider, "flaky": provider},
        box,
        alert=lambda *a, **k: None,
    )
    print(f"PostgreSQL, {KEYS} keys, provider time excluded")
    measure(router, provider, "instant", 100)  # warm up connections and statement caches
    plain = measure(router, provider, "instant", images)
    report("one image, no failover", plain)
    report("  (router CPU in this process)", list(CPU))
    projects = project_run(factory, box, provider, images)
    report("one image, 10 projects, 1 limited", projects)
    report("  (router CPU in this process)", list(CPU))
    print(
        f"project run vs plain: p50 {percentile(projects, 0.5) - percentile(plain, 0.5):+.2f} ms"
        f", p95 {percentile(projects, 0.95) - percentile(plain, 0.95):+.2f} ms"
    )

    failover: list[float] = []
    while len(failover) < images:
        with factory.begin() as db:  # every flaky key back in service, cursor at the start
            db.execute(
                sa.update(ProviderKey)
                .where(ProviderKey.provider == "flaky")
                .values(state=KeyState.ACTIVE, cooldown_until=None, consecutive_failures=0)
            )
            db.execute(sa.delete(KeyCursor).where(KeyCursor.provider == "flaky"))
        failover += measure(router, provider, "flaky", KEYS // 2)
    report("one image, one failover", failover)
    report("reference: empty transaction", reference_commit(engine))
    print(f"load average: {' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")
    added = percentile(failover, 0.5) - percentile(measure(router, provider, "instant", 200), 0.5)
    print(f"added latency of one failover (p50): {added:.2f} ms")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory of this process: {peak:.1f} MiB")
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000)
    args = parser.parse_args()
    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DB_NAME}"')
    try:
        run(args.images)
    finally:
        with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')


if __name__ == "__main__":
    main()
