"""Broker restart under load: the worker reconnects, continues, and nothing is lost.

The embedded Tansu broker runs on S3 storage served on loopback by moto's S3 server (Tansu's
memory storage loses everything on restart, and this Tansu build has no other durable engine).
A driver produces known events while the broker is SIGKILLed and restarted on the same port and
the same bucket. The one worker process is never restarted: it must reconnect by itself and
process the events produced after the restart. Every customer's whole state (latest changelog
value per key) must equal the single-process reference (`reference.py`), and the abandonment and
recommendation ids the reference sets.
"""

from __future__ import annotations

import asyncio
import random
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from aiokafka import TopicPartition

from harness.broker import EmbeddedBroker, die_with_parent, free_port, s3_env, wait_for_port
from harness.process import _drain, committed, produce
from streams import topics
from tests.conftest import Deployment
from tests.reliability.reference import reference
from tests.reliability.report import write_section
from tests.reliability.scenarios import (
    PARTITIONS,
    Run,
    record,
    suite_overrides,
    verify,
    workload,
)

pytestmark = [pytest.mark.broker, pytest.mark.reliability]
EVENTS = 12_000
CHUNK = 1_500
RESTART_AFTER_CHUNKS = 3
DOWN_SECONDS = 3.0  # long enough for the worker's and the driver's requests to fail
BUCKET = "journeystream"
# Tansu on S3 lists a partition's objects for every fetch, and moto lists in Python: confirming
# a partition's end can take far longer than streams.recovery's 5 s default, more so under load.
CONFIRM_TIMEOUT = 120.0


@pytest.fixture
def s3_endpoint(tmp_path: Path) -> Iterator[str]:
    """moto's S3 server on loopback with an empty bucket BUCKET; its URL."""
    port = free_port()
    log = open(tmp_path / "moto.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=die_with_parent(),
    )
    try:
        assert wait_for_port("127.0.0.1", port, 30), "moto S3 server did not start"
        url = f"http://127.0.0.1:{port}"
        env = s3_env(url)
        boto3.client(
            "s3",
            endpoint_url=url,
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
            region_name=env["AWS_DEFAULT_REGION"],
        ).create_bucket(Bucket=BUCKET)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


@pytest.fixture
def s3_broker(s3_endpoint: str, tmp_path: Path) -> Iterator[EmbeddedBroker]:
    """A Tansu broker of its own (not the session one) storing in the S3 bucket."""
    broker = EmbeddedBroker(
        storage=f"s3://{BUCKET}/", env=s3_env(s3_endpoint), log_dir=tmp_path / "broker"
    ).start()
    yield broker
    broker.stop()


