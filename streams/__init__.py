"""journeystream's Faust application: agents, tables, web views, settings, topics, metrics."""
