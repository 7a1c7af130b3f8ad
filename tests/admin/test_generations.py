"""Generations in the admin: the list with its filters (status, user, provider, time) paged by
keyset, and one job with each image's own key attempts (key, path, outcome, status, latency)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import webtest

from admin_support import make_generation
from apiclient import ApiClient
from nproxy_core.audit import Actor, Surface
from nproxy_core.db import utcnow
from nproxy_core.generation.tasks import run_generation
from nproxy_core.keypool import services as pool
from nproxy_core.keypool.interfaces import ISecretBox
from nproxy_core.tasks import run_now
from nproxy_core.wiring import find_service


def listed(admin: Any, query: str = "") -> list[str]:
    res = admin.get(f"/admin/generations{query}")
    assert res.status_int == 200, res.text[:500]
    return [tr["data-generation"] for tr in res.html.select("#generation-list tr[data-generation]")]


@pytest.fixture
def jobs(db: Any, user_factory: Any) -> dict[str, Any]:
    ann, bob = user_factory("ann@example.com"), user_factory("bob@example.com")
    now = utcnow()
    made = {
        "ann_ok": make_generation(db, ann, created_at=now - dt.timedelta(hours=1)),
        "ann_failed": make_generation(
            db,
            ann,
            status="failed",
            error_code="content_policy",
            created_at=now - dt.timedelta(days=2),
        ),
        "bob_queued": make_generation(
            db,
            bob,
            status="queued",
            provider="nanobanana",
            created_at=now - dt.timedelta(minutes=1),
        ),
    }
    return {name: str(g.id) for name, g in made.items()}


def test_the_list_is_newest_first_and_each_filter_narrows_it(admin, jobs):
    assert listed(admin) == [jobs["bob_queued"], jobs["ann_ok"], jobs["ann_failed"]]
    assert listed(admin, "?status=failed") == [jobs["ann_failed"]]
    assert listed(admin, "?user=ann@example.com") == [jobs["ann_ok"], jobs["ann_failed"]]
    assert listed(admin, "?provider=nanobanana") == [jobs["bob_queued"]]
    since = (utcnow() - dt.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    assert listed(admin, f"?since={since}") == [jobs["bob_queued"], jobs["ann_ok"]]
    until = (utcnow() - dt.timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M")
    assert listed(admin, f"?since={since}&until={until}") == [jobs["ann_ok"]]
    assert listed(admin, "?status=succeeded&user=bob@example.com") == []


def test_the_list_pages_by_keyset_through_rows_made_in_the_same_instant(admin, db, user_factory):
    user = user_factory()
    moment = utcnow()
    made = [str(make_generation(db, user, created_at=moment).id) for _ in range(60)]
    made += [
        str(make_generation(db, user, created_at=moment - dt.timedelta(seconds=1)).id)
        for _ in range(45)
    ]
    seen: list[str] = []
    res = admin.get("/admin/generations")
    while True:
        seen += [tr["data-generation"] for tr in res.html.select("tr[data-generation]")]
        nxt = res.html.select_one("a[rel=next]")
        if nxt is None:
            break
        res = admin.get(nxt["href"])
    assert len(seen) == len(set(seen)) == 105 and set(seen) == set(made)
    assert seen[:60] == sorted(made[:60], reverse=True)


def test_one_generation_shows_each_images_attempts(
    pool_app, pool_admin, db, gemini, make_cycle, user_factory
):
    """A batch of two through the real router: the first key is rate limited, the second
    answers; each image lists its own attempts in order."""
    registry = pool_app.app.registry
    actor = Actor("tests", Surface.CLI)
    secrets = find_service(registry, ISecretBox)
    for secret, label in (("rate_limited-key-1", "limited"), ("success-key-2", "healthy")):
        pool.add_key(
            db,
            secrets,
            provider="nanobanana",
            secret=secret,
            enabled_providers=["demo", "nanobanana"],
            actor=actor,
            label=label,
        )
    db.commit()
    customer = user_factory("painter@example.com")
    make_cycle(customer)
    api = ApiClient(webtest.TestApp(pool_app.app, extra_environ={"HTTP_HOST": "localhost"}))
    assert api.login(customer.email).status_int == 200
    conversation = api.post("/api/v1/conversations", {"title": "x"}).json["id"]
    submitted = api.post(
        f"/api/v1/conversations/{conversation}/generations",
        {
            "mode": "text_to_image",
            "prompt": "a lighthouse",
            "resolution": "square",
            "batch_size": 2,
            "provider": "nanobanana",
        },
    )
    assert submitted.status_int == 202, submitted.text
    gid = submitted.json["id"]
    assert run_now(registry, run_generation, gid) == "succeeded"

    page = pool_admin.get(f"/admin/generations/{gid}")
    assert page.status_int == 200
    tables = page.html.select("table.attempts")
    assert [t["data-image"] for t in tables] == ["0", "1"]
    outcomes = [[tr["data-outcome"] for tr in t.select("tbody tr")] for t in tables]
    # Round robin: one image meets the rate-limited key first, the other goes straight to
    # the healthy one; a cooled key is not tried again by the second image.
    assert sorted(outcomes) == [["retryable", "success"], ["success"]]
    retried = next(t for t in tables if len(t.select("tbody tr")) == 2)
    first = retried.select("tbody tr")[0]
    cells = {td["data-label"]: td.get_text(" ").strip() for td in first.select("td")}
    assert cells["Key"].startswith("key 'limited' (#") and cells["Path"] == "direct"
    assert cells["HTTP"] == "429" and cells["Latency"].endswith("ms")
    assert "RESOURCE_EXHAUSTED" in cells["Error"]
    assert len(page.html.select("#images img")) == 2
    assert "a lighthouse" in page.html.select_one("#prompt").get_text()
