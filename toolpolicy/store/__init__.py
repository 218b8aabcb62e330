"""Where the gateway's state lives: SQLAlchemy 2 async over SQLite (embedded) or PostgreSQL (shared by replicas)."""

from toolpolicy.store.engine import Store

__all__ = ["Store"]
