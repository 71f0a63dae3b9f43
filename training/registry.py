"""The model registry: the one module of JourneyGuard that talks to MLflow (`exported_champions`
reads one alias straight from a local store's database, without it).

A training run of a task is one MLflow run in the experiment `journeyguard-<task>`; its model is
registered as `journeyguard-<task>` and the new version takes the alias `challenger`. `promote`
moves the alias `champion` by a written rule. The store is SQLite in `mlruns/mlflow.db`, with the
artifacts in `mlruns/artifacts/<task>` (the plain file store is deprecated in MLflow 3).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from importlib.metadata import version as _version
from pathlib import Path
from typing import Any

import mlflow
import mlflow.artifacts
import mlflow.pyfunc
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature, infer_signature
from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS, RESOURCE_DOES_NOT_EXIST, ErrorCode
from mlflow.types import ColSpec, Schema

from journeyguard.features.errors import ConfigError
from journeyguard.training import exported_champions
from journeyguard.training.exported_champions import (
    CHALLENGER,
    CHAMPION,
    MODEL_PREFIX,
    LoggedModel,
    local_database,
    logged_model,
    model_name,
)
from journeyguard.training.models import JourneyModel
from journeyguard.training.uplift_learners import UpliftModel

UPLIFT_PREFIX = "uplift-"  # an experiment's uplift models: journeyguard-uplift-<experiment>
CONTRIBUTION = "contribution__"
_MLMODEL = "MLmodel"  # the description of a logged model, beside its files
# Pinned rather than inferred: inference loads the model again in a subprocess (seconds).
_REQUIREMENTS = ("mlflow", "lightgbm", "scikit-learn", "pandas", "numpy", "cloudpickle")


class IncompatibleModelError(ConfigError):
    """A registered model whose pickle this code cannot load (an older layout): retrain it."""


def _telemetry_off() -> None:
    """MLflow builds its telemetry client when imported; unless the environment says otherwise,
    turn telemetry off and drop that client (set the variable before any import to be sure)."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    from mlflow.telemetry import get_telemetry_client, set_telemetry_client

    if get_telemetry_client() is not None:
        set_telemetry_client()  # None when the variable disables telemetry


def tracking_uri(root: Path | None = None) -> str:
    """`exported_champions.tracking_uri`, MLflow's telemetry turned off first."""
    _telemetry_off()
    return exported_champions.tracking_uri(root)


def _local_root(uri: str) -> Path | None:
    """The folder of a local SQLite store (artifacts go beside it), None for other stores."""
    database = local_database(uri)
    return None if database is None else database.parent


def _client(uri: str) -> MlflowClient:
    """A client of `uri`, which also becomes the process's tracking and registry URI (the fluent
    API of `log_model` and `load_model` reads them)."""
    _telemetry_off()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _reader(uri: str) -> MlflowClient:
    """A client of `uri` that, unlike `_client`, leaves the process's URIs as they are."""
    _telemetry_off()
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def experiment_id(task: str, uri: str) -> str:
    """The task's experiment, created on first use; on the local store its artifacts live in
    `<root>/artifacts/<task>` (an absolute file URI, stored with the experiment)."""
    client, name = _client(uri), model_name(task)
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        root = _local_root(uri)
        location = (root / "artifacts" / task).as_uri() if root else None
        try:
            return client.create_experiment(name, artifact_location=location)
        except MlflowException as error:  # created meanwhile by another process
            if error.error_code != ErrorCode.Name(RESOURCE_ALREADY_EXISTS):
                raise
            experiment = client.get_experiment_by_name(name)
    assert experiment is not None
    if experiment.lifecycle_stage == "deleted":
        client.restore_experiment(experiment.experiment_id)
    return experiment.experiment_id


class JourneyPyfunc(mlflow.pyfunc.PythonModel):
    """A `JourneyModel` as an MLflow pyfunc: calibrated probabilities and reason codes, not the
    class labels that the LightGBM flavour's pyfunc would return."""

    def __init__(self, model: JourneyModel) -> None:
        self.model = model

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> pd.DataFrame:
        """Feature rows in; `probability` and `contribution__<feature>` (plus `__bias`) out."""
        features = pd.DataFrame(model_input)
        contributions = self.model.contributions(features).add_prefix(CONTRIBUTION)
        contributions.insert(0, "probability", self.model.predict_features(features))
        return contributions


def _logged(task: str, version: ModelVersion) -> LoggedModel:
    return logged_model(task, int(version.version), version.run_id)


def log_model(
    model: JourneyModel,
    *,
    uri: str,
    params: dict[str, Any],
    metrics: dict[str, float],
    tags: dict[str, str],
    artifacts: dict[str, Path],
    input_example: pd.DataFrame,
) -> LoggedModel:
    """Logs one run of `model.task` (params, metrics, tags, artifact files keyed by their path
    in the run, e.g. "plots/calibration.png") with the model, registered as a new version of
    `journeyguard-<task>` that takes the alias `challenger`."""
    return _log_run(
        model.task,
        JourneyPyfunc(model),
        input_example[model.feature_names],
        uri=uri,
        params=params,
        metrics=metrics,
        tags=tags,
        artifacts=artifacts,
    )


