"""Logging in from tests: create a user in the server's database, then get its Bearer header or token.

    add_user(db_url_or_engine, "sup", "supervisor")            # password "pw-sup"
    headers = login(base_url, "sup", "pw-sup")                  # {"Authorization": "Bearer ..."}
    token = cookie(base_url, "sup", "pw-sup")                   # the value of the voicebot_session cookie

``base_url`` is "http://127.0.0.1:PORT" or a FastAPI ``TestClient`` (anything with ``.post``).
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any

from sqlalchemy import Engine, create_engine

from voicebot.storage.schema import upgrade
from voicebot.users import UserError, UserStore

_ENGINES: dict[str, Engine] = {}


def _engine(db_url_or_engine: str | Engine | Any) -> Engine:
    if isinstance(db_url_or_engine, Engine):
        return db_url_or_engine
    if isinstance(db_url_or_engine, str):
        if db_url_or_engine not in _ENGINES:
            _ENGINES[db_url_or_engine] = create_engine(db_url_or_engine)
        return _ENGINES[db_url_or_engine]
    engine = getattr(db_url_or_engine, "engine", None)  # a dialogs Database, a CallStore, a UserStore
    if isinstance(engine, Engine):
        return engine
    raise TypeError(f"need a database URL or a SQLAlchemy Engine, not {type(db_url_or_engine).__name__}")


def add_user(db_url_or_engine: str | Engine | Any, name: str, role: str, password: str | None = None,
             agent_id: str | None = None) -> str:
    """Create user ``name`` (password ``"pw-" + name`` unless given) if missing; returns the password."""
    password = password if password is not None else "pw-" + name
    engine = _engine(db_url_or_engine)
    upgrade(engine)  # a fresh database has no tables yet (a server's is upgraded: no-op)
    store = UserStore(engine)
    try:
        store.add(name, role, password, agent_id)
    except UserError as exc:
        if "already exists" not in str(exc):
            raise
        store.set_password(name, password)
    return password


def _post_login(base_url: str | Any, name: str, password: str) -> dict[str, Any]:
    body = {"username": name, "password": password}
    if not isinstance(base_url, str):  # a TestClient
        response = base_url.post("/api/login", json=body)
        assert response.status_code == 200, f"login of {name} failed: {response.status_code} {response.text}"
        # No side effect on the client: a test sends the header it was given, and a later request
        # without it is really anonymous.
        base_url.cookies.delete("voicebot_session")
        return response.json()
    request = urllib.request.Request(base_url.rstrip("/") + "/api/login", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def login(base_url: str | Any, name: str, password: str | None = None) -> dict[str, str]:
    """The ``Authorization`` header of a fresh session of ``name`` (password default ``"pw-" + name``)."""
    token = cookie(base_url, name, password)
    return {"Authorization": f"Bearer {token}"}


def cookie(base_url: str | Any, name: str, password: str | None = None) -> str:
    """The session token of a fresh login of ``name``: the value of the ``voicebot_session`` cookie."""
    return _post_login(base_url, name, password if password is not None else "pw-" + name)["token"]
