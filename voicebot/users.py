"""Who may log in: users (scrypt password hashes), their sessions, and the audit log of opened calls.

The tables live in the main database, next to the call records (the dialog engine's SQLAlchemy
engine), so a supervisor's login survives a restart and the audit log is kept with the data it
is about. A session token is only ever stored as its SHA-256: a copy of the database does not
let anyone log in.
"""

from __future__ import annotations

import builtins  # UserStore.list shadows list in the class body (annotations)
import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import DateTime, Engine, ForeignKey, Integer, String, create_engine, delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column, sessionmaker

from voicebot.storage.models import Base

ROLES = ("admin", "supervisor", "agent")
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
SALT_BYTES = 16
MAX_NAME = 64
MAX_PASSWORD = 1024  # scrypt of a megabyte-long "password" is a cheap denial of service


class UserError(ValueError):
    """A user cannot be created or changed as asked; the message says why (shown to the user as is)."""


class UserRow(Base):
    __tablename__ = "voicebot_users"

    username: Mapped[str] = mapped_column(String(MAX_NAME), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))
    agent_id: Mapped[str | None] = mapped_column(String(MAX_NAME), nullable=True)
    password_hash: Mapped[str] = mapped_column(String(256))
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class SessionRow(Base):
    __tablename__ = "voicebot_sessions"

    token_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    username: Mapped[str] = mapped_column(
        String(MAX_NAME), ForeignKey("voicebot_users.username", ondelete="CASCADE"), index=True)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class AuditRow(Base):
    __tablename__ = "voicebot_audit"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    username: Mapped[str] = mapped_column(String(MAX_NAME), index=True)  # kept after the user is removed
    action: Mapped[str] = mapped_column(String(32))
    call_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    detail: Mapped[str | None] = mapped_column(String(128), nullable=True)  # e.g. the client address of a login


@dataclass(frozen=True)
class User:
    username: str
    role: str
    agent_id: str | None  # the agent this login speaks for (agents: defaults to the username)

    def as_dict(self) -> dict[str, Any]:
        return {"username": self.username, "role": self.role, "agent_id": self.agent_id}


@dataclass(frozen=True)
class LoginSession:
    token: str  # the only copy of the token: give it to the client, it is not stored
    user: User
    expires: datetime


