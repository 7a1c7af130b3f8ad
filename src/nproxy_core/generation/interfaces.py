"""The generation pipeline's services: its settings, the runner that makes the images, and the
signal that wakes requests waiting for a generation to finish."""

from __future__ import annotations

from zope.interface import Attribute, Interface


class IGenerationSettings(Interface):
    """``nproxy.generation.*``, read and checked once (see GenerationSettings)."""

    lease_seconds = Attribute("float")
    lost_after_seconds = Attribute("float: nproxy.worker.lost_after_seconds")
    sweep_interval_seconds = Attribute("float")
    requeue_after_seconds = Attribute("float")
    max_attempts = Attribute("int")
    image_threads = Attribute("int")
    completion_signal = Attribute("str: auto, postgres or local")


class IJobRunner(Interface):
    """Runs generation jobs in this process; one object per process, shared by threads."""

    def run(generation_id, storage, *, resume=None, resume_images=None):
        """Run one job if it can be claimed (or take it over from run ``resume`` of the same
        task, with the images that run stored); returns what happened."""


class ICompletionSignal(Interface):
    """Wakes requests waiting for a generation to reach a terminal state (completion.py)."""

    def announce(session, generation_id):
        """Call inside the transaction that makes the generation terminal: its waiters wake
        once that transaction commits, never before, and not at all if it rolls back."""

    def subscribe(generation_id):
        """A context manager yielding a waiter (``wait(timeout) -> woken``). Subscribe before
        reading the state, so an end that commits in between is not missed."""

    def close():
        """Wake every waiter and stop listening (the process is shutting down)."""


class IFinishedGenerations(Interface):
    """This process's cache of finished generations' poll states (polls.py)."""

    def get(user_id, generation_id, images):
        """The cached state of the user's finished generation, if it still has ``images``
        images; else None."""

    def put(user_id, state):
        """Keep ``state`` for its owner ``user_id`` if it is terminal."""

    def clear():
        """Forget every state."""
