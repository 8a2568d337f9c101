"""Faust agents (autodiscovered): thin adapters around the pure cores."""
