"""The ASGI application: discovery, the three hook services, feedback, OpenAPI.

``create_app(config)`` is the public entry point; hospitals can serve the returned
Starlette app with any ASGI server (``b12drugs serve`` uses uvicorn).

Request handling order, cheapest refusal first: route -> JWT (before the body is
read) -> Content-Type (``application/json``, parameters allowed; else 415) -> body
size -> JSON syntax and depth -> request model -> data gathering
(prefetch, fetch-on-demand) -> screening -> cards.  Every refusal is a 4xx
OperationOutcome; an unexpected error is a 500 OperationOutcome without details, and
the log line for it names the exception type only (exception messages can contain
request data).  Logs carry the hook instance, service, status, timing and counts,
never patient ids or drug names.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import re
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.to_thread
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from b12drugs.config import Config
from b12drugs.engines import Runtime, Screener
from b12drugs.errors import ConfigError
from b12drugs.plugins import PluginManager, get_plugin_manager

from .audit import AuditLog
from .auth import Authenticator, Caller, NeedsFetch
from .cards import BuiltCard, CardBuilder
from .dedupe import DedupeCache
from .discovery import BY_ID, MEDICATIONS, PREFETCH, Service, discovery_document
from .hookrequest import Context, HookRequest, parse_feedback, parse_request
from .jsonbody import parse_json_object, read_body
from .openapi import openapi_document
from .outcome import FHIR_JSON, Problem, operation_outcome, problem_response
from .prefetch import Fetcher, PatientData, gather
from .responses import DeliveredJSONResponse, JSONResponse
from .screening import CallScreener
from .settings import CDSHooksSettings, settings_from_config

log = logging.getLogger("b12drugs.cdshooks")

#: The registered name of the in-memory knowledge-base resolver (b12drugs.builtin).
OFFLINE_RESOLVER = "knowledge-base"

_SAFE_TOKEN = re.compile(r"[^A-Za-z0-9\-]")
Handler = Callable[[Request], Awaitable[Response]]


def _is_json(content_type: str | None) -> bool:
    """``application/json``, in any case, with or without parameters (``charset``)."""
    media_type = (content_type or "").partition(";")[0].strip().lower()
    return media_type == "application/json"


def _safe(value: str | None, limit: int = 64) -> str:
    """A request-supplied token reduced to characters safe for a log line."""
    return _SAFE_TOKEN.sub("", value or "")[:limit] or "-"


#: An issued card as the audit log records it: uuid, kind, indicator, suggestion uuids.
IssuedCard = tuple[str, str, str, list[str]]


@dataclass
class _Result:
    cards: list[dict[str, Any]]
    stats: dict[str, int]
    #: what the audit log records once the answer is sent (not before: see audit)
    issued: list[IssuedCard]
    #: de-duplication keys of the cards shown, forgotten if the answer is not sent
    dedupe_keys: list[bytes]


class CDSHooksService:
    """State shared by the requests of one app: settings, keys, caches, audit log."""

    def __init__(self, config: Config, settings: CDSHooksSettings, *, insecure_no_auth: bool,
                 manager: PluginManager | None):
        self.config = config
        self.settings = settings
        self.insecure = insecure_no_auth
        if insecure_no_auth:
            self.auth: Authenticator | None = None
            log.warning(
                "CDS Hooks service running WITHOUT authentication (--insecure-no-auth): "
                "any caller can submit requests; never use this in production"
            )
        else:
            if not settings.issuers:
                raise ConfigError(
                    "no trusted issuers: configure [plugin.cdshooks.issuers.\"<iss>\"] with "
                    "jwks_file or jku, or run with --insecure-no-auth for local testing only"
                )
            if not settings.base_url:
                raise ConfigError(
                    "[plugin.cdshooks] base_url is required with authentication: the JWT aud "
                    "is checked against base_url + the path called"
                )
            self.auth = Authenticator(settings)
        self.manager = manager or get_plugin_manager()
        # One runtime for the service's life: knowledge base, resolvers (built once per
        # thread) and the resolution cache are shared by every call.
        # Without [[sinks]]: the cards are this service's delivery channel.  The engine
        # would otherwise deliver every call's alerts (also those out of the hook's scope,
        # and repeats of one encounter) to the sinks, on the event loop.
        self.runtime = Runtime(config.model_copy(update={"sinks": ()}), self.manager)
        self.kb = self.runtime.kb
        self.fetcher = Fetcher(settings)
        self.screener = CallScreener(
            lambda: Screener(runtime=self.runtime), settings.limits.max_orders
        )
        # Build this thread's resolvers now, not on the first call.  Only the offline
        # knowledge base answers from memory; any other resolver (RxNav over the network,
        # the local RxNorm index on disk) may block, so screening must then leave the
        # event loop (see ``screen_off_loop``).
        names = [name for name, _ in self.runtime.resolvers()]
        self.screen_off_loop = any(name != OFFLINE_RESOLVER for name in names)
        self.cards = CardBuilder(settings, self.kb, config)
        self.dedupe = (
            DedupeCache(settings.dedupe_ttl_seconds, settings.dedupe_max_entries)
            if settings.dedupe else None
        )
        self.audit = AuditLog(settings.audit_path())

    # -- auth -------------------------------------------------------------------
    async def authenticate(self, request: Request) -> Caller:
        if self.auth is None:
            return Caller(issuer="insecure-no-auth", authenticated=False)
        base = self.settings.base_url or ""
        audience = base + request.url.path
        header = request.headers.get("authorization")
        auth = self.auth
        try:
            # CPU only (keys from files or cache): no thread hand-off on the hot path
            return auth.verify(header, audience, allow_fetch=False)
        except NeedsFetch:
            return await run_in_threadpool(auth.verify, header, audience)

    # -- hooks ------------------------------------------------------------------
    def needs_fetch(self, hreq: HookRequest) -> bool:
        """Will gathering this call's data go to the FHIR server (network I/O)?"""
        prefetch = hreq.prefetch or {}
        return (
            any(k not in prefetch for k in PREFETCH)
            and hreq.fhirAuthorization is not None
            and self.fetcher.allowed(hreq.fhirServer)
        )

    def gather(self, hreq: HookRequest, context: Context) -> PatientData:
        return gather(hreq, context, self.settings, self.fetcher)

    def process(self, service: Service, hreq: HookRequest, context: Context,
                data: PatientData | None = None,
                abandoned: threading.Event | None = None) -> _Result:
        """Screen one call and build its cards.

        ``abandoned`` is set when the request's time limit answered 503 while this ran in
        a worker thread: its cards were never shown, so they must neither enter the
        de-duplication cache (order-sign would then hide them) nor the audit log.
        Cards are not recorded here: the caller records ``issued`` once the answer has
        been rendered and sent (see :class:`DeliveredJSONResponse`).
        """
        if data is None:
            data = self.gather(hreq, context)
        if service.hook == "patient-view" and MEDICATIONS in data.missing:
            raise Problem(
                412,
                "the active medication list was not prefetched and cannot be fetched "
                f"({data.missing[MEDICATIONS]}); nothing can be screened",
                code="incomplete",
                where="/prefetch/medications",
            )
        screening = self.screener.screen(service.hook, context, data)
        built = self.cards.build(screening, data, context.patientId, context.encounterId)
        if abandoned is not None and abandoned.is_set():
