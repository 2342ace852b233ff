"""``voicebot cluster up --nodes N`` / ``voicebot cluster down``: a cluster on this machine's loopback
(PostgreSQL, Redis, N bot nodes, Kamailio in front) from the Debian packages, for trying and testing."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path

import click

from voicebot.cli.common import config_option

DEFAULT_BASE_DIR = "voicebot-cluster"


@click.group()
def cluster() -> None:
    """Run several bot nodes behind Kamailio with PostgreSQL and Redis on this machine."""


@cluster.command("up")
@click.option("--nodes", type=click.IntRange(1, 32), default=2, show_default=True, help="Bot nodes to start.")
@click.option("--base-dir", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_BASE_DIR,
              show_default=True, help="Folder for the databases, logs, generated configs and cluster.json.")
@click.option("--sip-port", type=click.IntRange(1, 65535), default=None,
              help="Kamailio's SIP port (UDP and TCP); default: a free one.")
@click.option("--json", "as_json", is_flag=True, help="Print the addresses as JSON (as in cluster.json).")
@config_option
def up_command(nodes: int, base_dir: Path, sip_port: int | None, as_json: bool, config_path: str | None) -> None:
    """Start PostgreSQL, Redis, N `voicebot serve` nodes and Kamailio on free loopback ports; wait until all
    answer; print their addresses (also in BASE_DIR/cluster.json). Stop them with `voicebot cluster down`."""
    from voicebot.cluster.launcher import LaunchError, up

    def progress(line: str) -> None:
        click.echo(line, err=True)

    try:
        info = up(nodes, base_dir, Path(config_path) if config_path else None, sip_port=sip_port,
                  progress=progress)
    except LaunchError as exc:
        click.echo(f"voicebot cluster up: {exc}", err=True)
        click.echo("(everything it had started is stopped again)", err=True)
        sys.exit(1)
    if as_json:
        click.echo(json.dumps(asdict(info), indent=2))
        return
    click.echo(f"SIP front (Kamailio): sip:{info.kamailio}")
    for node in info.nodes:
        click.echo(f"{node.node_id}: {node.http}  sip:{node.sip}  pid {node.pid}")
    click.echo(f"PostgreSQL: {info.postgres_url}")
    click.echo(f"Redis: {info.redis_url}")
    click.echo(f"Stop: voicebot cluster down --base-dir {info.base_dir}")


@cluster.command("down")
@click.option("--base-dir", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_BASE_DIR,
              show_default=True, help="The folder `cluster up` used.")
@click.option("--purge", is_flag=True, help="Also delete BASE_DIR: the databases, logs and generated configs.")
def down_command(base_dir: Path, purge: bool) -> None:
    """Stop everything `voicebot cluster up` started from BASE_DIR (also after a failed or interrupted up)."""
    from voicebot.cluster.launcher import LaunchError, down

    try:
        stopped = down(base_dir, purge=purge, progress=lambda line: click.echo(line, err=True))
    except LaunchError as exc:
        click.echo(f"voicebot cluster down: {exc}", err=True)
        sys.exit(1)
    click.echo(f"{stopped} process(es) stopped; " + (f"{base_dir} deleted" if purge else
                                                     f"data and logs stay in {base_dir}"))
