"""Alembic's environment for voicebot, configured in code by :mod:`voicebot.storage.schema` (no alembic.ini).

Online it runs on the connection schema.py opened and locked (``config.attributes["connection"]``), inside
that connection's transaction; offline (``--sql``) it renders for ``config.attributes["url"]``.
"""

from __future__ import annotations

from alembic import context

config = context.config
# Only autogenerate (writing a new revision) compares with the models; upgrades never import them.
target_metadata = config.attributes.get("target_metadata")

if context.is_offline_mode():
    context.configure(url=config.attributes["url"], target_metadata=target_metadata, literal_binds=True,
                      render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    context.configure(connection=config.attributes["connection"], target_metadata=target_metadata,
                      render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
