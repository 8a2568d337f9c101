"""Natural batching: a Faust Stream whose `take_events` hands over what is already queued.

Faust's own `take_events` moves every event through a background drainer task, an awaited
processor and an event per batch, and then waits `within` seconds for more, also when the
queue is empty: about a fifth of a no-op agent's CPU, and up to `within` of added latency.
Here a batch is whatever the agent's queue holds when the agent asks for it (at most
`max_`), awaiting only while the queue is empty. Under load the queue fills while the agent
processes (and awaits its sends), so batches grow by themselves; at a low rate each event is
handed over at once. With `within` > 0 a batch that is not full waits up to `within` for more.

Per event it does what Faust's iterator does: drop events of an older generation or received
while flow is stopped (not acked: the seek after the rebalance reads them again), track the
message for commits, call the sensors; after the batch it acks every event, in a `finally`
like Faust's (see `streams.agents.customers.withhold_acks` for unfinished batches).
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import AsyncIterator
from typing import Any

import faust
from faust.streams import _current_event
from faust.types import EventT
from mode.utils.times import Seconds, want_seconds


class BatchingStream(faust.Stream):
    """faust.Stream with a take_events that yields what is queued, without a drainer task."""

    async def take_events(  # type: ignore[override]
        self, max_: int, within: Seconds
    ) -> AsyncIterator[list[EventT]]:
        """Yield lists of up to `max_` events: all that is queued, waiting only for the first."""
        self._finalized = True
        started_by_aiter = await self.maybe_start()
        channel: Any = self.channel
        queue = channel.queue
        slow_get = channel.__anext__
        linger = want_seconds(within) if within else 0.0
        app = self.app
        consumer = app.consumer
        acking_topics = app.topics.acking_topics
        is_active = app.flow_control.is_active
        on_message_in = self._on_message_in
        on_event_in = self._on_stream_event_in
        on_event_out = self._on_stream_event_out
        on_message_out = self._on_message_out
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
                events: list[EventT] = []
                states: list[Any] = []
                generation = app.consumer_generation_id
                active = is_active()
                for event in values:
                    if not isinstance(event, EventT):
                        continue  # not an event (a value put on a plain channel)
                    message = event.message
                    if not active or message.generation_id != generation:
                        continue  # stale: the seek after the rebalance reads it again
                    tp, offset = message.tp, message.offset
                    if message.topic in acking_topics and not message.tracked:
                        message.tracked = True
                        consumer.unacked.add(message)
                        on_message_in(tp, offset, message)
                    states.append(on_event_in(tp, offset, self, event))
                    events.append(event)
                if not events:
                    continue
                last = events[-1]
                _current_event.set(weakref.ref(last))
                self.current_event = last
                self.events_total += len(events)
                try:
                    yield events
                finally:
                    self.current_event = None
                    for event, state in zip(events, states, strict=True):
                        message = event.message
                        last_to_ack = event.ack()
                        on_event_out(message.tp, message.offset, self, event, state)
                        if last_to_ack:
                            on_message_out(message.tp, message.offset, message)
        except StopAsyncIteration:
            return  # the channel was stopped (shutdown): end the iteration, as Faust does
        finally:
            self._channel_stop_iteration(channel)
            if started_by_aiter:
                await self.stop()
                self.service_reset()
