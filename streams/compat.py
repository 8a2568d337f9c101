"""Every Faust override and private Faust name the project uses, in one place (Faust 0.15.3).

What is changed, and why:
- the worker's fetch wait comes from the settings (Faust hard-codes 1.5 s; Tansu answers a
  waiting fetch only when the wait expires);
- the consumer thread leaves the group on stop also from generation 0 (Tansu's first), which
  aiokafka skips: a restarted worker waited for its old member's session to time out;
- the drain loop races one whole fetch's delivery against the flow stop instead of each message
  (Faust's `wait_first` per message is most of a no-op agent's CPU), and hands over every record
  of an unpaused partition: which records are applied is decided by the agent against the
  position stored with the state (`streams.tables.state`), not by Faust's read offsets or acks;
- `highwaters` of the customer changelog appends an owner marker and returns its offset + 1: a
  restore ends at an end the worker proved (Tansu's ListOffsets answer lags the real end);
- `perform_seek` reads each input partition from the restored position;
- the rocksdb store applies a restored changelog batch with owner fencing, atomically;
- `BatchingStream.take_events` hands over what is queued, without Faust's drainer task;
  with `direct=True` (the customer agent) the consumer puts the stream's records straight into
  its queue as `Delivered` (the fetched message), without the conductor's per-record lock,
  key/value decoding and `Event` (some 10% of the pipeline's CPU); buffer pressure and flow
  control are kept as the conductor does them;
- `send_batches`/`send_keyed` send records in whole aiokafka batches per partition.

`PRIVATE_NAMES` lists the private Faust/aiokafka attributes used here and elsewhere in the
project; `tests/unit/test_compat.py` checks that each still exists.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any, ClassVar, Protocol

import aiokafka
import faust
import faust.streams as faust_streams
import rocksdict
from aiokafka import TopicPartition
from aiokafka.protocol.group import LeaveGroupRequest
from faust.stores import rocksdb as faust_rocksdb
from faust.streams import _current_event
from faust.transport.consumer import CONSUMER_FETCHING as FETCHING
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP, EventT
from mode.utils.queues import FlowControlEvent
from mode.utils.times import Seconds, want_seconds

from streams.recovery import confirmed_ends
from streams.tables.state import OFFSET_KEY, OWNER_KEY, fenced

logger = logging.getLogger(__name__)

FAUST_VERSION = "0.15.3"

# (module or class, attribute): every private name of Faust or aiokafka the project relies on
PRIVATE_NAMES: list[tuple[object, str]] = [
    (faust_aiokafka.AIOKafkaConsumerThread, "_create_worker_consumer"),
    (faust_aiokafka.AIOKafkaConsumerThread, "_ensure_consumer"),
    (faust_aiokafka.Consumer, "_new_consumer_thread"),
    (faust_aiokafka.Consumer, "_drain_messages"),
    (faust_aiokafka.Consumer, "_commit"),
    (faust_aiokafka.Consumer, "_commit_offsets"),
    (faust_aiokafka.Consumer, "_is_changelog_tp"),
    (faust_aiokafka.Consumer, "_seek"),
    (faust_aiokafka.AIOKafkaConsumerThread, "call_thread"),
    (faust.App, "_new_transport"),
    (faust.Stream, "_channel_stop_iteration"),
    (faust.Table, "_new_store_by_url"),
    (faust_rocksdb.Store, "_db_for_partition"),
    (faust_rocksdb.Store, "offset_key"),
    (faust_streams, "_current_event"),
    (faust_aiokafka.Producer, "_ensure_producer"),
    (aiokafka.AIOKafkaProducer, "_partition"),
    (aiokafka.AIOKafkaClient, "_wait_on_metadata"),
    (FlowControlEvent, "_queues"),
]
# instance attributes (set in __init__, so checked on a started app by the compat test)
PRIVATE_INSTANCE_NAMES = {
    "consumer": [
        "_paused_partitions",
        "_buffered_partitions",
        "_committed_offset",
        "_thread",
        "_read_offset",
    ],
    "stream": ["_on_message_in", "_on_stream_event_in", "_on_stream_event_out", "_on_message_out"],
    "store": ["_dbs"],
    "consumer_thread": ["_consumer"],
    "aiokafka_consumer": ["_fetch_max_wait_ms", "_coordinator"],
}


class FaustVersionError(RuntimeError):
    """The installed Faust is not the one these overrides were written against."""


def check_faust_version() -> None:
    """Refuse to start on a Faust these overrides were not checked against."""
    if faust.__version__ != FAUST_VERSION:
        raise FaustVersionError(
            f"journeystream's Faust overrides (streams/compat.py) were written for "
            f"faust-streaming {FAUST_VERSION}; installed: {faust.__version__}"
        )


class Positions(Protocol):
    """What the consumer asks the state layer (streams.tables.customers.inputs)."""

    topic: str

    async def claim(self, partitions: set[int]) -> dict[int, int]: ...

    def seek_targets(self, tps: Iterable[TP]) -> dict[TP, int | None]: ...

    def fill(self, offsets: Mapping[TP, int]) -> None: ...


class ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """Faust's consumer thread with a configurable fetch wait and a generation-0 leave."""

    fetch_max_wait_ms: ClassVar[int] = 50

    def _create_worker_consumer(self, transport: Any) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = self.fetch_max_wait_ms  # read when start() builds Fetcher
        return consumer

    async def on_thread_stop(self) -> None:
        """Leave the group also from generation 0, then stop as Faust does."""
        if self._consumer is not None:
            await leave_generation_zero(self._consumer)
        await super().on_thread_stop()


