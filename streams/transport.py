"""Project-side subclasses of Faust's aiokafka transport (no patched site-packages).

Two fixes live here. The fetch wait (below). And the drain loop: Faust's
`Consumer._drain_messages` treats a jump in a partition's offsets as a gap and acks the offsets
in between without delivering them. After a rebalance that kept a partition, records fetched
from the old position can arrive after the seek to the committed offset; the records between
the committed offset and that old position (dropped from the agent's queue by the rebalance)
were then committed unprocessed: a contiguous range of events lost (seen as a few customers
differing in the rebalance and state-loss reliability tests). Here a jump makes the consumer
seek back and read the skipped records; only a jump seen again right after that seek (offsets
that really do not exist: compaction, transaction markers) is accepted as a gap. And a message
that the flow stop of a rebalance kept from being handed over does not count as read (Faust
moved the read offset past it, so its re-fetch was dropped as already read and the partition's
commits stalled behind it).

Three races around a rebalance are closed here as well (each lost or stalled a partition in the
reliability tests):
- Faust resumes the stream partitions before it seeks them to their committed offsets, and the
  seek awaits the broker: records delivered in between, and acks recorded for them, were mixed
  with the seek's offsets (a delivery finishing after the seek overwrote its read offset, so
  the re-read records were dropped as already read, and a commit finishing after it put back an
  older committed offset: the partition's commits stopped behind a gap that never closed). Now
  nothing is delivered while a seek runs, a delivery that spans a seek does not count as read,
  the acks from before the seek are dropped (the seek re-reads those records), and a commit
  that spans a seek does not overwrite the offsets the seek read.
- A partition that was under buffer pressure before a rebalance stayed in Faust's set of
  "buffered" partitions, which `getmany` delivers even while paused: its records reached the
  agent while the table was still being restored. Pausing now clears that mark, and paused
  partitions are never delivered.

And a last guard: a partition whose acks start more than one past its committed offset, with
nothing in flight below them, is a partition Faust will never commit again; so is one whose
committed offset has not moved for 8 s while the broker holds records past it. Either is read
again from its committed offset (the per-customer dedupe absorbs what had been processed) and
counted in `journeystream_stalled_commits_total`.

Speed: Faust races every message's delivery against the flow stop (`wait_first`: four tasks
per message, most of a no-op agent's CPU); here one `wait_first` covers a whole fetch
(`_drain_messages`, `_deliver`). And the consumer thread leaves the group on stop also from
generation 0 (Tansu's first), which aiokafka skips (`leave_generation_zero`).

Faust 0.15 hard-codes ``fetch_max_wait_ms=1500`` for the worker's consumer. A broker that
answers a waiting fetch only when the wait expires (Tansu does) then adds up to 1.5 s to every
event's latency. These classes set the wait from the settings instead.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any, ClassVar

import aiokafka
from aiokafka import TopicPartition
from aiokafka.protocol.group import LeaveGroupRequest
from faust.transport.consumer import CONSUMER_FETCHING as FETCHING
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP
from mode import Service

from streams import metrics
from streams.recovery import confirmed_ends

logger = logging.getLogger(__name__)


class ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """Faust's consumer thread with a configurable fetch wait."""

    fetch_max_wait_ms: ClassVar[int] = 50

    def _create_worker_consumer(self, transport: Any) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        # read by AIOKafkaConsumer.start() when it builds its Fetcher
        consumer._fetch_max_wait_ms = self.fetch_max_wait_ms
        return consumer

    async def on_thread_stop(self) -> None:
        """Leave the group also from generation 0, then stop as Faust does."""
        if self._consumer is not None:
            await leave_generation_zero(self._consumer)
        await super().on_thread_stop()


async def leave_generation_zero(consumer: aiokafka.AIOKafkaConsumer) -> None:
    """Send LeaveGroup for a member of generation 0, which aiokafka never leaves.

    aiokafka leaves the group on stop only when its generation is > 0 (Kafka numbers
    generations from 1); Tansu numbers the first one 0. The group then kept the stopped
    member until its session timed out, and a restarted worker waited for it: a local restart
    took about 13 s instead of about 5 s.
    """
    coordinator = getattr(consumer, "_coordinator", None)
    if coordinator is None or coordinator.generation != 0 or not coordinator.member_id:
        return
    try:
        await coordinator._send_req(LeaveGroupRequest(coordinator.group_id, coordinator.member_id))
    except Exception as exc:  # best effort, like aiokafka's own leave
        logger.warning("LeaveGroup (generation 0) failed: %s", exc)
    else:
        logger.info("LeaveGroup request succeeded (generation 0)")