def port_closed(port: int) -> bool:
    """True when nothing accepts connections on 127.0.0.1:port."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return False
    except OSError:
        return True


def drain(d: Deployment, produced: dict[TopicPartition, int]) -> None:
    """harness.process._drain, tried again when an end could not be confirmed in time."""
    for attempt in range(3):
        try:
            asyncio.run(_drain(d.bootstrap, d.settings, d.names, produced, PARTITIONS, 150))
            return
        except TimeoutError as exc:  # only the 5 s end confirmation; a second flush is harmless
            if attempt == 2 or "could not confirm" not in str(exc):
                raise


def test_worker_continues_after_broker_restart(s3_broker: EmbeddedBroker, tmp_path: Path) -> None:
    d = Deployment(s3_broker, tmp_path, PARTITIONS, **suite_overrides(tmp_path))
    d.create_topics()
    try:
        run_scenario(d, s3_broker)
    finally:
        d.stop()


def run_scenario(d: Deployment, broker: EmbeddedBroker) -> None:
    """Produce, restart the broker mid-stream, drain, compare with the reference, report."""
    worker = d.start_worker(index=0)
    events = workload()[:EVENTS]
    chunks = [events[i : i + CHUNK] for i in range(0, len(events), CHUNK)]
    produced: dict[TopicPartition, int] = {}
    chunks_done = threading.Semaphore(0)
    restarted = threading.Event()
    sent_after_restart = 0
    retries = 0
    errors: list[BaseException] = []

    def drive() -> None:
        async def run() -> None:
            nonlocal retries, sent_after_restart
            # every input on one topic: each key's order is the produce order, as in the reference
            for chunk in chunks:
                if restarted.is_set():
                    sent_after_restart += len(chunk)
                for attempt in range(20):  # a chunk cut by the restart is sent again (deduped)
                    try:
                        acked = await produce(d.bootstrap, d.names, chunk, one_topic=True)
                        break
                    except Exception:
                        if attempt == 19:
                            raise
                        retries += 1
                        await asyncio.sleep(0.5)
                for tp, off in acked.items():
                    produced[tp] = max(produced.get(tp, -1), off)
                chunks_done.release()
                await asyncio.sleep(0.5)

        try:
            asyncio.run(run())
        except BaseException as exc:
            errors.append(exc)
            raise

    driver = threading.Thread(target=drive)
    started = time.time()
    driver.start()
    for _ in range(RESTART_AFTER_CHUNKS):
        assert chunks_done.acquire(timeout=120), f"driver stalled: {errors}"
    time.sleep(random.Random(3).uniform(0.0, 0.5))  # while the next chunk is being sent
    broker.kill()
    down_at = time.time()
    assert port_closed(broker.port)
    time.sleep(DOWN_SECONDS)
    broker.start()
    restarted.set()
    down = time.time() - down_at
    inputs = [TopicPartition(d.names(topics.PAGE_VIEW), p) for p in range(PARTITIONS)]
    at_restart = asyncio.run(committed(d.bootstrap, d.settings.app_id, inputs))
    driver.join()
    assert not errors, errors
    drain(d, produced)
    elapsed = time.time() - started

    lost_connection = worker.log_path.read_text(errors="replace").count("Connect call failed")
    v = verify(d, reference(events, d.settings), confirm_timeout=CONFIRM_TIMEOUT)
    problems = []
    if not (worker.alive() and len(d.workers) == 1):
        problems.append("the worker did not survive (the same process must reconnect)")
    if lost_connection == 0:
        problems.append("the worker never noticed the broker was down")
    if sent_after_restart == 0:
        problems.append("no events were produced after the restart")
    what = (
        f"1 worker; the broker SIGKILLed after {RESTART_AFTER_CHUNKS} of {len(chunks)} "
        "chunks and restarted on the same port and S3 bucket; the worker was not restarted"
    )
    run = Run("Broker restart", what, len(events), elapsed, v, problems=problems)
    record(run)
    figures = {
        "what happened": what,
        "storage": "Tansu `s3://` on moto's S3 server (loopback)",
        "events": len(events),
        "customers compared (whole state)": v.customers,
        "partitions": PARTITIONS,
        "seconds the broker was down (kill to listening)": f"{down:.1f}",
        "driver produce attempts that failed and were retried": retries,
        "events whose chunk was first sent after the restart": sent_after_restart,
        "input events the worker had not committed when the broker was back": sum(
            off + 1 - max(at_restart.get(tp, -1), 0) for tp, off in produced.items()
        ),
        "seconds, produce to drained": f"{elapsed:.1f}",
        "worker processes started": len(d.workers),
        "worker log lines reporting a refused connection": lost_connection,
        "customers whose state differs from the reference": len(v.differing),
        "customers missing / unexpected": f"{len(v.missing_keys)} / {len(v.extra_keys)}",
        "abandonment ids: reference, missing, extra": (
            f"{v.abandonment.expected}, {len(v.abandonment.missing)}, {len(v.abandonment.extra)}"
        ),
        "recommendation ids: reference, missing, extra": (
            f"{v.recommendation.expected}, {len(v.recommendation.missing)}, "
            f"{len(v.recommendation.extra)}"
        ),
        "duplicate records (same id, identical)": (
            v.abandonment.duplicates + v.recommendation.duplicates
        ),
        "result": "passed" if run.ok else "FAILED: " + " | ".join(run.failures())[:600],
    }
    write_report(figures)
    assert run.ok, "\n".join(run.failures())


def write_report(figures: dict[str, Any]) -> None:
    """Write this test's figures to the "Broker restart" section of RELIABILITY.md."""
    rows = "".join(f"| {name} | {value} |\n" for name, value in figures.items())
    write_section(
        "Broker restart",
        "| figure | value |\n|---|---|\n" + rows + "\n"
        "Tansu's default `memory://` storage loses every topic, record and committed offset when\n"
        "the broker stops; this Tansu build's only durable engine is S3 (`s3://BUCKET/`; sqlite,\n"
        "postgres and file storage are not compiled in), so the test serves S3 on loopback with\n"
        "moto (`EmbeddedBroker(storage=..., env=s3_env(url))`). Records, topics and committed\n"
        "offsets survive the crash: the worker, never restarted, reconnects, resumes from its\n"
        "committed offsets and processes the events produced after the restart. Whole customer\n"
        "states must equal the reference (`tests/reliability/reference.py`) and the abandonment\n"
        "and recommendation ids the reference sets (see the result row). A chunk whose produce\n"
        "failed during the outage is sent again; the `event_id` dedupe drops those duplicates.\n"
        "One broker only: with production Kafka, replication (min.insync.replicas, acks=all)\n"
        "keeps the log available while a broker is down; here the outage is seen by clients.\n",
    )
