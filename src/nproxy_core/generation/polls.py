"""The chat's poll, ``GET /api/v1/generations/{id}``, in one database round trip.

The chat asks every second (or holds the request) until a generation is finished, so the poll
is the route people hit most. Its session check (:mod:`nproxy_core.accounts.sessions`) is
extended with two facts about the generation asked for (:data:`POLL_CHECK`): its status, read
only if it is the logged-in user's, and how many images it has. A finished generation's answer
is then served from :class:`FinishedGenerations`, a small cache of this process, without a
second query.

Why the cache cannot serve what the database no longer says, in every process of every host:
each answer from it is checked against that same round trip. Another user's id, or a deleted
generation or conversation, reads no status: 404, as without the cache. A terminal state never
changes and its images are all written with it, in the finishing transaction; afterwards they
can only be deleted, one by one (the library's delete), which changes the count: the cached
answer no longer matches, and the generation is read again.
"""

from __future__ import annotations

import collections
import functools
import threading
import uuid
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from pyramid.request import Request
from zope.interface import implementer

from nproxy_core.accounts.models import User
from nproxy_core.accounts.security import checked_session
from nproxy_core.accounts.sessions import QUICK_SESSION_CHECK
from nproxy_core.db import parse_uuid
from nproxy_core.errors import NotFound
from nproxy_core.generation.interfaces import IFinishedGenerations
from nproxy_core.generation.models import TERMINAL, Generation, GenerationImage
from nproxy_core.generation.services import GenerationState, generation_state
from nproxy_core.i18n import _

_GENERATIONS = Generation.__table__
_IMAGES = GenerationImage.__table__

#: Finished generations kept per process: a few hundred bytes each, a few kilobytes with a
#: long prompt (at most about 5 MB in all). A chat polls the generations it just sent, so the
#: most recent thousand serve every open chat of a process many times over.
CACHED_GENERATIONS = 1024

#: The session check (of a read-only route: the route is), and of generation
#: ``b_generation_id`` its status if it is the user's (NULL otherwise, or when there is no such
#: generation) and its number of images.
POLL_CHECK = QUICK_SESSION_CHECK.add_columns(
    sa.select(_GENERATIONS.c.status)
    .where(
        _GENERATIONS.c.id == sa.bindparam("b_generation_id"),
        _GENERATIONS.c.user_id == User.__table__.c.id,
    )
    .scalar_subquery()
    .label("generation_status"),
    sa.select(sa.func.count())
    .select_from(_IMAGES)
    .where(_IMAGES.c.generation_id == sa.bindparam("b_generation_id"))
    .scalar_subquery()
    .label("generation_images"),
)


class GenerationPoll:
    """The poll route's context: the generation asked for, checked with the session
    (``session_check``, read by the security policy), and this process's cache of finished
    generations (held here: a service lookup would cost a poll more than its cached answer)."""

    def __init__(self, request: Request, finished: FinishedGenerations) -> None:
        self.finished = finished
        self.generation_id = parse_uuid(request.matchdict.get("generation_id"))
        self.session_check = (
            None
            if self.generation_id is None
            else (POLL_CHECK, {"b_generation_id": self.generation_id})
        )

    @classmethod
    def factory(cls, finished: FinishedGenerations) -> Callable[[Request], GenerationPoll]:
        """The route factory of contexts sharing ``finished``."""
        return functools.partial(cls, finished=finished)


@implementer(IFinishedGenerations)
class FinishedGenerations:
    """Finished generations' states by id, with their owner; the least recently asked for go
    first when it is full. Thread-safe: one per process, shared by the web server's threads."""

    def __init__(self, size: int = CACHED_GENERATIONS) -> None:
        self.size = size
        self._lock = threading.Lock()
        self._states: collections.OrderedDict[uuid.UUID, tuple[int, GenerationState]] = (
            collections.OrderedDict()
        )

    def get(self, user_id: int, generation_id: uuid.UUID, images: int) -> GenerationState | None:
        with self._lock:
            entry = self._states.get(generation_id)
            if entry is None:
                return None
            owner, state = entry
            if owner != user_id or len(state.images) != images:
                return None
            self._states.move_to_end(generation_id)
            return state

    def put(self, user_id: int, state: GenerationState) -> None:
        if not state.is_terminal:
            return
        with self._lock:
            self._states[state.id] = (user_id, state)
            self._states.move_to_end(state.id)
            while len(self._states) > self.size:
                self._states.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._states.clear()

    def __len__(self) -> int:
        return len(self._states)


def poll_state(request: Request, user_id: int, generation_id: Any) -> GenerationState:
    """The user's generation for the poll; NotFound when it is not theirs or not there.

    A finished one already in the cache costs no query beyond the session check; anything else
    is read (:func:`generation_state`), and kept if it is finished."""
    context = request.context
    finished = (
        context.finished
        if isinstance(context, GenerationPoll)
        else request.find_service(IFinishedGenerations)
    )
    checked = checked_session(request)
    known = {} if checked is None else checked._mapping
    gid = parse_uuid(generation_id)
    if gid is not None and "generation_status" in known:
        # The session check read the generation (the route's context asked it to).
        status = known["generation_status"]
        if status is None:
            raise NotFound(_("Not found."))
        if status in TERMINAL:
            state = finished.get(user_id, gid, known["generation_images"])
            if state is not None:
                return state
    state = generation_state(request.db, user_id, generation_id)
    finished.put(user_id, state)
    return state


__all__ = ["POLL_CHECK", "FinishedGenerations", "GenerationPoll", "poll_state"]
