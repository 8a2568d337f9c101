"""The one Faust app of journeystream, built from Settings (Faust's large-project layout)."""

from __future__ import annotations

from streams.assembly import JourneyApp, create_app
from streams.settings import Settings
from streams.topics import TopicNames

__all__ = ["JourneyApp", "app", "create_app", "settings", "topics"]

settings = Settings.from_env()
topics = TopicNames(settings.topic_prefix)
app = create_app(settings)
