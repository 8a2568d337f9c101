"""The commands' aiokafka clients carry the worker's TLS/SASL settings (harness/clients.py)."""

from __future__ import annotations

import asyncio
import datetime
import shutil
import ssl
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from click.testing import CliRunner

from harness.applied import wait_applied
from harness.cli import cli
from harness.clients import Connection, client_options
from harness.forget import count_keyed, retention_ms, send_forget
from harness.process import create_topics, read_topics, replay_file
from streams.settings import Settings
from streams.topics import TopicNames

SASL = {
    "JOURNEYSTREAM_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
    "JOURNEYSTREAM_SASL_MECHANISM": "SCRAM-SHA-256",
    "JOURNEYSTREAM_SASL_USERNAME": "journey",
    "JOURNEYSTREAM_SASL_PASSWORD": "pa55-w0rd",
}
CA_NAME = "journeystream test CA"


def write_ca(directory: Path) -> Path:
    """A self-signed CA certificate (PEM) made with `cryptography`, else the openssl command."""
    path = directory / "ca.pem"
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
    except ImportError:
        if shutil.which("openssl") is None:
            pytest.skip("neither the cryptography package nor openssl is there to make a CA file")
        subj, key = f"/CN={CA_NAME}", str(directory / "ca.key")
        command = [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ]
        command += ["-nodes", "-keyout", key, "-out", str(path), "-days", "2", "-subj", subj]
        subprocess.run(command, check=True, capture_output=True)
        return path
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CA_NAME)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def test_plaintext_options() -> None:
    assert client_options(Settings.from_env({})) == {"security_protocol": "PLAINTEXT"}


def test_sasl_plaintext_options_carry_the_password_in_clear() -> None:
    options = client_options(Settings.from_env(SASL))
    assert options == {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-256",
        "sasl_plain_username": "journey",
        "sasl_plain_password": "pa55-w0rd",  # a str for aiokafka, not the SecretStr
        "ssl_context": None,
    }


def test_sasl_ssl_options_trust_exactly_the_ca_file(tmp_path: Path) -> None:
    ca = write_ca(tmp_path)
    env = {
        **SASL,
        "JOURNEYSTREAM_SECURITY_PROTOCOL": "SASL_SSL",
        "JOURNEYSTREAM_SSL_CAFILE": str(ca),
    }
    options = client_options(Settings.from_env(env))
    context = options.pop("ssl_context")
    assert options == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-256",
        "sasl_plain_username": "journey",
        "sasl_plain_password": "pa55-w0rd",
    }
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    subjects = [dict(part[0] for part in cert["subject"]) for cert in context.get_ca_certs()]
    assert subjects == [{"commonName": CA_NAME}]  # the CA file, not the system store


def test_a_client_certificate_without_its_key_is_refused(tmp_path: Path) -> None:
    ca = write_ca(tmp_path)  # a certificate with no private key in the file
    env = {"JOURNEYSTREAM_SECURITY_PROTOCOL": "SSL", "JOURNEYSTREAM_SSL_CERTFILE": str(ca)}
    with pytest.raises(ssl.SSLError):
        client_options(Settings.from_env(env))


class Built(Exception):
    """Raised by a client's start: the test has the client and stops the command there."""


@pytest.fixture
def built(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every aiokafka client a command starts (the start itself raises Built)."""
    clients: list[Any] = []

    async def start(self: Any) -> None:
        clients.append(self)
        raise Built

    for cls in (AIOKafkaProducer, AIOKafkaConsumer, AIOKafkaAdminClient):
        monkeypatch.setattr(cls, "start", start)
    monkeypatch.setattr(AIOKafkaProducer, "stop", _noop)
    monkeypatch.setattr(AIOKafkaConsumer, "stop", _noop)
    return clients


async def _noop(self: Any) -> None:
    return None


def inner(client: Any) -> Any:
    """The AIOKafkaClient inside a producer, consumer or admin client."""
    return client._client if hasattr(client, "_client") else client.client


def security(client: Any) -> tuple[Any, ...]:
    """The security a started client would connect with (aiokafka's client attributes)."""
    inner_client = inner(client)
    return (
        inner_client._security_protocol,
        inner_client._sasl_mechanism,
        inner_client._sasl_plain_username,
        inner_client._sasl_plain_password,
    )


EXPECTED = ("SASL_PLAINTEXT", "SCRAM-SHA-256", "journey", "pa55-w0rd")


@pytest.mark.parametrize(
    "args",
    [
        ["forget", "someone"],
        ["replay", "FILE"],
        ["process", "FILE", "--output", "OUT", "--no-progress"],
        ["audience", "--output", "OUT"],
    ],
)
def test_cli_commands_build_clients_from_the_settings(
    args: list[str], built: list[Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in SASL.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # process's work directory
    events = tmp_path / "events.jsonl"
    events.write_text("")
    paths = {"FILE": str(events), "OUT": str(tmp_path / "out.jsonl")}
    args = [paths.get(a, a) for a in args]
    result = CliRunner().invoke(cli, [*args, "--broker", "kafka.invalid:9093"])
    assert isinstance(result.exception, Built), result.output
    assert [security(c) for c in built] == [EXPECTED]
    assert inner(built[0])._bootstrap_servers == "kafka.invalid:9093"


def test_every_client_of_the_commands_goes_through_the_connection(built: list[Any]) -> None:
    conn = Connection.of(Settings.from_env(SASL, broker="kafka://kafka.invalid:9093"))
    names = TopicNames("x.")
    calls = [
        send_forget(conn, names, b"c:1"),
        count_keyed(conn, names.outputs(), b"c:1"),
        create_topics(conn, ["t"], 1),
        read_topics(conn, ["t"]),
        wait_applied(conn, "app", {}, 1.0),
    ]
    for call in calls:
        with pytest.raises(Built):
            asyncio.run(call)
    assert [security(c) for c in built] == [EXPECTED] * len(calls)


def test_forget_retention_lookup_uses_the_connection(built: list[Any]) -> None:
    conn = Connection.of(Settings.from_env(SASL, broker="kafka://kafka.invalid:9093"))
    with pytest.raises(Built):
        asyncio.run(retention_ms(conn, ["t"]))
    assert [security(c) for c in built] == [EXPECTED]


def test_replay_file_accepts_a_connection(built: list[Any], tmp_path: Path) -> None:
    conn = Connection.of(Settings.from_env(SASL))
    events = tmp_path / "e.jsonl"
    events.write_text("")
    with pytest.raises(Built):
        replay_file(events, fmt="jsonl", bootstrap=conn, progress=False)
    assert [security(c) for c in built] == [EXPECTED]