def _log_run(
    task: str,
    python_model: mlflow.pyfunc.PythonModel,
    features: pd.DataFrame,
    *,
    uri: str,
    params: dict[str, Any],
    metrics: dict[str, float],
    tags: dict[str, str],
    artifacts: dict[str, Path],
) -> LoggedModel:
    """Logs one run in the experiment `journeyguard-<task>` and registers its pyfunc as a new
    version of the model of that name, with the alias `challenger`."""
    client = _client(uri)
    # Every column as float64: integer columns in a signature reject missing values later.
    example = features.head(5).astype("float64")
    inferred = infer_signature(example, python_model.predict(None, example))
    # A column with a missing value in the example would be "optional" (may be absent): all
    # features are required; missing values stay allowed in a double column.
    required = Schema([ColSpec(spec.type, spec.name) for spec in inferred.inputs.inputs])
    signature = ModelSignature(inputs=required, outputs=inferred.outputs)
    with mlflow.start_run(experiment_id=experiment_id(task, uri), run_name=f"train-{task}"):
        mlflow.log_params(params)
        mlflow.log_metrics({k: float(v) for k, v in metrics.items() if v is not None})
        mlflow.set_tags(tags)
        if artifacts:
            with tempfile.TemporaryDirectory() as staging:
                for target, source in artifacts.items():
                    (Path(staging) / target).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(source, Path(staging) / target)
                mlflow.log_artifacts(staging)
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=python_model,  # pickled with cloudpickle (the only way for an object)
            signature=signature,
            input_example=example,
            registered_model_name=model_name(task),
            pip_requirements=[f"{name}=={_version(name)}" for name in _REQUIREMENTS],
        )
    version = client.get_model_version(model_name(task), str(info.registered_model_version))
    client.set_registered_model_alias(model_name(task), CHALLENGER, version.version)
    return _logged(task, version)


def _alias_version(client: MlflowClient, task: str, alias: str) -> ModelVersion | None:
    """The model version holding `alias`, None when the model or the alias does not exist."""
    try:
        registered = client.get_registered_model(model_name(task))
    except MlflowException as error:
        if error.error_code == ErrorCode.Name(RESOURCE_DOES_NOT_EXIST):
            return None
        raise
    if alias not in registered.aliases:
        return None
    return client.get_model_version(model_name(task), str(registered.aliases[alias]))


def champion_version(task: str, *, uri: str) -> int | None:
    """The version that holds `champion` now (a cheap check before loading a model)."""
    version = _alias_version(_reader(uri), task, CHAMPION)
    return None if version is None else int(version.version)


def load_model(task: str, alias: str, *, uri: str) -> tuple[JourneyModel, LoggedModel] | None:
    """The `JourneyModel` of `journeyguard-<task>@<alias>`, None when there is none.

    Reads through its own client and the version's artifact location, leaving the process's
    tracking URI alone: the service's reload thread calls this beside other work."""
    client = _reader(uri)
    version = _alias_version(client, task, alias)
    if version is None:
        return None
    logged = _logged(task, version)
    location = client.get_model_version_download_uri(logged.model_name, str(logged.version))
    try:
        python_model = _python_model(location)
    except ImportError as error:  # its pickle names modules this installation does not have
        raise IncompatibleModelError(
            f"{logged.model_name} v{logged.version} ({alias}) cannot be loaded by this version of "
            f"JourneyGuard ({error}); a model registered before the package became "
            f"`journeyguard.*` must be retrained: run `journeyguard train --config C --task {task}`"
        ) from None
    return python_model.model, logged


