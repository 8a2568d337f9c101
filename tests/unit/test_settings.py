"""Settings read from JOURNEYSTREAM_* variables: types, ranges, clear errors, hidden secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

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
