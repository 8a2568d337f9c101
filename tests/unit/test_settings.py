"""Settings read from JOURNEYSTREAM_* variables: types, ranges, clear errors, hidden secrets."""

from __future__ import annotations

import dataclasses
import gc
from pathlib import Path

import pytest
from pydantic import ValidationError

from streams.assembly import create_app
from streams.settings import Settings, SettingsError


def test_changelog_replication_factor_reaches_faust(tmp_path: Path) -> None:
    env = {"JOURNEYSTREAM_CHANGELOG_REPLICATION_FACTOR": "3"}
    settings = Settings.from_env(env, data_dir=tmp_path / "state")
    app = create_app(settings, autodiscover=False)
    assert app.conf.topic_replication_factor == 3
    default = create_app(Settings.from_env({}, data_dir=tmp_path / "d"), autodiscover=False)
    assert default.conf.topic_replication_factor == 1
    with pytest.raises(SettingsError, match="JOURNEYSTREAM_CHANGELOG_REPLICATION_FACTOR"):
        Settings.from_env({"JOURNEYSTREAM_CHANGELOG_REPLICATION_FACTOR": "0"})


def test_the_gc_threshold_reaches_the_process(tmp_path: Path) -> None:
    before = gc.get_threshold()
    try:
        env = {"JOURNEYSTREAM_GC_YOUNG_THRESHOLD": "12345"}
        create_app(Settings.from_env(env, data_dir=tmp_path / "s"), autodiscover=False)
        assert gc.get_threshold()[0] == 12345
        create_app(Settings.from_env({}, data_dir=tmp_path / "d"), autodiscover=False)
        assert gc.get_threshold()[0] == 50_000
    finally:
        gc.set_threshold(*before)
    with pytest.raises(SettingsError, match="JOURNEYSTREAM_GC_YOUNG_THRESHOLD"):
        Settings.from_env({"JOURNEYSTREAM_GC_YOUNG_THRESHOLD": "0"})


def test_defaults_without_environment() -> None:
    settings = Settings.from_env({})
    assert settings.partitions == 8
    assert settings.clock == "live"
    assert settings.data_dir == Path("var/state")
    assert settings.api_token.get_secret_value() == ""


def test_values_are_converted_to_their_types() -> None:
    env = {
        "JOURNEYSTREAM_PARTITIONS": "3",
        "JOURNEYSTREAM_SESSION_TIMEOUT_S": "2.5",
        "JOURNEYSTREAM_DATA_DIR": "/tmp/x",
        "JOURNEYSTREAM_CLOCK": "event",
        "JOURNEYSTREAM_LOG_LEVEL": "WARN",
    }
    settings = Settings.from_env(env)
    assert settings.partitions == 3
    assert settings.session_timeout_s == 2.5
    assert settings.data_dir == Path("/tmp/x")
    assert settings.clock == "event"
    assert settings.log_level == "warn"  # Faust's choices, any case


def test_overrides_win_over_the_environment() -> None:
    settings = Settings.from_env({"JOURNEYSTREAM_PARTITIONS": "3"}, partitions=5)
    assert settings.partitions == 5


def test_an_unknown_variable_is_named_with_the_nearest_setting() -> None:
    with pytest.raises(SettingsError) as info:
        Settings.from_env({"JOURNEYSTREAM_PARTITONS": "4"})
    message = str(info.value)
    assert "JOURNEYSTREAM_PARTITONS is not a journeystream setting" in message
    assert "did you mean JOURNEYSTREAM_PARTITIONS?" in message


def test_variables_of_the_tools_are_not_settings_errors() -> None:
    env = {"JOURNEYSTREAM_SOAK": "1", "JOURNEYSTREAM_HOST_PORT": "6067", "OTHER_VAR": "x"}
    assert Settings.from_env(env).web_port == 6066


