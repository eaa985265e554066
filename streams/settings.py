"""One settings object for every process, read from ``FRAUD_*`` environment variables.

Local servers started by ``fraudstream infra up`` are the default. Pointing
``FRAUD_KAFKA_BOOTSTRAP`` or ``FRAUD_REDIS_URL`` elsewhere makes every command use those
servers and stops ``infra up`` from starting local ones.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote, urlencode

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["ANALYST_NAME", "LOCAL_KAFKA_PORT", "LOCAL_REDIS_PORT", "Settings", "get_settings"]

LOCAL_KAFKA_PORT = 19092
LOCAL_REDIS_PORT = 16379
_LOCAL_REDIS_PASSWORD = "fraudstream-local"  # noqa: S105 - loopback-only dev server


#: A review-console sign-in name: it becomes the labels' ``analyst_id`` (an Identifier).
ANALYST_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")


def _default_cache_dir() -> Path:
    return Path.home() / ".cache" / "fraudstream"


class Settings(BaseSettings):
    """Every knob, with defaults that run the whole system on this machine."""

    # hide_input_in_errors: a refused setting must not print the others (passwords) back
    model_config = SettingsConfigDict(
        env_prefix="FRAUD_", env_file=".env", extra="ignore", hide_input_in_errors=True
    )

    # --- Kafka -----------------------------------------------------------------------
    kafka_bootstrap: str | None = Field(
        default=None,
        description="host:port list of an external cluster; unset means the local broker.",
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        default=None, description="Required with SASL_*; SCRAM-SHA-512 is the recommended one."
    )
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_ca_location: Path | None = Field(
        default=None, description="CA (PEM) that signed the brokers' certificates; unset: system."
    )
    kafka_ssl_certificate_location: Path | None = Field(
        default=None, description="Client certificate chain (PEM), for brokers that ask (mTLS)."
    )
    kafka_ssl_key_location: Path | None = Field(
        default=None, description="The client certificate's private key (PEM)."
    )
    kafka_ssl_key_password: SecretStr | None = Field(
        default=None, description="Passphrase of an encrypted client private key."
    )
    kafka_ssl_endpoint_identification: Literal["https", "none"] = Field(
        default="https", description="Check the broker's name against its certificate."
    )
    local_kafka_listener: Literal["plaintext", "sasl_ssl"] = Field(
        default="plaintext",
        description="Client listener of the local broker; sasl_ssl: SCRAM over TLS only.",
    )
    local_kafka_ssl_certificate_location: Path | None = Field(
        default=None, description="sasl_ssl local broker: its certificate chain (PEM)."
    )
    local_kafka_ssl_key_location: Path | None = Field(
        default=None, description="sasl_ssl local broker: its private key (PEM, unencrypted)."
    )

    # --- Redis -----------------------------------------------------------------------
    redis_url: SecretStr | None = Field(
        default=None, description="redis:// URL of an external server; unset means local."
    )
    redis_username: str = Field(
        default="fraudstream", description="ACL user of the local Redis (the default user is off)."
    )
    redis_password: SecretStr = SecretStr(_LOCAL_REDIS_PASSWORD)
    redis_tls: bool = Field(
        default=False, description="rediss://: TLS to Redis (the local one listens with TLS only)."
    )
    redis_tls_ca_location: Path | None = Field(
        default=None, description="CA bundle that signed the Redis server's certificate."
    )
    redis_tls_cert_location: Path | None = Field(
        default=None, description="Client certificate, when the server asks for one."
    )
    redis_tls_key_location: Path | None = Field(default=None, description="Its private key.")
    local_redis_tls_cert_file: Path | None = Field(
        default=None, description="`infra up` with redis_tls: the local server's certificate."
    )
    local_redis_tls_key_file: Path | None = Field(
        default=None, description="`infra up` with redis_tls: the local server's private key."
    )

    # --- Topics ----------------------------------------------------------------------
    topic_transactions: str = "transactions"
    topic_decisions: str = "decisions"
    topic_labels: str = "labels"
    topic_dlq: str = "transactions-dlq"
    topic_model_updates: str = "model-updates"
    partitions: int = Field(default=6, ge=1)
    replication_factor: int = Field(default=1, ge=1)
    retention_ms: int = Field(default=7 * 24 * 3600 * 1000, ge=-1)

    # --- Scoring ---------------------------------------------------------------------
    model_dir: Path | None = Field(
        default=None, description="Model folder with manifest.json; unset: <state_dir>/model."
    )
    rules_file: Path | None = Field(
        default=None, description="Rules YAML; unset: the packaged default rules."
    )
    lateness_ms: int = Field(default=300_000, ge=0, description="Allowed out-of-order lateness.")
    future_tolerance_ms: int = Field(
        default=3_600_000, ge=0, description="Events further in the future go to the DLQ."
    )
    dedupe_horizon_ms: int = Field(
        default=300_000, ge=0, description="In-process memory of first decisions; Redis beyond."
    )
    redis_timeout_ms: int = Field(default=50, ge=1)
    model_budget_ms: int = Field(default=25, ge=1)
    decision_ttl_s: int = Field(
        default=3600, ge=1, description="Redis decision cache (~1.3 KB a decision) lifetime."
    )
    input_batch_size: int = Field(default=500, ge=1)
    gc_gen0_threshold: int = Field(
        default=10_000,
        ge=0,
        description="Scorer: allocations between gen-0 GC runs (0: Python's default, 700).",
    )
    gc_freeze_interval_s: float = Field(
        default=1.0,
        ge=0.0,
        description="Scorer: move live objects out of GC's reach this often (0: never).",
    )
    snapshot_interval_s: float = Field(default=5.0, gt=0)
    challenger_traffic_share: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description="Share of users (stable hash of user_id) the challenger decides (A/B).",
    )
    online_weight: float = Field(
        default=0.2,
        ge=0.0,
        le=1.0,
        description="Weight of the online (river) model in the blended score; 0 ignores it",
    )

    # --- Models ----------------------------------------------------------------------
    registry_dir: Path | None = Field(
        default=None, description="Model registry root; unset: <state_dir>/registry."
    )
    block_target_precision: float = Field(
        default=0.8, gt=0.0, le=1.0, description="Precision the BLOCK threshold must reach."
    )
    review_share: float = Field(
        default=0.01, gt=0.0, lt=1.0, description="Share of traffic the analysts can REVIEW."
    )

    # --- Feedback loop ---------------------------------------------------------------
    feedback_app_id: str = Field(
        default="fraudstream-feedback", description="Faust app id: consumer group and state names."
    )
    feedback_metrics_port: int = Field(
        default=9200, description="/metrics of the feedback service."
    )
    feedback_batch_size: int = Field(default=500, ge=1, description="Records per feedback batch.")
    feedback_batch_within_s: float = Field(
        default=0.5, gt=0, description="Longest wait to fill a feedback batch."
    )
    online_publish_every: int = Field(
        default=200, ge=1, description="Publish the online model after this many new labels..."
    )
    online_publish_interval_s: float = Field(
        default=30.0, gt=0, description="...or this long after the last publish, if it learned."
    )
    merchant_refresh_interval_s: float = Field(
        default=60.0, gt=0, description="Rewrite merchant label records as their windows slide."
    )
    retrain_cron: str = Field(
        default="0 3 * * 1", description="When the feedback service retrains (cron, UTC)."
    )
    retrain_history: Path | None = Field(
        default=None, description="Labelled history file the retrain adds to the offline store."
    )
    retrain_label_delay: timedelta = Field(
        default=timedelta(days=7), description="Label delay applied to retrain_history."
    )
    feedback_clock_start: datetime | None = Field(
        default=None, description="Drills and tests: run the retrain schedule from this instant."
    )
    offline_store_dir: Path | None = Field(
        default=None,
        description="Labelled examples (Parquet by date); unset: <state_dir>/offline-store.",
    )

    # --- Analyst review console (served by the feedback service) -------------------------
    console_enabled: bool = Field(
        default=True, description="`fraudstream feedback` serves the review console."
    )
    console_host: str = Field(default="127.0.0.1", description="Bind address of the console.")
    console_port: int = Field(default=8088, ge=0, le=65535, description="Port of the console.")
    console_analysts: dict[str, SecretStr] = Field(
        default_factory=dict,
        description='Who may sign in: JSON {"name": "<argon2 hash>"}, from '
        "`fraudstream console hash-password`.",
    )
    console_secret: SecretStr | None = Field(
        default=None,
        description="Key signing session cookies; unset: a random one (sign-ins end on restart).",
    )
    console_secure_cookies: bool = Field(
        default=False, description="Send the session cookie over HTTPS only (behind TLS)."
    )
    console_session_hours: float = Field(
        default=8.0, gt=0, description="An analyst's sign-in lasts this long."
    )
    console_queue_decisions: list[Literal["REVIEW", "BLOCK"]] = Field(
        default=["REVIEW", "BLOCK"], description="Decisions that enter the review queue."
    )
    console_queue_name: str = Field(
        default="default",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
        description="Names the review queue in Redis: teams or environments sharing one Redis.",
    )
    console_queue_max: int = Field(
        default=10_000, ge=1, description="Most cases kept in the queue; the oldest leave first."
    )
    console_case_ttl_s: int = Field(
        default=7 * 86400, ge=60, description="How long a case stays viewable in Redis."
    )
    console_user_history: int = Field(
        default=20, ge=0, description="Recent decisions kept per user for the case view."
    )

    # --- Observability ---------------------------------------------------------------
    metrics_host: str = Field(
        default="127.0.0.1", description="Bind address of /metrics, /healthz and /readyz."
    )
    metrics_port: int = Field(default=9100, description="Port of process 0; process i uses +i.")
    drift_window_s: float = Field(
        default=3600.0, gt=0, description="Sliding window of the drift figures (PSI, nulls)."
    )
    drift_min_rows: int = Field(
        default=1000, ge=1, description="Rows the drift window needs before drift is reported."
    )
    drift_report_interval_s: float = Field(
        default=5.0, gt=0, description="How often drift gauges are recomputed."
    )
    lag_interval_s: float = Field(
        default=5.0, gt=0, description="How often consumer lag is measured."
    )
    retrain_on_drift: bool = Field(
        default=False, description="The feedback service retrains on sustained prediction drift."
    )
    drift_retrain_psi: float = Field(
        default=0.2, gt=0, description="Prediction PSI above which drift counts as sustained..."
    )
    drift_retrain_after_s: float = Field(
        default=1800.0, gt=0, description="...when every report stays above it this long."
    )
    drift_retrain_cooldown_s: float = Field(
        default=86400.0, ge=0, description="Least time between two drift-triggered retrains."
    )
    log_level: str = "INFO"

    # --- Local servers ---------------------------------------------------------------
    state_dir: Path = Path(".fraudstream")
    cache_dir: Path = Field(default_factory=_default_cache_dir)
    kafka_version: str = "4.1.1"
    local_kafka_port: int = LOCAL_KAFKA_PORT
    local_redis_port: int = LOCAL_REDIS_PORT
    startup_timeout_s: float = 90.0

    @field_validator("console_analysts")
    @classmethod
    def _analysts_have_hashes(cls, analysts: dict[str, SecretStr]) -> dict[str, SecretStr]:
        """Refuse a plain password or a name a Label cannot carry, before anyone signs in."""
        for name, hashed in analysts.items():
            if not ANALYST_NAME.fullmatch(name):
                raise ValueError(
                    f"analyst name {name!r}: use 1-64 letters, digits and . _ @ - "
                    "(it becomes the labels' analyst_id)"
                )
            if not hashed.get_secret_value().startswith("$argon2"):
                raise ValueError(
                    f"analyst {name}: the value must be an argon2 hash from "
                    "`fraudstream console hash-password`, never the password itself"
                )
        return analysts

    @field_validator("retrain_label_delay", mode="before")
    @classmethod
    def _short_duration(cls, value: Any) -> Any:
        """Accept ``7d`` / ``12h`` / ``1d12h`` like the CLI, besides ISO 8601 and seconds."""
        if not isinstance(value, str) or not value[:1].isdigit():
            return value
        if value.isdigit():
            return int(value)
        from models.exceptions import TrainingError
        from models.pit import parse_duration

        try:
            return parse_duration(value)
        except TrainingError as exc:  # pydantic reports ValueErrors as validation errors
            raise ValueError(str(exc)) from None

    @model_validator(mode="after")
    def _kafka_security_is_coherent(self) -> Settings:
        """Refuse at startup a Kafka security setup that would fail, or silently not apply."""
        from streams._kafka_security import kafka_security_problems

        problems = kafka_security_problems(self)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def resolved_model_dir(self) -> Path:
        """Where the scorer loads its model from."""
        return self.model_dir or self.state_dir / "model"

    @property
    def resolved_registry_dir(self) -> Path:
        """Root of the model registry (one folder per version plus ``aliases.json``)."""
        return self.registry_dir or self.state_dir / "registry"

    @property
    def resolved_offline_store_dir(self) -> Path:
        """Root of the offline store of joined labels (training data for retraining)."""
        return self.offline_store_dir or self.state_dir / "offline-store"

    @property
    def feedback_dir(self) -> Path:
        """The feedback service's local state: Faust's RocksDB tables and its checkpoint."""
        return self.state_dir / "feedback"

    @property
    def kafka_is_local(self) -> bool:
        """True when commands should use (and may start) the local broker."""
        return self.kafka_bootstrap is None

    @property
    def redis_is_local(self) -> bool:
        """True when commands should use (and may start) the local Redis."""
        return self.redis_url is None

    @property
    def bootstrap_servers(self) -> str:
        """The bootstrap list every Kafka client uses."""
        return self.kafka_bootstrap or f"127.0.0.1:{self.local_kafka_port}"

    @property
    def redis_dsn(self) -> str:
        """The Redis URL every client uses (contains the password: never log it).

        Local: ``redis[s]://USER:PASSWORD@127.0.0.1:PORT/0``. With ``redis_tls`` the
        scheme is ``rediss`` and the CA and client certificate ride along as query
        arguments redis-py understands, so any client built from this URL gets them.
        """
        if self.redis_url is not None:
            url = self.redis_url.get_secret_value()
        else:
            user = quote(self.redis_username, safe="")
            password = quote(self.redis_password.get_secret_value(), safe="")
            url = f"redis://{user}:{password}@127.0.0.1:{self.local_redis_port}/0"
        if not self.redis_tls:
            return url
        if url.startswith("redis://"):
            url = "rediss://" + url.removeprefix("redis://")
        tls = {
            "ssl_ca_certs": self.redis_tls_ca_location,
            "ssl_certfile": self.redis_tls_cert_location,
            "ssl_keyfile": self.redis_tls_key_location,
        }
        query = urlencode({name: str(path) for name, path in tls.items() if path is not None})
        if not query:
            return url
        return url + ("&" if "?" in url else "?") + query

    def kafka_config(self, **overrides: Any) -> dict[str, Any]:
        """The librdkafka configuration shared by producers, consumers and the admin client."""
        conf: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap_servers,
            "security.protocol": self.kafka_security_protocol,
        }
        if self.kafka_sasl_mechanism:
            conf["sasl.mechanism"] = self.kafka_sasl_mechanism
        if self.kafka_sasl_username:
            conf["sasl.username"] = self.kafka_sasl_username
        if self.kafka_sasl_password is not None:
            conf["sasl.password"] = self.kafka_sasl_password.get_secret_value()
        if self.kafka_security_protocol in ("SSL", "SASL_SSL"):
            conf["ssl.endpoint.identification.algorithm"] = self.kafka_ssl_endpoint_identification
        if self.kafka_ssl_ca_location is not None:
            conf["ssl.ca.location"] = str(self.kafka_ssl_ca_location)
        if self.kafka_ssl_certificate_location is not None:
            conf["ssl.certificate.location"] = str(self.kafka_ssl_certificate_location)
        if self.kafka_ssl_key_location is not None:
            conf["ssl.key.location"] = str(self.kafka_ssl_key_location)
        if self.kafka_ssl_key_password is not None:
            conf["ssl.key.password"] = self.kafka_ssl_key_password.get_secret_value()
        conf.update(overrides)
        return conf

    def producer_config(self, **overrides: Any) -> dict[str, Any]:
        """Idempotent, ``acks=all`` producer using the Java-compatible partitioner."""
        return self.kafka_config(
            **{
                "enable.idempotence": True,
                "acks": "all",
                "partitioner": "murmur2_random",
                "linger.ms": 5,
                "compression.type": "lz4",
                **overrides,
            }
        )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
