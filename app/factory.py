"""The Starlette application: the dashboard at /, GraphQL at /graphql, health at /healthz,
the dashboard's sign-in at /session, Prometheus metrics at /metrics, the tab's icon at
/favicon.ico (browsers ask for it there)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from sqlalchemy import text
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp

from app.observability import RequestObservability, metrics
from app.report_export import REPORT_PATH, active_students_csv
from app.runtime import build_service, set_up_server_process
from app.security_headers import SecurityHeaders
from app.sessions import session_routes
from graph.conditional import server_fingerprint
from graph.http import LicensingGraphQL
from graph.outage import DATABASE_UNAVAILABLE, DatabaseOutageAnswers, outage_headers
from graph.persisted import PersistedQueries, documents_in_module
from graph.schema import build_schema, printed_schema
from licensing.orchestration.scheduled_jobs import service_scheduler
from licensing.orchestration.service import LicensingService
from licensing.settings import load_settings

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
# The Licensing tab's GraphQL documents: every district may run them by hash, registered or not.
TAB_OPERATIONS = WEB_DIR / "operations.js"


def tab_documents() -> dict[str, str]:
    """The Licensing tab's GraphQL documents, by name."""
    return documents_in_module(TAB_OPERATIONS.read_text(encoding="utf-8"))


class LicensingApp(Starlette):
    """Starlette, with the security headers (app/security_headers.py) put outside its own error
    handling, so that even an unexpected failure's 500 answer carries them."""

    def build_middleware_stack(self) -> ASGIApp:
        return SecurityHeaders(super().build_middleware_stack())


def create_served_app() -> Starlette:
    """The app of one `licensing serve` worker process, built from the configuration, in a
    process set up to serve (``set_up_server_process``)."""
    set_up_server_process()
    return create_app()


def create_app(service: LicensingService | None = None) -> Starlette:
    """The whole HTTP service; without a service, one is built from the configuration."""
    if service is None:
        service = build_service(load_settings())
    settings = service.settings
    schema = build_schema(settings.graphql)
    graphql = LicensingGraphQL(
        schema,
        service=service,
        max_body_bytes=settings.graphql.max_body_bytes,
        development=settings.development,
        persisted=PersistedQueries(
            schema=schema,
            service=service,
            limits=settings.graphql,
            settings=settings.persisted_queries,
            builtin=tab_documents(),
        ),
        fingerprint=server_fingerprint(printed_schema(schema), settings.model_dump_json()),
    )

    async def favicon(_request: Request) -> FileResponse:
        # The SVG icon answers at the old address too: browsers and bookmarks ask /favicon.ico.
        return FileResponse(
            WEB_DIR / "favicon.svg",
            media_type="image/svg+xml",
            headers={"Cache-Control": "public, max-age=86400"},
        )

    async def healthz(_request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def readyz(_request: Request) -> JSONResponse:
        try:
            with service.database.read() as session:
                session.execute(text("SELECT 1"))
        except Exception:
            return JSONResponse(
                {"status": "database unavailable", "code": DATABASE_UNAVAILABLE.code},
                status_code=503,
                headers=outage_headers(),
            )
        return JSONResponse({"status": "ready"})

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        stop = asyncio.Event()
        runner = None
        if settings.scheduler_enabled:
            runner = asyncio.create_task(service_scheduler(service).run_forever(stop))
        yield
        stop.set()
        if runner is not None:
            await runner
        await service.stop_live_updates()
        service.database.dispose()

    return LicensingApp(
        routes=[
            Route("/graphql", graphql, methods=["GET", "POST"]),
            WebSocketRoute("/graphql", graphql),  # live subscriptions (graphql-transport-ws)
            Route("/favicon.ico", favicon, methods=["GET", "HEAD"]),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics, methods=["GET"]),  # unauthenticated: see docs/deploy.md
            Route(REPORT_PATH, active_students_csv(service), methods=["GET"]),
            *session_routes(service),  # the Licensing tab's sessions (app/sessions.py)
            Mount("/", StaticFiles(directory=WEB_DIR, html=True)),
        ],
        # Request ids, access log lines and HTTP metrics for every request (app/observability.py).
        # Inside them, a database outage met by any endpoint is answered with 503 and Retry-After
        # (graph/outage.py), never a 500.
        middleware=[Middleware(RequestObservability), Middleware(DatabaseOutageAnswers)],
        lifespan=lifespan,
    )
