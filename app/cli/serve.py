"""`licensing serve` and `licensing worker`: the long-running commands."""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Annotated

import typer

from app import observability
from app.cli.common import local_url, logger, service, settings, start_logging
from licensing.orchestration.scheduled_jobs import service_scheduler
from licensing.orchestration.scheduler import runner_name
from licensing.settings import MAX_WORKERS


def serve(
    host: Annotated[
        str | None,
        typer.Option(metavar="HOST", help="Interface to listen on; default: the host setting."),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(
            min=1, max=65535, metavar="PORT", help="Port to listen on; default: the port setting."
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=MAX_WORKERS,
            metavar="N",
            help="Worker processes; default: the workers setting.",
        ),
    ] = None,
) -> None:
    """Serve the dashboard and the GraphQL API (upgrading an empty database first)."""
    from app import uvicorn_compat

    config = settings()
    log_config = start_logging(config)
    service(upgrade=True).database.dispose()
    host, port, workers = host or config.host, port or config.port, workers or config.workers
    with observability.shared_metrics_directory(workers) as metrics_directory:
        if metrics_directory is not None:
            logger.info("Metrics of every worker are kept in %s.", metrics_directory)
        url = local_url(host, port)
        logger.info(
            "Serving the Licensing API at %s/graphql (dashboard at %s/).",
            url,
            url,
            extra={"host": host, "port": port, "workers": workers},
        )
        uvicorn_compat.run(
            "app.factory:create_served_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            timeout_keep_alive=config.keep_alive_seconds,
            log_config=log_config,  # applied again in each worker process
            log_level=config.log_level.lower(),
            access_log=False,  # the app writes its own access line (licensing.access)
            # Live updates are a few hundred bytes of JSON: compressing them would cost each
            # websocket its own compressor (about 100 KiB) and each update the time to use it.
            ws_per_message_deflate=False,
        )


def worker() -> None:
    """Run the scheduler alone (refreshes, syncs, snapshots, notifications) until interrupted.

    Use it where `licensing serve` runs with `scheduler_enabled = false`; several workers may
    run at once: a lease in the database gives each job to one of them.
    """
    config = settings()
    start_logging(config)
    yield_the_processor(config.worker_niceness)
    built = service(upgrade=True)
    if config.worker_metrics_port is not None:
        from prometheus_client import start_http_server

        start_http_server(config.worker_metrics_port, addr=config.host)
        logger.info("Metrics at http://%s:%s/metrics.", config.host, config.worker_metrics_port)
    logger.info("Scheduler running as %s. Press Ctrl+C to stop.", runner_name())

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signal_number in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signal_number, stop.set)
        await service_scheduler(built).run_forever(stop)

    asyncio.run(run())
    built.database.dispose()


def yield_the_processor(niceness: int) -> None:
    """Run at ``niceness`` at least (a process may raise its own, never lower it unprivileged).

    Before any thread starts: on Linux a thread's niceness is its own, and new threads inherit
    it. A night of roster syncs on the host that serves the tab then takes what the requests
    leave: measured with `bench/fleet.py` at a tenth of its size, the dashboard kept 0.95x its
    throughput during the syncs at niceness 10, against 0.34x at 0, and 0.97x at full size
    (docs/benchmarks.md)."""
    current = os.getpriority(os.PRIO_PROCESS, 0)
    if niceness > current:
        os.setpriority(os.PRIO_PROCESS, 0, niceness)
        logger.info("Running at processor niceness %s (worker_niceness).", niceness)
