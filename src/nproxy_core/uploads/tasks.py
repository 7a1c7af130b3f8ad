"""The uploads feature's periodic job: deleting uploads nobody used."""

from __future__ import annotations

from typing import Any

from nproxy_core.tasks import task
from nproxy_core.uploads.cleanup import delete_unused_uploads as delete_unused


@task(name="uploads.delete_unused")
def delete_unused_uploads(request: Any) -> int:
    return delete_unused(request)
