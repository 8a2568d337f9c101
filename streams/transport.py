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

Faust 0.15 hard-codes ``fetch_max_wait_ms=1500`` for the worker's consumer. A broker that
answers a waiting fetch only when the wait expires (Tansu does) then adds up to 1.5 s to every
event's latency. These classes set the wait from the settings instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, ClassVar

import aiokafka
from aiokafka import TopicPartition
from faust.transport.consumer import CONSUMER_FETCHING as FETCHING
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

from streams.recovery import confirmed_ends


class ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """Faust's consumer thread with a configurable fetch wait."""

    fetch_max_wait_ms: ClassVar[int] = 50

    def _create_worker_consumer(self, transport: Any) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        # read by AIOKafkaConsumer.start() when it builds its Fetcher
        consumer._fetch_max_wait_ms = self.fetch_max_wait_ms
        return consumer


class Consumer(faust_aiokafka.Consumer):
    """Faust's aiokafka consumer using ConsumerThread, with confirmed partition ends."""

    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def _drain_messages(self, fetcher: Any) -> None:
        """Faust's drain loop, except that a jump in offsets is re-read instead of acked."""
        callback = self.callback
        consumer_should_stop = self._stopped.is_set
        fetcher_should_stop = fetcher._stopped.is_set
        read_offset = self._read_offset
        acks_enabled_for = self.app.topics.acks_enabled_for
        # tp -> (read offset, offset that jumped, times seen right after a seek)
        rewound: dict[TP, tuple[int, int, int]] = {}
        since_yield = 0
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                self.diag.set_flag(FETCHING)
                ait = self.getmany(timeout=1.0)
                await self.sleep(0)
                if self.should_stop:
                    continue
                sought: set[TP] = set()  # seek at most once per partition and fetch
                async for tp, message in ait:
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
                            await self._seek(tp, r_offset)
                            continue
                        # the same jump three times right after a seek: the offsets do not exist
                        del rewound[tp]
                        if acks_enabled_for(message.topic):
                            await self._add_gap(tp, r_offset + 1, offset)
                    rewound.pop(tp, None)
                    commit_every = self._commit_every
                    if commit_every is not None and self._n_acked >= commit_every:
                        self._n_acked = 0
                        await self.commit()
                    delivery = callback(message)
                    result = await self.wait_first(delivery, self.suspend_flow.wait())
                    if delivery not in result.done:
                        # the flow stopped (rebalance, shutdown) before the message was handed
                        # over: it was not read; the rest of this fetch is read again later
                        break
                    read_offset[tp] = offset
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


class Transport(faust_aiokafka.Transport):
    """Faust's aiokafka transport using Consumer."""

    Consumer = Consumer


def configure(fetch_max_wait_ms: int) -> None:
    """Set the fetch wait used by consumers created from now on."""
    ConsumerThread.fetch_max_wait_ms = int(fetch_max_wait_ms)
