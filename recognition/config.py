"""Settings of the recognition service and the delivery worker (environment, prefix ``HUB_``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from recognition.clientaddr import Networks, parse_networks

#: China's Cybersecurity Law, art. 21: network logs are kept no less than six months.
MIN_AUDIT_RETENTION_DAYS = 183


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

    # Throttling (限流), see recognition.throttle; a rate of 0 means unthrottled.
    #: Where the counters shared by every API process live: empty for a memory-mapped table of their own
    #: on this host (``$HUB_HOME/throttle.shm``, never the hub database), ``redis://host:port/db`` for
    #: every host, ``sqlite:///path`` or ``memory://`` (this process only).
    rate_limit_url: str = ""
    #: Requests per second a consumer's keys may make together, and how many at once (burst).
    #: A consumer's own limit (``hub consumers limits NAME --rate-limit N``) replaces these.
    rate_limit_key_rate: float = Field(default=50.0, ge=0)
    rate_limit_key_burst: int = Field(default=100, ge=1)
    #: Requests per second from one client address (an IPv6 client: its /64), authenticated or not.
    rate_limit_address_rate: float = Field(default=200.0, ge=0)
    rate_limit_address_burst: int = Field(default=400, ge=1)
    #: Client addresses exempt from the per-address limit (CIDRs, comma-separated).
    rate_limit_trusted: Annotated[Networks, NoDecode] = ()
    #: When the shared counters cannot be reached: ``local`` keeps limiting with this process's own
    #: counters (so at most workers × the limit) and logs an error; ``closed`` refuses (503).
    rate_limit_on_backend_error: Literal["local", "closed"] = "local"
    #: Prefix of the Redis keys (several hubs can share one Redis).
    rate_limit_prefix: str = "hub:rl:"
    #: Seconds a request waits for Redis's answer before the throttle falls back
    #: (``rate_limit_on_backend_error``): a slow Redis must not hold requests.
    rate_limit_timeout: float = Field(default=0.05, gt=0)
    #: Reverse proxies whose ``X-Forwarded-For`` is believed (CIDRs, comma-separated); else the TCP peer.
    trusted_proxies: Annotated[Networks, NoDecode] = ()

    # The audit log (审计日志) kept in the database, then archived, see recognition.audit_archive.
    #: Days audit entries stay in the database before the housekeeping DAG archives them; at least 183.
    audit_retention_days: int = 190
    #: Where archive files go (default ``$HUB_HOME/archive/audit``); keep it on durable storage.
    audit_archive_dir: Path | None = None

    # The operator console (/console), see recognition.routers.console.
    #: Minutes a console session lasts after sign-in (then the operator signs in again).
    console_session_minutes: int = Field(default=30, ge=1, le=720)
    #: Airflow's UI, where a feed's last run links to (``make up`` serves it on 8081).
    airflow_ui_url: str = "http://localhost:8081"

    @field_validator("rate_limit_trusted", "trusted_proxies", mode="before")
    @classmethod
    def _networks(cls, value: object) -> Networks:
        if isinstance(value, str):
            return parse_networks(value.split(","))
        if isinstance(value, list | tuple):
            return parse_networks(str(v) for v in value)
        raise ValueError("expected CIDRs, comma-separated")

    @field_validator("audit_retention_days")
    @classmethod
    def _six_months(cls, value: int) -> int:
        if value < MIN_AUDIT_RETENTION_DAYS:
            raise ValueError(
                f"HUB_AUDIT_RETENTION_DAYS={value} is below {MIN_AUDIT_RETENTION_DAYS}: network logs are kept "
                "no less than six months (Cybersecurity Law, art. 21)"
            )
        return value
