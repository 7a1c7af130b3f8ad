"""Running a generation job in a worker: claim it, make its images through the key pool, store
them, and finish it in one transaction.

No database transaction is open while a provider works: the claim and the finish are each a
short transaction of their own. A job is owned by the run whose claim token is in
``lease_owner``; the finish is conditional on it, so a run that lost the job (another run took
over) changes nothing.

Who may take a running job (:func:`abandoned`): in a worker, the claim records the worker
process (``worker_id``), and the job is another run's only once that process stops beating
(:mod:`nproxy_core.health.liveness`): a live worker never loses a job however long it runs, and
a dead one's jobs are free within seconds. A run outside a worker (a command, a test) holds a
lease instead, renewed while it works. A run that stops without finishing lets go of the job
at once; one that cannot reach the database hands the job to its task's next run (same claim
token, and the images it already stored), a few seconds later.

One :class:`JobRunner` per process, shared by the worker's threads. Single images run on the
task's own thread; the images of a batch run in parallel on a per-process thread pool.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import os
import socket
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker
from zope.interface import implementer

from nproxy_core import logs, metrics
from nproxy_core.db import is_disconnect, is_unreachable, utcnow
from nproxy_core.generation.fallback import Fallbacks
from nproxy_core.generation.interfaces import ICompletionSignal, IJobRunner
from nproxy_core.generation.models import (
    Generation,
    GenerationImage,
    GenerationStatus,
    Message,
)
from nproxy_core.generation.settings import GenerationSettings
from nproxy_core.health.liveness import IWorkerLiveness, heard_from
from nproxy_core.i18n import _
from nproxy_core.keypool.errors import (
    FAILURE_CODES,
    FAILURE_MESSAGES,
    PoolUnavailable,
    ProviderNotEnabled,
    failure_message,
)
from nproxy_core.keypool.router import KeyPoolRouter
from nproxy_core.plugins import (
    IMAGE_FORMATS,
    ImageRequest,
    InputImage,
    NoImageAnswer,
    UserCausedError,
    identify_image,
)
from nproxy_core.prompt_templates.models import TemplateRun
from nproxy_core.quota import services as quota
from nproxy_core.storage import IStorage, StorageError, generation_key, store_thumbnail
from nproxy_core.tasks import DatabaseUnreachable
from nproxy_core.uploads.models import Upload

log = logging.getLogger(__name__)

_NO_SYNC = {"synchronize_session": False}

#: The ``invalid_input`` text for a job whose input image went away after it was submitted.
INPUTS_LOST_MESSAGE = _("An input image is no longer available. Upload it again and retry.")
#: Pauses between tries of a finish that could not reach the database, before the job is
#: handed to the task's next run (which takes the images already stored).
FINISH_PAUSES = (0.5, 1.0, 2.0)


@dataclasses.dataclass(frozen=True)
class StoredImage:
    n: int
    storage_key: str
    mime: str
    width: int
    height: int
    size_bytes: int
    #: Who made it, and what they want back with it (``GeneratedImage.continuation``).
    provider: str | None = None
    model: str | None = None
    continuation: dict[str, Any] | None = None
    #: Made by a fallback model (DESIGN 4.13): its preset and default units, which the finish
    #: checks for an admin's price; None for an image of the model the generation asked for.
    resolution: str | None = None
    units: int | None = None
    #: Its WebP thumbnail, made and stored with it; None if that failed (made on first view).
    thumb_key: str | None = None

    def as_list(self) -> list[Any]:
        """As JSON for a task's retry (``resume_images``); a list from before the later
        fields still reads back."""
        return [
            self.n,
            self.storage_key,
            self.mime,
            self.width,
            self.height,
            self.size_bytes,
            self.provider,
            self.model,
            self.continuation,
            self.resolution,
            self.units,
            self.thumb_key,
        ]


#: What routing answers when every key of the provider is out of service.
_EXHAUSTED = object()


@dataclasses.dataclass(frozen=True)
class FailedImage:
    n: int
    code: str
    #: What the person reads when this failure names the generation's error; None: the
    #: code's own text.
    message: str | None = None


#: Longest part of a model's words quoted in an error (the column holds 500 characters).
SAID_LIMIT = 300


def text_only_message(said: str) -> str:
    """What a person reads when the model answered in words instead of a picture."""
    said = " ".join(said.split())
    if len(said) > SAID_LIMIT:
        said = said[: SAID_LIMIT - 1].rstrip() + "…"
    quoted = f": “{said}”" if said else "."
    return (
        f"The model answered with text only{quoted} No image was made and nothing was "
        "charged. Retry, or change the prompt."
    )


def abandoned(now: dt.datetime, lost_after: float) -> sa.ColumnElement[bool]:
    """SQL: the job is running, but no run is working on it any more: the worker process that
    claimed it stopped beating, or (a run outside a worker, or one that let go) its lease
    expired. The one rule for the claim and the sweeper."""
    G = Generation
    return sa.and_(
        G.status == GenerationStatus.RUNNING,
        sa.or_(
            sa.and_(G.worker_id.is_(None), G.lease_expires_at < now),
            sa.and_(G.worker_id.is_not(None), ~heard_from(G.worker_id, now, lost_after)),
        ),
    )


@dataclasses.dataclass(frozen=True)
class Job:
    """What a claimed run needs, read in the claim's transaction."""

    generation_id: uuid.UUID
    token: str
    #: The worker process whose beat holds the job; None: a lease holds it.
    worker_id: str | None
    user_id: int
    provider: str
    model: str
    batch_size: int
    mode: Any
    prompt: str
    resolution: str
    strength: float | None
    #: Each input image: (storage key, mime, the provider and model that made it, what that
    #: provider wants back with it); the last three are None for a person's own upload.
    upload_keys: tuple[tuple[str, str, str | None, str | None, dict[str, Any] | None], ...]
    #: An input upload was deleted since the submission: the job cannot be made.
    inputs_missing: bool = False
    #: A template asked for the model's words beside the picture (``template_runs``).
    with_text: bool = False
    #: The words each image came with, by its place in the batch (filled while it runs).
    texts: dict[int, str] = dataclasses.field(default_factory=dict)


