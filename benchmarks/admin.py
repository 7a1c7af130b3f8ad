"""Admin pages against a big database: 1 million generations and 3 million key attempts.

Creates its own PostgreSQL database (``nproxy_bench_admin``), migrates it, fills it with
set-based SQL (``INSERT ... SELECT generate_series``) over the last 30 days: 100,000 users,
200,000 conversations, 1,000,000 messages and generations (with about 1.5 million images),
3,000,000 key attempts over 100 keys, 200,000 payments (1,000 flagged) with their
notifications, and 200,000 audit entries. Then it serves every admin page through the real app
(WebTest, templates rendered, logged in as an admin) and prints p50/p95 per page, first pages
and deep pages (a keyset cursor 500 pages in). Drops the database at the end unless --keep.

    .venv/bin/python benchmarks/admin.py [--runs 30] [--keep] [--reuse]

Aim (issue 9): every page under 150 ms p95 on this machine.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import time
from typing import Any

import psycopg
import webtest

from nproxy_core.admin.rollups import roll_up
from nproxy_core.config import configure
from nproxy_core.db import IDatabase
from nproxy_core.migrations import upgrade
from nproxy_core.wiring import find_service

ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
DB_NAME = "nproxy_bench_admin"
DB_URL = f"postgresql+psycopg://postgres@127.0.0.1:5432/{DB_NAME}"
ADMIN_EMAIL = "bench-admin@example.com"
PASSWORD = "correct horse battery"

USERS = 100_000
CONVERSATIONS = 200_000
GENERATIONS = 1_000_000
ATTEMPTS_PER_GENERATION = 3
KEYS = 100
PAYMENTS = 200_000
AUDIT = 200_000

#: The numbers above, as the fill statements' parameters.
PARAMS = {
    "users": USERS,
    "conversations": CONVERSATIONS,
    "generations": GENERATIONS,
    "keys": KEYS,
    "payments": PAYMENTS,
    "audit": AUDIT,
    "attempts": ATTEMPTS_PER_GENERATION,
}

# One transaction per step; the numbers above are the only knobs.
FILL = [
    (
        "users",
        """
        INSERT INTO users (email, password_hash, role, is_blocked, session_version, created_at)
        SELECT 'user' || g || '@example.com', 'x', 'user', g %% 997 = 0, 1,
               now() - (g::float / %(users)s) * interval '90 days'
        FROM generate_series(1, %(users)s) g
        """,
    ),
    (
        "billing cycles",
        """
        INSERT INTO billing_cycles (user_id, plan_id, starts_at, ends_at, period_months,
                                    request_limit, used, reserved, created_at)
        SELECT u.id, (SELECT id FROM plans WHERE code = 'monthly'),
               now() - interval '10 days', now() + interval '20 days', 1, 300,
               u.id %% 250, 0, now() - interval '10 days'
        FROM users u WHERE u.id %% 3 = 0
        """,
    ),
    (
        "conversations",
        """
        CREATE UNLOGGED TABLE bench_conv AS
        SELECT g AS n, gen_random_uuid() AS id, 2 + (g %% %(users)s) AS user_id
        FROM generate_series(0, %(conversations)s - 1) g;
        INSERT INTO conversations (id, user_id, title, created_at, updated_at)
        SELECT id, user_id, 'chat ' || n, now() - interval '30 days', now() FROM bench_conv
        """,
    ),
    (
        "generations",
        """
        CREATE UNLOGGED TABLE bench_gen AS
        SELECT g AS n, gen_random_uuid() AS msg, gen_random_uuid() AS gid, c.id AS conv,
               c.user_id,
               now() - (g::float / %(generations)s) * interval '30 days' AS created_at,
               CASE WHEN g %% 5 = 0 THEN 4 ELSE 1 END AS batch,
               CASE WHEN g < 20 THEN 'queued'
                    WHEN g %% 50 = 7 THEN 'failed'
                    WHEN g %% 40 = 0 THEN 'partial'
                    ELSE 'succeeded' END AS status,
               CASE WHEN g %% 2 = 0 THEN 'nanobanana' ELSE 'demo' END AS provider
        FROM generate_series(0, %(generations)s - 1) g
        JOIN bench_conv c ON c.n = g %% %(conversations)s;
        INSERT INTO messages (id, conversation_id, user_id, mode, prompt, resolution, batch_size,
                              input_upload_ids, provider, model, created_at)
        SELECT msg, conv, user_id, 'text_to_image', 'a lighthouse at dusk, number ' || n,
               'square', batch, '[]', provider, 'gemini-2.5-flash-image', created_at
        FROM bench_gen;
        INSERT INTO generations (id, message_id, conversation_id, user_id, provider, status,
                                 attempts, created_at, enqueued_at, started_at, finished_at,
                                 error_code, error_message)
        SELECT gid, msg, conv, user_id, provider, status, 1, created_at, created_at, created_at,
               CASE WHEN status = 'queued' THEN NULL ELSE created_at + interval '9 seconds' END,
               CASE WHEN status IN ('failed', 'partial') THEN
                    (ARRAY['content_policy', 'invalid_input', 'provider_unavailable'])[1 + n %% 3]
               END,
               CASE WHEN status IN ('failed', 'partial') THEN 'failed' END
        FROM bench_gen
        """,
    ),
    (
        "images",
        """
        INSERT INTO generation_images (id, generation_id, user_id, n, storage_key, mime, width,
                                       height, size_bytes, created_at)
        SELECT gen_random_uuid(), gid, user_id, i,
               'generations/' || user_id || '/' || gid || '/' || i || '.png', 'image/png',
               1024, 1024, 1500000, created_at + interval '9 seconds'
        FROM bench_gen,
             generate_series(0, CASE WHEN status = 'succeeded' THEN batch - 1
                                     WHEN status = 'partial' THEN batch - 2 ELSE -1 END) i
        """,
    ),
    (
        "keys and proxies",
        """
        INSERT INTO proxies (url, label, state, consecutive_failures, total_failures, created_at,
                             updated_at)
        SELECT 'http://10.0.0.' || g || ':3128', 'proxy-' || g, 'active', 0, g, now(), now()
        FROM generate_series(1, 10) g;
        INSERT INTO provider_keys (provider, label, secret_encrypted, secret_fingerprint,
                                   secret_mask, state, consecutive_failures, project,
                                   billing_group, proxy_id, estimated_spend, version,
                                   created_at, updated_at)
        SELECT CASE WHEN g %% 2 = 0 THEN 'nanobanana' ELSE 'demo' END, 'key-' || g, 'x',
               md5(g::text), 'AIza…' || lpad(g::text, 4, '0'),
               (ARRAY['active', 'active', 'active', 'cooldown', 'manual_review'])[1 + g %% 5],
               g %% 3, 'project-' || (g %% 10), 'group-' || (g %% 4),
               CASE WHEN g %% 3 = 0 THEN 1 + g %% 10 END, g * 1.5, 0, now(), now()
        FROM generate_series(1, %(keys)s) g
        """,
    ),
    (
        "attempts",
        """
        INSERT INTO key_attempts (key_id, provider, reference, image_index, path, proxy_id,
                                  outcome, http_status, latency_ms, error, estimated_cost,
                                  picked_at, claim_version, created_at)
        SELECT 1 + (b.n * %(attempts)s + k) %% %(keys)s, b.provider, b.gid::text,
               k %% b.batch, 'direct', NULL,
               CASE WHEN k < %(attempts)s - 1 AND (b.n + k) %% 7 = 0
                    THEN 'retryable' ELSE 'success' END,
               CASE WHEN k < %(attempts)s - 1 AND (b.n + k) %% 7 = 0
                    THEN 429 END,
               800 + (b.n::bigint * 7919 + k * 104729) %% 14000, NULL, 0.039,
               b.created_at, b.n, b.created_at + k * interval '3 seconds'
        FROM bench_gen b, generate_series(0, %(attempts)s - 1) k
        """,
    ),
    (
        "payments",
        """
        INSERT INTO payments (order_id, user_id, processor, amount, currency, status,
                              invoice_id, processor_payment_id, needs_review, review_reason,
                              created_at, updated_at)
        SELECT 'order-' || g, 2 + g %% %(users)s, 'nowpayments', 9.99, 'USD',
               CASE WHEN g %% 200 = 0 THEN 'partially_paid'
                    WHEN g %% 10 = 0 THEN 'expired' ELSE 'finished' END,
               'inv-' || g, 'pay-' || g, g %% 200 = 0,
               CASE WHEN g %% 200 = 0 THEN 'partially paid' END,
               now() - (g::float / %(payments)s) * interval '90 days',
               now() - (g::float / %(payments)s) * interval '90 days'
        FROM generate_series(1, %(payments)s) g;
        INSERT INTO payment_notifications (payment_id, processor, source, signature_valid,
                                           order_id, status, processor_payment_id, raw, result,
                                           needs_review, received_at)
        SELECT p.id, 'nowpayments', 'webhook', true, p.order_id, s.status,
               p.processor_payment_id, '{"payment_status": "x"}', 'updated',
               p.needs_review AND s.status = 'partially_paid', p.created_at
        FROM payments p,
             unnest(ARRAY['waiting', 'confirming', p.status::text]) AS s(status)
        """,
    ),
    (
        "audit",
        """
        INSERT INTO audit_entries (created_at, actor, actor_user_id, surface, action,
                                   target_type, target_id, before, after)
        SELECT now() - (g::float / %(audit)s) * interval '90 days',
               (ARRAY['console', 'ann@example.com', 'bob@example.com'])[1 + g %% 3], NULL,
               (ARRAY['cli', 'web', 'web'])[1 + g %% 3],
               (ARRAY['key.restore', 'user.block', 'key.test', 'payment.resolve'])[1 + g %% 4],
               (ARRAY['provider_key', 'user', 'provider_key', 'payment'])[1 + g %% 4],
               (1 + g %% 100)::text, '{"state": "manual_review"}', '{"state": "active"}'
        FROM generate_series(1, %(audit)s) g
        """,
    ),
    ("cleanup", "DROP TABLE bench_gen; DROP TABLE bench_conv"),
]


def settings() -> dict[str, Any]:
    return {
        "sqlalchemy.url": DB_URL,
        "nproxy.secret": "benchmark-secret-" + "x" * 40,
        "nproxy.public_url": "http://localhost",
        "nproxy.storage": "local",
        "storage.local.path": "/tmp/nproxy-bench-admin-media",
        "nproxy.providers": "demo",
        "celery.broker_url": "memory://",
        "nproxy.ratelimit.login": "1000/minute",
    }


def fill() -> None:
    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DB_NAME}"')
    upgrade(settings())
    from nproxy_core.accounts.models import Role
    from nproxy_core.accounts.services import create_user
    from nproxy_core.db import create_engine, session_factory

    engine = create_engine(settings())
    with session_factory(engine)() as session:
        create_user(session, ADMIN_EMAIL, PASSWORD, role=Role.ADMIN)
        session.commit()
    engine.dispose()
    dsn = f"postgresql://postgres@127.0.0.1:5432/{DB_NAME}"
    # Client-side binding: CREATE TABLE ... AS takes no server-side parameters.
    with psycopg.connect(dsn, autocommit=True, cursor_factory=psycopg.ClientCursor) as conn:
        for name, sql in FILL:
            started = time.monotonic()
            with conn.transaction():
                for statement in sql.split(";\n"):
                    if statement.strip():
                        conn.execute(statement, PARAMS)
            print(f"  filled {name:<18} {time.monotonic() - started:6.1f} s", flush=True)
        started = time.monotonic()
        conn.execute("VACUUM ANALYZE")
        print(f"  vacuum analyze     {time.monotonic() - started:6.1f} s", flush=True)
        counts = {
            table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: S608
            for table in (
                "generations",
                "generation_images",
                "key_attempts",
                "payments",
                "payment_notifications",
                "audit_entries",
                "users",
            )
        }
    print("  rows: " + ", ".join(f"{t} {n:,}" for t, n in counts.items()))


def ids(app: webtest.TestApp) -> dict[str, Any]:
    """Targets for the detail pages: a busy user, a flagged payment, a recent generation."""
    engine = find_service(app.app.registry, IDatabase).engine
    with engine.connect() as conn:
        one = lambda sql: conn.exec_driver_sql(sql).scalar()  # noqa: E731
        return {
            "user": one("SELECT user_id FROM generations ORDER BY created_at DESC LIMIT 1"),
            "user_email": one(
                "SELECT email FROM users WHERE id = "
                "(SELECT user_id FROM generations ORDER BY created_at DESC LIMIT 1)"
            ),
            "payment": one("SELECT id FROM payments WHERE needs_review LIMIT 1"),
            "generation": one(
                "SELECT id FROM generations WHERE status = 'partial' "
                "ORDER BY created_at DESC LIMIT 1"
            ),
            "key": one("SELECT id FROM provider_keys ORDER BY id LIMIT 1"),
        }


def deep(admin: webtest.TestApp, url: str, pages: int) -> str:
    """The URL of the page ``pages`` pages into a list, by following its 'Older' links."""
    for _ in range(pages):
        res = admin.get(url)
        link = res.html.select_one("a[rel=next]")
        if link is None:
            break
        url = link["href"]
    return url


def measure(admin: webtest.TestApp, url: str, runs: int) -> tuple[float, float]:
    admin.get(url)  # warm: templates compiled, plans cached
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        res = admin.get(url)
        times.append((time.perf_counter() - started) * 1000)
        assert res.status_int == 200, (url, res.status)
    times.sort()
    p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
    return statistics.median(times), p95


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30, help="requests per page")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--reuse", action="store_true", help="use a database filled before")
    args = parser.parse_args()
    if not args.reuse:
        print("filling PostgreSQL…", flush=True)
        started = time.monotonic()
        fill()
        print(f"filled in {time.monotonic() - started:.0f} s", flush=True)
    config = configure(settings())
    app = webtest.TestApp(config.make_wsgi_app(), extra_environ={"HTTP_HOST": "localhost"})
    started = time.monotonic()
    hours = roll_up(find_service(config.registry, IDatabase).session_factory)
    print(f"summed {hours} hours in {time.monotonic() - started:.1f} s (the beat job)")
    token = app.get("/api/v1/session").json["csrf_token"]
    app.post("/login", {"email": ADMIN_EMAIL, "password": PASSWORD, "csrf_token": token})
    target = ids(app)
    pages = {
        "overview": "/admin",
        "health": "/admin/health",
        "users": "/admin/users",
        "users search": "/admin/users?q=user12345",
        "user": f"/admin/users/{target['user']}",
        "payments": "/admin/payments",
        "payments review queue": "/admin/payments?state=review",
        "payment": f"/admin/payments/{target['payment']}",
        "generations": "/admin/generations",
        "generations failed": "/admin/generations?status=failed",
        "generations of a user": f"/admin/generations?user={target['user_email']}",
        "generations of a provider": "/admin/generations?provider=nanobanana",
        "generations, a time range": "/admin/generations?since=2000-01-01&until=2100-01-01",
        "generation": f"/admin/generations/{target['generation']}",
        "keys": "/admin/keys",
        "key": f"/admin/keys/{target['key']}",
        "proxies": "/admin/proxies",
        "audit": "/admin/audit",
        "audit by action": "/admin/audit?action=key.restore",
        "audit by actor": "/admin/audit?actor=ann@example.com",
        "audit by target": "/admin/audit?target=user:42",
    }
    for name, start, depth in [
        ("generations, page 500", "/admin/generations", 500),
        ("generations failed, page 200", "/admin/generations?status=failed", 200),
        ("key attempts, page 500", f"/admin/keys/{target['key']}", 500),
        ("audit, page 500", "/admin/audit", 500),
        ("payments, page 500", "/admin/payments", 500),
        ("users, page 500", "/admin/users", 500),
    ]:
        pages[name] = deep(app, start, depth)
    print(f"\nload average before measuring: {os.getloadavg()[0]:.1f} ({os.cpu_count()} cores)")
    print(f"{'page':<32} {'p50 ms':>8} {'p95 ms':>8}")
    worst = 0.0
    for name, url in pages.items():
        p50, p95 = measure(app, url, args.runs)
        worst = max(worst, p95)
        print(f"{name:<32} {p50:8.1f} {p95:8.1f}", flush=True)
    print(f"\nslowest p95: {worst:.1f} ms (aim: under 150 ms)")
    print(f"load average after measuring: {os.getloadavg()[0]:.1f}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory of this process: {peak:.0f} MB")
    find_service(app.app.registry, IDatabase).engine.dispose()
    if not args.keep:
        with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')


if __name__ == "__main__":
    os.environ.setdefault("NPROXY_CONFIG", "")
    main()
