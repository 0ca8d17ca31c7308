"""One node, run to the end: the SIP server, its admin listener, signals and shutdown.

Theory of operation
-------------------
:func:`serve` is what ``huntgroup serve`` runs. It starts the
:class:`~huntgroup.engine.aio.server.Server` (every SIP listener open, music
loaded, the state store reached), then the admin HTTP listener when
``server.admin.listen`` is set, and hands the process's signals to them:
SIGHUP reopens the call-record files and reloads the configuration file, SIGUSR1 logs the counters,
SIGINT/SIGTERM drain the node. While it drains, the admin listener stays up
(``/readyz`` answers 503); it closes once the last call is over.

Under systemd (:mod:`~huntgroup.engine.aio.systemd`): READY=1 once the SIP and admin
listeners are open, STATUS= lines, WATCHDOG=1 from the event loop, RELOADING=1 then
READY=1 around a reload (SIGHUP or the API), STOPPING=1 when the drain begins.

It sits above the asyncio drivers (``engine.aio``) so that the admin package
may read any of them without the server importing it back.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal

from huntgroup.admin.listener import AdminListener
from huntgroup.config.models import Config
from huntgroup.engine.aio import systemd
from huntgroup.engine.aio.server import Server
from huntgroup.engine.b2bua import stats

log = logging.getLogger("huntgroup.server")


async def start_admin(server: Server) -> AdminListener | None:
    """The admin listener of ``server`` started, or None when it is off.

    Raises :class:`~huntgroup.admin.token.AdminTokenError` or ``OSError``: the
    node must not run without the protection or the listener it was given.
    """
    admin_config = server.config.server.admin
    if admin_config.listen is None:
        return None
    admin = AdminListener(server, admin_config)
    await admin.start()
    return admin


async def serve(config: Config, *, config_path: str | None = None) -> int:
    loop = asyncio.get_running_loop()
    server = Server(config, loop=loop)
    server.config_path = config_path
    await server.start()
    try:
        admin = await start_admin(server)
    except BaseException:
        server.close()
        raise
    stopping = asyncio.Event()
    notifier = systemd.Notifier.from_environment()  # does nothing when not under systemd
    server.notifier = notifier  # a reload (SIGHUP or the API) is bracketed by RELOADING=1
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    # SIGHUP: reopen the call-record files (log rotation), reload the file if there is one
    loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(server.reload()))
    # Everything loaded so far lives as long as the process: keep it out of the
    # collector's way, and collect young objects less often (a call makes many).
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)
    loop.add_signal_handler(signal.SIGUSR1, server.log_stats)
    log.info("huntgroup ready: %d group(s), %d line(s)", len(config.groups), len(config.lines))

    def status() -> str:
        return systemd.status_line(server.b2bua.gauges(), draining=stopping.is_set())

    notifier.ready(status())
    notifier.start(loop, status)  # WATCHDOG=1 from this loop, STATUS= when it changes
    reporter = loop.create_task(server.report_stats(stats.INTERVAL))
    await stopping.wait()
    notifier.stopping(status())
    reporter.cancel()
    await server.shutdown()
    if admin is not None:
        await admin.stop()
    server.log_stats()
    log.info("stopped")
    notifier.close()
    return 0
