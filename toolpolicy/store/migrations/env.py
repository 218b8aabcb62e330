"""Alembic environment: always run through `Store.migrate()`, which hands over an open connection."""

from alembic import context

from toolpolicy.store.schema import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `isthmus db upgrade`, which supplies the connection")

context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
