"""Demo plugins for the embedded default: a local image provider and a payment processor.

They are real plugins, registered through the same entry points as any other, and production
refuses them unless ``nproxy.allow_demo`` is set.
"""

from __future__ import annotations

from typing import Any


def includeme(config: Any) -> None:
    # The demo processor's checkout page (DemoProcessor.create_checkout links to it); it
    # answers 404 for payments of any other processor.
    config.add_route("demo.checkout", "/billing/demo/checkout/{order_id}")
    config.scan("nproxy_core.demo.checkout")
