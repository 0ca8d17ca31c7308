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

:func:`add_routes` is the admin listener's hook for this module: it builds
the registry, adds the sink, and serves ``GET /metrics`` in the text format
(OpenMetrics when the scraper asks for it, as Prometheus does), built by
prometheus_client's own encoder. The listener's bearer-token check applies.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector
from prometheus_client.exposition import choose_encoder

from huntgroup.admin.call_metrics import CallMetrics
from huntgroup.admin.server_collector import ServerCollector

if TYPE_CHECKING:
    from huntgroup.engine.aio.server import Server


class Metrics:
    """The registry of one server, and what feeds it (see the module docstring)."""

    def __init__(self, server: Server) -> None:
        self.registry = CollectorRegistry()
        self.calls = CallMetrics(
            self.registry,
            lambda: server.config,
            # under server: (like every setting there) a reload keeps the value of the start
            max_member_series=server.config.server.admin.metrics.max_member_series,
        )
        self.registry.register(ServerCollector(server))
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)

    def exposition(self, accept: str = "") -> tuple[bytes, str]:
        """The body of a scrape, and its content type, for an ``Accept`` header."""
        self.calls.follow_config()  # series of members a reload removed go at once
        encoder, content_type = choose_encoder(accept)
        return encoder(self.registry), content_type


METRICS = web.AppKey("metrics", Metrics)


def add_routes(app: web.Application, server: Server) -> None:
    """``GET /metrics`` for ``server``; its call sink joins ``server.reports``."""
    metrics = Metrics(server)
    app[METRICS] = metrics

    async def scrape(request: web.Request) -> web.Response:
        body, content_type = metrics.exposition(request.headers.get("Accept", ""))
        return web.Response(body=body, headers={"Content-Type": content_type})

    app.router.add_get("/metrics", scrape)
