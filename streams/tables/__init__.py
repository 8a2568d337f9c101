"""Table declarations (state), kept apart from the agents that process events."""