def hash_password(password: str) -> str:
    """A salted scrypt hash ``scrypt$n$r$p$salt_hex$hash_hex`` of ``password`` (never the password itself)."""
    salt = secrets.token_bytes(SALT_BYTES)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    """True when ``password`` matches the hash ``stored`` (constant-time compare; False if malformed)."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = bytes.fromhex(digest)
        got = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p),
                             dklen=len(expected))
    except (ValueError, MemoryError):
        return False
    return hmac.compare_digest(got, expected)


# A fixed hash to check against when the username is unknown, so a login for a missing user costs
# the same time as one with a wrong password (no user enumeration by timing).
_DUMMY_HASH = hash_password(secrets.token_urlsafe(16))


def _sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _aware(dt: datetime) -> datetime:
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)  # SQLite drops the zone; all is UTC


def _utcnow() -> datetime:
    return datetime.now(UTC)


def check_role(role: str) -> str:
    """``role`` if it is one of ROLES, else a UserError listing them."""
    if role not in ROLES:
        raise UserError(f"unknown role {role!r}: use one of {', '.join(ROLES)}")
    return role


def _check_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > MAX_NAME or any(c.isspace() or c in "/?#%\\" for c in name):
        raise UserError(f"a user name is 1 to {MAX_NAME} characters without spaces or / ? # % \\")
    return name


def _check_password(password: str) -> str:
    if not password:
        raise UserError("the password is empty")
    if len(password) > MAX_PASSWORD:
        raise UserError(f"the password is longer than {MAX_PASSWORD} characters")
    return password


class UserStore:
    """Users, sessions and the audit log in a SQLAlchemy database. All methods are sync (may block).

    ``clock`` returns the current time (aware, UTC); tests inject one to expire sessions.
    """

    def __init__(self, engine: Engine, session_hours: float = 12.0,
                 clock: Callable[[], datetime] = _utcnow):
        self.engine = engine
        self.session_hours = session_hours
        self.clock = clock
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> UserStore:
        """A store on its own engine (for tools and tests), the database upgraded first (storage.schema)."""
        from voicebot.storage.schema import upgrade

        engine = create_engine(url)
        upgrade(engine)
        return cls(engine, **kwargs)

    # users

    def add(self, username: str, role: str, password: str, agent_id: str | None = None) -> User:
        """Create a user; agents speak for ``agent_id`` (default: their username). UserError if it exists."""
        username = _check_name(username)
        check_role(role)
        _check_password(password)
        if agent_id is not None:
            agent_id = _check_name(agent_id)
        elif role == "agent":
            agent_id = username
        row = UserRow(username=username, role=role, agent_id=agent_id, password_hash=hash_password(password),
                      created=self.clock())
        try:
            with self._sessions.begin() as s:
                if s.get(UserRow, username) is not None:
                    raise UserError(f"user {username!r} already exists")
                s.add(row)
        except IntegrityError:  # added by someone else between the check and the insert
            raise UserError(f"user {username!r} already exists") from None
        return User(username, role, agent_id)

    def get(self, username: str) -> User | None:
        with self._sessions() as s:
            row = s.get(UserRow, username)
            return None if row is None else User(row.username, row.role, row.agent_id)

    def list(self) -> list[User]:
        """Every user, by name."""
        with self._sessions() as s:
            return [User(r.username, r.role, r.agent_id) for r in s.scalars(select(UserRow).order_by(UserRow.username))]

    def overview(self) -> builtins.list[dict[str, Any]]:
        """Every user, by name, as ``User.as_dict()`` plus ``created`` and ``last_login`` (ISO times; the
        last login is read from the audit log, None when there is none)."""
        last = (select(AuditRow.username, func.max(AuditRow.at)).where(AuditRow.action == "login")
                .group_by(AuditRow.username))
        with self._sessions() as s:
            logins = {name: at for name, at in s.execute(last)}
            rows = s.scalars(select(UserRow).order_by(UserRow.username))
            return [{**User(r.username, r.role, r.agent_id).as_dict(), "created": _aware(r.created).isoformat(),
                     "last_login": _aware(logins[r.username]).isoformat() if r.username in logins else None}
                    for r in rows]

    def remove(self, username: str) -> None:
        """Delete a user and end their sessions. UserError if there is no such user."""
        with self._sessions.begin() as s:
            row = s.get(UserRow, username)
            if row is None:
                raise UserError(f"no user {username!r}")
            s.execute(delete(SessionRow).where(SessionRow.username == username))
            s.delete(row)

    def set_password(self, username: str, password: str, keep_token: str | None = None) -> None:
        """Change a password and end every session of the user (a stolen session dies with the old password),
        except the session ``keep_token`` (the one a user changes their own password from)."""
        _check_password(password)
        with self._sessions.begin() as s:
            row = s.get(UserRow, username)
            if row is None:
                raise UserError(f"no user {username!r}")
            row.password_hash = hash_password(password)
            ended = delete(SessionRow).where(SessionRow.username == username)
            if keep_token:
                ended = ended.where(SessionRow.token_sha256 != _sha256(keep_token))
            s.execute(ended)

    def check_password(self, username: str, password: str) -> User | None:
        """The user if ``password`` is theirs, else None (same cost whether or not the user exists)."""
        with self._sessions() as s:
            row = s.get(UserRow, username)
            stored = row.password_hash if row is not None else _DUMMY_HASH
            ok = verify_password(password[:MAX_PASSWORD], stored)
            return User(row.username, row.role, row.agent_id) if ok and row is not None else None

    # sessions

    def login(self, username: str, password: str) -> LoginSession | None:
        """A new session for correct credentials, else None."""
        user = self.check_password(username, password)
        if user is None:
            return None
        token = secrets.token_urlsafe(32)
        now = self.clock()
        expires = now + timedelta(hours=self.session_hours)
        with self._sessions.begin() as s:
            # Expired sessions are swept here rather than by a timer: logins are rare, so this is cheap.
            s.execute(delete(SessionRow).where(SessionRow.expires < now))
            s.add(SessionRow(token_sha256=_sha256(token), username=user.username, created=now, expires=expires))
        return LoginSession(token=token, user=user, expires=expires)

    def session_user(self, token: str | None) -> User | None:
        """The user of a live session token; None for a missing, unknown or expired token."""
        if not token or len(token) > 256:
            return None
        with self._sessions() as s:
            sess = s.get(SessionRow, _sha256(token))
            if sess is None or _aware(sess.expires) <= self.clock():
                return None
            row = s.get(UserRow, sess.username)
            return None if row is None else User(row.username, row.role, row.agent_id)

    def logout(self, token: str | None) -> None:
        """End a session (no error if it is unknown)."""
        if not token:
            return
        with self._sessions.begin() as s:
            s.execute(delete(SessionRow).where(SessionRow.token_sha256 == _sha256(token)))

    # audit

    def audit(self, username: str, action: str, call_id: str | None = None, detail: str | None = None) -> None:
        """Record that ``username`` did ``action`` (``open_call``, ``listen``, ``login`` ...) on ``call_id``, now."""
        with self._sessions.begin() as s:
            s.add(AuditRow(at=self.clock(), username=username[:MAX_NAME], action=action[:32], call_id=call_id,
                           detail=detail[:128] if detail else None))

    def audit_log(self, limit: int = 100, offset: int = 0, username: str | None = None,
                  call_id: str | None = None, action: str | None = None) -> builtins.list[dict[str, Any]]:
        """Audit rows, newest first, optionally of one user, one call or one action."""
        query = select(AuditRow).order_by(AuditRow.id.desc())
        if username:
            query = query.where(AuditRow.username == username)
        if call_id:
            query = query.where(AuditRow.call_id == call_id)
        if action:
            query = query.where(AuditRow.action == action)
        with self._sessions() as s:
            return [{"id": r.id, "at": _aware(r.at).isoformat(), "username": r.username, "action": r.action,
                     "call_id": r.call_id, "detail": r.detail} for r in s.scalars(query.limit(limit).offset(offset))]