<<<<<<< HEAD
            return _Result([], {}, [], [])
        shown, suppressed, keys = self._dedupe(service, context, built)
=======
            return _Result([], {})
        withheld = [b for b in built if b.withheld]  # for the integrator, not the prescriber
        shown, suppressed = self._dedupe(service, context, [b for b in built if not b.withheld])
        self.audit.record_cards(
            service.id,
            hreq.hookInstance,
            [(b.uuid, b.kind, b.card["indicator"], b.suggestion_ids()) for b in shown]
            + [(b.uuid, f"withheld:{b.kind}:{','.join(sorted(data.missing))}"[:200],
                b.card["indicator"], []) for b in withheld],
        )
>>>>>>> monitoring
        stats = {
            "orders": screening.orders_read,
            "in_scope": len(screening.scope),
            "alerts": len(screening.alerts),
            "unchecked": len(screening.unresolved) + len(screening.rejected),
            "cards": len(shown),
            "deduped": suppressed,
            "fetched": len(data.fetched),
            "missing": len(data.missing),
            "incomplete": len(data.incomplete),
            "withheld": len(withheld),
        }
<<<<<<< HEAD
        issued = [(b.uuid, b.kind, b.card["indicator"], b.suggestion_ids()) for b in shown]
        return _Result([b.card for b in shown], stats, issued, keys)

    def record_sent(self, service_id: str, hook_instance: str, issued: list[IssuedCard],
                    dedupe_keys: list[bytes], delivery: str) -> None:
        """Record the cards of an answer once it was sent (``delivery`` says how).

        Cards that were not delivered leave the de-duplication cache too: nobody saw
        them, so the next call of the same ordering session must show them.
        """
        if delivery != "delivered":
            log.warning("hook answer not sent: service=%s hookInstance=%s cards=%d",
                        service_id, _safe(hook_instance), len(issued))
            if self.dedupe is not None:
                self.dedupe.forget(dedupe_keys)
        self.audit.record_cards(service_id, hook_instance, issued, delivery)
