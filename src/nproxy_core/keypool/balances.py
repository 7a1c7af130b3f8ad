"""Reading key balances on a schedule: a balance at or below zero takes the key (and its billing
group) out of service, as an out-of-funds answer would."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from nproxy_core.alerts import AlertKind
from nproxy_core.keypool.alerts import key_subject
from nproxy_core.keypool.connections import RouterConnections
from nproxy_core.keypool.crypto import SecretBox, SecretUnreadable
from nproxy_core.keypool.deadline import DaemonThreads
from nproxy_core.keypool.models import IN_SERVICE, Proxy, ProxyState
from nproxy_core.keypool.outcomes import key_names, take_out_of_funds
from nproxy_core.keypool.rules import KEYS, K
from nproxy_core.plugins import Provider

log = logging.getLogger(__name__)


def refresh_balances(
    connections: RouterConnections,
    providers: Mapping[str, Provider],
    secrets: SecretBox,
    threads: DaemonThreads,
    *,
    clock: Callable[[], dt.datetime],
    alert: Callable[..., None],
) -> dict[int, Decimal | None]:
    """Read the balance of every in-service key whose provider can; {key id: balance}.

    No transaction is open during the provider calls, which run on the router's ``threads``
    under the provider's attempt deadline.
    """
    with connections.transaction() as conn:
        rows = conn.execute(
            sa.select(K.id, K.provider, K.secret_encrypted, K.billing_group, Proxy.url)
            .outerjoin(Proxy, sa.and_(Proxy.id == K.proxy_id, Proxy.state == ProxyState.ACTIVE))
            .where(K.state.in_(IN_SERVICE))
            .order_by(K.id)
        ).all()
    balances: dict[int, Decimal | None] = {}
    for row in rows:
        plugin = providers.get(row.provider)
        if plugin is None or not plugin.supports_balance:
            continue
        balance = _read_balance(plugin, row, secrets, threads)
        balances[row.id] = balance
        if balance is None:
            continue
        now = clock()
        with connections.transaction() as conn:
            conn.execute(
                sa.update(KEYS)
                .where(K.id == row.id)
                .values(balance=balance, balance_checked_at=now, updated_at=now),
            )
            changed: dict[int, int] = {}
            if balance <= 0:
                changed = take_out_of_funds(
                    conn, row.provider, row.id, row.billing_group, f"balance is {balance}", now
                )
        if changed:
            names = key_names(connections, {row.id, *changed})
            alert(
                AlertKind.KEY_OUT_OF_FUNDS,
                key_subject(row.provider, row.id),
                f"{row.provider} {names[row.id]} has a balance of {balance}; "
                + ", ".join(names[key_id] for key_id in sorted(changed))
                + " taken out of service",
            )
    return balances


def _read_balance(
    plugin: Provider, row: Any, secrets: SecretBox, threads: DaemonThreads
) -> Decimal | None:
    try:
        secret = secrets.decrypt(row.secret_encrypted)
    except SecretUnreadable:
        log.warning("key %s cannot be decrypted; balance not read", row.id)
        return None
    try:
        balance = threads.run(
            lambda: plugin.check_balance(api_key=secret, proxy_url=row.url),
            plugin.attempt_deadline,
        )
    except Exception as exc:  # a balance we cannot read changes nothing
        reason = "timed out" if isinstance(exc, TimeoutError) else type(exc).__name__
        log.warning("balance of %s key %s not read: %s", row.provider, row.id, reason)
        return None
    return None if balance is None else Decimal(balance)
