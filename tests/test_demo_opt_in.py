"""The demo customers (known PINs) are opt-in: a database made from the built-in defaults, as the Docker image
does, holds no customer; the repository's voicebot.yaml (the Quickstart's config) still turns the demo on."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select

from dialogs.db.models import Customer
from dialogs.engine import DialogEngine
from voicebot.config import Settings, load_settings

REPO = Path(__file__).resolve().parent.parent


def customers(engine: DialogEngine) -> int:
    with engine.database.session() as s:
        return int(s.scalar(select(func.count()).select_from(Customer)) or 0)


def test_built_in_defaults_start_an_empty_database(tmp_path: Path) -> None:
    settings = Settings(database={"url": f"sqlite:///{tmp_path / 'prod.db'}"})  # type: ignore[arg-type]
    assert settings.database.seed_demo is False
    engine = DialogEngine.from_settings(settings)
    try:
        assert customers(engine) == 0
    finally:
        engine.database.dispose()


def test_the_quickstart_config_still_seeds_the_demo(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("VOICEBOT_DATABASE__URL", f"sqlite:///{tmp_path / 'demo.db'}")
    settings = load_settings(REPO / "voicebot.yaml")
    assert settings.database.seed_demo is True
    engine = DialogEngine.from_settings(settings)
    try:
        assert customers(engine) > 0
    finally:
        engine.database.dispose()


def test_the_container_does_not_ask_for_the_demo() -> None:
    for name in ("Dockerfile", "docker-compose.yml"):
        lines = [line.split("#")[0] for line in (REPO / name).read_text().splitlines()]
        assert not any("SEED_DEMO" in line for line in lines), name
    # the image copies no voicebot.yaml: it runs on the built-in defaults
    assert "voicebot.yaml" not in " ".join(line for line in (REPO / "Dockerfile").read_text().splitlines()
                                           if line.startswith("COPY"))