class LeaseKeeper:
    """Renews the leases of the jobs this process runs outside a worker (commands, tests), from
    one background thread. A worker's jobs need none: its liveness beat covers them all.

    A single UPDATE per tick covers every job in flight, so a job can take as long as its
    provider needs while an abandoned one is still picked up soon after.
    """

    def __init__(self, session_factory: sessionmaker[Session], lease_seconds: float) -> None:
        self._session_factory = session_factory
        self._lease = lease_seconds
        self._tokens: dict[str, uuid.UUID] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()

    def hold(self, token: str, generation_id: uuid.UUID) -> None:
        with self._lock:
            self._tokens[token] = generation_id
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="nproxy-lease-keeper", daemon=True
                )
                self._thread.start()

    def drop(self, token: str) -> None:
        with self._lock:
            self._tokens.pop(token, None)

    def _run(self) -> None:
        interval = max(0.2, self._lease / 3)
        while not self._wake.wait(interval):
            with self._lock:
                tokens = list(self._tokens)
            if not tokens:
                continue
            try:
                with self._session_factory.begin() as session:
                    session.execute(
                        sa.update(Generation)
                        .where(
                            Generation.lease_owner.in_(tokens),
                            Generation.status == GenerationStatus.RUNNING,
                        )
                        .values(lease_expires_at=utcnow() + _seconds(self._lease)),
                        execution_options=_NO_SYNC,
                    )
            except Exception:
                # The next tick tries again; a lease that lapses meanwhile only means the
                # job may be run again, and the finish of this run is then refused.
                log.exception("renewing %d generation leases failed", len(tokens))


def _seconds(value: float) -> dt.timedelta:
    return dt.timedelta(seconds=value)


def _process_tag() -> str:
    return f"{socket.gethostname()[:48]}:{os.getpid()}"


