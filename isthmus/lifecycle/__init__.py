"""How a replica starts, reloads and stops: generations of configuration, the drain, bounded shutdown steps and
the process signals. `docs/deploy.md` describes the behaviour."""

from isthmus.lifecycle.bounded import settle
from isthmus.lifecycle.generation import Generation
from isthmus.lifecycle.reload import Load, Reloader, ReloadRefused
from isthmus.lifecycle.serving import Lifecycle
from isthmus.lifecycle.signals import process_signals

__all__ = ["Generation", "Lifecycle", "Load", "ReloadRefused", "Reloader", "process_signals", "settle"]
