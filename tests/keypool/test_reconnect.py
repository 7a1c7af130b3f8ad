"""A database restart (every connection cut) costs the router nothing: it reconnects, routes,
and records every attempt."""

from __future__ import annotations

from conftest import cut_every_connection
from keypool_support import IMAGE, attempts, fresh_key


def test_router_survives_lost_connections(router, add_key, db, engine):
    keys = [add_key(f"success-recon{n}") for n in range(3)]
    used = [router.route_image("nanobanana", IMAGE).key_id for _ in range(3)]
    assert sorted(used) == sorted(keys)
    db.commit()
    db.close()

    for _ in range(2):
        assert cut_every_connection(engine.url.database) >= 1
        used += [router.route_image("nanobanana", IMAGE).key_id for _ in range(3)]

    # Round robin went on as if nothing happened, and nothing was lost or counted twice.
    assert [used.count(k) for k in keys] == [3, 3, 3]
    assert len(attempts(db)) == 9
    assert all(fresh_key(db, k).consecutive_failures == 0 for k in keys)
