"""``voicebot users add|list|remove|passwd``: who may log in to the agent page, the dashboard and the data APIs.

Users live in the main database (``database.url``); every command says which database it uses, and only
``users add --create`` makes a new SQLite file (a command run in the wrong folder would otherwise fill a new,
empty database nobody logs in against). Passwords are read from standard input with
``--password-stdin`` (one line, for scripts) or asked twice at a terminal; never on the command line,
where they would land in the shell history and the process list.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from voicebot.cli.common import config_option, settings_or_exit
from voicebot.users import ROLES, UserError

if TYPE_CHECKING:
    from voicebot.users import UserStore


def _sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL (None for other databases and in-memory SQLite)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        return None
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database)


def _store(config_path: str | None, create: bool = False) -> UserStore:
    """The user store of the configured database; a clear message and exit 1 if it cannot be opened.

    Says on stderr which database it uses; a missing SQLite file is an error unless ``create``."""
    from sqlalchemy.exc import SQLAlchemyError

    from dialogs.db.engine import Database, DatabaseError, safe_url
    from voicebot.config import find_config
    from voicebot.storage.schema import prepare
    from voicebot.users import UserStore

    settings = settings_or_exit(config_path)
    url = settings.database.url
    file = _sqlite_file(url)
    if file is not None and not file.exists() and not create:
        source = find_config(config_path)
        click.echo(f"voicebot users: the database {safe_url(url)} does not exist ({file.resolve()}; settings "
                   f"from {source or 'the built-in defaults'}). Run the command where the bot's voicebot.yaml is, "
                   "or point at it with --config or VOICEBOT_CONFIG; to start a new database, add --create "
                   "to `voicebot users add`.", err=True)
        sys.exit(1)
    click.echo(f"Database: {safe_url(url)}", err=True)
    try:
        database = Database(url)
        prepare(url, settings.database.auto_upgrade)
        return UserStore(database.engine, session_hours=settings.auth.session_hours)
    except DatabaseError as exc:
        click.echo(str(exc), err=True)
    except SQLAlchemyError as exc:
        click.echo(f"The database {safe_url(url)} cannot be used: {exc.__class__.__name__}: "
                   f"{getattr(exc, 'orig', None) or exc}", err=True)
    sys.exit(1)


def _interactive() -> bool:
    return sys.stdin.isatty()


def _password(from_stdin: bool) -> str:
    """The new password: one line of stdin, or asked twice at a terminal; exits 2 if there is none."""
    if from_stdin:
        line = sys.stdin.readline()
        password = line[:-1] if line.endswith("\n") else line
        password = password[:-1] if password.endswith("\r") else password
    elif _interactive():
        password = click.prompt("Password", hide_input=True, confirmation_prompt="Repeat the password")
    else:
        click.echo("No terminal to ask for the password: pipe it in and add --password-stdin.", err=True)
        sys.exit(2)
    if not password:
        click.echo("The password is empty; nothing changed.", err=True)
        sys.exit(2)
    return password


def _fail(exc: UserError) -> None:
    click.echo(f"voicebot users: {exc}", err=True)
    sys.exit(1)


@click.group()
def users() -> None:
    """Logins for the agent page, the supervisor dashboard and the data APIs.

    Roles: admin (everything, manages users), supervisor (all calls, dashboard, queues), agent (the agent
    page and the calls handed to their agent id).
    """


@users.command("add")
@click.argument("name")
@click.option("--role", required=True, type=click.Choice(ROLES), help="What the user may see and do.")
@click.option("--agent-id", default=None, help="The agent (agents: in voicebot.yaml) this login speaks for; "
              "default for role agent: NAME.")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of standard input.")
@click.option("--create", is_flag=True, help="Create the SQLite database file if it does not exist yet.")
@config_option
def add(name: str, role: str, agent_id: str | None, password_stdin: bool, create: bool,
        config_path: str | None) -> None:
    """Create user NAME."""
    store = _store(config_path, create=create)
    if store.get(name.strip()) is not None:  # say so before asking for a password
        _fail(UserError(f"user {name.strip()!r} already exists (change a password with `voicebot users passwd`)"))
    try:
        user = store.add(name, role, _password(password_stdin), agent_id)
    except UserError as exc:
        _fail(exc)
        return
    click.echo(f"Added {user.username} ({user.role}" + (f", agent {user.agent_id})" if user.agent_id else ")"))


@users.command("list")
@config_option
def list_users(config_path: str | None) -> None:
    """Every user with role and agent id."""
    rows = _store(config_path).list()
    if not rows:
        click.echo("No users yet: add one with `voicebot users add NAME --role admin`.")
        return
    width = max(len(u.username) for u in rows)
    for user in rows:
        click.echo(f"{user.username:<{width}}  {user.role:<10}  {user.agent_id or ''}".rstrip())


@users.command("remove")
@click.argument("name")
@config_option
def remove(name: str, config_path: str | None) -> None:
    """Delete user NAME and end their sessions (the audit log keeps their name)."""
    try:
        _store(config_path).remove(name)
    except UserError as exc:
        _fail(exc)
    click.echo(f"Removed {name}")


@users.command("passwd")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of standard input.")
@config_option
def passwd(name: str, password_stdin: bool, config_path: str | None) -> None:
    """Set the password of user NAME (ends their open sessions)."""
    store = _store(config_path)
    if store.get(name) is None:
        _fail(UserError(f"no user {name!r}"))
    try:
        store.set_password(name, _password(password_stdin))
    except UserError as exc:
        _fail(exc)
    click.echo(f"Changed the password of {name}; their open sessions are ended.")