=======
        if withheld:
            log.info("screened without %s; no drug of a B12 class among the orders in scope, "
                     "so no card", ", ".join(sorted(data.missing) or sorted(data.incomplete)))
        return _Result([b.card for b in shown], stats)
>>>>>>> monitoring

    def _dedupe(self, service: Service, context: Context, built: list[BuiltCard]
                ) -> tuple[list[BuiltCard], int, list[bytes]]:
        """The cards to show, how many were suppressed, and the keys of those shown."""
        if (self.dedupe is None or not context.encounterId
                or service.hook not in ("order-select", "order-sign")):
            return built, 0, []
        shown = []
        keys = []
        for b in built:
            key = self.dedupe.key(
                patient=context.patientId,
                encounter=context.encounterId,
                user=context.userId,
                kind=f"{b.kind}:{b.card['indicator']}",
                orders=b.orders,
            )
            if not self.dedupe.seen_before(key):
                shown.append(b)
                keys.append(key)
        return shown, len(built) - len(shown), keys


def _guard(service_state: CDSHooksService, name: str) -> Callable[[Handler], Handler]:
    """Wrap an endpoint: time limit, Problem -> OperationOutcome, never a traceback."""

    timeout = service_state.settings.limits.request_timeout_seconds

    def wrap(fn: Handler) -> Handler:
        async def endpoint(request: Request) -> Response:
            started = time.perf_counter()
            request.state.log = {}
            try:
                with anyio.fail_after(timeout):
                    response = await fn(request)
            except Problem as problem:
                response = problem_response(problem)
            except TimeoutError:
                response = problem_response(
                    Problem(503, f"the request took longer than {timeout:g} s", code="timeout")
                )
            except Exception as exc:  # the catch-all: no 500 with a traceback, ever
                log.error("%s failed: %s (internal error)", name, type(exc).__name__)
                response = JSONResponse(
                    operation_outcome("internal error; the request was not processed",
                                      code="exception"),
                    status_code=500, media_type=FHIR_JSON,
                )
            if log.isEnabledFor(logging.INFO):  # the line is formatted only when kept
                elapsed = (time.perf_counter() - started) * 1000
                extra = " ".join(f"{k}={v}" for k, v in request.state.log.items())
                log.info("%s status=%d ms=%.1f %s", name, response.status_code, elapsed, extra)
            return response

        return endpoint

    return wrap