async def leave_generation_zero(consumer: aiokafka.AIOKafkaConsumer) -> None:
    """Send LeaveGroup for a member of generation 0, which aiokafka never leaves."""
    coordinator = getattr(consumer, "_coordinator", None)
    if coordinator is None or coordinator.generation != 0 or not coordinator.member_id:
        return
    try:
        await coordinator._send_req(LeaveGroupRequest(coordinator.group_id, coordinator.member_id))
    except Exception as exc:  # best effort, like aiokafka's own leave
        logger.warning("LeaveGroup (generation 0) failed: %s", exc)
    else:
        logger.info("LeaveGroup request succeeded (generation 0)")


class Delivered:
    """A fetched record handed to a stream without Faust's Event (`Consumer.deliver_directly`)."""

    __slots__ = ("__weakref__", "message")

    def __init__(self, message: Any) -> None:
        self.message = message

    def ack(self) -> bool:
        """Nothing to acknowledge: progress is the position stored with the state."""
        return False


class Consumer(faust_aiokafka.Consumer):
    """Faust's aiokafka consumer: per-fetch delivery, proven restore ends, seeks to positions."""

    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def _drain_messages(self, fetcher: Any) -> None:
        """Faust's drain loop with one `wait_first` per fetch instead of per message."""
        consumer_should_stop = self._stopped.is_set
        fetcher_should_stop = fetcher._stopped.is_set
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                self.diag.set_flag(FETCHING)
                ait = self.getmany(timeout=1.0)
                # the fetch (and the seek getmany runs when the flow is stopped) stays outside
                # the cancellable delivery: cancelled, it would lose fetched records
                try:
                    first = await ait.__anext__()
                except StopAsyncIteration:
                    continue
                if self.should_stop:
                    continue
                await self.wait_first(self._deliver(first, ait), self.suspend_flow.wait())
                self.diag.unset_flag(FETCHING)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                return
            raise
        finally:
            self.diag.unset_flag(FETCHING)

    async def _deliver(self, first: tuple[TP, Any], rest: Any) -> None:
        """Hand over a fetch's records; paused partitions' records are left to their seek.

        A record of a topic with a direct queue (`deliver_directly`) goes into that queue as a
        `Delivered`; any other goes through Faust's conductor (decoded into an Event per channel).
        """
        callback = self.callback
        paused = self._paused_partitions
        read_offset = self._read_offset
        direct = self.direct_queues
        flow = self.app.flow_control
        await self.app.producer.buffer.wait_until_ebb()
        since_yield = 0
        item: tuple[TP, Any] | None = first
        while item is not None:
            tp, message = item
            if tp not in paused:
                since_yield += 1
                if since_yield > 100:
                    await asyncio.sleep(0)
                    since_yield = 0
                queue = direct.get(tp.topic)
                if queue is None:
                    await callback(message)
                else:
                    if not flow.is_active():
                        await flow.acquire()  # as Faust's conductor: wait out a rebalance
                    await self._put_direct(queue, tp, Delivered(message))
                read_offset[tp] = message.offset
            try:
                item = await rest.__anext__()
            except StopAsyncIteration:
                item = None

    @property
    def direct_queues(self) -> dict[str, Any]:
        """Topic -> the one stream queue its records go to without Faust's conductor."""
        queues: dict[str, Any] | None = self.__dict__.get("_direct_queues")
        if queues is None:
            queues = self.__dict__["_direct_queues"] = {}
        return queues

    def deliver_directly(self, topics: Iterable[str], queue: Any) -> None:
        """Put the records of `topics` into `queue` as `Delivered` (None: through Faust again)."""
        for topic in topics:
            if queue is None:
                self.direct_queues.pop(topic, None)
            else:
                self.direct_queues[topic] = queue

    async def _put_direct(self, queue: Any, tp: TP, item: Delivered) -> None:
        """Queue a record as Faust's conductor would: buffer pressure pauses its partition."""
        if queue.full():
            self.app.sensors.on_topic_buffer_full(TP(tp.topic, tp.partition))
            await queue.put(item)
            return
        pressure = self.__dict__.setdefault("_pressure", {})
        callbacks = pressure.get(tp)
        if callbacks is None:
            # Faust's partition sets hold its own TP (the fetch yields aiokafka's)
            callbacks = pressure[tp] = self._pressure_callbacks(TP(tp.topic, tp.partition))
        queue.put_nowait_enhanced(
            item, on_pressure_high=callbacks[0], on_pressure_drop=callbacks[1]
        )

    def _pressure_callbacks(self, tp: TP) -> tuple[Any, Any]:
        def high() -> None:
            self.app.sensors.on_topic_buffer_full(tp)
            self.on_buffer_full(tp)

        def drop() -> None:
            self.on_buffer_drop(tp)

        return high, drop

    async def seek(self, partition: TP, offset: int) -> None:
        """Seek on the consumer's own thread (aiokafka's seek is not thread-safe).

        Faust calls aiokafka's `seek` from the app's thread while the consumer thread may be
        draining fetched records; the fetcher then crashed with a KeyError on its records
        (seen once in the "Kill both workers" scenario, with the agent's gap seeks).
        """
        thread = self._thread
        await thread.call_thread(_seek_now, thread, partition, offset)
        self._read_offset[partition] = offset if offset else None

    def pause_partitions(self, tps: Any) -> None:
        """Pause; a paused partition is no longer "buffered" (Faust delivers those)."""
        super().pause_partitions(tps)
        self._buffered_partitions.difference_update(self._paused_partitions)

    def on_buffer_drop(self, tp: TP) -> None:
        """Resume fetching after buffer pressure, unless the partition is paused."""
        if tp in self._paused_partitions:
            self._buffered_partitions.discard(tp)
            return
        super().on_buffer_drop(tp)

    async def perform_seek(self) -> None:
        """Seek input partitions to the restored positions (committed offsets where none)."""
        await super().perform_seek()
        streams = [tp for tp in self.assignment() if not self._is_changelog_tp(tp)]
        fresh = [tp for tp in streams if self._committed_offset.get(tp) is None]
        if fresh:  # nothing committed: from the start, like the group's offset reset
            await self._thread.seek_to_beginning(*(TopicPartition(*tp) for tp in fresh))
        positions: Positions | None = getattr(self.app, "positions", None)
        if positions is None:
            return
        targets = positions.seek_targets(streams)
        for tp, offset in targets.items():
            if offset is not None:
                await self.seek(tp, offset)
        missing = [tp for tp, offset in targets.items() if offset is None]
        if missing:
            earliest = await self.earliest_offsets(*missing)
            positions.fill(
                {tp: self._committed_offset.get(tp) or earliest.get(tp) or 0 for tp in missing}
            )

    async def _commit(self, offsets: Mapping[TP, int]) -> bool:
        """Commit; say so when the broker refused (Faust drops that silently)."""
        done = await super()._commit(offsets)
        if not done:
            self.log.warning("offset commit refused for %d partitions", len(offsets))
        return done

    async def highwaters(self, *partitions: TP) -> Mapping[TP, int]:
        """Restore ends: the customer changelog's are owner markers this worker appended."""
        positions: Positions | None = getattr(self.app, "positions", None)
        ends: dict[TP, int] = {}
        if positions is not None:
            own = {tp for tp in partitions if tp.topic == positions.topic}
            if own:
                claimed = await positions.claim({tp.partition for tp in own})
                ends.update({tp: claimed[tp.partition] for tp in own})
        rest = [tp for tp in partitions if tp not in ends]
        if rest:
            ends.update(await self._fetched_ends(rest))
        return ends

    async def _fetched_ends(self, partitions: list[TP]) -> dict[TP, int]:
        """Partition ends confirmed by a fetch (the broker's reported end can lag)."""
        reported = await super().highwaters(*partitions)
        bootstrap = ",".join(f"{u.host}:{u.port or 9092}" for u in self.app.conf.broker_consumer)
        auth = faust_aiokafka.credentials_to_aiokafka_auth(
            self.app.conf.broker_credentials, self.app.conf.ssl_context
        )
        confirmed = await confirmed_ends(
            bootstrap,
            [TopicPartition(tp.topic, tp.partition) for tp in partitions],
            {TopicPartition(*tp): v for tp, v in reported.items() if v is not None},
            **auth,
        )
        return {TP(tp.topic, tp.partition): end for tp, end in confirmed.items()}


