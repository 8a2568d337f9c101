"""Thompson sampling over a strategy's variants, with the holdout kept fixed (pure).

A strategy with `bandit = true` in its `[experiment.<strategy>]` table still holds out the
same customers as without it (the first 8 bytes of the customer's hash, as `arm_for`). A treated
customer seen for the first time gets the variant with the highest draw from each variant's
Beta(1 + customers converted, 1 + customers decided - converted) posterior, drawn with a
generator seeded by the customer's hash, so the same counts always give the same arm; the
customer keeps that arm afterwards (`rec_state["trials"]`). As one variant converts better it
gets more of the new customers, while the holdout stays a fixed share for the uplift.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping

from recommend.experiments import HOLDOUT

# variant -> (customers decided, customers converted)
VariantCounts = Mapping[str, tuple[int, int]]


def thompson_arm(
    customer_key: str,
    experiment: str,
    holdout: float,
    variants: tuple[str, ...],
    counts: VariantCounts,
) -> str:
    """The customer's arm: the fixed holdout, else the variant with the best posterior draw."""
    digest = hashlib.sha256(f"{experiment}|{customer_key}".encode()).digest()
    if int.from_bytes(digest[:8], "big") / 2**64 < holdout:
        return HOLDOUT
    rng = random.Random(int.from_bytes(digest[8:16], "big"))
    best, best_draw = variants[0], -1.0
    for variant in variants:
        decided, converted = counts.get(variant, (0, 0))
        converted = max(0, min(converted, decided))
        draw = rng.betavariate(1 + converted, 1 + decided - converted)
        if draw > best_draw:
            best, best_draw = variant, draw
    return best
