"""Broker credentials built from JOURNEYSTREAM_* settings."""

import os
import ssl
import subprocess
import sys
from pathlib import Path

import pytest
from faust.auth import SASLCredentials, SSLCredentials
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth
from faust.types.auth import AuthProtocol, SASLMechanism

from streams.security import broker_credentials
from streams.settings import Settings, SettingsError


def test_plaintext_has_no_credentials() -> None:
    assert broker_credentials(Settings.from_env({})) is None


def test_sasl_scram_over_tls_reaches_aiokafka() -> None:
    env = {
        "JOURNEYSTREAM_SECURITY_PROTOCOL": "SASL_SSL",
        "JOURNEYSTREAM_SASL_MECHANISM": "SCRAM-SHA-256",
        "JOURNEYSTREAM_SASL_USERNAME": "journey",
        "JOURNEYSTREAM_SASL_PASSWORD": "pa55",
    }
    creds = broker_credentials(Settings.from_env(env))
    assert isinstance(creds, SASLCredentials)
    assert creds.protocol is AuthProtocol.SASL_SSL
    assert creds.mechanism is SASLMechanism.SCRAM_SHA_256
    auth = credentials_to_aiokafka_auth(creds)
    assert auth["security_protocol"] == "SASL_SSL"
    assert auth["sasl_mechanism"] == "SCRAM-SHA-256"
    assert auth["sasl_plain_username"] == "journey" and auth["sasl_plain_password"] == "pa55"
    assert isinstance(auth["ssl_context"], ssl.SSLContext)
    assert "pa55" not in repr(creds)


def test_tls_only() -> None:
    creds = broker_credentials(Settings.from_env({"JOURNEYSTREAM_SECURITY_PROTOCOL": "SSL"}))
    assert isinstance(creds, SSLCredentials)
    assert credentials_to_aiokafka_auth(creds)["security_protocol"] == "SSL"


def test_sasl_without_password_is_a_clear_error() -> None:
    with pytest.raises(SettingsError, match="SASL needs"):
        Settings.from_env({"JOURNEYSTREAM_SECURITY_PROTOCOL": "SASL_PLAINTEXT"})
    with pytest.raises(SettingsError, match="SECURITY_PROTOCOL"):
        Settings.from_env({"JOURNEYSTREAM_SECURITY_PROTOCOL": "TLS"})


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "", "10.0.0.5", "192.168.1.20", "worker"])
def test_a_worker_open_beyond_loopback_needs_a_token(host: str) -> None:
    env = {"JOURNEYSTREAM_WEB_HOST": host}
    with pytest.raises(
        SettingsError, match=r"JOURNEYSTREAM_WEB_HOST=.* not a loopback.*_API_TOKEN"
    ):
        Settings.from_env(env)
    with pytest.raises(SettingsError, match="not a loopback"):
        Settings(web_host=host).check()
    assert Settings.from_env({**env, "JOURNEYSTREAM_API_TOKEN": "t0ken"}).web_host == host


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.53", "localhost", "::1", "[::1]"])
def test_a_loopback_worker_may_run_without_a_token(host: str) -> None:
    assert Settings.from_env({"JOURNEYSTREAM_WEB_HOST": host}).api_token.get_secret_value() == ""


def test_the_worker_command_refuses_to_start_open_without_a_token(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "JOURNEYSTREAM_WEB_HOST": "0.0.0.0",
        "JOURNEYSTREAM_API_TOKEN": "",
        "JOURNEYSTREAM_DATA_DIR": str(tmp_path / "state"),
        # nothing listens here: the worker must stop before it reaches for a broker
        "JOURNEYSTREAM_BROKER": "kafka://127.0.0.1:9",
    }
    done = subprocess.run(
        [sys.executable, "-m", "harness", "worker"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "SettingsError: JOURNEYSTREAM_WEB_HOST='0.0.0.0' is not a loopback" in done.stderr
    assert not (tmp_path / "state").exists()