async def _seek_now(thread: Any, partition: TP, offset: int) -> None:
    thread.seek(partition, offset)


class Transport(faust_aiokafka.Transport):
    """Faust's aiokafka transport using Consumer."""

    Consumer = Consumer


async def send_batches(
    producer: Any,
    topic: str,
    partition: int,
    records: list[tuple[bytes, bytes | None]],
    headers: Any,
) -> list[int]:
    """Send records to one partition as whole batches (aiokafka's `send_batch`); their offsets.

    The same order and the same in-flight limit as one `send` a record, without a future, a
    sensor call and a metadata wait per record (the changelog's records: some 4% of the CPU).
    """
    client = producer._ensure_producer()
    batches = [client.create_batch()]
    for key, value in records:
        if batches[-1].append(key=key, value=value, timestamp=None, headers=headers) is None:
            # full (an empty batch takes any one record: the broker judges its size)
            batches.append(client.create_batch())
            batches[-1].append(key=key, value=value, timestamp=None, headers=headers)
    sent = [b for b in batches if b.record_count()]
    futures = [await client.send_batch(b, topic, partition=partition) for b in sent]
    metas = await asyncio.gather(*futures)
    return [
        meta.offset + i
        for meta, b in zip(metas, sent, strict=True)
        for i in range(b.record_count())
    ]


