"""Account jobs: the password-reset mail, and pruning old session rows."""

from __future__ import annotations

from typing import Any

from nproxy_core.accounts import services, sessions
from nproxy_core.config import public_url
from nproxy_core.i18n.localizers import localizer_for
from nproxy_core.notifications import send_email
from nproxy_core.tasks import task


@task(name="accounts.send_password_reset")
def send_password_reset(request: Any, email: str) -> bool:
    """Issue a reset token for ``email`` and mail the link; nothing when there is no account.

    The web request only queued this job, whether or not the account exists: the work that
    differs between the two happens here, where no one is timing it.
    """
    started = services.start_password_reset(request.db, email)
    if started is None:
        return False
    user, token = started
    link = public_url(request, "reset_password", _query={"token": token})
    # In the account's language: no request of the owner's is there to negotiate one.
    localizer = localizer_for(request.registry, user.language)
    send_email(request, user.email, "password_reset", {"link": link, "localizer": localizer})
    return True


@task(name="accounts.prune_sessions")
def prune_sessions(request: Any) -> int:
    return sessions.prune_sessions(request.db)
