"""Faust's own `worker` options on `journeystream worker`: shown in its help, passed to Faust."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

import click

# Faust worker options that are journeystream settings: given, they set the setting (validated)
AS_SETTINGS = {
    "web_port": ("JOURNEYSTREAM_WEB_PORT", "Web server port."),
    "web_bind": ("JOURNEYSTREAM_WEB_HOST", "Address the web server binds to."),
    "web_host": ("JOURNEYSTREAM_ADVERTISED_HOST", "Host name other workers reach this one by."),
    "loglevel": ("JOURNEYSTREAM_LOG_LEVEL", "Logging level."),
}
OWN_OPTIONS = ("embedded_broker", "broker")  # journeystream's, not Faust's


class WorkerCommand(click.Command):
    """A click command with Faust's worker options added after its own (imported when used)."""

    faust_added = False

    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        """Our options, then Faust's worker options."""
        if not self.faust_added:
            self.params.extend(faust_worker_options())
            self.faust_added = True
        return super().get_params(ctx)


def faust_worker_options() -> list[click.Parameter]:
    """Copies of Faust's `worker` options; those that are settings default to the setting."""
    from faust.cli.faust import cli as faust_cli

    options = []
    for own in faust_cli.commands["worker"].params:
        param = copy.copy(own)
        param.expose_value, param.callback = True, None  # Faust's keep some in its own state
        if param.name in AS_SETTINGS:
            variable, text = AS_SETTINGS[param.name]
            param.default = None
            param.help = f"{text} Default: {variable}."  # type: ignore[attr-defined]
        options.append(param)
    return options


def setting_options(values: Mapping[str, Any]) -> dict[str, str]:
    """The JOURNEYSTREAM_* variables the given Faust options set."""
    return {
        variable: str(values[name])
        for name, (variable, _) in AS_SETTINGS.items()
        if values.get(name) is not None
    }


def faust_argv(
    settings: Any, params: Iterable[click.Parameter], values: Mapping[str, Any]
) -> list[str]:
    """Faust's `worker` command line: the settings, then the other Faust options given."""
    argv = [
        "worker",
        *("--loglevel", settings.log_level),
        *("--web-port", str(settings.web_port)),
        *("--web-bind", settings.web_host),
        *("--web-host", settings.advertised_host or settings.web_host),
    ]
    for param in params:
        value = values.get(param.name or "")
        if param.name in {*AS_SETTINGS, *OWN_OPTIONS} or value is None or value == param.default:
            continue
        if isinstance(param, click.Option) and param.is_flag and param.secondary_opts:
            argv.append(param.opts[0] if value else param.secondary_opts[0])
        else:
            argv += [param.opts[0], str(value)]
    return argv
