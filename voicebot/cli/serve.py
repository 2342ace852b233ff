"""``voicebot serve [--config FILE] [--host H] [--port P]``: the HTTP/WebRTC server."""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Any

import click

from voicebot.cli.common import config_option, settings_or_exit
from voicebot.config import HttpConfig


@click.command()
@config_option
@click.option("--host", default=None, help="Interface to listen on (default: server.host, 0.0.0.0).")
@click.option("--port", type=int, default=None, help="HTTP port (default: server.port, 8080).")
def serve(config_path: str | None, host: str | None, port: int | None) -> None:
    """Start the server: caller page at /, WebRTC signaling at /api/offer, call records, /metrics."""
    settings = settings_or_exit(config_path)
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    _quiet_pipecat(settings.log_level)

    from dialogs.db.engine import DatabaseError
    from dialogs.domain.loader import DomainError
    from voicebot.models import ModelError
    from voicebot.runtime import Runtime

    click.echo("voicebot: loading models and the dialog engine …", err=True)
    try:
        runtime = Runtime.load(settings)
    except (ModelError, DatabaseError, DomainError) as exc:
        click.echo(f"voicebot: {exc}", err=True)
        sys.exit(2)

    from voicebot.transfer.desk import no_agents_warning

    if (nobody := no_agents_warning(settings)) is not None:
        click.echo(f"voicebot: warning: {nobody}", err=True)
    import uvicorn

    from voicebot.server.app import create_app
    from voicebot.server.sip import serve_with_sip
    from voicebot.transfer import TransferService

    bind_host = host or settings.server.host
    bind_port = port or settings.server.port
    transfer = TransferService.from_runtime(runtime)  # None without agents: and queues:
    app = create_app(runtime, transfer)
    config = uvicorn.Config(app, host=bind_host, port=bind_port, log_level=settings.log_level.lower(),
                            **proxy_options(settings.http))
    click.echo(f"voicebot: serving on http://{bind_host}:{bind_port}/", err=True)
    try:
        asyncio.run(serve_with_sip(uvicorn.Server(config), runtime, transfer))
    except KeyboardInterrupt:
        pass  # Ctrl-C is how a person stops the server: not an error
    finally:
        runtime.close()
    click.echo("voicebot: stopped", err=True)


def proxy_options(http: HttpConfig) -> dict[str, Any]:
    """uvicorn's forwarded-header options: X-Forwarded-For/-Proto believed only from ``http.trusted_proxies``.

    uvicorn's own default trusts 127.0.0.1, so anything on the host could claim any client address."""
    if not http.trusted_proxies:
        return {"proxy_headers": False}
    return {"proxy_headers": True, "forwarded_allow_ips": list(http.trusted_proxies)}


def _quiet_pipecat(level: str) -> None:
    """Pipecat logs through loguru at DEBUG by default: far too much for a server log."""
    from loguru import logger

    logger.remove()
    logger.add(sys.stderr, level="DEBUG" if level == "DEBUG" else "WARNING")