class Consumer(faust_aiokafka.Consumer):
    """Faust's aiokafka consumer using ConsumerThread, with confirmed partition ends."""

    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def _drain_messages(self, fetcher: Any) -> None:
        """Faust's drain loop, except that a jump in offsets is re-read instead of acked.

        Faust races every single message's delivery against the flow stop (`wait_first`: four
        tasks and an `asyncio.wait` per message: most of a no-op agent's CPU). Here
        one `wait_first` covers a whole fetch: `_deliver` hands the fetch's messages over one
        after the other, and a flow stop cancels it at the message it was delivering (that
        message and the rest of the fetch are not read, as before).
        """
        consumer_should_stop = self._stopped.is_set
        fetcher_should_stop = fetcher._stopped.is_set
        # tp -> (read offset, offset that jumped, times seen right after a seek)
        rewound: dict[TP, tuple[int, int, int]] = {}
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                self.diag.set_flag(FETCHING)
                ait = self.getmany(timeout=1.0)
                # the fetch itself (and the seek getmany runs when the flow is stopped) stays
                # outside the cancellable delivery: cancelled, it would lose fetched records
                # or leave a seek half done; after its first record getmany no longer awaits
                try:
                    first = await ait.__anext__()
                except StopAsyncIteration:
                    continue
                if self.should_stop:
                    continue
                # not done: the flow stopped (rebalance, shutdown) mid-fetch; the message being
                # handed over and the rest of the fetch were not read, and are read again later
                delivery = self._deliver(_prepend(first, ait), rewound)
                await self.wait_first(delivery, self.suspend_flow.wait())
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

    async def _deliver(self, ait: Any, rewound: dict[TP, tuple[int, int, int]]) -> None:
        """Hand over the messages of one fetch (the body of Faust's drain loop)."""
        callback = self.callback
        read_offset = self._read_offset
        acks_enabled_for = self.app.topics.acks_enabled_for
        paused = self._paused_partitions
        since_yield = 0
        sought: set[TP] = set()  # seek at most once per partition and fetch
        async for tp, message in ait:
            if self._seeking:
                break  # not read: the seek re-reads it
            if tp in paused or tp in self._unseeked:
                continue  # not read: the seek that ends the pause re-reads it
            since_yield += 1
            if since_yield > 100:
                await asyncio.sleep(0)
                since_yield = 0
            offset = message.offset
            r_offset = read_offset.get(tp)
            if r_offset is not None and offset < r_offset:
                continue  # already delivered
            if r_offset is not None and offset > r_offset + 1:
                if tp in sought:
                    continue
                sought.add(tp)
                before = rewound.get(tp)
                seen = before[2] + 1 if before and before[:2] == (r_offset, offset) else 1
                if seen < 3:
                    # a fetch from before a seek (or a seek lost to one): read again
                    if seen == 1 and (before is None or before[0] != r_offset):
                        self.log.warning(
                            "offsets jumped from %d to %d in %s[%d]: reading them again",
                            r_offset,
                            offset,
                            tp.topic,
                            tp.partition,
                        )
                    rewound[tp] = (r_offset, offset, seen)
                    await asyncio.shield(self._seek(tp, r_offset))  # never half done
                    continue
                # the same jump three times right after a seek: the offsets do not exist
                del rewound[tp]
                if acks_enabled_for(message.topic):
                    await self._add_gap(tp, r_offset + 1, offset)
            rewound.pop(tp, None)
            commit_every = self._commit_every
            if commit_every is not None and self._n_acked >= commit_every:
                self._n_acked = 0
                await asyncio.shield(self.commit())  # never half done
            epoch = self._seek_epoch
            await callback(message)
            if epoch != self._seek_epoch:
                break  # a seek ran meanwhile: its read offset stands
            read_offset[tp] = offset

    stall_check_s: ClassVar[float] = 2.0
    stall_after_s: ClassVar[float] = 8.0

    @Service.task
    async def _unstick_commits(self) -> None:
        """Read a partition again from its committed offset when its commits stopped."""
        gaps: dict[TP, tuple[int, int]] = {}
        still: dict[TP, tuple[int, float]] = {}  # committed offset, since when
        while not self.should_stop:
            await self.sleep(self.stall_check_s)
            if not self.flow_active or self.app.rebalancing or self._seeking:
                gaps.clear()
                still.clear()
                continue
            now = time.monotonic()
            stuck = self.stuck_partitions()
            for tp, (committed, head) in stuck.items():
                if gaps.get(tp) == (committed, head):
                    await self.read_again(tp, committed, f"acks start at {head}")
                    still.pop(tp, None)
            gaps = stuck
            for tp in self.assignment():
                if self._is_changelog_tp(tp) or tp in self._paused_partitions:
                    continue
                committed = self._committed_offset.get(tp)
                end = self.highwater(tp)
                if not committed or end is None or end <= committed:
                    still.pop(tp, None)
                    continue
                before = still.get(tp)
                if before is None or before[0] != committed:
                    still[tp] = (committed, now)
                elif now - before[1] >= self.stall_after_s:
                    await self.read_again(tp, committed, f"not moved for {now - before[1]:.0f} s")
                    still[tp] = (committed, now)

    async def read_again(self, tp: TP, committed: int, why: str) -> None:
        """Seek a stalled partition back to its committed offset (and fetch it again)."""
        self.log.warning(
            "commits of %s[%d] stopped at %d (%s): reading from %d again",
            tp.topic,
            tp.partition,
            committed,
            why,
            committed,
        )
        metrics.STALLED_COMMITS.inc()
        self._buffered_partitions.discard(tp)
        self._get_active_partitions().add(tp)
        await self.seek(tp, committed)

    def stuck_partitions(self) -> dict[TP, tuple[int, int]]:
        """Partitions whose acks start past committed + 1 with nothing in flight below them."""
        in_flight: dict[TP, list[int]] = {}
        for message in list(self._unacked_messages):
            if not message.acked:
                in_flight.setdefault(message.tp, []).append(message.offset)
        stuck: dict[TP, tuple[int, int]] = {}
        for tp, acked in list(self._acked.items()):
            committed = self._committed_offset.get(tp)
            if not acked or not committed or self._is_changelog_tp(tp):
                continue
            head = min(acked)
            if head - committed <= 1:
                continue
            if any(committed <= off < head for off in in_flight.get(tp, ())):
                continue
            stuck[tp] = (committed, head)
        return stuck

    _seek_epoch: int = 0
    _seeking: bool = False
    _unseeked: frozenset[TP] = frozenset()
    _seeked: dict[TP, int | None] = {}

    async def perform_seek(self) -> None:
        """Seek to the committed offsets with delivery held, and forget acks from before it."""
        self._seeking = True
        self._seek_epoch += 1
        try:
            await super().perform_seek()
            seeked = {
                tp: self._committed_offset.get(tp)
                for tp in self.assignment()
                if not self._is_changelog_tp(tp)
            }
            fresh = [tp for tp, off in seeked.items() if off is None]
            if fresh:
                # nothing committed yet: read from the start, like the group's offset reset
                await self._thread.seek_to_beginning(
                    *(TopicPartition(tp.topic, tp.partition) for tp in fresh)
                )
            for tp in seeked:
                # the records those acks were for are read again from the committed offset
                self._acked.pop(tp, None)
                self._acked_index.pop(tp, None)
                self._gap.pop(tp, None)
            self._seeked = seeked
            self._unseeked = frozenset()
        finally:
            self._seek_epoch += 1
            self._seeking = False

    async def seek(self, partition: TP, offset: int) -> None:
        """Seek one partition; a delivery in flight does not move its read offset past it."""
        self._seek_epoch += 1
        self._unseeked = self._unseeked - {partition}
        await super().seek(partition, offset)

    async def _commit_offsets(
        self, offsets: Mapping[TP, int], start_new_transaction: bool = True
    ) -> bool:
        """Commit; if a seek ran meanwhile, keep the committed offsets it read."""
        epoch = self._seek_epoch
        done = await super()._commit_offsets(offsets, start_new_transaction)
        if epoch != self._seek_epoch:
            for tp in offsets:
                if tp in self._seeked:
                    self._committed_offset[tp] = self._seeked[tp]
        return done

    def resume_partitions(self, tps: Any) -> None:
        """Resume; a stream partition delivers nothing until the seek to its committed offset.

        Faust resumes the stream partitions and then starts the seek as a new task: in between,
        the fetcher could hand over records from the old fetch position.
        """
        tpset = {TP(tp.topic, tp.partition) for tp in tps}
        self._unseeked = self._unseeked | {tp for tp in tpset if not self._is_changelog_tp(tp)}
        super().resume_partitions(tps)

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

    async def _commit(self, offsets: Mapping[TP, int]) -> bool:
        """Commit; say so when the broker refused (Faust drops that silently)."""
        done = await super()._commit(offsets)
        if not done:
            self.log.warning(
                "offset commit refused for %d partitions (%s)",
                len(offsets),
                ", ".join(f"{tp.topic}[{tp.partition}]={off}" for tp, off in offsets.items()),
            )
        return done

    async def highwaters(self, *partitions: TP) -> Mapping[TP, int]:
        """Partition ends confirmed by a fetch (changelog restore must reach the real end)."""
        reported = await super().highwaters(*partitions)
        bootstrap = ",".join(f"{u.host}:{u.port or 9092}" for u in self.app.conf.broker_consumer)
        auth = faust_aiokafka.credentials_to_aiokafka_auth(
            self.app.conf.broker_credentials, self.app.conf.ssl_context
        )
        confirmed = await confirmed_ends(
            bootstrap,
            [TopicPartition(tp.topic, tp.partition) for tp in partitions],
            {
                TopicPartition(tp.topic, tp.partition): v
                for tp, v in reported.items()
                if v is not None
            },
            **auth,
        )
        ends = {TP(tp.topic, tp.partition): end for tp, end in confirmed.items()}
        lagging = {
            tp: (reported.get(tp), end) for tp, end in ends.items() if reported.get(tp) != end
        }
        if lagging:
            self.log.warning(
                "broker under-reported %d partition ends; using fetched ends", len(lagging)
            )
        return ends


async def _prepend(first: Any, rest: Any) -> Any:
    """`first`, then what `rest` yields (an async generator)."""
    yield first
    async for item in rest:
        yield item


class Transport(faust_aiokafka.Transport):
    """Faust's aiokafka transport using Consumer."""

    Consumer = Consumer


def configure(fetch_max_wait_ms: int) -> None:
    """Set the fetch wait used by consumers created from now on."""
    ConsumerThread.fetch_max_wait_ms = int(fetch_max_wait_ms)
