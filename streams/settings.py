"""One settings object, read from JOURNEYSTREAM_* environment variables (pydantic-settings)."""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict
from pydantic_settings.sources import EnvSettingsSource
from pydantic_settings.sources.utils import parse_env_vars

from journey.abandonment import AbandonmentConfig
from journey.config import JourneyConfig

ENV_PREFIX = "JOURNEYSTREAM_"
# JOURNEYSTREAM_* variables that are not settings: the soak harness's and docker-compose's
NOT_SETTINGS = frozenset(
    ENV_PREFIX + name for name in ("SOAK", "SOAK_SEED", "SOAK_RESULTS", "REPORT", "HOST_PORT")
)


class SettingsError(ValueError):
    """A JOURNEYSTREAM_* variable has a value that cannot be used, or is not a setting."""


class Settings(BaseSettings):
    """Everything a worker, the CLI and the tests configure; field X is env JOURNEYSTREAM_X."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, case_sensitive=False, extra="forbid", frozen=True
    )

    broker: str = "kafka://127.0.0.1:9092"
    app_id: str = Field("journeystream", min_length=1)
    data_dir: Path = Path("./var/state")
    topic_prefix: str = ""
    partitions: int = Field(8, ge=1, le=10_000)
    # replication factor of the topics the worker creates (table changelogs, Faust's leader
    # topic): 1 for the embedded broker and one-node clusters; production clusters use 3
    changelog_replication_factor: int = Field(1, ge=1, le=16)
    web_host: str = "127.0.0.1"
    web_port: int = Field(6066, ge=1, le=65535)
    # host other workers use to reach this one (profile routing); empty: web_host
    advertised_host: str = ""
    api_token: SecretStr = SecretStr("")
    # broker security (passed to Faust as broker_credentials; see streams/security.py)
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "SCRAM-SHA-512"
    sasl_username: str = ""
    sasl_password: SecretStr = SecretStr("")
    ssl_cafile: str = ""
    ssl_certfile: str = ""
    ssl_keyfile: str = ""
    # dead letters keep the original bytes (base64), or only their sha256 and length (hash)
    dead_letter_payload: Literal["original", "hash"] = "original"
    log_level: Literal["crit", "error", "warn", "info", "debug"] = "info"  # Faust's --loglevel
    # broker/consumer timing, tuned for fast start and low latency on a small cluster
    session_timeout_s: float = Field(6.0, gt=0)
    heartbeat_interval_s: float = Field(1.0, gt=0)
    rebalance_timeout_s: float = Field(10.0, gt=0)
    request_timeout_s: float = Field(30.0, gt=0)
    fetch_max_wait_ms: int = Field(50, ge=0, le=60_000)
    producer_linger_ms: int = Field(10, ge=0, le=60_000)
    producer_max_batch_bytes: int = Field(1_048_576, ge=1024)
    commit_interval_s: float = Field(1.0, gt=0)
    batch_max_events: int = Field(5000, ge=1, le=1_000_000)
    batch_within_s: float = Field(0.0, ge=0)
    # allocations between two young collections of Python's cyclic GC (Python's default: 700);
    # at 700 the GC took some 16% of a worker's CPU, mostly full collections (BENCHMARKS.md)
    gc_young_threshold: int = Field(50_000, ge=1)
    # RocksDB memory per partition database (Faust's defaults: 64 MiB x 3 write buffers and a
    # 2 GiB block cache per partition, which let RSS grow with the volume of state written)
    rocksdb_write_buffer_mb: int = Field(16, ge=1, le=4096)
    rocksdb_block_cache_mb: int = Field(16, ge=1, le=65_536)
    # input limits
    max_payload_bytes: int = Field(65_536, ge=1)
    future_tolerance_s: float = Field(300.0, ge=0)
    # events older than their partition's latest event time minus this are dead-lettered late
    late_grace_s: float = Field(7 * 86400.0, ge=0)
    # a customer's late events within this of their newest are re-sequenced exactly
    reorder_window_s: float = Field(3600.0, ge=0)
    # domain defaults
    session_gap_s: float = Field(1800.0, gt=0)
    seed_category_views: int = Field(3, ge=1)
    lapsed_after_s: float = Field(90 * 86400.0, gt=0)
    # the store's time zone: day, week and month boundaries of the operations view (IANA name)
    store_timezone: str = "UTC"
    # how often each worker refreshes the journeystream_kpi_* gauges (the operations view of the
    # current day, week and month over its partitions: a scan of every local customer); 0: off
    kpi_gauges_interval_s: float = Field(60.0, ge=0, le=86400)
    anonymous_id_cap: int = Field(5, ge=0)
    dedupe_window_s: float = Field(86400.0, ge=0)
    cart_abandon_delay_s: float = Field(3600.0, gt=0)
    browse_min_products: int = Field(3, ge=1)
    # time: "live" (event time + wall-clock progress) or "event" (event time only: replays)
    clock: Literal["live", "event"] = "live"
    deadline_tick_s: float = Field(0.25, gt=0)
    rules_file: str = ""
    # share of customers held out of every recommendation strategy (decisions recorded, not sent)
    experiment_holdout: float = Field(0.10, ge=0.0, lt=1.0)
    # how long the co-purchase topic keeps an order (every worker reads it whole at start; an
    # order 6 half-lives old, 180 days at the default 30, weighs under 2% of a new one)
    copurchase_retention_days: float = Field(180.0, gt=0)
    # for the test suite only: "exit_before_outputs" makes the worker exit (code 70) in its first
    # batch with outputs, after the states are stored and before the outputs are sent
    fault: Literal["", "exit_before_outputs"] = ""

    def __init__(self, **values: Any) -> None:
        """Validate `values` over the defaults (no environment: see `from_env`)."""
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise SettingsError(describe(exc)) from None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Only the given values: the environment is read by `from_env`, not by `Settings()`."""
        return (init_settings,)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Build from JOURNEYSTREAM_* variables (then `overrides`); unknown ones are an error."""
        source = os.environ if env is None else env
        check_known(source)
        values = _MappingEnv(cls, source)()
        return cls(**{**values, **overrides})

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower_level(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @field_validator("store_timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("must be an IANA time zone name, e.g. Asia/Shanghai or UTC") from None
        return value

    @field_validator("kpi_gauges_interval_s")
    @classmethod
    def _kpi_interval(cls, value: float) -> float:
        if 0 < value < 1:
            raise ValueError("must be 0 (off) or at least 1 second")
        return value

    @field_validator("broker")
    @classmethod
    def _kafka_url(cls, value: str) -> str:
        if not value.startswith(("kafka://", "aiokafka://")) or not value.split("://", 1)[1]:
            raise ValueError("must look like kafka://host:port (several: kafka://h1:9092;h2:9092)")
        return value

    @model_validator(mode="after")
    def _combination(self) -> Settings:
        self.check()
        return self

    def check(self) -> None:
        """Raise SettingsError for combinations of values that cannot work."""
        if self.session_timeout_s > self.request_timeout_s:
            raise SettingsError(
                "JOURNEYSTREAM_SESSION_TIMEOUT_S cannot exceed JOURNEYSTREAM_REQUEST_TIMEOUT_S"
            )
        if self.security_protocol.startswith("SASL") and not (
            self.sasl_username and self.sasl_password.get_secret_value()
        ):
            raise SettingsError("SASL needs JOURNEYSTREAM_SASL_USERNAME and _SASL_PASSWORD")
        host = self.web_host.strip().strip("[]").rstrip(".").lower()
        try:
            loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
        except ValueError:  # a host name, or empty (every interface)
            loopback = False
        if not self.api_token.get_secret_value() and not loopback:
            raise SettingsError(
                f"JOURNEYSTREAM_WEB_HOST={self.web_host!r} is not a loopback address: set "
                "JOURNEYSTREAM_API_TOKEN, or the profiles and KPIs are open to the network"
            )

    def to_env(self) -> dict[str, str]:
        """These settings as JOURNEYSTREAM_* variables (to start a worker process): secrets too."""
        env = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            env[ENV_PREFIX + name.upper()] = str(value)
        return env

    def journey_config(self) -> JourneyConfig:
        """The pure cores' configuration from these settings (the agent and the references)."""
        settings = self
        return JourneyConfig(
            session_gap_s=settings.session_gap_s,
            seed_category_views=settings.seed_category_views,
            lapsed_after_s=settings.lapsed_after_s,
            timezone=settings.store_timezone,
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


class _MappingEnv(EnvSettingsSource):
    """pydantic-settings' environment source over a given mapping instead of os.environ."""

    def __init__(self, settings_cls: type[BaseSettings], env: Mapping[str, str]) -> None:
        self._env = env
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return parse_env_vars(self._env, self.case_sensitive, self.env_ignore_empty)


def check_known(env: Mapping[str, str]) -> None:
    """Raise SettingsError naming each JOURNEYSTREAM_* variable that is not a setting."""
    known = [ENV_PREFIX + name.upper() for name in Settings.model_fields]
    problems = []
    for name in sorted(env):
        upper = name.upper()
        if upper.startswith(ENV_PREFIX) and upper not in known and upper not in NOT_SETTINGS:
            near = difflib.get_close_matches(upper, known, n=1)
            hint = f" (did you mean {near[0]}?)" if near else ""
            problems.append(f"{name} is not a journeystream setting{hint}")
    if problems:
        listed = " (the settings are the fields of streams/settings.py)"
        raise SettingsError("; ".join(problems) + listed)


def describe(exc: ValidationError) -> str:
    """One line per problem, each naming its variable; a secret's value is never shown."""
    secrets = {n for n, f in Settings.model_fields.items() if f.annotation is SecretStr}
    problems = []
    for error in exc.errors(include_url=False):
        cause = error.get("ctx", {}).get("error")
        message = str(cause) if isinstance(cause, Exception) else error["msg"]
        if not error["loc"]:  # a combination of values (`check`)
            problems.append(message)
            continue
        name = str(error["loc"][0])
        variable = ENV_PREFIX + name.upper()
        if error["type"] == "extra_forbidden":
            problems.append(f"{variable}: not a journeystream setting")
        elif name in secrets:
            problems.append(f"{variable}: {message}")
        else:
            problems.append(f"{variable}={error['input']!r}: {message}")
    return "; ".join(problems)


def _dataclass_view(cls: type[Settings]) -> None:
    """Let dataclasses.fields/replace/asdict work on Settings (tests and bench use them)."""
    mirror = dataclasses.make_dataclass(
        cls.__name__,
        [
            (name, Any, dataclasses.field(default=info.default))
            for name, info in cls.model_fields.items()
        ],
    )
    cls.__dataclass_fields__ = mirror.__dataclass_fields__  # type: ignore[attr-defined]


_dataclass_view(Settings)
