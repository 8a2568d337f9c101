"""The `journeystream` command line: version, help texts, option names, errors."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from harness.cli import broker_url, cli, main

REPO = Path(__file__).resolve().parents[2]
COMMANDS = ("broker", "worker", "process", "replay", "forget", "audience", "demo")
# Faust 0.15's `faust worker` options (faust/cli/worker.py and faust/cli/base.py)
FAUST_WORKER_OPTIONS = (
    "--with-web / --without-web",
    "--web-port",
    "--web-transport",
    "--web-bind",
    "--web-host",
    "--logfile",
    "--loglevel",
    "--blocking-timeout",
    "--console-port",
)


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), prog_name="journeystream", terminal_width=100)
    return result.exit_code, result.output


def test_version_is_the_package_version() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    version = project["version"]
    pin = next(d for d in project["dependencies"] if d.startswith("faust-streaming=="))
    faust = pin.split("==")[1]
    done = subprocess.run(
        [sys.executable, "-m", "harness", "--version"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0
    assert done.stdout == f"journeystream {version} (faust-streaming {faust})\n"


def test_help_lists_every_subcommand() -> None:
    code, text = run("--help")
    assert code == 0
    for command in COMMANDS:
        assert f"\n  {command} " in text


def test_worker_help_shows_faust_worker_options() -> None:
    code, text = run("worker", "--help")
    assert code == 0
    for option in ("--embedded-broker", "--broker URL", *FAUST_WORKER_OPTIONS):
        assert option in text, option
    # the options that are also settings name the setting they default to
    assert "Default: JOURNEYSTREAM_WEB_PORT" in text
    assert "Default: JOURNEYSTREAM_LOG_LEVEL" in text


@pytest.mark.parametrize("command", ["worker", "process", "replay", "forget", "audience"])
def test_every_command_that_reaches_a_broker_calls_it_broker(command: str) -> None:
    code, text = run(command, "--help")
    assert code == 0
    assert "--broker URL" in text
    assert "--bootstrap" not in text  # the older name of replay's option is hidden


def test_process_help_has_timeout_and_progress() -> None:
    code, text = run("process", "--help")
    assert code == 0
    assert "--timeout FLOAT RANGE" in text and "default: 600.0" in text
    assert "--progress / --no-progress" in text
    assert "--quiet" not in text  # still accepted (hidden), as the older --no-progress


def test_older_option_names_still_parse(tmp_path: Path) -> None:
    events = tmp_path / "e.jsonl"
    events.write_text("")
    ctx = cli.commands["replay"].make_context(
        "replay", [str(events), "--bootstrap", "h:1", "--quiet"]
    )
    assert ctx.params["bootstrap"] == "h:1" and ctx.params["quiet"] is True
    ctx = cli.commands["process"].make_context("process", [str(events), "-o", "x", "--quiet"])
    assert ctx.params["quiet"] is True


@pytest.mark.parametrize(
    ("given", "url"),
    [
        ("127.0.0.1:9092", "kafka://127.0.0.1:9092"),
        ("h1:9092,h2:9092", "kafka://h1:9092;h2:9092"),
        ("kafka://h1:9092;h2:9092", "kafka://h1:9092;h2:9092"),
    ],
)
def test_broker_accepts_both_forms(given: str, url: str) -> None:
    assert broker_url(given) == url


def test_bad_options_are_usage_errors() -> None:
    code, text = run("process", "missing.jsonl", "-o", "out.jsonl")
    assert code == 2 and "does not exist" in text
    code, text = run("worker", "--loglevel", "loud")
    assert code == 2 and "'loud' is not one of" in text
    code, text = run("process", __file__, "-o", "out.jsonl", "--timeout", "0")
    assert code == 2 and "--timeout" in text


def test_a_settings_error_is_one_line_without_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("JOURNEYSTREAM_PARTITONS", "3")
    assert main(["forget", "someone"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("journeystream: SettingsError: JOURNEYSTREAM_PARTITONS is not")
    assert "Traceback" not in err


def test_faust_options_given_reach_faust_and_settings_come_from_settings() -> None:
    from harness.faust_options import faust_argv, faust_worker_options, setting_options
    from streams.settings import Settings

    settings = Settings(web_port=7001, log_level="debug", advertised_host="w1")
    given = {
        "embedded_broker": True,  # journeystream's own: not passed on
        "broker": "h:1",
        "with_web": False,
        "logfile": "/tmp/w.log",
        "console_port": 50101,  # Faust's default: not passed on
        "blocking_timeout": 2.5,
    }
    argv = faust_argv(settings, faust_worker_options(), given)
    assert argv == [
        *("worker", "--loglevel", "debug", "--web-port", "7001"),
        *("--web-bind", "127.0.0.1", "--web-host", "w1"),
        *("--without-web", "--logfile", "/tmp/w.log", "--blocking-timeout", "2.5"),
    ]
    # the Faust options that are settings become JOURNEYSTREAM_* variables (then validated)
    assert setting_options({"web_port": 7002, "web_bind": "0.0.0.0", "logfile": "x"}) == {
        "JOURNEYSTREAM_WEB_PORT": "7002",
        "JOURNEYSTREAM_WEB_HOST": "0.0.0.0",
    }


def test_a_web_bind_beyond_loopback_still_needs_a_token(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOURNEYSTREAM_")}
    env["JOURNEYSTREAM_DATA_DIR"] = str(tmp_path / "state")
    env["JOURNEYSTREAM_BROKER"] = "kafka://127.0.0.1:9"  # nothing listens: it must stop before
    done = subprocess.run(
        [sys.executable, "-m", "harness", "worker", "--web-bind", "0.0.0.0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "SettingsError: JOURNEYSTREAM_WEB_HOST='0.0.0.0' is not a loopback" in done.stderr
    assert not (tmp_path / "state").exists()
