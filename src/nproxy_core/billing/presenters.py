"""How billing shows itself in JSON: moments in UTC to the second, and a user's payments."""

from __future__ import annotations

import datetime as dt
import math
import re
from typing import Any

from nproxy_core.billing.models import Payment
from nproxy_core.billing.plans import images_per_model
from nproxy_core.i18n import _
from nproxy_core.i18n.shapes import shape_label
from nproxy_core.templating import money

#: The example pictures of the landing and pricing pages (static/examples/, drawn by
#: ``nproxy_core.site.examples``): file name and the prompt they illustrate.
EXAMPLES = (
    ("lighthouse.webp", _("A lighthouse on a cliff at dusk")),
    ("garden.webp", _("A watercolour garden of round flowers")),
    ("city.webp", _("A neon city at night")),
)

#: The names the product ships with (the plan migration 0014 seeds, named by the settings'
#: default), marked so that pages show them in the reader's language even where the row has no
#: translation of its own; a name an admin types is shown in the admin's translations
#: (``i18n.fields``), else as typed.
SHIPPED_NAMES = (_("Monthly"),)
#: The payment methods as the shipped processors name them (their ``display_name``: a plugin
#: imports nothing but the plugin interface), marked for the same reason.
PROCESSOR_NAMES = (_("Card (Stripe)"), _("Crypto (NOWPayments)"), _("Demo (no real money)"))


def isoformat(moment: dt.datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(dt.UTC).isoformat(timespec="seconds")


def payment_json(payment: Payment) -> dict[str, Any]:
    return {
        "id": payment.order_id,
        "status": str(payment.status),
        "amount": money(payment.amount),
        "currency": payment.currency,
        "created_at": isoformat(payment.created_at),
        "under_review": payment.awaiting_review,
    }


def month_offer(plan: Any, providers: Any, per_image: Any) -> dict[str, Any]:
    """What a period of the plan buys, for the landing and pricing pages: the plan's units and
    about how many images they make with each model (public, unlike a user's own counts), the
    batch size, the modes and the shapes (a model's larger tiers of a shape count once)."""
    models = [caps for provider in providers.values() for caps in provider.capabilities()]
    sizes: dict[str, tuple[str, str]] = {}
    for caps in models:
        for preset in caps.resolutions:
            shape = re.sub(r"_\d+k$", "", preset)
            ratio = _reduced(caps.aspect_ratios.get(preset, ""))
            sizes.setdefault(shape, (shape_label(shape), ratio))
    return {
        "units": plan.request_limit,
        "images": images_per_model(plan, per_image),
        "max_batch": max((caps.max_batch for caps in models), default=1),
        "both_modes": any(len(caps.modes) > 1 for caps in models),
        "sizes": list(sizes.values()),
        "period": "month" if plan.period_months == 1 else f"{plan.period_months} months",
        "period_months": plan.period_months,
    }


def _reduced(ratio: str) -> str:
    """``512:384`` as people say it, ``4:3``; anything else as it is."""
    width, _, height = ratio.partition(":")
    if not (width.isdigit() and height.isdigit()) or not int(width) or not int(height):
        return ratio
    divisor = math.gcd(int(width), int(height))
    return f"{int(width) // divisor}:{int(height) // divisor}"
