"""Goods find people: pure recommendation library (catalog, price tiers, strategies)."""
