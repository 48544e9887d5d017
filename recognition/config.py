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
    #: Largest request body: JSON and anything else, and a multipart upload (a 10 MiB licence
    #: file and the form around it). Larger bodies get ``413`` before or while they are read.
    api_max_body_bytes: int = 64 * 1024
    api_max_upload_bytes: int = 10 * 1024 * 1024 + 64 * 1024

    def body_limit(self, content_type: str) -> int:
        """The body limit for a request of ``content_type`` (its media type, lower case)."""
        return self.api_max_upload_bytes if content_type == "multipart/form-data" else self.api_max_body_bytes
