"""The prediction service: BentoML around `serving.predict`.

`journeyguard serve` starts it with `bentoml serve journeyguard.serving.service:JourneyService`,
passing the configuration file in `JOURNEYGUARD_CONFIG`. Endpoints:

- `POST /predict`: journeys in, risks of every task out (adaptive batching across requests);
- `POST /predict_customer`: a customer id in, its journey read from the configured source;
- `GET /risk_list?task=&limit=&min_risk=`: the latest list `journeyguard score` wrote;
- `GET /openapi.json` (and `/docs.json`): their OpenAPI document (`serving.openapi`); `/`
  redirects to the console;
- `/livez`, `/readyz` (503 with the reason until every task has a champion; 200 with a
  `source_problem` while the event source cannot be read and its last good log is served),
  `/metrics`, with the drift gauges of the latest `journeyguard monitor` of each task (re-read
  when it changes) and the last run of each scheduled job with its age (`serving.jobs`);
- `/console...`: the retention console (`serving.console`), HTML pages of the same data.

An API token (config `serving.api_token` or `JOURNEYGUARD_API_TOKEN`) guards every endpoint
but the probes, as a bearer token or, for the console's browser, the signed session cookie
that `/console/login` sets (`serving.sessions`).
"""

from __future__ import annotations

import gc
import json
import math
import os
import time
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import bentoml
import pydantic_core
from fastapi import FastAPI, Form, HTTPException, Query, Request
from pydantic import AwareDatetime
from starlette.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
)

from journeyguard.features.config.model import ServingConfig
from journeyguard.serving.console.errors import ConsoleError
from journeyguard.serving.drift import DriftGauges
from journeyguard.serving.guard import (
    CONSOLE,
    GuardMiddleware,
    api_token,
    session_cookie,
    token_matches,
)
from journeyguard.serving.headers import SecurityHeadersMiddleware
from journeyguard.serving.jobs import JobGauges
from journeyguard.serving.limits import BodyLimitMiddleware
from journeyguard.serving.openapi import openapi_spec
from journeyguard.serving.overload import AdmissionMiddleware, log_client_errors_in_one_line
from journeyguard.serving.predict_request import PredictRequest
from journeyguard.serving.responses import shown
from journeyguard.serving.route_labels import bound_traffic_labels
from journeyguard.serving.schemas import CustomerIn, JourneyIn, JourneyRisk
from journeyguard.serving.sessions import SESSION_COOKIE, LoginThrottle, Sessions

SERVICE_NAME = "journeyguard"
CONFIG_VARIABLE = "JOURNEYGUARD_CONFIG"

# A 1,000-journey request makes containers by the ten thousand (60,000 with events as
# objects), freed by reference counting as soon as it is answered. At Python's default
# thresholds (700, 10, 10) the collector ran ~100 times a request for nothing: 100,000
# allocations between young collections took batches from 5,600-5,800 to 6,200-7,200
# journeys/s as objects and from 8,700-9,200 to 10,300-11,400 as columns.
_COLLECTOR_THRESHOLDS = (100_000, 50, 100)

PREDICTIONS = bentoml.metrics.Counter(
    name="journeyguard_predictions",
    documentation="Journeys scored, by task and model version.",
    labelnames=["task", "model_version", "endpoint"],
)
LATENCY = bentoml.metrics.Histogram(
    name="journeyguard_prediction_seconds",
    documentation="Time to score one batch of journeys, by task and model version.",
    labelnames=["task", "model_version"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, float("inf")),
)

risk_app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)


