"""Every output record type has an example in schemas/examples/ that its schema accepts."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import pytest

from schemas.contracts import available_schemas, validator_for
from streams.topics import INPUT_FOR_TYPE, OUTPUT_FOR_TYPE

EXAMPLES = Path(str(resources.files("schemas") / "examples"))
OUTPUT_TYPES = sorted(set(available_schemas()) - set(INPUT_FOR_TYPE))


def test_the_output_schemas_are_the_output_record_types() -> None:
    assert sorted(OUTPUT_FOR_TYPE) == OUTPUT_TYPES  # a new output schema needs a topic
    assert len(OUTPUT_TYPES) == 10  # nine downstream types and the internal copurchase_order


@pytest.mark.parametrize("name", OUTPUT_TYPES)
def test_every_output_type_has_an_example_that_validates(name: str) -> None:
    path = EXAMPLES / f"{name}.json"
    assert path.is_file(), f"schemas/examples/{name}.json is missing"
    example = json.loads(path.read_text())
    assert example["type"] == name
    assert example["version"] in available_schemas()[name]  # a version this package ships
    validator_for(name, example["version"])(example)
    if name != "dead_letter":  # keyed by customer (schemas/README.md, "Keys and duplicates")
        key = example["customer_key"]
        assert key in (f"c:{example['customer_id']}", f"a:{example.get('anonymous_id')}")


def test_the_examples_tell_one_story() -> None:
    """The conversion points at the recommendation, the discount at the abandoned cart."""
    load = {n: json.loads((EXAMPLES / f"{n}.json").read_text()) for n in OUTPUT_TYPES}
    converted = load["recommendation_converted"]
    assert converted["decision_id"] == load["recommendation"]["id"]
    assert converted["order_id"] == load["journey_transition"]["order_id"]
    assert load["discount_trigger"]["trigger_id"] == load["cart_abandoned"]["id"]


def test_the_re_engagement_example_is_a_1_0_1_recommendation() -> None:
    """A strategy 1-0-0 does not enumerate: the record carries 1-0-1 (schemas/README.md)."""
    example = json.loads((EXAMPLES / "recommendation_win_back.json").read_text())
    assert (example["type"], example["version"]) == ("recommendation", "1-0-1")
    assert (example["strategy"], example["trigger_type"]) == ("win_back", "lapse_check")
    validator_for("recommendation", "1-0-1")(example)
