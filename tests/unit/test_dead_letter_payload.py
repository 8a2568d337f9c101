"""JOURNEYSTREAM_DEAD_LETTER_PAYLOAD: dead letters with the original bytes, or their sha256."""

from __future__ import annotations

import base64
import json
from importlib import resources
from pathlib import Path

import fastjsonschema
import orjson
import pytest
from faust.types import Message

from harness.process_run import write_output
from replay.adapters import AdapterRejection
from schemas.contracts import dead_letter, validator_for
from streams import routing
from streams.settings import Settings, SettingsError

PAYLOAD = b'{"type":"page_view","customer_id":"secret-customer","price":-1}'
ABC_SHA256 = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"  # FIPS 180-2 "abc"


def letter(original: bytes | None, payload: str) -> dict[str, object]:
    return dead_letter(
        "negative_value",
        "price: must not be negative",
        original=original,
        key=b"c:secret-customer",
        topic="events.page-view",
        partition=1,
        offset=7,
        now=1_800_000_000.0,
        payload=payload,
    )


def test_original_mode_keeps_the_bytes_under_1_0_0() -> None:
    record = letter(PAYLOAD, "original")
    assert record["version"] == "1-0-0"
    assert base64.b64decode(str(record["original_b64"])) == PAYLOAD
    assert "original_sha256" not in record and "original_length" not in record
    validator_for("dead_letter", "1-0-0")(record)
    validator_for("dead_letter", "1-0-1")(record)  # an ADDITION: old records stay valid


def test_hash_mode_keeps_sha256_and_length_under_1_0_1() -> None:
    record = letter(b"abc", "hash")
    assert record["version"] == "1-0-1"
    assert record["original_b64"] is None
    assert record["original_sha256"] == ABC_SHA256 and record["original_length"] == 3
    validator_for("dead_letter", "1-0-1")(record)
    with pytest.raises(fastjsonschema.JsonSchemaValueException):
        validator_for("dead_letter", "1-0-0")(record)  # 1-0-0 has no room for the hash


def test_hash_mode_leaves_no_trace_of_the_payload() -> None:
    record = letter(PAYLOAD, "hash")
    record.pop("original_key_b64")  # the message key stays (documented): the customer key
    text = orjson.dumps(record)
    assert base64.b64encode(PAYLOAD)[:40] not in text and b"secret-customer" not in text
    assert record["original_length"] == len(PAYLOAD)


def test_hash_mode_without_a_value() -> None:
    record = letter(None, "hash")
    assert record["original_sha256"] is None and record["original_length"] is None
    validator_for("dead_letter", "1-0-1")(record)


def test_the_id_does_not_depend_on_the_mode() -> None:
    assert letter(PAYLOAD, "hash")["id"] == letter(PAYLOAD, "original")["id"]


def test_an_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="payload"):
        letter(PAYLOAD, "drop")


def test_the_setting() -> None:
    assert Settings.from_env({}).dead_letter_payload == "original"
    env = {"JOURNEYSTREAM_DEAD_LETTER_PAYLOAD": "hash"}
    assert Settings.from_env(env).dead_letter_payload == "hash"
    with pytest.raises(SettingsError, match="JOURNEYSTREAM_DEAD_LETTER_PAYLOAD='bytes'"):
        Settings.from_env({"JOURNEYSTREAM_DEAD_LETTER_PAYLOAD": "bytes"})


def message(value: bytes) -> Message:
    return Message("events.page-view", 2, 41, 0.0, 0, None, b"c:7", value, None)


@pytest.mark.parametrize("mode", ["original", "hash"])
def test_the_worker_builds_dead_letters_by_the_setting(
    mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(routing, "settings", Settings(dead_letter_payload=mode))
    topic, key, body = routing.dead_letter(message(b"abc"), "not_json", "not JSON", 1.8e9)
    record = orjson.loads(body)
    assert topic.endswith("journeystream.dead-letters") and key == b"c:7"
    if mode == "hash":
        assert record["original_sha256"] == ABC_SHA256 and record["original_b64"] is None
    else:
        assert record["original_b64"] == "YWJj" and "original_sha256" not in record
    validator_for("dead_letter", record["version"])(record)


def test_process_output_hashes_adapter_rows(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    rows = [AdapterRejection(line=3, message="no customer column", raw=b"abc")]
    write_output(out, [], rows, tmp_path / "shop.csv", payload="hash")
    (record,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert record["original_sha256"] == ABC_SHA256 and record["source"]["line"] == 3
    validator_for("dead_letter", "1-0-1")(record)


def test_the_example_is_valid_under_both_versions() -> None:
    path = Path(str(resources.files("schemas") / "examples" / "dead_letter.json"))
    example = json.loads(path.read_text())
    validator_for("dead_letter", "1-0-0")(example)
    validator_for("dead_letter", "1-0-1")(example)