@bentoml.service(name=SERVICE_NAME, traffic={"timeout": 30})
@bentoml.asgi_app(risk_app, path="/")
class JourneyService:
    """Churn and escalation risk of journeys, from the champion model of each task."""

    def __init__(self) -> None:
        from journeyguard.features.config.reader import load_config
        from journeyguard.serving.champions import ChampionStore
        from journeyguard.serving.console.data import ConsoleData
        from journeyguard.serving.sources import CustomerEvents, RiskLists
        from journeyguard.training import registry

        gc.set_threshold(*_COLLECTOR_THRESHOLDS)
        log_client_errors_in_one_line()
        path = os.environ.get(CONFIG_VARIABLE)
        if not path:
            raise RuntimeError(f"set {CONFIG_VARIABLE} to a configuration file (or use serve)")
        self.settings = load_config(path)
        self.api_token = api_token(self.settings.serving.api_token, os.environ)
        lifetime = self.settings.serving.session_lifetime.total_seconds()
        sessions_file = self.settings.workspace.console_sessions
        self.sessions = (
            Sessions(self.api_token, lifetime, sessions_file) if self.api_token else None
        )
        self.login_throttle = LoginThrottle()
        self.openapi = openapi_spec(PredictRequest, self.settings.serving.max_journeys)
        every = self.settings.serving.reload_every.total_seconds()
        self.champions = ChampionStore(list(self.settings.tasks), registry.tracking_uri(), path)
        self.champions.watch(every, on_change=_freeze_heap)
        self.customers = CustomerEvents(self.settings, every)
        self.customers.watch()
        self.risk_lists = RiskLists(self.settings)
        self.console = ConsoleData(self.settings, self.customers, self.risk_lists)
        workspace = self.settings.workspace
        self.drift = DriftGauges({t: workspace.monitor_result(t) for t in self.settings.tasks})
        self.drift.watch(every)
        self.jobs = JobGauges(self.settings, _now)
        self.jobs.watch(every)

    def __is_ready__(self) -> bool:
        return self.champions.ready

    @bentoml.on_shutdown
    def stop_watching(self) -> None:
        self.champions.stop()
        self.drift.stop()
        self.jobs.stop()
        self.customers.stop()

    # Adaptive batching merges concurrent requests into one scoring call. BentoML sheds (503)
    # requests it predicts will take longer than max_latency_ms; 10 s sheds only under real
    # overload (a short limit shed and waited more: bench/README.md).
    @bentoml.api(
        batchable=True, max_batch_size=2_000, max_latency_ms=10_000, input_spec=PredictRequest
    )
    def predict(self, journeys: list[JourneyIn]) -> list[JourneyRisk]:
        """Risk of each journey for every task, with the top reasons and the model versions."""
        from journeyguard.serving.predict import attribute_kinds, request_snapshots

        champions = self.champions.current()
        snapshots = request_snapshots(journeys, attribute_kinds(champions), _now())
        return self._predict(snapshots, [j.customer_id for j in journeys], champions, "predict")

    # Annotated `JourneyRisk` alone: BentoML's OpenAPI writer (`bentoml build`, /docs.json)
    # cannot follow the reference inside a union; the 404's Response passes through as it is.
    @bentoml.api(input_spec=CustomerIn)
    def predict_customer(self, customer_id: str, as_of: AwareDatetime | None = None) -> JourneyRisk:
        """Risk of a customer whose events the service reads from the configured source."""
        from journeyguard.serving.predict import nanoseconds
        from journeyguard.serving.sources import SourceUnreadable

        try:
            snapshot = self.customers.snapshot(customer_id, nanoseconds(as_of or _now()))
        except SourceUnreadable as error:  # never read well since the start: nothing to serve
            return JSONResponse(
                {"error": f"the event source cannot be read: {error}"}, status_code=503
            )
        if snapshot is None:
            return JSONResponse(
                {"error": f"customer_id {shown(customer_id)} is not in the event source"},
                status_code=404,
            )  # fmt: skip
        champions = self.champions.current()
        return self._predict(snapshot, [customer_id], champions, "predict_customer")[0]

    def _predict(self, snapshots, customer_ids, champions, endpoint: str) -> list[dict]:
        from journeyguard.serving.predict import predict

        def observe(task: str, version: int, seconds: float, n: int) -> None:
            LATENCY.labels(task=task, model_version=str(version)).observe(seconds)
            PREDICTIONS.labels(task=task, model_version=str(version), endpoint=endpoint).inc(n)

        return predict(snapshots, customer_ids, champions, self.settings.tasks, observe=observe)

    @risk_app.get("/risk_list")
    def risk_list(
        self,
        task: Annotated[str, Query(description="A task of the configuration.")],
        limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
        min_risk: Annotated[float, Query(ge=0.0, le=1.0)] = 0.0,
        sort: Annotated[
            Literal["risk", "value_at_risk"],
            Query(description="risk, or value at risk (risk x expected spend)"),
        ] = "risk",
    ) -> dict:
        """The riskiest customers of the latest scored list (or those with the most value at
        risk), with their reasons."""
        if task not in self.settings.tasks:
            raise HTTPException(404, f"no task {shown(task)}; tasks: {sorted(self.settings.tasks)}")
        table = self.risk_lists.top(task, limit, min_risk, sort)
        if table is None:
            raise HTTPException(
                404,
                f"no scored list for {task!r} yet: run `journeyguard score "
                f"--config {self.settings.path.name} --task {task} --as-of ...`",
            )
        rows = json.loads(table.to_json(orient="records", date_format="iso"))
        return {"task": task, "count": len(rows), "rows": rows}

    # Replace BentoML's own index page (it loads Google Tag Manager) and its OpenAPI document
    # (a 500 here): a redirect, and the document of `serving.openapi`.

    @risk_app.get("/", include_in_schema=False)
    def index(self) -> RedirectResponse:
        return RedirectResponse(CONSOLE, status_code=303)

    @risk_app.get("/openapi.json", include_in_schema=False)
    def openapi_document(self) -> JSONResponse:
        """The OpenAPI 3.1 document of /predict, /predict_customer and /risk_list."""
        return JSONResponse(self.openapi)

    @risk_app.get("/docs.json", include_in_schema=False)
    def openapi_document_at_bentoml_path(self) -> JSONResponse:
        return JSONResponse(self.openapi)

    # The retention console (serving.console): HTML over the same sources as the endpoints
    # above. Each route hands the query to a view function; a `ConsoleError` becomes a page.

    @risk_app.get(CONSOLE, response_class=HTMLResponse, include_in_schema=False)
    def console_risk_list(self, request: Request) -> HTMLResponse:
        """Customers ranked by risk, filtered by task, band and reason, one page at a time."""
        from journeyguard.serving.console.views import risk_list_html

        return HTMLResponse(risk_list_html(self.console, request.query_params))

    @risk_app.get(f"{CONSOLE}/export.csv", include_in_schema=False)
    def console_export(self, request: Request) -> Response:
        """Every row of the filtered risk list as a CSV download."""
        from journeyguard.serving.console.views import export_csv

        text, name = export_csv(self.console, request.query_params)
        disposition = f'attachment; filename="{name}"'
        return Response(text, media_type="text/csv", headers={"content-disposition": disposition})

    # `:path`: an id may hold a slash (quoted as %2F in links, which the server decodes).
    @risk_app.get(f"{CONSOLE}/customer/{{customer_id:path}}", include_in_schema=False)
    def console_customer(self, customer_id: str) -> HTMLResponse:
        """One customer's journey, risks now and over time, and outreach."""
        from journeyguard.serving.console.views import customer_html

        champions = self.champions.current()
        return HTMLResponse(customer_html(self.console, customer_id, champions))

    @risk_app.get(f"{CONSOLE}/lapsed", include_in_schema=False)
    def console_lapsed(self, request: Request) -> HTMLResponse:
        """Customers who left a task's population by going quiet, most recently active first."""
        from journeyguard.serving.console.views import lapsed_html

        return HTMLResponse(lapsed_html(self.console, request.query_params))

    @risk_app.get(f"{CONSOLE}/paths", include_in_schema=False)
    def console_paths(self, request: Request) -> HTMLResponse:
        """The task's latest journey report (from `journeyguard analyze`), framed."""
        from journeyguard.serving.console.views import paths_html

        return HTMLResponse(paths_html(self.console, request.query_params))

    @risk_app.get(f"{CONSOLE}/paths/report", include_in_schema=False)
    def console_report(self, request: Request) -> FileResponse:
        """The report.html itself: self-contained, so the frame needs nothing else."""
        from journeyguard.serving.console.views import report_file

        return FileResponse(report_file(self.console, request.query_params), media_type="text/html")

    @risk_app.get(f"{CONSOLE}/uplift", include_in_schema=False)
    def console_uplift(self) -> HTMLResponse:
        """Per outreach action, realised uplift by decile of its uplift champion's ranking
        against ranking by risk, and the Qini curves of both."""
        from journeyguard.serving.console.views import uplift_html

        return HTMLResponse(uplift_html(self.console))

    @risk_app.get(f"{CONSOLE}/models", include_in_schema=False)
    def console_models(self) -> HTMLResponse:
        """Champion and challenger of each task with their test metrics and runs, and the
        last run of each scheduled job."""
        from journeyguard.serving.console.pages import job_rows
        from journeyguard.serving.console.views import models_html
        from journeyguard.training.registry import champion_versions

        serving = {task: c.version for task, c in self.champions.current().items()}
        versions = champion_versions(self.champions.uri)
        jobs = job_rows(self.console.job_runs(), _now())
        return HTMLResponse(models_html(self.console, versions, serving, self.champions.uri, jobs))

    @risk_app.get(f"{CONSOLE}/login", include_in_schema=False)
    def console_login_form(self, next: str = CONSOLE) -> HTMLResponse:
        from journeyguard.serving.console.views import login_html

        return HTMLResponse(login_html(next))

    @risk_app.post(f"{CONSOLE}/login", include_in_schema=False)
    def console_login(
        self,
        request: Request,
        token: Annotated[str, Form()] = "",
        next: Annotated[str, Form()] = CONSOLE,
    ) -> Response:
        """Checks the token and answers with a signed session cookie (never the token), so
        pages need no header; wrong tokens are throttled per client."""
        from journeyguard.serving.console.views import login_html, safe_next

        if self.sessions is None:
            return RedirectResponse(safe_next(next), status_code=303)
        now, client = time.time(), request.client.host if request.client else "unknown"
        if (wait := self.login_throttle.retry_after(client, now)) is not None:
            message = f"Too many wrong tokens: try again in {math.ceil(wait)} s."
            headers = {"retry-after": str(math.ceil(wait))}
            return HTMLResponse(login_html(next, message), status_code=429, headers=headers)
        if not token_matches(token, self.api_token):
            self.login_throttle.failed(client, now)
            return HTMLResponse(login_html(next, "That is not the API token."), status_code=401)
        response = RedirectResponse(safe_next(next), status_code=303)
        response.set_cookie(
            SESSION_COOKIE,
            self.sessions.issue(now),
            max_age=int(self.sessions.lifetime_seconds),
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https" or self.settings.serving.secure_cookie,
            path="/",
        )
        return response

    @risk_app.get(f"{CONSOLE}/logout", include_in_schema=False)
    def console_logout(self, request: Request) -> Response:
        """Ends every console session (one token, one identity) when a valid one asks: a
        stolen cookie stops working too; a request without one only clears its own."""
        cookie = session_cookie(request.scope)
        if self.sessions is not None and cookie and self.sessions.valid(cookie, time.time()):
            self.sessions.end_all()
        response = RedirectResponse(f"{CONSOLE}/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response


@risk_app.exception_handler(ConsoleError)
async def _console_error(request: Request, error: ConsoleError) -> HTMLResponse:
    """A console request that cannot be answered: a page saying why, with its status."""
    from journeyguard.serving.console.views import error_html

    return HTMLResponse(error_html(error.status, error.message), status_code=error.status)


def _max_in_flight_bytes() -> int:
    """The running service's `serving.max_in_flight_bytes` (the default while it starts)."""
    try:
        return bentoml.get_current_service().settings.serving.max_in_flight_bytes
    except (bentoml.exceptions.BentoMLException, AttributeError):
        return ServingConfig().max_in_flight_bytes


def _freeze_heap() -> None:
    """Moves everything alive now (the models) out of the garbage collector's sight: parsing a
    large request creates objects by the thousand, and every collection they trigger would
    otherwise walk the models' objects too."""
    gc.collect()
    gc.freeze()


def _now() -> datetime:
    """The moment a request without `as_of` is scored at: the edge reads the clock."""
    return datetime.now(UTC)


async def _json_response(cls: type, answer: Any, serde: Any) -> Response:
    """An endpoint's answer as JSON, as it is. BentoML would first validate it into the
    response models, dump those to dicts, then to JSON: a sixth of a batch's time (py-spy),
    to check answers this module built from those very models' fields."""
    return Response(pydantic_core.to_json(answer), media_type="application/json")


bound_traffic_labels()
JourneyService.add_asgi_middleware(SecurityHeadersMiddleware)  # on every answer, even a 401
JourneyService.add_asgi_middleware(GuardMiddleware)  # the token before anything is read
JourneyService.add_asgi_middleware(AdmissionMiddleware, max_in_flight_bytes=_max_in_flight_bytes)
JourneyService.add_asgi_middleware(BodyLimitMiddleware)
for _api in JourneyService.apis.values():
    # BentoML works out the media type from the output model's JSON schema, made anew on
    # every call (a third of a request's time under load, py-spy): say it once.
    _api.output_spec.media_type = "application/json"
    _api.output_spec.to_http_response = classmethod(_json_response)
