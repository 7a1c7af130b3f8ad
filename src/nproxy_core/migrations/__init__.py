"""Alembic migrations: the only way the schema changes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config

HERE = Path(__file__).resolve().parent


def alembic_config(settings: dict[str, Any]) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    cfg.attributes["settings"] = settings
    return cfg


def upgrade(settings: dict[str, Any], revision: str = "heads") -> None:
    command.upgrade(alembic_config(settings), revision)
