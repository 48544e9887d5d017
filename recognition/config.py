"""Settings of the recognition service and the delivery worker (environment, prefix ``HUB_``)."""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


class RecognitionSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HUB_", extra="ignore")

    #: How long a verified API key is trusted without asking the database again (revocation delay).
    api_key_cache_seconds: float = 5.0
    #: Tries before a delivery is dead-lettered.
    delivery_max_attempts: int = 8
    #: First retry after this many seconds, doubling each time, capped at the maximum.
    delivery_backoff_base_seconds: float = 2.0
    delivery_backoff_max_seconds: float = 3600.0
    #: Deliveries handled per worker round, and parallel holder queues.
    delivery_batch_size: int = 500
    delivery_concurrency: int = 16
    webhook_connect_timeout_seconds: float = 3.0
    webhook_read_timeout_seconds: float = 10.0
    #: Days a delivered outbox event stays in the database before housekeeping archives it with its
    #: deliveries under ``$HUB_HOME/archive/outbox`` (never deleted unarchived, see recognition.archive).
    outbox_archive_days: int = 180
    #: Subscriptions declared in YAML (default: ``recognition/subscriptions.yaml``).
    subscriptions_file: Path = Path(__file__).with_name("subscriptions.yaml")