@pytest.mark.parametrize(
    ("variable", "value", "problem"),
    [
        ("JOURNEYSTREAM_PARTITIONS", "four", "valid integer"),
        ("JOURNEYSTREAM_PARTITIONS", "0", "greater than or equal to 1"),
        ("JOURNEYSTREAM_WEB_PORT", "70000", "less than or equal to 65535"),
        ("JOURNEYSTREAM_EXPERIMENT_HOLDOUT", "1.0", "less than 1"),
        ("JOURNEYSTREAM_CLOCK", "wall", "'live' or 'event'"),
        ("JOURNEYSTREAM_LOG_LEVEL", "verbose", "'crit', 'error', 'warn', 'info' or 'debug'"),
        ("JOURNEYSTREAM_SASL_MECHANISM", "GSSAPI", "'PLAIN', 'SCRAM-SHA-256' or 'SCRAM-SHA-512'"),
        ("JOURNEYSTREAM_BROKER", "127.0.0.1:9092", "must look like kafka://host:port"),
        ("JOURNEYSTREAM_SESSION_TIMEOUT_S", "-1", "greater than 0"),
    ],
)
def test_a_bad_value_names_the_variable_the_value_and_the_problem(
    variable: str, value: str, problem: str
) -> None:
    with pytest.raises(SettingsError) as info:
        Settings.from_env({variable: value})
    assert f"{variable}={value!r}: " in str(info.value)
    assert problem in str(info.value)


def test_several_problems_are_reported_together() -> None:
    env = {"JOURNEYSTREAM_PARTITIONS": "x", "JOURNEYSTREAM_CLOCK": "wall"}
    with pytest.raises(SettingsError, match=r"_PARTITIONS='x'.*; JOURNEYSTREAM_CLOCK='wall'"):
        Settings.from_env(env)


def test_secrets_are_never_printed() -> None:
    env = {
        "JOURNEYSTREAM_API_TOKEN": "tok-3141",
        "JOURNEYSTREAM_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "JOURNEYSTREAM_SASL_USERNAME": "journey",
        "JOURNEYSTREAM_SASL_PASSWORD": "pw-2718",
    }
    settings = Settings.from_env(env)
    for text in (repr(settings), str(settings), f"{settings}", settings.model_dump_json()):
        assert "tok-3141" not in text and "pw-2718" not in text
    assert settings.api_token.get_secret_value() == "tok-3141"
    assert settings.sasl_password.get_secret_value() == "pw-2718"
    # a worker process gets the real values through its environment
    assert settings.to_env()["JOURNEYSTREAM_API_TOKEN"] == "tok-3141"
    assert settings.to_env()["JOURNEYSTREAM_SASL_PASSWORD"] == "pw-2718"


def test_a_rejected_secret_is_not_echoed() -> None:
    with pytest.raises(SettingsError) as info:
        Settings(api_token=["tok-3141"])
    assert "JOURNEYSTREAM_API_TOKEN" in str(info.value)
    assert "tok-3141" not in str(info.value)


def test_settings_are_frozen() -> None:
    settings = Settings.from_env({})
    with pytest.raises(ValidationError):
        settings.partitions = 2  # type: ignore[misc]


def test_field_copy_and_dataclasses_replace_keep_working(tmp_path: Path) -> None:
    # how tests/conftest.py and tests/reliability copy settings for another worker, and bench
    base = Settings.from_env({}, api_token="tok", partitions=2)
    fields = {f: getattr(base, f) for f in base.__dataclass_fields__}
    fields.update(web_port=7001, data_dir=tmp_path)
    copy = Settings(**fields)
    assert (copy.partitions, copy.web_port, copy.data_dir) == (2, 7001, tmp_path)
    assert copy.api_token.get_secret_value() == "tok"
    moved = dataclasses.replace(base, web_port=7002)
    assert isinstance(moved, Settings) and moved.web_port == 7002 and moved.partitions == 2
    with pytest.raises(SettingsError, match="JOURNEYSTREAM_WEB_PORT=0"):
        dataclasses.replace(base, web_port=0)  # validated like any other construction
    assert [f.name for f in dataclasses.fields(base)][:3] == ["broker", "app_id", "data_dir"]


def test_to_env_round_trips_through_from_env() -> None:
    settings = Settings.from_env({}, api_token="tok", clock="event", partitions=3)
    assert Settings.from_env(settings.to_env()) == settings
