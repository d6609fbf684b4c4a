"""Alembic environment of the review app: runs on the connection that ``Database.migrate`` hands over (online only;
the app migrates its own database on start, there is no offline SQL mode)."""

from __future__ import annotations

from alembic import context

from clinforge.apps.review.review_db import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run the review migrations through clinforge.apps.review.review_db.Database.migrate()")
# render_as_batch: SQLite cannot ALTER most constraints; batch mode rebuilds the table for later migrations
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True,
                  compare_type=True)
with context.begin_transaction():
    context.run_migrations()
