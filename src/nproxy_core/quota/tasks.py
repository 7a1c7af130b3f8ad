"""The quota sweeper: holds left behind by crashed or lost jobs go back to their cycle."""

from __future__ import annotations

import datetime as dt
from typing import Any

from nproxy_core.quota.services import release_stale_holds
from nproxy_core.tasks import task

#: Far beyond the worker's task time limit (20 minutes): a hold this old has no live job. The
#: generation pipeline releases holds of jobs that reached a terminal state itself, sooner.
ABANDONED_AFTER = dt.timedelta(hours=2)


@task(name="quota.release_abandoned_holds")
def release_abandoned_holds(request: Any) -> int:
    return release_stale_holds(request.db, ABANDONED_AFTER)
