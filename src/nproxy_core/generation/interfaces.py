"""The generation pipeline's services: its settings and the runner that makes the images."""

from __future__ import annotations

from zope.interface import Attribute, Interface


class IGenerationSettings(Interface):
    """``nproxy.generation.*``, read and checked once (see GenerationSettings)."""

    lease_seconds = Attribute("float")
    sweep_interval_seconds = Attribute("float")
    requeue_after_seconds = Attribute("float")
    max_attempts = Attribute("int")
    image_threads = Attribute("int")


class IJobRunner(Interface):
    """Runs generation jobs in this process; one object per process, shared by threads."""

    def run(generation_id, storage):
        """Run one job if it can be claimed; returns what happened."""
