"""`make bench`: throughput, latency, memory and recovery figures of journeystream.

Run with ``python -m bench.run --output BENCHMARKS.md`` (see bench/run.py for the options).
"""
