"""Catalog state of this worker: products, price tiers, co-purchases, rules and discount budget.

Kept in memory. Filled with every item of the catalog topic (broadcast to every worker, see
`streams/agents/catalog.py`), with the prices of page views and with the orders it processes.
"""

from __future__ import annotations

from recommend.rules import load_rules
from recommend.triggers import Recommender
from streams.app import settings

# a bad rules file stops the worker at start with RulesError naming the key and line
recommender = Recommender(
    rules=load_rules(settings.rules_file or None), holdout=settings.experiment_holdout
)
price_tiers = recommender.catalog.tiers