def create_app(
    config: Config | None = None,
    *,
    insecure_no_auth: bool = False,
    manager: PluginManager | None = None,
) -> Starlette:
    """Build the CDS Hooks ASGI app from a b12drugs :class:`Config`.

    :param config: the run configuration; ``[plugin.cdshooks]`` configures the service
        (see :mod:`b12drugs_cdshooks.settings`).
    :param insecure_no_auth: accept requests without a JWT (local testing only; a
        warning is logged).
    :param manager: plugin manager (default: the process-wide one).
    :raises ConfigError: the service section is invalid or authentication is not
        configured.
    """
    config = config or Config()
    settings = settings_from_config(config)
    state = CDSHooksService(config, settings, insecure_no_auth=insecure_no_auth,
                            manager=manager)
    limits = settings.limits

    @_guard(state, "discovery")
    async def discovery(request: Request) -> Response:
        await state.authenticate(request)
        return JSONResponse(discovery_document())

    async def service_call(request: Request) -> tuple[Service, Caller, dict[str, Any]]:
        """The called service, the authenticated caller and the JSON body (bounded in
        size and depth): what every service endpoint starts with, in this order."""
        service = BY_ID.get(request.path_params["service_id"])
        if service is None:
            raise Problem(404, "no such CDS service", code="not-found")
        request.state.log["service"] = service.id
        caller = await state.authenticate(request)
        if not _is_json(request.headers.get("content-type")):
            raise Problem(415, "Content-Type must be application/json", code="not-supported")
        body = await read_body(request, limits.max_body_bytes)
        return service, caller, parse_json_object(body, limits.max_json_depth)

    @_guard(state, "hook")
    async def hook(request: Request) -> Response:
        service, caller, data = await service_call(request)
        hreq, context = parse_request(data, service.hook)
        request.state.log["hookInstance"] = _safe(hreq.hookInstance)
        request.state.log["issuer_ok"] = int(caller.authenticated)
        patient_data: PatientData | None = None
        if state.needs_fetch(hreq):
            # abandon_on_cancel: the time limit answers the client even while a fetch
            # thread is still waiting (it ends by itself within the fetch timeout).
            patient_data = await anyio.to_thread.run_sync(
                state.gather, hreq, context, abandon_on_cancel=True
            )
        if state.screen_off_loop:
            # A network (RxNav) or disk resolver may block for seconds on one unknown
            # drug: on the event loop that would freeze every request (/healthz too) and
            # the time limit could never fire.  In a worker thread the time limit answers
            # 503 and other requests proceed; the abandoned thread ends by itself within
            # the resolver's own timeout.
            abandoned = threading.Event()
            try:
                result = await anyio.to_thread.run_sync(
                    functools.partial(state.process, service, hreq, context, patient_data,
                                      abandoned=abandoned),
                    abandon_on_cancel=True,
                )
            except BaseException:  # the time limit (cancellation): the thread runs on
                abandoned.set()
                raise
        else:
            # Offline knowledge base only: screening is bounded CPU work (~1 ms), done on
            # the event loop, since a thread hand-off costs more than it saves under the
            # GIL.
            result = state.process(service, hreq, context, patient_data)
        request.state.log.update(result.stats)
        if not result.issued:
            return JSONResponse({"cards": result.cards})
        return DeliveredJSONResponse(
            {"cards": result.cards},
            on_sent=functools.partial(state.record_sent, service.id, hreq.hookInstance,
                                      result.issued, result.dedupe_keys),
        )

    @_guard(state, "feedback")
    async def feedback(request: Request) -> Response:
        service, caller, data = await service_call(request)
        fb = parse_feedback(data)
        stored, duplicates = await run_in_threadpool(
            state.audit.record_feedback, service.id, fb.feedback, caller.issuer
        )
        request.state.log.update({"items": len(fb.feedback), "stored": stored,
                                  "duplicates": duplicates})
        return JSONResponse(
            {"received": len(fb.feedback), "stored": stored, "duplicates": duplicates}
        )

    async def openapi(request: Request) -> Response:
        return JSONResponse(openapi_document(settings.base_url))

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def http_error(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 400
        code = {404: "not-found", 405: "not-supported"}.get(status, "invalid")
        detail = exc.detail if isinstance(exc, HTTPException) else "bad request"
        return JSONResponse(operation_outcome(str(detail), code=code), status_code=status,
                            media_type=FHIR_JSON)

    routes = [
        Route("/cds-services", discovery, methods=["GET"]),
        Route("/cds-services/{service_id}", hook, methods=["POST"]),
        Route("/cds-services/{service_id}/feedback", feedback, methods=["POST"]),
        Route("/openapi.json", openapi, methods=["GET"]),
        Route("/healthz", health, methods=["GET"]),
    ]
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        state.audit.close()
        state.runtime.close()

    app = Starlette(routes=routes, exception_handlers={HTTPException: http_error},
                    lifespan=lifespan)
    app.state.cdshooks = state
    return app
