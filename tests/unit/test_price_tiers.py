"""Price tiers: the stroller category of the story, fallbacks and precedence."""

from recommend.catalog import PriceTiers

STROLLERS = {
    "s-lux-1": 3500.0,
    "s-lux-2": 4800.0,
    "s-lux-3": 5999.0,
    "s-mid-1": 1299.0,
    "s-mid-2": 1699.0,
    "s-low-1": 399.0,
}


def test_three_high_priced_strollers_are_high_and_mid_ones_mid() -> None:
    tiers = PriceTiers()
    for pid, price in STROLLERS.items():
        tiers.observe("baby/strollers", pid, price, catalog=True)
    # median of the six prices = (1699 + 3500) / 2 = 2599.5
    assert tiers.median("baby/strollers") == 2599.5
    assert [
        tiers.tier_of("baby/strollers", STROLLERS[p]) for p in ("s-lux-1", "s-lux-2", "s-lux-3")
    ] == ["high"] * 3
    assert tiers.tier_of("baby/strollers", 1299.0) == "mid"
    assert tiers.tier_of("baby/strollers", 399.0) == "low"


def test_unknown_with_too_few_products() -> None:
    tiers = PriceTiers()
    tiers.observe("c", "a", 10.0, catalog=False)
    tiers.observe("c", "b", 20.0, catalog=False)
    assert tiers.tier_of("c", 20.0) is None
    tiers.observe("c", "d", 30.0, catalog=False)
    assert tiers.tier_of("c", 30.0) == "high"  # median 20; 30 > 1.25 * 20
    assert tiers.tier_of("c", 20.0) == "mid"
    assert tiers.tier_of("c", 7.0) == "low"  # 7 < 0.4 * 20


def test_catalog_price_wins_over_event_price() -> None:
    tiers = PriceTiers()
    tiers.observe("c", "a", 100.0, catalog=True)
    tiers.observe("c", "a", 1.0, catalog=False)
    assert tiers.prices["c"]["a"] == 100.0
