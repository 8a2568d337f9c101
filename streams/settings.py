"""One settings object, read from JOURNEYSTREAM_* environment variables."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from journey.abandonment import AbandonmentConfig
from journey.config import JourneyConfig

ENV_PREFIX = "JOURNEYSTREAM_"


class SettingsError(ValueError):
    """A JOURNEYSTREAM_* variable has a value that cannot be used."""


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything a worker, the CLI and the tests configure; field X is env JOURNEYSTREAM_X."""

    broker: str = "kafka://127.0.0.1:9092"
    app_id: str = "journeystream"
    data_dir: Path = Path("./var/state")
    topic_prefix: str = ""
    partitions: int = 8
    # replication factor of the topics the worker creates (table changelogs, Faust's leader
    # topic): 1 for the embedded broker and one-node clusters; production clusters use 3
    changelog_replication_factor: int = 1
    web_host: str = "127.0.0.1"
    web_port: int = 6066
    # host other workers use to reach this one (profile routing); empty: web_host
    advertised_host: str = ""
    api_token: str = ""
    # broker security (passed to Faust as broker_credentials; see streams/security.py)
    security_protocol: str = "PLAINTEXT"  # PLAINTEXT | SSL | SASL_PLAINTEXT | SASL_SSL
    sasl_mechanism: str = "SCRAM-SHA-512"  # PLAIN | SCRAM-SHA-256 | SCRAM-SHA-512
    sasl_username: str = ""
    sasl_password: str = ""
    ssl_cafile: str = ""
    ssl_certfile: str = ""
    ssl_keyfile: str = ""
    log_level: str = "info"
    # broker/consumer timing, tuned for fast start and low latency on a small cluster
    session_timeout_s: float = 6.0
    heartbeat_interval_s: float = 1.0
    rebalance_timeout_s: float = 10.0
    request_timeout_s: float = 30.0
    fetch_max_wait_ms: int = 50
    producer_linger_ms: int = 10
    producer_max_batch_bytes: int = 1_048_576
    commit_interval_s: float = 1.0
    batch_max_events: int = 5000
    batch_within_s: float = 0.0
    # RocksDB memory per partition database (Faust's defaults: 64 MiB x 3 write buffers and a
    # 2 GiB block cache per partition, which let RSS grow with the volume of state written)
    rocksdb_write_buffer_mb: int = 16
    rocksdb_block_cache_mb: int = 16
    # input limits
    max_payload_bytes: int = 65_536
    future_tolerance_s: float = 300.0
    # events older than their partition's latest event time minus this are dead-lettered late
    late_grace_s: float = 7 * 86400.0
    # a customer's late events within this of their newest are re-sequenced exactly
    reorder_window_s: float = 3600.0
    # domain defaults
    session_gap_s: float = 1800.0
    seed_category_views: int = 3
    lapsed_after_s: float = 90 * 86400.0
    anonymous_id_cap: int = 5
    dedupe_window_s: float = 86400.0
    cart_abandon_delay_s: float = 3600.0
    browse_min_products: int = 3
    # time: "live" (event time + wall-clock progress) or "event" (event time only: replays)
    clock: str = "live"
    deadline_tick_s: float = 0.25
    rules_file: str = ""
    # share of customers held out of every recommendation strategy (decisions recorded, not sent)
    experiment_holdout: float = 0.10

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides: Any) -> Settings:
        """Build from JOURNEYSTREAM_* variables (then `overrides`), converting types."""
        source = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = source.get(ENV_PREFIX + f.name.upper())
            if raw is None:
                continue
            values[f.name] = _convert(f.name, raw, type(getattr(cls(), f.name)))
        values.update(overrides)
        settings = cls(**values)
        settings.check()
        return settings

    def check(self) -> None:
        """Raise SettingsError for values that cannot work."""
        if self.partitions < 1:
            raise SettingsError("JOURNEYSTREAM_PARTITIONS must be >= 1")
        if self.changelog_replication_factor < 1:
            raise SettingsError("JOURNEYSTREAM_CHANGELOG_REPLICATION_FACTOR must be >= 1")
        if not 0 < self.web_port < 65536:
            raise SettingsError("JOURNEYSTREAM_WEB_PORT must be a TCP port")
        if self.rocksdb_write_buffer_mb < 1 or self.rocksdb_block_cache_mb < 1:
            raise SettingsError("JOURNEYSTREAM_ROCKSDB_*_MB must be >= 1")
        if not 0.0 <= self.experiment_holdout < 1.0:
            raise SettingsError("JOURNEYSTREAM_EXPERIMENT_HOLDOUT must be in [0, 1)")
        if self.clock not in ("live", "event"):
            raise SettingsError("JOURNEYSTREAM_CLOCK must be 'live' or 'event'")
        if self.session_timeout_s > self.request_timeout_s:
            raise SettingsError("session timeout cannot exceed request timeout")
        if self.security_protocol not in ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"):
            raise SettingsError(
                "JOURNEYSTREAM_SECURITY_PROTOCOL: PLAINTEXT|SSL|SASL_PLAINTEXT|SASL_SSL"
            )
        if self.security_protocol.startswith("SASL") and not (
            self.sasl_username and self.sasl_password
        ):
            raise SettingsError("SASL needs JOURNEYSTREAM_SASL_USERNAME and _SASL_PASSWORD")
        if not self.broker.startswith(("kafka://", "aiokafka://")):
            raise SettingsError("JOURNEYSTREAM_BROKER must look like kafka://host:port")
        host = self.web_host.strip().strip("[]").rstrip(".").lower()
        try:
            loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
        except ValueError:  # a host name, or empty (every interface)
            loopback = False
        if not self.api_token and not loopback:
            raise SettingsError(
                f"JOURNEYSTREAM_WEB_HOST={self.web_host!r} is not a loopback address: set "
                "JOURNEYSTREAM_API_TOKEN, or the profiles and KPIs are open to the network"
            )

    def to_env(self) -> dict[str, str]:
        """These settings as JOURNEYSTREAM_* variables (to start a worker process)."""
        return {ENV_PREFIX + f.name.upper(): str(getattr(self, f.name)) for f in fields(self)}

    def journey_config(self) -> JourneyConfig:
        """The pure cores' configuration from these settings (the agent and the references)."""
        settings = self
        return JourneyConfig(
            session_gap_s=settings.session_gap_s,
            seed_category_views=settings.seed_category_views,
            lapsed_after_s=settings.lapsed_after_s,
            anonymous_id_cap=settings.anonymous_id_cap,
            dedupe_window_s=settings.dedupe_window_s,
            reorder_window_s=settings.reorder_window_s,
            abandonment=AbandonmentConfig(
                cart_delay_s=settings.cart_abandon_delay_s,
                session_gap_s=settings.session_gap_s,
                browse_min_products=settings.browse_min_products,
            ),
        )

    @property
    def bootstrap_servers(self) -> str:
        """host:port list for plain aiokafka clients."""
        return self.broker.split("://", 1)[1].replace(";", ",")


def _convert(name: str, raw: str, kind: type) -> Any:
    try:
        if kind is bool:
            return raw.strip().lower() in ("1", "true", "yes", "on")
        if kind is int:
            return int(raw)
        if kind is float:
            return float(raw)
        if issubclass(kind, Path):
            return Path(raw)
        return raw
    except ValueError as exc:
        raise SettingsError(f"{ENV_PREFIX}{name.upper()}={raw!r}: {exc}") from exc