async def send_keyed(producer: Any, sends: Iterable[tuple[str, bytes, bytes]]) -> None:
    """Send keyed records in whole batches per partition, each where `producer.send` puts it.

    The partition is aiokafka's own choice for the key (`_partition`, the default partitioner,
    as for `send(..., partition=None)`); records of one partition keep their order.
    """
    client = producer._ensure_producer()
    by_partition: dict[tuple[str, int], list[tuple[bytes, bytes | None]]] = defaultdict(list)
    known: set[str] = set()
    for topic, key, value in sends:
        if topic not in known:
            await client.client._wait_on_metadata(topic)
            known.add(topic)
        partition = client._partition(topic, None, key, value, key, value)
        by_partition[topic, partition].append((key, value))
    await asyncio.gather(
        *(send_batches(producer, t, p, records, None) for (t, p), records in by_partition.items())
    )


async def commit_offsets(consumer: Any, offsets: Mapping[TP, int]) -> None:
    """Commit `offsets` now through Faust's private commit (no acked-offset bookkeeping)."""
    await consumer._commit_offsets(offsets)


def table_recovery(app: Any) -> Any:
    """The app's table recovery (`TableManager.recovery`: not on Faust's `TableManagerT`)."""
    return app.tables.recovery


def worker_ready(app: Any) -> bool:
    """Partitions assigned, not rebalancing, table recovery complete (what `/ready` answers)."""
    recovery = table_recovery(app)
    return (
        not app.rebalancing
        and bool(app.consumer.assignment())
        and recovery.completed.is_set()
        and not recovery.in_recovery
    )


def configure(fetch_max_wait_ms: int) -> None:
    """Set the fetch wait used by consumers created from now on."""
    ConsumerThread.fetch_max_wait_ms = int(fetch_max_wait_ms)


class FencedStore(faust_rocksdb.Store):
    """Faust's rocksdb store whose restore skips superseded owners' writes, atomically."""

    def apply_changelog_batch(self, batch: Iterable[EventT], to_key: Any, to_value: Any) -> None:
        """Apply restored changelog records per partition in one RocksDB write each."""
        by_partition: dict[int, list[Any]] = defaultdict(list)
        for event in batch:
            by_partition[event.message.partition].append(event.message)
        for partition, messages in by_partition.items():
            messages.sort(key=lambda m: m.offset)
            db = self._db_for_partition(partition)
            writes = rocksdict.WriteBatch(raw_mode=True)
            records = ((m.key, m.value, m.headers) for m in messages)
            for key, value in fenced(records, db.get(OWNER_KEY)):
                if value is None:
                    writes.delete(key)
                else:
                    writes.put(key, value)
            writes.put(OFFSET_KEY, str(messages[-1].offset).encode())
            db.write(writes)

    def db(self, partition: int) -> Any:
        """The partition's RocksDB (opened on first use)."""
        return self._db_for_partition(partition)


class FencedTable(faust.Table):
    """faust.Table stored in a FencedStore."""

    def _new_store_by_url(self, url: Any) -> Any:
        return FencedStore(
            url,
            self.app,
            self,
            table_name=self.name,
            key_type=self.key_type,
            key_serializer=self.key_serializer,
            value_serializer=self.value_serializer,
            value_type=self.value_type,
            loop=self.loop,
            options=self.options,
        )


