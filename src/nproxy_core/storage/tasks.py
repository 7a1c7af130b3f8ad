"""Storage's periodic job: sweeping orphaned objects."""

from __future__ import annotations

from typing import Any

from nproxy_core.storage.orphans import sweep_orphans as sweep
from nproxy_core.tasks import task


@task(name="storage.sweep_orphans")
def sweep_orphans(request: Any) -> int:
    return sweep(request)