@implementer(IJobRunner)
class JobRunner:
    """Runs generation jobs in this process. Thread-safe; one per registry."""

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        router: KeyPoolRouter,
        settings: GenerationSettings,
        completion: ICompletionSignal,
        liveness: IWorkerLiveness | None = None,
        fallbacks: Fallbacks | None = None,
        prices: Any = None,
    ) -> None:
        self._session_factory = session_factory
        self._router = router
        self._fallbacks = fallbacks
        #: ``IUnitPrices``: what a fallback's image costs by default.
        self._prices = prices
        self.settings = settings
        self._completion = completion
        self._liveness = liveness
        self.leases = LeaseKeeper(session_factory, settings.lease_seconds)
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    def _image_pool(self) -> ThreadPoolExecutor:
        # Made on first use: the web process builds a runner too but never runs a job.
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    max_workers=self.settings.image_threads, thread_name_prefix="nproxy-image"
                )
            return self._pool

    # --- the whole run ------------------------------------------------------------------------

    def run(
        self,
        generation_id: str | uuid.UUID,
        storage: IStorage,
        *,
        resume: str | None = None,
        resume_images: list[list[Any]] | None = None,
    ) -> str:
        """Run one job if it can be claimed; returns what happened (for logs and tests).

        ``resume`` is the claim token of an earlier run of this task that could not reach the
        database, and ``resume_images`` the images it had stored: this run takes the job over
        from it and makes only the rest.
        """
        try:
            gid = uuid.UUID(str(generation_id))
        except ValueError:
            log.error("run_generation got a malformed id %r", generation_id)
            return "malformed"
        with logs.log_context(generation_id=gid, user_id=None):
            return self._run(gid, storage, resume, resume_images or [])

    def _run(
        self, gid: uuid.UUID, storage: IStorage, resume: str | None, resume_images: list[list[Any]]
    ) -> str:
        token = resume or f"{_process_tag()}:{uuid.uuid4().hex[:16]}"
        stored = [StoredImage(*image) for image in resume_images]
        try:
            # The same token twice: a claim whose commit was lost with its connection is
            # recognised as this run's own by the second try.
            job = _once_more_after_disconnect(self.claim, gid, token)
        except Exception as exc:
            if is_unreachable(exc):
                # Maybe claimed, maybe not: the next run, with this token, finds out.
                raise DatabaseUnreachable(self._resume(token, stored)) from exc
            raise
        if job is None:
            return "skipped"
        logs.bind(user_id=job.user_id)
        if job.worker_id is None:
            self.leases.hold(job.token, gid)
        try:
            if job.inputs_missing:
                return self._finish(job, [], [FailedImage(0, "invalid_input")], inputs_lost=True)
            try:
                inputs = tuple(
                    InputImage(
                        data=storage.get(key),
                        mime=mime,
                        # Only the provider and model that made an image get its continuation.
                        continuation=continuation
                        if (provider, model) == (job.provider, job.model)
                        else None,
                    )
                    for key, mime, provider, model, continuation in job.upload_keys
                )
            except StorageError:
                log.exception("generation %s: reading its input images failed", gid)
                return self._finish(job, [], [FailedImage(0, "invalid_input")], inputs_lost=True)
            done = {image.n for image in stored}
            outcomes = self._make_images(job, inputs, storage, skip=done)
            stored += [o for o in outcomes if isinstance(o, StoredImage)]
            failed = [o for o in outcomes if isinstance(o, FailedImage)]
            return self._finish(job, stored, failed)
        except DatabaseUnreachable:
            raise
        except BaseException:
            # Whatever stopped this run, the job must not wait for a worker that lives on.
            self._let_go(job)
            raise
        finally:
            self.leases.drop(job.token)

    def _resume(self, token: str, stored: list[StoredImage]) -> dict[str, Any]:
        return {"resume": token, "resume_images": [image.as_list() for image in stored]}

    def _finish(
        self,
        job: Job,
        stored: list[StoredImage],
        failed: list[FailedImage],
        *,
        inputs_lost: bool = False,
    ) -> str:
        # The images are made and paid for: a database that does not answer for a moment
        # must not lose them (the finish is conditional on the claim token, so safe twice).
        for pause in (*FINISH_PAUSES, None):
            try:
                return _once_more_after_disconnect(
                    self.finish, job, stored, failed, inputs_lost=inputs_lost
                )
            except Exception as exc:
                if not is_unreachable(exc):
                    raise
                if pause is None:
                    raise DatabaseUnreachable(self._resume(job.token, stored)) from exc
                log.warning(
                    "generation %s: the database could not be reached to finish (%s); "
                    "trying again in %.1f s",
                    job.generation_id,
                    type(exc).__name__,
                    pause,
                )
                time.sleep(pause)
        raise AssertionError("unreachable")  # pragma: no cover

    def _let_go(self, job: Job) -> None:
        """Leave the job to the next run at once (its lease expired, no worker holding it)."""
        G = Generation
        try:
            with self._session_factory.begin() as session:
                session.execute(
                    sa.update(G)
                    .where(
                        G.id == job.generation_id,
                        G.status == GenerationStatus.RUNNING,
                        G.lease_owner == job.token,
                    )
                    .values(worker_id=None, lease_expires_at=utcnow()),
                    execution_options=_NO_SYNC,
                )
        except Exception:
            log.exception(
                "generation %s: could not let go of the job; it is run again when this "
                "worker stops",
                job.generation_id,
            )

    # --- claim --------------------------------------------------------------------------------

    def claim(self, gid: uuid.UUID, token: str | None = None) -> Job | None:
        """Take the job if it is queued, abandoned (:func:`abandoned`), or already claimed with
        ``token`` (a run of the same task taking over from its predecessor).

        One conditional UPDATE: of two runs racing for the same job, exactly one gets it; a
        redelivered task for a job that a live worker runs, or that is finished, gets None and
        does nothing.
        """
        now = utcnow()
        token = token or f"{_process_tag()}:{uuid.uuid4().hex[:16]}"
        worker_id = self._liveness.worker_id if self._liveness is not None else None
        G = Generation
        ours = sa.and_(G.status == GenerationStatus.RUNNING, G.lease_owner == token)

        def of_message(column: Any) -> Any:
            return sa.select(column).where(Message.id == G.message_id).scalar_subquery()

        with self._session_factory.begin() as session:
            # What the run needs comes back from the UPDATE itself: the claim is one statement
            # (RETURNING with subqueries), not an UPDATE and then reads.
            claimed = session.execute(
                sa.update(G)
                .where(
                    G.id == gid,
                    sa.or_(
                        ours,
                        sa.and_(
                            sa.or_(
                                G.status == GenerationStatus.QUEUED,
                                abandoned(now, self.settings.lost_after_seconds),
                            ),
                            G.attempts < self.settings.max_attempts,
                        ),
                    ),
                )
                .values(
                    status=GenerationStatus.RUNNING,
                    lease_owner=token,
                    worker_id=worker_id,
                    # A worker's run needs no lease: its process's beat speaks for it.
                    lease_expires_at=(
                        None if worker_id else now + _seconds(self.settings.lease_seconds)
                    ),
                    # Taking over from this task's own earlier run is not another run.
                    attempts=sa.case((ours, G.attempts), else_=G.attempts + 1),
                    started_at=now,
                )
                .returning(
                    G.user_id,
                    G.provider,
                    G.attempts,
                    *(
                        of_message(column).label(column.key)
                        for column in (
                            Message.model,
                            Message.batch_size,
                            Message.mode,
                            Message.prompt,
                            Message.resolution,
                            Message.strength,
                            Message.input_upload_ids,
                        )
                    ),
                    sa.select(TemplateRun.with_text)
                    .where(TemplateRun.generation_id == G.id)
                    .scalar_subquery()
                    .label("with_text"),
                ),
                execution_options=_NO_SYNC,
            ).first()
            if claimed is None:
                return None
            upload_keys: list[tuple[str, str]] = []
            if claimed.input_upload_ids:
                # Only now known: the second statement of a claim, for image-to-image jobs.
                ids = [uuid.UUID(i) for i in claimed.input_upload_ids]
                uploads = {
                    u.id: u
                    for u in session.scalars(
                        sa.select(Upload).where(
                            Upload.id.in_(ids), Upload.user_id == claimed.user_id
                        )
                    )
                }
                # An upload deleted since submission leaves a hole; the run then fails it.
                upload_keys = [
                    (
                        uploads[i].storage_key,
                        uploads[i].mime,
                        uploads[i].origin_provider,
                        uploads[i].origin_model,
                        uploads[i].continuation,
                    )
                    for i in ids
                    if i in uploads
                ]
            if claimed.attempts > 1:
                log.warning("generation %s: run %d (a previous run died)", gid, claimed.attempts)
            return Job(
                generation_id=gid,
                token=token,
                worker_id=worker_id,
                user_id=claimed.user_id,
                provider=claimed.provider,
                model=claimed.model,
                batch_size=claimed.batch_size,
                mode=claimed.mode,
                prompt=claimed.prompt,
                resolution=claimed.resolution,
                strength=claimed.strength,
                upload_keys=tuple(upload_keys),
                inputs_missing=len(upload_keys) != len(claimed.input_upload_ids or ()),
                with_text=bool(claimed.with_text),
            )

    # --- images -------------------------------------------------------------------------------

    def _make_images(
        self,
        job: Job,
        inputs: tuple[InputImage, ...],
        storage: IStorage,
        skip: set[int] = frozenset(),  # type: ignore[assignment]
    ) -> list[StoredImage | FailedImage]:
        def make(n: int) -> StoredImage | FailedImage:
            return self._make_image(job, n, inputs, storage)

        wanted = [n for n in range(job.batch_size) if n not in skip]
        if len(wanted) <= 1:
            return [make(n) for n in wanted]
        pool = self._image_pool()
        # The first on this thread, the others alongside it on the pool.
        futures = [pool.submit(make, n) for n in wanted[1:]]
        first = make(wanted[0])
        return [first, *(f.result() for f in futures)]

    def _make_image(
        self, job: Job, n: int, inputs: tuple[InputImage, ...], storage: IStorage
    ) -> StoredImage | FailedImage:
        request = ImageRequest(
            mode=job.mode,
            prompt=job.prompt,
            resolution=job.resolution,
            strength=job.strength,
            inputs=inputs,
            model=job.model,
            index=n,
            with_text=job.with_text,
        )
        gid = job.generation_id
        made_by: dict[str, Any] = {"provider": job.provider, "model": job.model}
        routed = self._route(gid, n, job.provider, request)
        route = None
        if routed is _EXHAUSTED and self._fallbacks:
            route = self._fallbacks.route(job.provider, request)
        if route is not None:
            log.warning(
                "generation %s image %d: %s:%s exhausted, made by its fallback %s:%s",
                gid,
                n,
                job.provider,
                job.model,
                route.provider,
                route.capabilities.model,
            )
            routed = self._route(gid, n, route.provider, route.request)
            resolution = route.request.resolution
            made_by = {
                "provider": route.provider,
                "model": route.capabilities.model,
                "resolution": resolution,
                "units": self._prices.default_units(route.provider, route.capabilities, resolution),
            }
        if routed is _EXHAUSTED:
            return FailedImage(n, "provider_unavailable")
        if isinstance(routed, FailedImage):
            return routed
        data = routed.result.image.data
        described = describe_image(data)
        if described is None:
            log.error("generation %s image %d: the provider sent no usable image", gid, n)
            return FailedImage(n, "provider_unavailable")
        mime, ext, width, height = described
        key = generation_key(job.user_id, gid, n, ext)
        try:
            # Stored as it arrives: the finish only records it. A re-run writes the same key.
            storage.put(key, data, mime)
        except StorageError:
            log.exception("generation %s image %d: storing it failed", gid, n)
            return FailedImage(n, "provider_unavailable")
        # Made once, here, beside the image: every tile and list shows this one.
        thumb_key = store_thumbnail(storage, key, data)
        continuation = routed.result.image.continuation
        if job.with_text and routed.result.image.text:
            job.texts[n] = routed.result.image.text
        return StoredImage(
            n,
            key,
            mime,
            width,
            height,
            len(data),
            continuation=None if continuation is None else dict(continuation),
            thumb_key=thumb_key,
            **made_by,
        )

    def _fallback_units(self, session: Session, image: StoredImage) -> int | None:
        """Units of an image a fallback made (an admin's price first), or None for an image
        of the model asked for (charged the hold's own price)."""
        if image.units is None:
            return None
        override = self._prices.override(session, image.provider, image.model, image.resolution)
        return image.units if override is None else override

    def _route(self, gid: uuid.UUID, n: int, provider: str, request: ImageRequest) -> Any:
        """One image routed to ``provider``'s key pool: the routed attempt, the failure to
        record, or ``_EXHAUSTED`` when no key of the pool could make it (a fallback may)."""
        try:
            return self._router.route_image(provider, request, reference=str(gid))
        except NoImageAnswer as exc:
            # Say what happened, not "an input image or a setting": the model chose words.
            return FailedImage(n, exc.code, text_only_message(exc.said))
        except UserCausedError as exc:
            return FailedImage(n, exc.code if exc.code in FAILURE_MESSAGES else "invalid_input")
        except (PoolUnavailable, ProviderNotEnabled) as exc:
            log.warning("generation %s image %d: %s: %s", gid, n, provider, exc)
            return _EXHAUSTED
        except Exception:
            # A bug or an outage (the database during routing): this image fails, the batch
            # goes on, and the user is charged nothing for it.
            log.exception("generation %s image %d: routing to %s failed", gid, n, provider)
            return FailedImage(n, "provider_unavailable")

    # --- finish -------------------------------------------------------------------------------

    def finish(
        self,
        job: Job,
        stored: list[StoredImage],
        failed: list[FailedImage],
        *,
        inputs_lost: bool = False,
    ) -> str:
        """Record the images, the final state and the quota outcome, in one transaction.

        Only if the lease is still ours: otherwise another run owns the job now and this one
        leaves everything to it.
        """
        status, code = outcome_of(len(stored), [f.code for f in failed])
        now = utcnow()
        G = Generation
        with self._session_factory.begin() as session:
            generation = session.scalar(
                sa.select(G)
                .where(
                    G.id == job.generation_id,
                    G.status == GenerationStatus.RUNNING,
                    G.lease_owner == job.token,
                )
                .with_for_update()
            )
            if generation is None:
                log.warning(
                    "generation %s: lease lost before finishing; this run's result is dropped",
                    job.generation_id,
                )
                return "lease_lost"
            for image in stored:
                session.add(
                    GenerationImage(
                        generation_id=generation.id,
                        user_id=generation.user_id,
                        n=image.n,
                        storage_key=image.storage_key,
                        mime=image.mime,
                        width=image.width,
                        height=image.height,
                        size_bytes=image.size_bytes,
                        created_at=now,
                        provider=image.provider,
                        model=image.model,
                        continuation=image.continuation,
                        thumb_key=image.thumb_key,
                    )
                )
            generation.status = status
            generation.finished_at = now
            generation.lease_expires_at = None
            if code is not None:
                generation.error_code = code
                own = next((f.message for f in failed if f.code == code and f.message), None)
                generation.error_message = (
                    INPUTS_LOST_MESSAGE if inputs_lost else own or failure_message(code)
                )
            said = sorted(n for n in job.texts if n in {image.n for image in stored})
            if said:
                # The words of the first image kept: that is the one shown first.
                session.execute(
                    sa.update(TemplateRun)
                    .where(TemplateRun.generation_id == generation.id)
                    .values(text=job.texts[said[0]]),
                    execution_options=_NO_SYNC,
                )
            if generation.quota_hold_id is not None:
                quota.settle(
                    session,
                    generation.quota_hold_id,
                    len(stored),
                    costs=[self._fallback_units(session, image) for image in stored],
                    now=now,
                )
            # Requests waiting for this job wake when this transaction commits.
            self._completion.announce(session, generation.id)
        metrics.GENERATIONS.labels(str(status)).inc()
        if stored:
            metrics.IMAGES.labels("succeeded").inc(len(stored))
        for failure in failed:
            metrics.IMAGES.labels(failure.code).inc()
        log.info(
            "generation %s %s: %d of %d images",
            job.generation_id,
            status,
            len(stored),
            job.batch_size,
        )
        return str(status)


