"""``voicebot users``: add, list, passwd, remove against a real SQLite file, and the errors a user can make."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from voicebot.cli import cli
from voicebot.users import UserStore


@pytest.fixture()
def config(tmp_path: Path) -> str:
    path = tmp_path / "voicebot.yaml"
    path.write_text(f"database:\n  url: sqlite:///{tmp_path / 'voicebot.db'}\n")
    UserStore.from_url(f"sqlite:///{tmp_path / 'voicebot.db'}").engine.dispose()  # the bot's database exists
    return str(path)


def run(config: str, *args: str, stdin: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["users", *args, "--config", config], input=stdin)
    return result.exit_code, result.output


def test_round_trip_add_list_login_passwd_remove(config: str, tmp_path: Path) -> None:
    code, out = run(config, "add", "ann", "--role", "admin", "--password-stdin", stdin="first pw\n")
    assert code == 0, out
    code, out = run(config, "add", "ali", "--role", "agent", "--agent-id", "alice", "--password-stdin",
                    stdin="agent-pw\n")
    assert code == 0 and "agent alice" in out, out
    code, out = run(config, "list")
    assert code == 0
    assert out.splitlines()[0] == f"Database: sqlite:///{tmp_path / 'voicebot.db'}"
    assert [line.split() for line in out.splitlines()[1:]] == [["ali", "agent", "alice"], ["ann", "admin"]]

    store = UserStore.from_url(f"sqlite:///{tmp_path / 'voicebot.db'}")
    # The line's newline is not part of the password; the spaces inside it are.
    assert store.check_password("ann", "first pw") is not None
    session = store.login("ann", "first pw")
    assert session is not None and store.session_user(session.token) is not None

    code, out = run(config, "passwd", "ann", "--password-stdin", stdin="second\n")
    assert code == 0, out
    assert store.check_password("ann", "first pw") is None and store.check_password("ann", "second") is not None
    assert store.session_user(session.token) is None  # a new password ends the old sessions

    code, out = run(config, "remove", "ali")
    assert code == 0, out
    assert [u.username for u in store.list()] == ["ann"]


@pytest.mark.parametrize(
    ("args", "stdin", "code", "message"),
    [
        (["add", "bob", "--role", "boss", "--password-stdin"], "pw\n", 2, "'boss' is not one of"),
        (["add", "bob", "--role", "agent", "--password-stdin"], "\n", 2, "password is empty"),
        (["add", "bob", "--role", "agent"], None, 2, "--password-stdin"),  # no terminal to ask at
        (["add", "bad name", "--role", "agent", "--password-stdin"], "pw\n", 1, "without spaces"),
        (["remove", "nobody"], None, 1, "no user 'nobody'"),
        (["passwd", "nobody", "--password-stdin"], "pw\n", 1, "no user 'nobody'"),
    ],
)
def test_errors_are_messages_not_tracebacks(config: str, args: list[str], stdin: str | None, code: int,
                                            message: str) -> None:
    got, out = run(config, *args, stdin=stdin)
    assert got == code, out
    assert message in out and "Traceback" not in out


def test_an_existing_user_is_not_overwritten(config: str) -> None:
    assert run(config, "add", "ann", "--role", "admin", "--password-stdin", stdin="one\n")[0] == 0
    code, out = run(config, "add", "ann", "--role", "agent", "--password-stdin", stdin="two\n")
    assert code == 1 and "already exists" in out
    assert "admin" in run(config, "list")[1]


def test_at_a_terminal_the_password_is_asked_twice(config: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("voicebot.cli.users._interactive", lambda: True)
    code, out = run(config, "add", "sam", "--role", "supervisor", stdin="abc\nabd\nxyz\nxyz\n")
    assert code == 0, out
    assert out.count("Repeat the password") == 2  # the first, mistyped pair was refused and asked again
    store = UserStore.from_url(f"sqlite:///{Path(config).parent / 'voicebot.db'}")
    assert store.check_password("sam", "xyz") is not None and store.check_password("sam", "abc") is None


def test_a_missing_database_is_not_created_silently(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run in another folder (no voicebot.yaml there), `users add` says which database it would use and that it
    does not exist, instead of creating a new empty one; --create makes it and says where."""
    other = tmp_path / "elsewhere"
    other.mkdir()
    monkeypatch.chdir(other)
    monkeypatch.delenv("VOICEBOT_CONFIG", raising=False)
    monkeypatch.delenv("VOICEBOT_DATABASE__URL", raising=False)
    for args in (["add", "ann", "--role", "admin", "--password-stdin"], ["list"], ["remove", "ann"]):
        result = CliRunner().invoke(cli, ["users", *args], input="pw\n")
        assert result.exit_code == 1, result.output
        assert "sqlite:///voicebot.db does not exist" in result.output and "--create" in result.output
        assert "--config" in result.output and "Traceback" not in result.output
    assert not (other / "voicebot.db").exists()
    result = CliRunner().invoke(cli, ["users", "add", "ann", "--role", "admin", "--password-stdin", "--create"],
                                input="pw\n")
    assert result.exit_code == 0, result.output
    assert "Database: sqlite:///voicebot.db" in result.output and "Added ann" in result.output
    assert UserStore.from_url(f"sqlite:///{other / 'voicebot.db'}").get("ann") is not None


def test_the_password_in_a_database_url_is_not_printed(tmp_path: Path) -> None:
    path = tmp_path / "voicebot.yaml"
    path.write_text("database:\n  url: postgresql+psycopg://bot:s3cret-pw@127.0.0.1:1/voicebot\n")
    code, out = run(str(path), "list")
    assert code == 1 and "Database: postgresql+psycopg://bot:***@127.0.0.1:1/voicebot" in out
    assert "s3cret-pw" not in out and "Traceback" not in out
