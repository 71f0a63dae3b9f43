"""Each console page as one function from the request's values to HTML (or CSV), so the routes
in `serving.service` stay one line each and the pages can be tested without a server."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from journeyguard.serving.console import pages, render
from journeyguard.serving.console.data import ConsoleData
from journeyguard.serving.console.errors import ConsoleError

TITLES = {400: "Bad request", 401: "Log in needed", 404: "Not found", 503: "Not ready"}


def risk_list_html(data: ConsoleData, params: Mapping[str, str]) -> str:
    """The risk list page: one page of the filtered, sorted list of the chosen task."""
    query = pages.list_query(params, data.tasks)
    page = pages.list_page(_table(data, query.task), query)
    return render(
        "list",
        active="list",
        data=page,
        tasks=data.tasks,
        bands=pages.BANDS,
        campaign=data.settings.outreach.campaign,
        outbox=data.outbox() is not None,
        export_query=urlencode(query.params(page=1, per_page=50)),
        prev_query=urlencode(query.params(page=query.page - 1)),
        next_query=urlencode(query.params(page=query.page + 1)),
    )


def export_csv(data: ConsoleData, params: Mapping[str, str]) -> tuple[str, str]:
    """The whole filtered list (every page) as CSV, and a file name saying what it holds."""
    query = pages.list_query(params, data.tasks)
    rows = pages.filtered(_table(data, query.task), query)
    name = "-".join(filter(None, ["risk", query.task, query.band])) + ".csv"
    return pages.export_csv(rows), name


def _table(data: ConsoleData, task: str) -> Any:
    table = data.risk_table(task)
    if table is None:
        raise ConsoleError(
            404,
            f"no scored list for {task!r} yet: run `journeyguard score "
            f"--config {data.settings.path.name} --task {task} --as-of ...`",
        )
    return table


LAPSED_ROWS = 200  # the most recently active first; the file holds them all


def lapsed_html(data: ConsoleData, params: Mapping[str, str]) -> str:
    """The lapsed list: customers who left a task's population by going quiet, for win-back."""
    import pandas as pd

    task = pages.task_of(params, data.tasks)
    path = data.settings.workspace.lapsed_list(task)
    table = pd.read_parquet(path) if path.is_file() else None
    return render(
        "lapsed",
        active="lapsed",
        task=task,
        tasks=data.tasks,
        path=path,
        total=None if table is None else len(table),
        rows=[] if table is None else table.head(LAPSED_ROWS).to_dict("records"),
        config=data.settings.path,
    )


def customer_html(data: ConsoleData, customer_id: str, champions: Mapping[str, Any]) -> str:
    """The customer page: journey, risks now and over time, outreach."""
    customer = data.customer(customer_id, champions)
    return render("customer", active="", c=customer, campaign=data.settings.outreach.campaign)


def paths_html(data: ConsoleData, params: Mapping[str, str]) -> str:
    """The paths page: the task's latest journey report in a frame, or how to write one."""
    task = pages.task_of(params, data.tasks)
    path = data.settings.workspace.report(task)
    exists = path.is_file()
    written = datetime.fromtimestamp(path.stat().st_mtime, UTC).isoformat() if exists else None
    return render(
        "paths",
        active="paths",
        task=task,
        tasks=data.tasks,
        path=path,
        exists=exists,
        written=written,
        config=data.settings.path,
        report_url="/console/paths/report?" + urlencode({"task": task}),
    )


def report_file(data: ConsoleData, params: Mapping[str, str]) -> Path:
    """The task's report.html; `ConsoleError(404)` while there is none."""
    task = pages.task_of(params, data.tasks)
    path = data.settings.workspace.report(task)
    if not path.is_file():
        raise ConsoleError(
            404,
            f"no journey report for {task!r} yet: the Paths page says how to write one",
        )
    return path


def models_html(
    data: ConsoleData,
    versions: Mapping[str, Any],
    serving: Mapping[str, int],
    uri: str,
    jobs: Sequence[Mapping[str, Any]] = (),
) -> str:
    """The models page from `training.registry.champion_versions` and the loaded versions,
    with the last run of each scheduled job (`pages.job_rows`)."""
    rows = pages.model_rows(versions, data.tasks)
    return render("models", active="models", rows=rows, uri=uri, serving=serving, jobs=jobs)


def uplift_html(data: ConsoleData) -> str:
    """The uplift page: per outreach action, its measured customers ranked by the uplift its
    champion predicted at their decision against by their risk then (the same numbers as
    `journeyguard outreach report`), with the Qini curves of both."""
    import pandas as pd

    from journeyguard.outreach.gains import uplift_by_action

    decisions = data.decisions()
    as_of = pd.Timestamp(data.log().last_time, tz="UTC")
    found = {} if decisions.empty else uplift_by_action(data.settings, decisions, data.log(), as_of)
    actions = [
        {"action": name, **entry, "chart": pages.qini_chart(entry.get("qini_curve"))}
        for name, entry in found.items()
    ]
    return render("uplift", active="uplift", actions=actions, as_of=as_of.isoformat())


def login_html(next_path: str, message: str | None = None) -> str:
    return render("login", active="", next=safe_next(next_path), message=message)


def error_html(status: int, message: str) -> str:
    return render(
        "error", active="", status=status, title=TITLES.get(status, "Error"), message=message
    )


def safe_next(next_path: str | None) -> str:
    """Where to go after logging in: a console path of this site, never another site."""
    if next_path and next_path.startswith("/console") and "//" not in next_path:
        return next_path
    return "/console"
