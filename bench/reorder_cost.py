"""`python -m bench.reorder_cost`: cost of the reorder window in the pure core (no broker).

Applies the reliability workload (50k events, 4k customers) event by event with a load/store
round trip of each customer's state through orjson, as the worker does per batch, with the
window off (JOURNEYSTREAM_REORDER_WINDOW_S=0) and on (default 1 h); prints medians of runs.
"""

from __future__ import annotations

import argparse
import statistics
import time

import orjson

from journey import customer as core
from journey.config import JourneyConfig
from journey.customer import CustomerState
from schemas import contracts


def run(decoded: list, config: JourneyConfig) -> tuple[float, float]:
    """Events per second and mean stored state size (bytes) for one pass."""
    store: dict[str, bytes] = {}
    started = time.perf_counter()
    for key, event in decoded:
        raw = store.get(key)
        state = CustomerState.from_dict(orjson.loads(raw)) if raw else None
        state, _ = core.apply(state, event, event.occurred_at, config, key=key)
        store[key] = orjson.dumps(state.to_dict())
    seconds = time.perf_counter() - started
    return len(decoded) / seconds, sum(map(len, store.values())) / len(store)


def main() -> None:
    """Interleave runs with the window off and on; print the medians and their ratio."""
    from harness.process import wire_key
    from tests.reliability.test_kill_restart import workload

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    decoded = []
    for raw in workload():
        event = contracts.decode(orjson.dumps(raw), now=float("inf"))
        decoded.append((wire_key(raw).decode(), event))
    configs = {"off": JourneyConfig(reorder_window_s=0), "on (1 h)": JourneyConfig()}
    rates: dict[str, list[float]] = {name: [] for name in configs}
    sizes: dict[str, float] = {}
    for _ in range(args.runs):
        for name, config in configs.items():
            rate, size = run(decoded, config)
            rates[name].append(rate)
            sizes[name] = size
    for name in configs:
        print(
            f"window {name}: median {statistics.median(rates[name]):,.0f} ev/s "
            f"(runs {', '.join(f'{r:,.0f}' for r in rates[name])}), "
            f"state {sizes[name]:,.0f} B/customer"
        )
    ratio = statistics.median(rates["on (1 h)"]) / statistics.median(rates["off"])
    print(f"ratio on/off: {ratio:.2f}")


if __name__ == "__main__":
    main()