def _python_model(location: str) -> Any:
    """The `PythonModel` of the pyfunc model at `location` (a `JourneyPyfunc` or an
    `UpliftPyfunc`, neither with a `load_context`), unpickled as MLflow's pyfunc loader does it
    but without the rest of `mlflow.pyfunc.load_model`, which cost more than the pickle: it
    parses the MLmodel file three times with the pure-Python YAML parser (the signature names
    every feature) and checks each pinned requirement against the installed packages. A local
    store's artifacts are read in place; a server's are downloaded first."""
    import cloudpickle
    import yaml

    folder = Path(mlflow.artifacts.download_artifacts(artifact_uri=location))
    with (folder / _MLMODEL).open() as stream:
        flavors = yaml.load(stream, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    pickled = flavors["flavors"][mlflow.pyfunc.FLAVOR_NAME]["python_model"]
    with (folder / pickled).open("rb") as stream:
        return cloudpickle.load(stream)


def promote(
    task: str,
    logged: LoggedModel,
    *,
    challenger_score: float,
    champion_score: float | None,
    metric: str,
    uri: str,
    min_gain: float = 0.0,
    champion_unusable: str = "",
) -> tuple[bool, str]:
    """Moves `champion` to the challenger when there is no champion score, or when the
    challenger's score is at least the champion's plus `min_gain` (both on the same test rows).
    `champion_unusable` says why a champion has no score (this code cannot score it). Records
    the decision as the tags `promotion_rule` and `promoted` on the challenger's run."""
    client = _client(uri)
    champion = _alias_version(client, task, CHAMPION)
    rule = f"promote when {metric} of the challenger >= {metric} of the champion + {min_gain:g}"
    if champion_score is None:
        promoted = True
        rule += f": no champion yet, challenger v{logged.version} {challenger_score:.4f} promoted"
    else:
        promoted = bool(challenger_score >= champion_score + min_gain)
        held = f"v{champion.version}" if champion is not None else "(unregistered)"
        rule += (
            f": challenger v{logged.version} {challenger_score:.4f} "
            f"{'>=' if promoted else '<'} champion {held} {champion_score:.4f} + {min_gain:g}, "
            f"{'promoted' if promoted else 'not promoted'}"
        )
    if champion_unusable:
        rule += f" (the champion could not be scored with this code: {champion_unusable})"
    if promoted:
        client.set_registered_model_alias(logged.model_name, CHAMPION, str(logged.version))
    client.set_tag(logged.run_id, "promotion_rule", rule)
    client.set_tag(logged.run_id, "promoted", str(promoted).lower())
    return promoted, rule


def champion_versions(uri: str) -> dict[str, dict[str, Any]]:
    """Per task: the registered model's name and, for `champion` and `challenger`, the version,
    run id, run metrics and tags (None where the alias is not set)."""
    return _versions(uri, uplift=False)


def uplift_champion_versions(uri: str) -> dict[str, dict[str, Any]]:
    """`champion_versions` of the uplift models, keyed by experiment."""
    found = _versions(uri, uplift=True)
    return {name.removeprefix(UPLIFT_PREFIX): entry for name, entry in found.items()}


def _versions(uri: str, *, uplift: bool) -> dict[str, dict[str, Any]]:
    client, result = _client(uri), {}
    for registered in client.search_registered_models(f"name LIKE '{MODEL_PREFIX}%'"):
        task = registered.name[len(MODEL_PREFIX) :]
        if task.startswith(UPLIFT_PREFIX) != uplift:
            continue
        entry: dict[str, Any] = {"model_name": registered.name}
        for alias in (CHAMPION, CHALLENGER):
            version = _alias_version(client, task, alias)
            if version is None:
                entry[alias] = None
                continue
            run = client.get_run(version.run_id)
            entry[alias] = {
                "version": int(version.version),
                "run_id": version.run_id,
                "model_uri": f"models:/{registered.name}/{version.version}",
                "created": pd.Timestamp(
                    version.creation_timestamp, unit="ms", tz="UTC"
                ).isoformat(),
                "metrics": dict(run.data.metrics),
                "tags": {k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.")},
            }
        result[task] = entry
    return result


class UpliftPyfunc(mlflow.pyfunc.PythonModel):
    """An `UpliftModel` as an MLflow pyfunc: feature rows in, `uplift` out."""

    def __init__(self, model: UpliftModel) -> None:
        self.model = model

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> pd.DataFrame:
        return pd.DataFrame({"uplift": self.model.uplift_features(pd.DataFrame(model_input))})


def log_uplift_model(
    model: UpliftModel,
    *,
    uri: str,
    params: dict[str, Any],
    metrics: dict[str, float],
    tags: dict[str, str],
    artifacts: dict[str, Path],
    input_example: pd.DataFrame,
) -> LoggedModel:
    """One run of an experiment's uplift training, its model registered as a new version of
    `journeyguard-uplift-<experiment>` that takes the alias `challenger`."""
    return _log_run(
        UPLIFT_PREFIX + model.experiment,
        UpliftPyfunc(model),
        input_example[model.feature_names],
        uri=uri,
        params=params,
        metrics=metrics,
        tags=tags,
        artifacts=artifacts,
    )


def load_uplift_model(
    experiment: str, alias: str, *, uri: str
) -> tuple[UpliftModel, LoggedModel] | None:
    """The `UpliftModel` of `journeyguard-uplift-<experiment>@<alias>`, None when none."""
    client, task = _reader(uri), UPLIFT_PREFIX + experiment
    version = _alias_version(client, task, alias)
    if version is None:
        return None
    logged = _logged(task, version)
    location = client.get_model_version_download_uri(logged.model_name, str(logged.version))
    return _python_model(location).model, logged


def log_monitoring(
    run_id: str, metrics: dict[str, float], *, uri: str, step: int, timestamp_ms: int
) -> None:
    """Appends monitoring numbers (e.g. `monitor_score_psi`) to a champion's training run: each
    monitor run adds one point to the metrics' history, at `step` and `timestamp_ms`."""
    from mlflow.entities import Metric

    values = [
        Metric(key, float(value), timestamp_ms, step)
        for key, value in metrics.items()
        if value is not None
    ]
    _reader(uri).log_batch(run_id, metrics=values)
