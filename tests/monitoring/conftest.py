"""The generation tests' worker processes and paying customers, for the operations tests."""

from generation.conftest import (  # noqa: F401 - fixtures shared with the generation tests
    add_key,
    broker_url,
    customer_factory,
    start_process,
    start_worker,
    worker_settings,
)