def _once_more_after_disconnect(fn: Any, *args: Any, **kwargs: Any) -> Any:
    # Pooled connections are not pinged: after a database restart the first statement on one
    # fails, and the pool is renewed. Claim and finish are each one conditional transaction
    # that was lost with the connection, so running it again is safe.
    try:
        return fn(*args, **kwargs)
    except Exception as exc:
        if not is_disconnect(exc):
            raise
        log.warning("the database connection was lost; trying %s again", fn.__name__)
        return fn(*args, **kwargs)


def outcome_of(succeeded: int, failure_codes: list[str]) -> tuple[GenerationStatus, str | None]:
    """The final state and error code of a job from its images' outcomes."""
    code = None
    if failure_codes:
        code = min(failure_codes, key=lambda c: FAILURE_CODES.index(c) if c in FAILURE_CODES else 9)
    if succeeded and not failure_codes:
        return GenerationStatus.SUCCEEDED, None
    if succeeded:
        return GenerationStatus.PARTIAL, code
    return GenerationStatus.FAILED, code or "provider_unavailable"


def describe_image(data: bytes) -> tuple[str, str, int, int] | None:
    """(mime, extension, width, height) of PNG, JPEG or WebP bytes, else None.

    By content: a provider's declared type can be wrong. Only the header is read.
    """
    found = identify_image(data)
    if found is None or found.width is None or found.height is None:
        return None
    accepted = IMAGE_FORMATS.get(found.mime)
    return None if accepted is None else (found.mime, accepted.extension, found.width, found.height)
