"""journeystream's Faust application: agents, tables, web views and the CLI."""
