"""The library page cold, in a real browser: how many bytes of images it loads with 60 images
made from real-size (1024 px) PNGs, with the thumbnails tiles use now and with the originals
tiles loaded before (DESIGN 4.17, issue 26: at most 150 KB with thumbnails).

Serves the app itself (SQLite and the local storage folder in a temporary directory, waitress on
127.0.0.1), stores 60 images the way the worker does (the original PNG, then its WebP thumbnail
from the same function), opens ``/library`` in headless Chromium with an empty cache and sums
the bodies of every image response in its network log. "Before" is the same page with each
thumbnail request answered by its original, as the tiles did before thumbnails (the page loads
tiles as they come near the screen either way; before this change it also let the browser's
own lazy loading fetch the whole first page of 30).

Two kinds of 1024 px PNG: ``demo`` (what the demo provider draws: gradients and rings, as the
issue measured) and ``photo`` (photo-like: detail at every scale, as a model's output has; far
less compressible). The exit status judges the 150 KB budget on ``demo``, the issue's measure.

``--search`` measures the library's search by prompt words (``q``) instead, on PostgreSQL: a
database of its own with 300,000 images of 300 users (one with 30,000), the library's own query
(:func:`nproxy_core.generation.library.library_page`) for a rare and a common word, with the
trigram index on ``messages.prompt`` and without it, median of 20 runs each, and the plan.

    .venv/bin/python benchmarks/library.py [--port 6651] [--kind demo|photo|both]
    .venv/bin/python benchmarks/library.py --search [--admin-dsn postgresql://postgres@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import random
import sys
import tempfile
import threading
import uuid
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFilter

from nproxy_core.accounts.models import Role
from nproxy_core.accounts.services import create_user
from nproxy_core.config import configure
from nproxy_core.db import IDatabase
from nproxy_core.generation.models import Conversation, Generation, GenerationImage, Message
from nproxy_core.migrations import upgrade
from nproxy_core.storage import IStorage, generation_key, store_thumbnail
from nproxy_core.wiring import find_service

IMAGES = 60
SIDE = 1024
BUDGET = 150 * 1024
EMAIL = "library-bench@example.com"
PASSWORD = "correct horse battery"
VIEWPORTS = {"desktop": (1280, 860), "phone": (390, 844)}


def demo_png(seed: int) -> bytes:
    """A 1024 px picture as the demo provider draws one: a gradient and a dozen rings."""
    rng = random.Random(seed)
    image = Image.new("RGB", (SIDE, SIDE))
    draw = ImageDraw.Draw(image)
    top = [rng.randrange(256) for _ in range(3)]
    bottom = [rng.randrange(256) for _ in range(3)]
    for y in range(SIDE):
        t = y / (SIDE - 1)
        draw.line(
            [(0, y), (SIDE, y)],
            fill=tuple(int(a + (b - a) * t) for a, b in zip(top, bottom, strict=True)),
        )
    for _ in range(12):
        x, y, r = rng.randrange(SIDE), rng.randrange(SIDE), rng.randrange(20, SIDE // 3)
        color = tuple(rng.randrange(256) for _ in range(3))
        draw.ellipse([x - r, y - r, x + r, y + r], outline=color, width=4)
    return _png(image)


def photo_png(seed: int) -> bytes:
    """A 1024 px photo-like picture: hundreds of overlapping shapes from large to small, a
    little blur and sensor grain (about 1.5 MB as PNG, as a model's output is)."""
    rng = random.Random(seed)
    image = Image.new("RGB", (SIDE, SIDE), tuple(rng.randrange(256) for _ in range(3)))
    draw = ImageDraw.Draw(image)
    for i in range(300):
        x, y, r = rng.randrange(SIDE), rng.randrange(SIDE), max(4, int(SIDE / (2 + i / 8)))
        draw.ellipse([x - r, y - r, x + r, y + r], fill=tuple(rng.randrange(256) for _ in range(3)))
    image = image.filter(ImageFilter.GaussianBlur(2))
    grain = Image.effect_noise((SIDE, SIDE), 40).convert("RGB")
    return _png(Image.blend(image, grain, 0.08))


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def build_site(folder: Path, port: int, kind: str) -> tuple[Any, int]:
    settings = {
        "sqlalchemy.url": f"sqlite:///{folder / 'bench.sqlite'}",
        "nproxy.secret": "bench-secret-" + "x" * 40,
        "nproxy.public_url": f"http://127.0.0.1:{port}",
        "nproxy.env": "development",
        "nproxy.storage": "local",
        "storage.local.path": str(folder / "media"),
        "nproxy.providers": "demo",
        "nproxy.payments": "",
        "nproxy.mailer": "dummy",
        "celery.broker_url": "memory://",
        "nproxy.ratelimit.storage": "memory://",
        "nproxy.ratelimit.login": "1000/minute",
    }
    upgrade(settings)
    config = configure(settings)
    app = config.make_wsgi_app()
    registry = config.registry
    storage = find_service(registry, IStorage)
    session = find_service(registry, IDatabase).session_factory()
    user = create_user(session, EMAIL, PASSWORD, role=Role.USER)
    session.flush()
    conversation = Conversation(user_id=user.id, title="bench")
    session.add(conversation)
    session.flush()
    originals = 0
    thumbs = 0
    made = demo_png if kind == "demo" else photo_png
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    for n in range(IMAGES):
        moment = start + dt.timedelta(minutes=n)
        message = Message(
            conversation_id=conversation.id,
            user_id=user.id,
            mode="text_to_image",
            prompt=f"picture number {n}",
            resolution="square",
            batch_size=1,
            input_upload_ids=[],
            provider="demo",
            model="demo-pro",
            created_at=moment,
        )
        session.add(message)
        session.flush()
        generation = Generation(
            message_id=message.id,
            conversation_id=conversation.id,
            user_id=user.id,
            provider="demo",
            status="succeeded",
            created_at=moment,
            finished_at=moment,
        )
        session.add(generation)
        session.flush()
        data = made(n)
        key = generation_key(user.id, generation.id, 0, "png")
        storage.put(key, data, "image/png")
        thumb_key = store_thumbnail(storage, key, data)
        originals += len(data)
        thumbs += len(storage.get(thumb_key))
        session.add(
            GenerationImage(
                id=uuid.uuid4(),
                generation_id=generation.id,
                user_id=user.id,
                n=0,
                storage_key=key,
                mime="image/png",
                width=SIDE,
                height=SIDE,
                size_bytes=len(data),
                created_at=moment,
                provider="demo",
                model="demo-pro",
                thumb_key=thumb_key,
            )
        )
    session.commit()
    session.close()
    print(
        f"{kind}: {IMAGES} images stored: originals {originals / IMAGES / 1024:.0f} KB each, "
        f"thumbnails {thumbs / IMAGES / 1024:.1f} KB each"
    )
    return app, port


def serve(app: Any, port: int) -> Any:
    from waitress.server import create_server

    server = create_server(app, host="127.0.0.1", port=port, threads=8)
    threading.Thread(target=server.run, daemon=True).start()
    return server


def measure(port: int, viewport: tuple[int, int], *, originals: bool) -> tuple[int, int]:
    """(image bytes, image responses) the library page loads cold, once it settles."""
    from playwright.sync_api import sync_playwright

    base = f"http://127.0.0.1:{port}"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"]
        )
        context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]})
        page = context.new_page()
        page.goto(f"{base}/login")
        page.fill("#email", EMAIL)
        page.fill("#password", PASSWORD)
        page.click("form button[type=submit]")
        page.wait_for_load_state("networkidle")
        if originals:
            # Before thumbnails: every tile loaded the original.
            page.route(
                "**/media/*?size=thumb",
                lambda route: route.continue_(url=route.request.url.split("?")[0]),
            )
        loaded: list[int] = []

        def count(response: Any) -> None:
            if response.request.resource_type == "image" and "/media/" in response.url:
                loaded.append(len(response.body()))

        page.on("response", count)
        page.goto(f"{base}/library")
        page.wait_for_selector(".library-tile img")
        page.wait_for_load_state("networkidle")
        page.wait_for_timeout(500)
        page.wait_for_load_state("networkidle")
        browser.close()
    return sum(loaded), len(loaded)


