"""``GET /metrics`` on the admin listener: the Prometheus exposition of one server.

Theory of operation
-------------------
Each :class:`~huntgroup.engine.aio.server.Server` gets its own
prometheus_client ``CollectorRegistry`` (:class:`Metrics`), never the
process-wide default one, so that several servers in one process (the tests)
keep their numbers apart. Three things fill it:

- :class:`~huntgroup.admin.call_metrics.CallMetrics`, a report
  sink added to ``Server.reports``: calls by outcome, wait and talk
  histograms, calls per member (bounded, see there);
- :class:`~huntgroup.admin.server_collector.ServerCollector`:
  gauges, the ``stats:`` counters and the SIP message counts, read at scrape
  time;
- prometheus_client's process and platform collectors (CPU seconds, memory,
  open files of the process; the Python version).

A scrape reads the server on the event loop (:meth:`Metrics.snapshot`: a walk
over the groups and members, milliseconds), then builds the text in a worker
thread: with thousands of member series that is the expensive part, and
prometheus_client's metrics are safe to read from a thread while the loop
moves them. The ``_created`` series are off.

:func:`add_routes` is the admin listener's hook for this module: it builds
the registry, adds the sink, and serves ``GET /metrics`` in the text format
(OpenMetrics when the scraper asks for it, as Prometheus does), built by
prometheus_client's own encoder. The listener's bearer-token check applies.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client import (
    CollectorRegistry,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.core import Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from huntgroup.admin.call_metrics import CallMetrics
from huntgroup.admin.server_collector import ServerCollector

if TYPE_CHECKING:
    from huntgroup.engine.aio.server import Server

# The ``_created`` series of every counter and histogram would double the scrape for a
# timestamp Prometheus does not need (process-wide: this process serves one node).
disable_created_metrics()  # type: ignore[no-untyped-call]


class Metrics:
    """The registry of one server, and what feeds it (see the module docstring)."""

    def __init__(self, server: Server) -> None:
        self.registry = CollectorRegistry()  # what may be read from another thread
        self.calls = CallMetrics(
            self.registry,
            lambda: server.config,
            # under server: (like every setting there) a reload keeps the value of the start
            max_member_series=server.config.server.admin.metrics.max_member_series,
        )
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        self.server_collector = ServerCollector(server)

    def snapshot(self) -> Collector:
        """On the event loop: the server's gauges and counters read now, with the
        registry, as one collector an encoder may read from another thread."""
        self.calls.follow_config()  # series of members a reload removed go at once
        return Snapshot(list(self.server_collector.collect()), self.registry)

    def exposition(self, accept: str = "") -> tuple[bytes, str]:
        """The body of a scrape and its content type, built here and now."""
        return encode(self.snapshot(), accept)


class Snapshot(Collector):
    """Families read on the event loop, then what the registry holds."""

    def __init__(self, families: list[Metric], registry: CollectorRegistry) -> None:
        self.families = families
        self.registry = registry

    def collect(self) -> Iterable[Metric]:
        yield from self.families
        yield from self.registry.collect()


def encode(collector: Collector, accept: str) -> tuple[bytes, str]:
    """prometheus_client's encoder for an ``Accept`` header, and its content type."""
    encoder, content_type = choose_encoder(accept)
    return encoder(collector), content_type


METRICS = web.AppKey("metrics", Metrics)


def add_routes(app: web.Application, server: Server) -> None:
    """``GET /metrics`` for ``server``; its call sink joins ``server.reports``."""
    metrics = Metrics(server)
    app[METRICS] = metrics
    server.reports.add(metrics.calls)

    async def scrape(request: web.Request) -> web.Response:
        # Reading the server takes milliseconds on the loop; the text (thousands of lines
        # with many members) is built in a thread, so calls are not held up meanwhile.
        snapshot = metrics.snapshot()
        accept = request.headers.get("Accept", "")
        body, content_type = await asyncio.to_thread(encode, snapshot, accept)
        return web.Response(body=body, headers={"Content-Type": content_type})

    app.router.add_get("/metrics", scrape)
