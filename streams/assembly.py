"""How the Faust app is assembled from Settings (no module-level app: the bench reuses it)."""

from __future__ import annotations

import gc
from typing import Any

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka

from streams import compat
from streams.compat import BatchingStream
from streams.security import broker_credentials
from streams.settings import Settings


class JourneyApp(faust.App):
    """faust.App using journeystream's transport (streams.compat) and input positions."""

    transport_class: type[faust_aiokafka.Transport] = compat.Transport
    # the state layer the consumer asks for restore ends and seek targets (streams.tables)
    positions: Any = None

    def _new_transport(self) -> faust_aiokafka.Transport:
        return self.transport_class(self.conf.broker_consumer, self)


def create_app(settings: Settings, **overrides: Any) -> JourneyApp:
    """Create the Faust app for these settings (`overrides` replace Faust options)."""
    compat.check_faust_version()
    compat.configure(settings.fetch_max_wait_ms)
    tune_gc(settings.gc_young_threshold)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    options: dict[str, Any] = dict(
        broker=settings.broker,
        store="rocksdb://",
        datadir=str(settings.data_dir),
        autodiscover=[
            "streams.tables",
            "streams.agents",
            "streams.web",
            "streams.audience_web",
            "streams.operations_web",
            "streams.gauges",
        ],
        origin="streams",
        topic_partitions=settings.partitions,
        # the changelogs' (and Faust's leader topic's) replication: 3 on a production cluster
        topic_replication_factor=settings.changelog_replication_factor,
        topic_allow_declare=True,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=settings.heartbeat_interval_s,
        broker_rebalance_timeout=settings.rebalance_timeout_s,
        broker_request_timeout=settings.request_timeout_s,
        broker_commit_interval=settings.commit_interval_s,
        broker_credentials=broker_credentials(settings),
        producer_linger=settings.producer_linger_ms / 1000.0,
        producer_max_batch_size=settings.producer_max_batch_bytes,
        producer_acks=-1,
        stream_buffer_maxsize=max(4096, settings.batch_max_events * 2),
        Stream=BatchingStream,  # take_events hands over what is queued (streams/compat.py)
        table_standby_replicas=0,
        # safe to keep on: restore ends are this worker's own owner markers (streams/compat.py)
        recovery_consistency_check=True,
        web_host=settings.advertised_host or settings.web_host,
        web_bind=settings.web_host,
        web_port=settings.web_port,
        canonical_url=f"http://{settings.advertised_host or settings.web_host}:{settings.web_port}",
        web_in_thread=False,
        # Faust's built-in endpoints are off: /table/… serves table data and /router/… the
        # cluster layout, neither behind the API token. /customers/{id} is routed through the
        # partition assignor (app.router), which does not need the /router/ endpoints.
        web_tables_enabled=False,
        web_router_enabled=False,
        web_stats_enabled=False,  # / and /assignment/ (sensor counters, partitions)
        web_graph_enabled=False,
        web_metrics_enabled=False,  # /performance/
        logging_config=None,
    )
    options.update(overrides)
    return JourneyApp(settings.app_id, **options)


def tune_gc(young_threshold: int) -> None:
    """Collect reference cycles less often (a batch frees its many objects by reference count)."""
    # at Python's 700 the young collections led to full ones over the whole heap: 16% of the CPU
    _, middle, old = gc.get_threshold()
    gc.set_threshold(young_threshold, max(middle, 20), max(old, 100))
