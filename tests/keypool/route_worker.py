"""A worker process for the concurrency tests: routes images through the real app wiring.

``python route_worker.py SETTINGS_JSON COUNT`` prints ``ready``, waits for a line on stdin (so
that every process starts routing at the same moment), routes COUNT images and prints a JSON
summary.
"""

from __future__ import annotations

import json
import os
import sys

from nproxy_core.config import configure
from nproxy_core.keypool import PoolUnavailable
from nproxy_core.keypool.interfaces import IKeyPoolRouter
from nproxy_core.plugins import ImageRequest, Mode
from nproxy_core.wiring import find_service


def main() -> None:
    settings = json.loads(sys.argv[1])
    count = int(sys.argv[2])
    config = configure(settings)
    config.commit()
    router = find_service(config.registry, IKeyPoolRouter)
    request = ImageRequest(mode=Mode.TEXT_TO_IMAGE, prompt="contention", resolution="square")
    print("ready", flush=True)
    sys.stdin.readline()
    summary = {"ok": 0, "unavailable": 0, "keys": []}
    for n in range(count):
        try:
            routed = router.route_image("nanobanana", request, reference=f"{os.getpid()}-{n}")
        except PoolUnavailable:
            summary["unavailable"] += 1
        else:
            summary["ok"] += 1
            summary["keys"].append(routed.key_id)
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
