"""BatchingStream.take_events: a batch is what is queued (capped), acked after processing."""

from __future__ import annotations

import asyncio
from typing import Any

import faust
import pytest

from streams.compat import BatchingStream


def run(coro: Any) -> Any:
    """Run a coroutine with a generous guard against a stream that waits forever."""
    return asyncio.run(asyncio.wait_for(coro, 10))


@pytest.fixture
def app() -> faust.App:
    """A Faust app (never started) whose streams are BatchingStreams."""
    return faust.App("batching-test", store="memory://", Stream=BatchingStream)


def test_a_batch_is_what_is_queued_up_to_max(app: faust.App) -> None:
    async def main() -> list[list[int]]:
        app.flow_control.resume()
        channel = app.channel()
        stream = app.stream(channel)
        assert isinstance(stream, BatchingStream)
        for i in range(7):
            await channel.send(value=i)
        out: list[list[int]] = []
        async for batch in stream.take_events(3, within=0):
            out.append([e.value for e in batch])
            if sum(map(len, out)) == 7:
                break
        return out

    assert run(main()) == [[0, 1, 2], [3, 4, 5], [6]]


def test_a_short_batch_is_handed_over_without_waiting_for_more(app: faust.App) -> None:
    async def main() -> list[int]:
        app.flow_control.resume()
        channel = app.channel()
        stream = app.stream(channel)
        await channel.send(value="only")
        async for batch in stream.take_events(1000, within=0):
            return [e.value for e in batch]
        return []

    assert run(main()) == ["only"]


def test_within_waits_for_more_events_once_a_batch_has_one(app: faust.App) -> None:
    async def main() -> list[int]:
        app.flow_control.resume()
        channel = app.channel()
        stream = app.stream(channel)
        await channel.send(value=1)

        async def later() -> None:
            await asyncio.sleep(0.05)
            await channel.send(value=2)

        sender = asyncio.ensure_future(later())
        async for batch in stream.take_events(1000, within=2.0):
            await sender
            return [e.value for e in batch]
        return []

    assert run(main()) == [1, 2]


def test_a_batch_is_acked_only_after_it_was_processed(app: faust.App) -> None:
    async def main() -> tuple[list[bool], list[bool], list[bool]]:
        app.flow_control.resume()
        channel = app.channel()
        stream = app.stream(channel)
        for i in range(4):
            await channel.send(value=i)
        seen: list[Any] = []
        during: list[bool] = []
        async for batch in stream.take_events(2, within=0):
            during += [e.message.acked for e in batch]
            seen.append(batch)
            if len(seen) == 2:
                break
        first_after = [e.message.acked for e in seen[0]]
        return during, first_after, [e.message.acked for e in seen[1]]

    during, first_after, second = run(main())
    assert during == [False] * 4  # nothing acked while its batch is processed
    assert first_after == [True, True]  # acked once the agent asked for the next batch
    assert second == [False, False]  # the agent left mid-batch: not acked (not processed)


def test_events_taken_while_flow_is_stopped_are_dropped_unacked(app: faust.App) -> None:
    async def main() -> tuple[list[str], bool]:
        app.flow_control.resume()
        channel = app.channel()
        stream = app.stream(channel)
        await channel.send(value="stale")
        stale = stream.channel.queue._queue[0]
        app.flow_control.suspend()  # a rebalance began: the seek after it reads it again

        async def take() -> list[str]:
            async for batch in stream.take_events(10, within=0):
                return [e.value for e in batch]
            return []

        taking = asyncio.ensure_future(take())
        await asyncio.sleep(0.05)  # the stream takes "stale" and drops it
        assert not taking.done()
        app.flow_control.resume()
        await channel.send(value="fresh")
        return await taking, stale.message.acked

    batch, stale_acked = run(main())
    assert batch == ["fresh"]
    assert stale_acked is False


def test_stopping_the_channel_ends_the_batches_without_an_error(app: faust.App) -> None:
    async def main() -> list[list[int]]:
        app.flow_control.resume()
        channel = app.channel()
        stream = app.stream(channel)
        await channel.send(value=1)
        out: list[list[int]] = []
        async for batch in stream.take_events(10, within=0):
            out.append([e.value for e in batch])
            stream.channel._throw(StopAsyncIteration())  # what Faust's actor does on cancel
        return out

    assert run(main()) == [[1]]
