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


@cluster.command("kamailio-config")
@click.option("--listen", "listen", required=True, help="HOST:PORT Kamailio listens on for trunks and phones.")
@click.option("--also-listen", multiple=True, help="Another HOST on the same port (e.g. 127.0.0.1 towards nodes "
              "on this host); repeatable.")
@click.option("--advertise", default=None, help="Public address for Record-Route/Via when HOST is private.")
@click.option("--node", "nodes", multiple=True, required=True,
              help="A bot node as ID=HOST:PORT (its SIP address); repeat for each node.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder to write kamailio.cfg and dispatcher.list into.")
@click.option("--tls-port", type=click.IntRange(1, 65535), default=None,
              help="Also take SIP over TLS on this port (needs --tls-config; Debian: kamailio-tls-modules).")
@click.option("--tls-config", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Kamailio's tls.cfg (certificate, key, client verification) for --tls-port.")
@config_option
def kamailio_config(listen: str, also_listen: tuple[str, ...], advertise: str | None, nodes: tuple[str, ...],
                    out: Path, tls_port: int | None, tls_config: Path | None, config_path: str | None) -> None:
    """Write the SIP front's kamailio.cfg and dispatcher.list for bot nodes elsewhere (docker compose, other
    machines); the trusted sources come from voicebot.yaml's trunks (none: loopback only)."""
    from telephony.config import split_hostport
    from voicebot.cli.common import settings_or_exit
    from voicebot.cluster.kamailio import (
        Node,
        dispatcher_list,
        front_config,
        open_registration_warning,
        write_front,
    )

    settings = settings_or_exit(config_path)
    try:
        host, port = split_hostport(listen)
        parsed = []
        for item in nodes:
            node_id, sep, address = item.partition("=")
            if not sep or not node_id:
                raise ValueError(f"expected ID=HOST:PORT, got {item!r}")
            node_host, node_port = split_hostport(address)
            parsed.append(Node(node_id, node_host, node_port, settings.sip.max_calls))
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    if (tls_port is None) != (tls_config is None):
        raise click.BadParameter("--tls-port and --tls-config go together")
    out.mkdir(parents=True, exist_ok=True)
    (out / "dispatcher.list").write_text(dispatcher_list(parsed))
    try:
        # The trunk registration table and the RPC FIFO go into OUT, next to kamailio.cfg.
        cfg = front_config(settings.trunks, settings.agents, host, port, (out / "dispatcher.list").resolve(),
                           out.resolve(), advertise=advertise, also_listen=also_listen, tls_port=tls_port,
                           tls_config=tls_config.resolve() if tls_config else None,
                           node_secret_env=settings.cluster.secret_env)
        click.echo(f"warning: {open_registration_warning(cfg)}", err=True)
        if cfg.outbound:
            click.echo(f"note: the nodes call out through the trunks with the cluster's secret: set "
                       f"{cfg.node_secret_env} to the same value in Kamailio's and every node's environment (unset at "
                       "Kamailio: every call out gets 503, and the calls set up before a restart of Kamailio lose "
                       "their BYE and re-INVITE)", err=True)
        write_front(cfg, out / "kamailio.cfg")
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    click.echo(f"wrote {out / 'kamailio.cfg'} and {out / 'dispatcher.list'} ({len(parsed)} node(s))")
