"""An address change said in conversation stores its parts, and the new postcode is what verification checks from
then on (the old one no longer proves who the caller is)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from sqlalchemy import select

from dialogs.db.engine import ensure_database
from dialogs.db.models import Customer
from dialogs.domain import load_domain
from dialogs.engine import DialogEngine, EngineOptions, Turn
from dialogs.nlu import NLU

NOW = datetime(2026, 11, 20, 10, 30)
JANE = "+15551230001"


def test_the_new_postcode_is_what_verification_checks(tmp_path: Path) -> None:
    domain = load_domain(None)
    db = ensure_database(f"sqlite:///{tmp_path / 'bot.db'}", seed_demo=True, now=NOW)
    engine = DialogEngine(domain, NLU.train(domain), db, EngineOptions(), clock=lambda: NOW, seed=7)

    moving = engine.new_call(channel="sip", caller_id=JANE)
    moving.start()
    moving.handle(Turn(text="I moved, please change my address"))
    moving.handle(Turn(text="94107"))
    confirm = moving.handle(Turn(text="21 oak street chicago illinois 60614"))
    assert "21 Oak Street, Chicago, Illinois, 6 0 6 1 4" in confirm.text
    assert "now 21 Oak Street, Chicago, Illinois, 6 0 6 1 4" in moving.handle(Turn(text="yes")).text
    moving.end("caller_hangup")
    with db.session() as s:
        jane = s.scalars(select(Customer).where(Customer.phone == JANE)).one()
        assert (jane.address_line, jane.city, jane.state, jane.postcode) == ("21 Oak Street", "Chicago", "IL", "60614")

    later = engine.new_call(channel="sip", caller_id=JANE)
    later.start()
    later.handle(Turn(text="where is my order 45281"))
    assert "doesn't match" in later.handle(Turn(text="94107")).text  # the old postcode
    assert "verified" in later.handle(Turn(text="60614")).text
