"""Running a generation job in a worker: claim it with a lease, make its images through the key
pool, store them, and finish it in one transaction.

No database transaction is open while a provider works: the claim, the lease renewals and the
finish are each a short transaction of their own. A job is owned by the run whose claim token
is in ``lease_owner``; the finish is conditional on it, so a run that lost its lease (its worker
stalled past the lease and another run took over) changes nothing.

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
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker
from zope.interface import implementer

from nproxy_core import logs, metrics
from nproxy_core.db import is_disconnect, utcnow
from nproxy_core.generation.interfaces import ICompletionSignal, IJobRunner
from nproxy_core.generation.models import (
    Generation,
    GenerationImage,
    GenerationStatus,
    Message,
)
from nproxy_core.generation.settings import GenerationSettings
from nproxy_core.keypool.errors import (
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
    UserCausedError,
    identify_image,
)
from nproxy_core.quota import services as quota
from nproxy_core.storage import IStorage, StorageError, generation_key
from nproxy_core.uploads.models import Upload

log = logging.getLogger(__name__)

_NO_SYNC = {"synchronize_session": False}

#: When the user's error code is most useful to show first (a fixable request beats an outage).
_ERROR_PRIORITY = ("content_policy", "invalid_input", "provider_unavailable")
#: The ``invalid_input`` text for a job whose input image went away after it was submitted.
INPUTS_LOST_MESSAGE = "An input image is no longer available. Upload it again and retry."


@dataclasses.dataclass(frozen=True)
class StoredImage:
    n: int
    storage_key: str
    mime: str
    width: int
    height: int
    size_bytes: int


@dataclasses.dataclass(frozen=True)
class FailedImage:
    n: int
    code: str


@dataclasses.dataclass(frozen=True)
class Job:
    """What a claimed run needs, read in the claim's transaction."""

    generation_id: uuid.UUID
    token: str
    user_id: int
    provider: str
    model: str
    batch_size: int
    mode: Any
    prompt: str
    resolution: str
    strength: float | None
    upload_keys: tuple[tuple[str, str], ...]  # (storage key, mime) of each input image
    #: An input upload was deleted since the submission: the job cannot be made.
    inputs_missing: bool = False


