"""The tests' RabbitMQ virtual hosts (generation_support.rabbitmq_vhost): made through the
management HTTP API where it answers, through ``rabbitmqctl`` where it does not, guest allowed
everything in them, and gone afterwards."""

from __future__ import annotations

import uuid
from pathlib import Path

import amqp.exceptions
import httpx
import kombu
import pytest

import generation_support
from fakes.proxies import free_port
from generation_support import RABBIT_API, rabbitmq_vhost


def round_trip(url: str) -> bytes:
    """Declare a queue in the vhost at ``url``, publish to it and take the message back."""
    with kombu.Connection(url, connect_timeout=10) as conn:
        queue = kombu.Queue("round_trip", channel=conn.default_channel)
        queue.declare()
        conn.Producer().publish(b"hello", routing_key="round_trip")
        message = queue.get(no_ack=True)
        assert message is not None
        return message.body


def gone(url: str) -> bool:
    with kombu.Connection(url, connect_timeout=10) as conn:
        try:
            conn.connect()
        except amqp.exceptions.NotAllowed as refused:
            return "not found" in str(refused)
    return False


def management_api_answers() -> bool:
    try:
        return httpx.get(f"{RABBIT_API}/overview", timeout=5, trust_env=False).is_success
    except httpx.TransportError:
        return False


def test_a_vhost_without_rabbitmqctl_where_the_management_api_answers(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    if not management_api_answers():
        pytest.skip(f"RabbitMQ's management API does not answer at {RABBIT_API}")
    # No rabbitmqctl to be found: the vhost is made, and deleted, over HTTP alone.
    monkeypatch.setenv("PATH", str(tmp_path))
    with rabbitmq_vhost(f"nproxy_admin_http_{uuid.uuid4().hex[:8]}") as url:
        assert round_trip(url) == b"hello"
    assert gone(url)


def test_a_vhost_through_rabbitmqctl_where_the_management_api_does_not_answer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(generation_support, "RABBIT_API", f"http://127.0.0.1:{free_port()}/api")
    with rabbitmq_vhost(f"nproxy_admin_ctl_{uuid.uuid4().hex[:8]}") as url:
        assert round_trip(url) == b"hello"
    assert gone(url)
