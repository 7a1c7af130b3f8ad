"""The generation sweeper: nothing a user was promised is lost when a worker, the broker or an
after-commit send fails.

Each sweep, in one short transaction (rows other sweepers hold are skipped, so any number may
run at once):

1. abandoned jobs (their worker process stopped beating, or their lease expired: see
   :func:`~nproxy_core.generation.runner.abandoned`) that have used up their runs fail, and
   their quota hold is released: a job that kills its worker every time must not go round
   forever;
2. jobs still ``queued`` a while after they were last sent are sent to the queue again, and so
   are abandoned jobs not sent since their last run took them (at once: with beats every 3 s,
   15 s of silence and a sweep every 5 s, a dead worker's job is on the queue again within
   about 20 s of its death); the claim makes a duplicate harmless;
3. jobs that reached a terminal state with their hold still held (which the one-transaction
   finish makes impossible, short of a bug or a manual change) get it settled.

Holds with no live job at all are released by the quota feature's own periodic task.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import uuid
from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from nproxy_core import metrics
from nproxy_core.db import utcnow
from nproxy_core.generation.models import (
    TERMINAL,
    Generation,
    GenerationImage,
    GenerationStatus,
)
from nproxy_core.generation.runner import abandoned
from nproxy_core.generation.settings import GenerationSettings
from nproxy_core.i18n import _
from nproxy_core.quota import services as quota
from nproxy_core.quota.models import HoldState, QuotaHold

log = logging.getLogger(__name__)

#: Rows handled per sweep at most; the next sweep takes the rest.
BATCH = 500
GAVE_UP_MESSAGE = _(
    "This generation could not be completed. Nothing was charged; please try again."
)


@dataclasses.dataclass
class SweepReport:
    resent: int = 0
    failed: int = 0
    settled: int = 0

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


def sweep(
    session_factory: sessionmaker[Session],
    settings: GenerationSettings,
    send: Callable[[str], None],
    *,
    announce: Callable[[Session, uuid.UUID], None] | None = None,
    now: dt.datetime | None = None,
) -> SweepReport:
    """One pass of the sweeper; ``send(generation_id)`` puts a job on the queue and
    ``announce(session, generation_id)`` wakes the requests waiting for a job it ends."""
    now = now or utcnow()
    report = SweepReport()
    G = Generation
    requeue_before = now - dt.timedelta(seconds=settings.requeue_after_seconds)
    expired = abandoned(now, settings.lost_after_seconds)
    with session_factory.begin() as session:
        # 1. Out of runs: give up, and give the quota back.
        for generation in session.scalars(
            sa.select(G)
            .where(expired, G.attempts >= settings.max_attempts)
            .order_by(G.created_at)
            .limit(BATCH)
            .with_for_update(skip_locked=True)
        ):
            generation.status = GenerationStatus.FAILED
            generation.finished_at = now
            generation.lease_expires_at = None
            generation.error_code = "provider_unavailable"
            generation.error_message = GAVE_UP_MESSAGE
            if generation.quota_hold_id is not None:
                quota.release(session, generation.quota_hold_id, now=now)
            if announce is not None:
                announce(session, generation.id)
            report.failed += 1
            log.error(
                "generation %s failed after %d runs that did not finish",
                generation.id,
                generation.attempts,
            )

        # 2. Lost or stuck in the queue, or left by a dead worker: send again. An abandoned job
        # at once, unless it was sent since its last run took it (that message is on its way).
        resend = list(
            session.scalars(
                sa.select(G.id)
                .where(
                    sa.or_(
                        sa.and_(
                            G.status == GenerationStatus.QUEUED, G.enqueued_at < requeue_before
                        ),
                        sa.and_(
                            expired,
                            sa.or_(G.enqueued_at <= G.started_at, G.enqueued_at < requeue_before),
                        ),
                    ),
                    G.attempts < settings.max_attempts,
                )
                .order_by(G.enqueued_at)
                .limit(BATCH)
                .with_for_update(skip_locked=True)
            )
        )
        if resend:
            session.execute(
                sa.update(G).where(G.id.in_(resend)).values(enqueued_at=now),
                execution_options={"synchronize_session": False},
            )

        # 3. Finished, yet the hold is still held: settle it with what was made.
        stuck = session.execute(
            sa.select(G.id, G.quota_hold_id)
            .join(QuotaHold, QuotaHold.id == G.quota_hold_id)
            .where(G.status.in_(TERMINAL), QuotaHold.state == HoldState.HELD)
            .limit(BATCH)
        ).all()
        for row in stuck:
            made = session.scalar(
                sa.select(sa.func.count()).where(GenerationImage.generation_id == row.id)
            )
            quota.settle(session, row.quota_hold_id, int(made or 0), now=now)
            report.settled += 1
            log.warning("generation %s: settled a hold its finish had left held", row.id)

    # After the commit, so a worker never gets an id whose new enqueued_at is not visible;
    # a send that fails now is retried by the next sweep.
    for generation_id in resend:
        try:
            send(str(generation_id))
            report.resent += 1
        except Exception:
            log.exception("sweeper could not re-send generation %s", generation_id)
    if report.failed:
        metrics.GENERATIONS.labels(str(GenerationStatus.FAILED)).inc(report.failed)
    if report.resent or report.failed or report.settled:
        log.info("generation sweep: %s", report.as_dict())
    return report


__all__ = ["GAVE_UP_MESSAGE", "SweepReport", "sweep"]