class LeaseKeeper:
    """Renews the leases of the jobs this process is running, from one background thread.

    A single UPDATE per tick covers every job in flight, so a job can take as long as its
    provider needs while a dead worker's job is still picked up soon after it died.
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
    ) -> None:
        self._session_factory = session_factory
        self._router = router
        self.settings = settings
        self._completion = completion
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

    def run(self, generation_id: str | uuid.UUID, storage: IStorage) -> str:
        """Run one job if it can be claimed; returns what happened (for logs and tests)."""
        try:
            gid = uuid.UUID(str(generation_id))
        except ValueError:
            log.error("run_generation got a malformed id %r", generation_id)
            return "malformed"
        with logs.log_context(generation_id=gid, user_id=None):
            return self._run(gid, storage)

    def _run(self, gid: uuid.UUID, storage: IStorage) -> str:
        job = _once_more_after_disconnect(self.claim, gid)
        if job is None:
            return "skipped"
        logs.bind(user_id=job.user_id)
        self.leases.hold(job.token, gid)
        try:
            if job.inputs_missing:
                return self.finish(job, [], [FailedImage(0, "invalid_input")], inputs_lost=True)
            try:
                inputs = tuple(
                    InputImage(data=storage.get(key), mime=mime) for key, mime in job.upload_keys
                )
            except StorageError:
                log.exception("generation %s: reading its input images failed", gid)
                return self.finish(job, [], [FailedImage(0, "invalid_input")], inputs_lost=True)
            outcomes = self._make_images(job, inputs, storage)
            stored = [o for o in outcomes if isinstance(o, StoredImage)]
            failed = [o for o in outcomes if isinstance(o, FailedImage)]
            # The images are made and paid for: a connection that died while the provider
            # worked must not lose them (the finish is conditional on the lease, so safe twice).
            return _once_more_after_disconnect(self.finish, job, stored, failed)
        finally:
            self.leases.drop(job.token)

    # --- claim --------------------------------------------------------------------------------

    def claim(self, gid: uuid.UUID) -> Job | None:
        """Take the job if it is queued, or running under a lease that expired.

        One conditional UPDATE: of two runs racing for the same job, exactly one gets it; a
        redelivered task for a job that is running under a live lease, or is finished, gets
        None and does nothing.
        """
        now = utcnow()
        token = f"{_process_tag()}:{uuid.uuid4().hex[:16]}"
        G = Generation
        with self._session_factory.begin() as session:
            claimed = session.execute(
                sa.update(G)
                .where(
                    G.id == gid,
                    sa.or_(
                        G.status == GenerationStatus.QUEUED,
                        sa.and_(G.status == GenerationStatus.RUNNING, G.lease_expires_at < now),
                    ),
                    G.attempts < self.settings.max_attempts,
                )
                .values(
                    status=GenerationStatus.RUNNING,
                    lease_owner=token,
                    lease_expires_at=now + _seconds(self.settings.lease_seconds),
                    attempts=G.attempts + 1,
                    started_at=now,
                )
                .returning(G.message_id, G.user_id, G.provider, G.attempts),
                execution_options=_NO_SYNC,
            ).first()
            if claimed is None:
                return None
            message = session.get(Message, claimed.message_id)
            assert message is not None  # the foreign key guarantees it
            upload_keys: list[tuple[str, str]] = []
            if message.input_upload_ids:
                ids = [uuid.UUID(i) for i in message.input_upload_ids]
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
                    (uploads[i].storage_key, uploads[i].mime) for i in ids if i in uploads
                ]
            if claimed.attempts > 1:
                log.warning("generation %s: run %d (a previous run died)", gid, claimed.attempts)
            return Job(
                generation_id=gid,
                token=token,
                user_id=claimed.user_id,
                provider=claimed.provider,
                model=message.model,
                batch_size=message.batch_size,
                mode=message.mode,
                prompt=message.prompt,
                resolution=message.resolution,
                strength=message.strength,
                upload_keys=tuple(upload_keys),
                inputs_missing=len(upload_keys) != len(message.input_upload_ids or ()),
            )

    # --- images -------------------------------------------------------------------------------

    def _make_images(
        self, job: Job, inputs: tuple[InputImage, ...], storage: IStorage
    ) -> list[StoredImage | FailedImage]:
        def make(n: int) -> StoredImage | FailedImage:
            return self._make_image(job, n, inputs, storage)

        if job.batch_size == 1:
            return [make(0)]
        pool = self._image_pool()
        # Image 0 on this thread, the others alongside it on the pool.
        futures = [pool.submit(make, n) for n in range(1, job.batch_size)]
        first = make(0)
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
        )
        gid = job.generation_id
        try:
            routed = self._router.route_image(job.provider, request, reference=str(gid))
        except UserCausedError as exc:
            return FailedImage(n, exc.code if exc.code in FAILURE_MESSAGES else "invalid_input")
        except (PoolUnavailable, ProviderNotEnabled) as exc:
            log.warning("generation %s image %d: %s", gid, n, exc)
            return FailedImage(n, "provider_unavailable")
        except Exception:
            # A bug or an outage (the database during routing): this image fails, the batch
            # goes on, and the user is charged nothing for it.
            log.exception("generation %s image %d: routing failed", gid, n)
            return FailedImage(n, "provider_unavailable")
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
        return StoredImage(n, key, mime, width, height, len(data))

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
                    )
                )
            generation.status = status
            generation.finished_at = now
            generation.lease_expires_at = None
            if code is not None:
                generation.error_code = code
                generation.error_message = (
                    INPUTS_LOST_MESSAGE if inputs_lost else failure_message(code)
                )
            if generation.quota_hold_id is not None:
                quota.settle(session, generation.quota_hold_id, len(stored), now=now)
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


def _once_more_after_disconnect(fn: Any, *args: Any) -> Any:
    # Pooled connections are not pinged: after a database restart the first statement on one
    # fails, and the pool is renewed. Claim and finish are each one conditional transaction
    # that was lost with the connection, so running it again is safe.
    try:
        return fn(*args)
    except Exception as exc:
        if not is_disconnect(exc):
            raise
        log.warning("the database connection was lost; trying %s again", fn.__name__)
        return fn(*args)


def outcome_of(succeeded: int, failure_codes: list[str]) -> tuple[GenerationStatus, str | None]:
    """The final state and error code of a job from its images' outcomes."""
    code = None
    if failure_codes:
        code = min(
            failure_codes, key=lambda c: _ERROR_PRIORITY.index(c) if c in _ERROR_PRIORITY else 9
        )
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
