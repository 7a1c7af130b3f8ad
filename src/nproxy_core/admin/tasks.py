"""The admin's periodic job: sum closed hours for the overview and health pages."""

from __future__ import annotations

from typing import Any

from nproxy_core.admin.rollups import roll_up
from nproxy_core.db import IDatabase
from nproxy_core.tasks import task


@task(name="admin.roll_up_hours")
def roll_up_hours(request: Any) -> int:
    return roll_up(request.find_service(IDatabase).session_factory)