def keep_on_resume(flow_control: Any, queue: Any) -> None:
    """Stop Faust from emptying `queue` when the flow resumes.

    Faust's recovery resumes the stream partitions, seeks them, and only then resumes the flow,
    which empties the managed queues: the records fetched from the seeked offsets in between
    were dropped, and when no later record of their partition came, no gap showed it (the
    reliability runs saw the last records of an internal partition never applied). A stream
    whose records are admitted by the position needs no emptying: records of an older
    generation are dropped when taken, and the rest are admitted or skipped by their offset.
    """
    flow_control._queues.discard(queue)


class BatchingStream(faust.Stream):
    """faust.Stream whose take_events yields what is queued, without a drainer task.

    Faust's own `take_events` moves every event through a drainer task and an awaited
    processor, then waits `within` for more also when the queue is empty. Here a batch is what
    the queue holds when the agent asks (at most `max_`), waiting only for the first event.
    Events of an older generation or received while the flow is stopped are dropped. The
    per-event sensor hooks are called only when a sensor other than Faust's own `Monitor` is
    installed: the Monitor's per-stream counters are read by nothing here (journeystream's
    metrics are its own), and its four calls per event cost some 5% of the pipeline's CPU.
    """

    async def take_events(  # type: ignore[override]
        self, max_: int, within: Seconds, *, direct: bool = False
    ) -> AsyncIterator[list[Any]]:
        """Yield lists of up to `max_` events: all that is queued, waiting only for the first.

        `direct`: the consumer puts this stream's records in its queue as `Delivered` (the
        fetched message only, no Faust Event, key or value decoding), when nothing needs Faust's
        per-event machinery: no acks on its topics and no sensor but Faust's Monitor.
        """
        self._finalized = True
        started_by_aiter = await self.maybe_start()
        channel: Any = self.channel
        queue = channel.queue
        slow_get = channel.__anext__
        linger = want_seconds(within) if within else 0.0
        app = self.app
        consumer: Any = app.consumer
        acking_topics = app.topics.acking_topics
        is_active = app.flow_control.is_active
        sensed = any(sensor is not app.monitor for sensor in app.sensors)
        topics = tuple(getattr(channel, "topics", ()))
        direct = bool(direct and not sensed and topics and not set(topics) & set(acking_topics))
        direct = direct and hasattr(consumer, "deliver_directly")
        if direct:
            consumer.deliver_directly(topics, queue)
            keep_on_resume(app.flow_control, queue)
        try:
            while not self.should_stop:
                values = [await slow_get()]
                deadline = time.monotonic() + linger if linger else 0.0
                while len(values) < max_:
                    if not queue.empty():
                        values.append(queue.get_nowait())
                        continue
                    left = deadline - time.monotonic() if deadline else 0.0
                    if left <= 0:
                        break
                    try:
                        values.append(await asyncio.wait_for(slow_get(), left))
                    except TimeoutError:
                        break
                events: list[Any] = []
                states: list[Any] = []
                generation = app.consumer_generation_id
                active = is_active()
                for event in values:
                    if not isinstance(event, EventT | Delivered):
                        continue
                    message = event.message
                    if not active or message.generation_id != generation:
                        continue  # stale: read again from the position after the rebalance
                    tp, offset = message.tp, message.offset
                    if message.topic in acking_topics and not message.tracked:
                        message.tracked = True
                        consumer.unacked.add(message)
                        if sensed:
                            self._on_message_in(tp, offset, message)
                    if sensed:
                        # only Faust Events when sensed (`direct` is off)
                        events_in = self._on_stream_event_in
                        states.append(events_in(tp, offset, self, event))  # type: ignore[arg-type]
                    events.append(event)
                if not events:
                    continue
                _current_event.set(weakref.ref(events[-1]))
                self.current_event = events[-1]
                self.events_total += len(events)
                try:
                    yield events
                finally:
                    self.current_event = None
                    for i, event in enumerate(events):
                        message = event.message
                        last_to_ack = event.ack()
                        if not sensed:
                            continue
                        self._on_stream_event_out(
                            message.tp, message.offset, self, event, states[i]
                        )
                        if last_to_ack:
                            self._on_message_out(message.tp, message.offset, message)
        except StopAsyncIteration:
            return  # the channel was stopped (shutdown)
        finally:
            if direct:
                consumer.deliver_directly(topics, None)
            self._channel_stop_iteration(channel)
            if started_by_aiter:
                await self.stop()
                self.service_reset()
