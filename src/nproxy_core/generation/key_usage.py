"""Which unfinished generations have used a key, for the key pool's delete (``IKeyUsage``).

The key pool cannot read generations (it sits below them); its attempts name the generation they
were made for (``KeyAttempt.reference``), so the question is asked from here.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session
from zope.interface import implementer

from nproxy_core.generation.models import TERMINAL, Generation
from nproxy_core.keypool.interfaces import IKeyUsage
from nproxy_core.keypool.models import KeyAttempt


@implementer(IKeyUsage)
class GenerationKeyUsage:
    def unfinished(self, db: Session, key_id: int) -> list[str]:
        # Unfinished generations are few (bounded by the workers' concurrency); their ids are
        # looked up among the key's attempts by the attempts' reference index.
        unfinished = [
            str(gid)
            for gid in db.scalars(
                sa.select(Generation.id).where(Generation.status.not_in(TERMINAL))
            )
        ]
        if not unfinished:
            return []
        used = db.scalars(
            sa.select(KeyAttempt.reference)
            .where(KeyAttempt.key_id == key_id, KeyAttempt.reference.in_(unfinished))
            .distinct()
        )
        return sorted(used)
