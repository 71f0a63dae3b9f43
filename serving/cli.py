"""`journeyguard serve`: the prediction service on a port, through `bentoml serve`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

from journeyguard.features.config.reader import load_config
from journeyguard.features.options import ConfigOption

SERVICE = "journeyguard.serving.service:JourneyService"


def serve(
    config: ConfigOption,
    port: Annotated[int, typer.Option(help="The port to listen on.")] = 3000,
    host: Annotated[str, typer.Option(help="The address to bind.")] = "127.0.0.1",
    workers: Annotated[
        int, typer.Option(min=1, help="Worker processes, each with the models (one per core).")
    ] = 2,
    access_log: Annotated[
        bool, typer.Option("--access-log/--no-access-log", help="Log every request.")
    ] = False,
    allow_no_token: Annotated[
        bool,
        typer.Option(
            "--allow-no-token",
            help="Serve on an address other than loopback without an API token (anyone who "
            "reaches it reads every endpoint).",
        ),
    ] = False,
) -> None:
    """Serve /predict, /predict_customer and /risk_list with the champion of every task."""
    from journeyguard.serving.guard import api_token, exposure_problem
    from journeyguard.serving.service import CONFIG_VARIABLE, SERVICE_NAME

    settings = load_config(config)  # a bad file fails here, with its message, not in a worker
    try:
        token = api_token(settings.serving.api_token, os.environ)
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None
    if problem := exposure_problem(host, token):
        if not allow_no_token:
            raise typer.BadParameter(problem, param_hint="--host")
        typer.secho(f"WARNING: serving {host} with no API token: open to anyone", err=True)
    metrics_dir = settings.workspace.serving_metrics
    # Files of an earlier run's processes would add their counts to this run's.
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True)
    environment = {
        **os.environ,
        CONFIG_VARIABLE: str(settings.path),
        "BENTOML_DO_NOT_TRACK": "true",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        # Metrics of several workers are merged through this folder.
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        # BentoML's own way to set a service's options from outside its code; the caller's
        # own options come last and win. Tracing is off (every path excluded: "/" is found in
        # each) since nothing exports the spans and they cost every request.
        "BENTOML_CONFIG_OPTIONS": " ".join(
            [
                f"services.{SERVICE_NAME}.workers={workers}",
                f"services.{SERVICE_NAME}.logging.access.enabled={str(access_log).lower()}",
                f"services.{SERVICE_NAME}.tracing.excluded_urls=/",
                os.environ.get("BENTOML_CONFIG_OPTIONS", ""),
            ]
        ).strip(),
    }
    command = [bentoml_command(), "serve", SERVICE, "--host", host, "--port", str(port)]
    typer.echo(f"serving {settings.path.name} on http://{host}:{port} (Ctrl-C stops)", err=True)
    try:
        code = subprocess.call(command, env=environment)
    except KeyboardInterrupt:
        code = 0
    raise typer.Exit(code)


def bentoml_command() -> str:
    """The `bentoml` script of this environment (not whichever is first on PATH)."""
    beside = Path(sys.executable).with_name("bentoml")
    return str(beside) if beside.exists() else "bentoml"