WORDS = [
    "fox",
    "wolf",
    "cat",
    "dog",
    "dragon",
    "rabbit",
    "otter",
    "lighthouse",
    "castle",
    "forest",
    "river",
    "mountain",
    "city",
    "street",
    "portrait",
    "sticker",
    "poster",
    "avatar",
    "product",
    "sunset",
    "night",
    "snow",
    "desert",
    "ocean",
    "garden",
    "robot",
    "knight",
    "wizard",
    "astronaut",
    "bicycle",
    "teapot",
    "guitar",
    "violin",
]


def measure_search(admin_dsn: str) -> None:
    """The library search on PostgreSQL with and without the trigram index."""
    import statistics
    import time

    import sqlalchemy as sa
    from sqlalchemy.orm import Session

    from nproxy_core.generation.library import library_page

    name = f"nproxy_library_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(admin_dsn, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.make_url(admin_dsn).set(drivername="postgresql+psycopg", database=name)
    settings = {
        "sqlalchemy.url": url.render_as_string(hide_password=False),
        "nproxy.secret": "bench-secret-" + "x" * 40,
        "nproxy.public_url": "http://127.0.0.1",
    }
    engine = sa.create_engine(settings["sqlalchemy.url"])
    try:
        upgrade(settings)
        started = time.monotonic()
        with engine.begin() as connection:
            connection.execute(
                sa.text(
                    "INSERT INTO users (email, password_hash, role, is_blocked, session_version, "
                    "created_at) SELECT 'u' || n || '@example.com', 'x', 'user', false, 1, now() "
                    "FROM generate_series(1, 300) n"
                )
            )
            connection.execute(
                sa.text(
                    "INSERT INTO conversations (id, user_id, title, created_at, updated_at) "
                    "SELECT gen_random_uuid(), id, 'bench', now(), now() FROM users"
                )
            )
            # 30,000 images for the first user, 900 for each of the others.
            connection.execute(
                sa.text(
                    "CREATE TEMP TABLE made AS SELECT gen_random_uuid() AS message_id, "
                    "gen_random_uuid() AS generation_id, gen_random_uuid() AS image_id, "
                    "c.id AS conversation_id, c.user_id, "
                    "'a ' || (CAST(:words AS text[]))[1 + (random() * :last)::int] || ' and a ' "
                    "|| (CAST(:words AS text[]))[1 + (random() * :last)::int] || ' in the style "
                    "of picture ' || n AS prompt, now() - n * interval '1 minute' AS at, n "
                    "FROM conversations c JOIN LATERAL generate_series(1, "
                    "CASE WHEN c.user_id = (SELECT min(id) FROM users) THEN 30000 ELSE 900 END"
                    ") n ON true"
                ),
                {"words": WORDS, "last": len(WORDS) - 1},
            )
            connection.execute(
                sa.text(
                    "INSERT INTO messages (id, conversation_id, user_id, mode, prompt, resolution, "
                    "batch_size, input_upload_ids, provider, model, created_at) SELECT "
                    "message_id, conversation_id, user_id, 'text_to_image', prompt, 'square', 1, "
                    "'[]', 'demo', 'demo-image-1', at FROM made"
                )
            )
            connection.execute(
                sa.text(
                    "INSERT INTO generations (id, message_id, conversation_id, user_id, provider, "
                    "status, attempts, created_at, enqueued_at) SELECT generation_id, message_id, "
                    "conversation_id, user_id, 'demo', 'succeeded', 1, at, at FROM made"
                )
            )
            connection.execute(
                sa.text(
                    "INSERT INTO generation_images (id, generation_id, user_id, n, storage_key, "
                    "mime, width, height, size_bytes, created_at, favorite, share_show_prompt) "
                    "SELECT image_id, generation_id, user_id, 0, 'generations/' || user_id || '/' "
                    "|| generation_id || '/0.png', 'image/png', 512, 512, 1000, at, n % 50 = 0, "
                    "false FROM made"
                )
            )
            # A rare word: in 30 prompts of the big user only.
            connection.execute(
                sa.text(
                    "UPDATE messages SET prompt = prompt || ' with a zeppelin' WHERE id IN "
                    "(SELECT message_id FROM made WHERE user_id = (SELECT min(id) FROM users) "
                    "AND n % 1000 = 7)"
                )
            )
        with engine.connect() as connection:
            connection.execute(sa.text("ANALYZE"))
            connection.commit()
            big = connection.execute(sa.text("SELECT min(id) FROM users")).scalar_one()
        print(f"search: 300,000 images filled in {time.monotonic() - started:.0f} s")

        def timed(label: str, q: str, favorite: bool | None = None) -> None:
            times = []
            with Session(engine) as session:
                for _ in range(20):
                    start = time.perf_counter()
                    page, _cursor = library_page(session, big, None, 30, q=q, favorite=favorite)
                    times.append((time.perf_counter() - start) * 1000)
            print(
                f"  {label}: q={q!r}: {len(page)} images, median "
                f"{statistics.median(times):.1f} ms, max {max(times):.1f} ms"
            )

        for state in ("with the trigram index", "without it (ILIKE on every prompt)"):
            print(f"search {state}:")
            timed("rare word", "zeppelin")
            timed("common word", "lighthouse")
            timed("no match", "xylophone")
            with engine.begin() as connection:
                connection.execute(sa.text("DROP INDEX IF EXISTS ix_messages_prompt_trgm"))
                connection.execute(sa.text("ANALYZE messages"))
    finally:
        engine.dispose()
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=6651)
    parser.add_argument("--kind", choices=("demo", "photo", "both"), default="both")
    parser.add_argument("--search", action="store_true")
    parser.add_argument("--admin-dsn", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    if args.search:
        measure_search(args.admin_dsn)
        return 0
    kinds = ("demo", "photo") if args.kind == "both" else (args.kind,)
    over = False
    for offset, kind in enumerate(kinds):
        with tempfile.TemporaryDirectory(prefix="nproxy-library-bench-") as folder:
            app, port = build_site(Path(folder), args.port + offset, kind)
            server = serve(app, port)
            try:
                for name, viewport in VIEWPORTS.items():
                    before, n_before = measure(port, viewport, originals=True)
                    after, n_after = measure(port, viewport, originals=False)
                    verdict = "ok" if after <= BUDGET else "OVER the 150 KB budget"
                    over = over or (kind == "demo" and after > BUDGET)
                    print(
                        f"{kind} {name} {viewport[0]}px: before (originals) "
                        f"{before / 1024:,.0f} KB in {n_before} images; after (thumbnails) "
                        f"{after / 1024:,.0f} KB in {n_after} images ({verdict})"
                    )
            finally:
                server.close()
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
