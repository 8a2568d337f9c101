"""Every topic name journeystream reads or writes, in one place."""

from __future__ import annotations

from dataclasses import dataclass

PAGE_VIEW = "events.page-view"
CART = "events.cart"
ORDER = "events.order"
CATALOG = "events.catalog"
IDENTITY = "events.identity"
INTERNAL = "journeystream.internal"
TRANSITIONS = "journey.transitions"
ABANDONMENT = "abandonment.events"
GOODS_FIND_PEOPLE = "recommend.goods-find-people"
DISCOUNT_TRIGGERS = "recommend.discount-triggers"
DECISIONS = "recommend.decisions"
DEAD_LETTERS = "journeystream.dead-letters"
COPURCHASE = "journeystream.copurchase"  # placed orders' products: every worker reads it all

INPUTS = (PAGE_VIEW, CART, ORDER, IDENTITY)
OUTPUTS = (
    TRANSITIONS,
    ABANDONMENT,
    GOODS_FIND_PEOPLE,
    DISCOUNT_TRIGGERS,
    DECISIONS,
    DEAD_LETTERS,
)

# wire `type` of an input event -> the topic producers send it to
INPUT_FOR_TYPE = {
    "page_view": PAGE_VIEW,
    "cart": CART,
    "order": ORDER,
    "catalog_item": CATALOG,
    "identity_link": IDENTITY,
}

# output record `type` -> topic
OUTPUT_FOR_TYPE = {
    "journey_transition": TRANSITIONS,
    "cart_abandoned": ABANDONMENT,
    "browse_abandoned": ABANDONMENT,
    "abandonment_recovered": ABANDONMENT,
    "recommendation": GOODS_FIND_PEOPLE,
    "discount_trigger": DISCOUNT_TRIGGERS,
    "recommendation_converted": GOODS_FIND_PEOPLE,
    "decision": DECISIONS,
    "dead_letter": DEAD_LETTERS,
    "copurchase_order": COPURCHASE,  # internal: not among OUTPUTS (downstream topics)
}


@dataclass(frozen=True, slots=True)
class TopicNames:
    """Topic names with the deployment's prefix applied."""

    prefix: str = ""

    def __call__(self, name: str) -> str:
        """The prefixed name of a topic."""
        return f"{self.prefix}{name}"

    def inputs(self) -> list[str]:
        """Customer-event input topics."""
        return [self(t) for t in INPUTS]

    def outputs(self) -> list[str]:
        """Output topics downstream services consume."""
        return [self(t) for t in OUTPUTS]

    def all(self) -> list[str]:
        """Every topic a deployment creates: inputs, catalog, internal, co-purchase, outputs."""
        return [*self.inputs(), self(CATALOG), self(INTERNAL), self(COPURCHASE), *self.outputs()]

    def for_output(self, record_type: str) -> str:
        """Topic of an output record type."""
        return self(OUTPUT_FOR_TYPE[record_type])

    def for_input(self, event_type: str) -> str:
        """Topic producers send an input event type to (unknown types: page views' topic)."""
        return self(INPUT_FOR_TYPE.get(event_type, PAGE_VIEW))
