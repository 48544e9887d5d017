"""Configuration from the environment (pydantic-settings). Nothing secret lives in the code.

Every variable is prefixed ``HUB_``; see the README for the full list.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HUB_", extra="ignore")

    #: Where the hub keeps files of its own (SQLite database, local store, staging, sandboxes).
    home: Path = Field(default=REPO_ROOT / "var")
    #: The hub's state database (SQLAlchemy URL). SQLite file by default, PostgreSQL in CI and compose.
    db_url: str = ""
    #: The licence object store: ``file:///path`` (local backend) or ``minio://host:port/bucket``.
    store_url: str = ""
    #: Days staged and quarantined copies holding personal data are kept before purge.
    retention_days: int = 30
    #: Timezone department systems use for naive local timestamps.
    source_timezone: str = "Asia/Shanghai"

    def resolved_db_url(self) -> str:
        if self.db_url:
            return self.db_url
        return f"sqlite:///{self.home / 'hub.db'}"

    def resolved_store_url(self) -> str:
        if self.store_url:
            return self.store_url
        return f"file://{self.home / 'store'}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    settings = Settings()
    settings.home.mkdir(parents=True, exist_ok=True)
    return settings


def reset_settings() -> None:
    """Forget cached settings (tests change the environment between cases)."""
    get_settings.cache_clear()
