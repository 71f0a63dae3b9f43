"""The prediction service in-process, through `JourneyService.to_asgi()`, on a real MLflow store."""

from __future__ import annotations

import json
import math
import re
import time
from datetime import UTC

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mlflow import MlflowClient

from journeyguard.features.eventlog.frames import log_to_frame
from journeyguard.serving.schemas import JourneyRisk, events_as_columns
from tests.serving.conftest import AUTH, Workspace, wait_ready
from tests.workspace import AS_OF


def journey_body(log_events: pd.DataFrame, customer_id: str, as_of: pd.Timestamp) -> dict:
    """A customer's events of the log as a request journey."""
    rows = log_events[log_events["customer_id"] == customer_id]
    events = []
    for row in rows.itertuples(index=False):
        event = {"timestamp": row.timestamp.isoformat(), "event": str(row.event)}
        for name in ("case_id", "channel"):
            if isinstance(getattr(row, name), str):
                event[name] = getattr(row, name)
        for name in ("value", "score"):
            if not math.isnan(getattr(row, name)):
                event[name] = float(getattr(row, name))
        event["attributes"] = {
            name: getattr(row, name)
            for name in ("segment", "country")
            if isinstance(getattr(row, name), str)
        }
        events.append(event)
    return {"customer_id": customer_id, "events": events, "as_of": as_of.isoformat()}


def as_columns(journey: dict) -> dict:
    return {**journey, "events": events_as_columns(journey["events"])}


def sample_customers(workspace: Workspace, n: int, seed: int = 0) -> list[str]:
    ids = workspace.log.journey_ids[workspace.log.times[workspace.log.offsets[:-1]] <= AS_OF.value]
    return sorted(np.random.default_rng(seed).choice(ids, n, replace=False).tolist())


def test_probes_answer_without_a_token(client):
    assert client.get("/livez").status_code == 200
    assert client.get("/readyz").status_code == 200


def test_predict_gives_every_task_with_reasons_and_versions(client, workspace):
    customer = sample_customers(workspace, 1)[0]
    body = {"journeys": [journey_body(log_to_frame(workspace.log), customer, AS_OF)]}
    response = client.post("/predict", json=body, headers=AUTH)
    assert response.status_code == 200, response.text
    (result,) = response.json()
    # Exactly the documented response model: its fields, types and JSON forms.
    assert JourneyRisk.model_validate(result).model_dump(mode="json") == result
    assert result["customer_id"] == customer
    assert set(result["risks"]) == {"churn", "escalation"}
    for risk in result["risks"].values():
        assert 0 <= risk["risk"] <= 1
        assert risk["band"] in {"low", "medium", "high"}
        assert risk["model_version"] >= 1
        assert all(r["contribution"] > 0 and r["text"] for r in risk["reasons"])


def test_service_risk_equals_batch_score(client, workspace):
    """Parity: the same journeys at the same as_of get the risk `journeyguard score` gave."""

    customers = sample_customers(workspace, 40)
    body = {"journeys": [journey_body(log_to_frame(workspace.log), c, AS_OF) for c in customers]}
    response = client.post("/predict", json=body, headers=AUTH)
    assert response.status_code == 200, response.text
    for task in ("churn", "escalation"):
        batch = pd.read_parquet(workspace.settings.workspace.risk_list(task)).set_index(
            "customer_id"
        )
        served = {r["customer_id"]: r["risks"][task] for r in response.json()}
        for customer in customers:
            assert served[customer]["risk"] == pytest.approx(batch.loc[customer, "risk"], abs=1e-12)
            assert served[customer]["band"] == batch.loc[customer, "band"]
            texts = [r["text"] for r in served[customer]["reasons"]]
            expected = [batch.loc[customer, f"reason_{k}"] for k in (1, 2, 3)]
            assert texts == [t for t in expected if isinstance(t, str)]


def test_events_as_columns_get_the_answers_of_events_as_objects(client, workspace):
    journeys = [
        journey_body(log_to_frame(workspace.log), c, AS_OF) for c in sample_customers(workspace, 20)
    ]
    as_objects = client.post("/predict", json={"journeys": journeys}, headers=AUTH)
    columnar = [as_columns(journey) for journey in journeys]
    as_columns_ = client.post("/predict", json={"journeys": columnar}, headers=AUTH)
    assert as_objects.status_code == as_columns_.status_code == 200, as_columns_.text
    assert as_columns_.json() == as_objects.json()
    # Both layouts in one request, and a column left out is missing for every event.
    mixed = [columnar[i] if i % 2 else journeys[i] for i in range(len(journeys))]
    assert client.post("/predict", json={"journeys": mixed}, headers=AUTH).json() == (
        as_objects.json()
    )
    without_attributes = {**columnar[0], "events": {**columnar[0]["events"]}}
    del without_attributes["events"]["attributes"]
    stripped = {
        **journeys[0],
        "events": [
            {k: v for k, v in e.items() if k != "attributes"} for e in journeys[0]["events"]
        ],
    }
    responses = [
        client.post("/predict", json={"journeys": [body]}, headers=AUTH)
        for body in (without_attributes, stripped)
    ]
    assert [response.status_code for response in responses] == [200, 200]
    assert responses[0].json() == responses[1].json()


def test_predict_customer_reads_the_source_and_matches_batch(client, workspace):

    customer = sample_customers(workspace, 1, seed=1)[0]
    response = client.post(
        "/predict_customer",
        json={"customer_id": customer, "as_of": AS_OF.isoformat()},
        headers=AUTH,
    )
    assert response.status_code == 200, response.text
    batch = pd.read_parquet(workspace.settings.workspace.risk_list("churn")).set_index(
        "customer_id"
    )
    assert response.json()["risks"]["churn"]["risk"] == pytest.approx(batch.loc[customer, "risk"])
    unknown = client.post("/predict_customer", json={"customer_id": "nobody"}, headers=AUTH)
    assert unknown.status_code == 404
    assert "nobody" in unknown.json()["error"]


def test_events_after_as_of_are_not_seen(client, workspace):
    customer = sample_customers(workspace, 1, seed=2)[0]
    journey = journey_body(log_to_frame(workspace.log), customer, AS_OF)
    early = {**journey, "as_of": journey["events"][0]["timestamp"]}
    response = client.post("/predict", json={"journeys": [journey, early]}, headers=AUTH)
    full, first = response.json()
    assert first["events_seen"] == 1
    assert full["events_seen"] == sum(
        e["timestamp"] <= AS_OF.isoformat() for e in journey["events"]
    )


GOOD_EVENT = {"timestamp": "2025-05-01T10:00:00+00:00", "event": "order_placed"}
GOOD = {"customer_id": "C1", "events": [GOOD_EVENT]}
COLUMNS = {"timestamp": [GOOD_EVENT["timestamp"]], "event": [GOOD_EVENT["event"]]}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"journeys": "C1"}, "journeys"),
        ({"journeys": [GOOD], "colour": "red"}, "colour"),
        ({"journeys": [{**GOOD, "events": [{**GOOD_EVENT, "colour": 1}]}]}, "colour"),
        ({"journeys": []}, "journeys"),
        ({"journeys": [{**GOOD, "events": []}]}, "events"),
        ({"journeys": [{"events": [GOOD_EVENT]}]}, "customer_id"),
        (
            {"journeys": [{**GOOD, "events": [{**GOOD_EVENT, "timestamp": "2025-05-01T10:00"}]}]},
            "timestamp",
        ),
        (
            {"journeys": [{**GOOD, "events": [{**GOOD_EVENT, "timestamp": "yesterday"}]}]},
            "timestamp",
        ),
        ({"journeys": [{**GOOD, "events": [{**GOOD_EVENT, "value": "lots"}]}]}, "value"),
        ({"journeys": [GOOD] * 51}, "journeys"),
        ({"journeys": [{**GOOD, "events": [GOOD_EVENT] * 201}]}, "journeys"),
        ({"journeys": [{**GOOD, "events": "none"}]}, "events"),
        ({"journeys": [{**GOOD, "events": {**COLUMNS, "event": ["a", "b"]}}]}, "columns"),
        ({"journeys": [{**GOOD, "events": {**COLUMNS, "colour": ["red"]}}]}, "colour"),
        ({"journeys": [{**GOOD, "events": {"timestamp": [], "event": []}}]}, "timestamp"),
        ({"journeys": [{**GOOD, "events": {**COLUMNS, "value": ["lots"]}}]}, "value"),
        ({"journeys": [{**GOOD, "events": {**COLUMNS, "timestamp": ["noon"]}}]}, "timestamp"),
        (
            {
                "journeys": [
                    {
                        **GOOD,
                        "events": {
                            "event": ["a"] * 201,
                            "timestamp": [GOOD_EVENT["timestamp"]] * 201,
                        },
                    }
                ]
            },
            "journeys",
        ),
        ({"journeys": [{**GOOD, "as_of": "2025-06-01"}]}, "as_of"),
        # A Unix time carries no offset: refused, not taken as UTC.
        (
            {"journeys": [{**GOOD, "events": [{**GOOD_EVENT, "timestamp": 1746093600}]}]},
            "timestamp",
        ),
        ({"journeys": [{**GOOD, "events": {**COLUMNS, "timestamp": [1746093600]}}]}, "timestamp"),
        ({"journeys": [{**GOOD, "as_of": 1746093600}]}, "as_of"),
        ({"journeys": [{**GOOD, "as_of": 1746093600.5}]}, "as_of"),
        ({"journeys": [{**GOOD, "as_of": "2263-01-01T00:00:00Z"}]}, "as_of"),  # past int64 ns
        (
            {"journeys": [{**GOOD, "events": [{**GOOD_EVENT, "timestamp": "1500-01-01T00:00Z"}]}]},
            "timestamp",
        ),
    ],
)
def test_bad_requests_answer_400_naming_the_field(client, body, field):
    response = client.post("/predict", json=body, headers=AUTH)
    assert response.status_code == 400, response.text
    detail = response.json()["detail"]
    assert any(field in [str(part) for part in d["loc"]] for d in detail), detail


def test_a_unix_time_as_of_for_a_customer_answers_400(client):
    body = {"customer_id": "C1", "as_of": 1746093600}
    response = client.post("/predict_customer", json=body, headers=AUTH)
    assert response.status_code == 400, response.text
    assert any("as_of" in d["loc"] for d in response.json()["detail"])


def test_too_many_journeys_are_refused_before_any_is_validated(client):
    response = client.post("/predict", json={"journeys": [{}] * 51}, headers=AUTH)
    assert response.status_code == 400, response.text
    (error,) = response.json()["detail"]  # one error, not one per journey
    assert "at most 50 journeys" in error["msg"] and "serving.max_journeys" in error["msg"]


def _big_body(size: int) -> bytes:
    """A well-formed request of about `size` bytes: one journey with a long id."""
    return json.dumps({"journeys": [{**GOOD, "customer_id": "C" * size}]}).encode()


def test_a_body_over_the_limit_answers_413_before_it_is_read(client):
    headers = {**AUTH, "content-type": "application/json"}
    response = client.post("/predict", content=_big_body(1_000_001), headers=headers)
    assert response.status_code == 413, response.text[:300]
    assert "serving.max_body_bytes" in response.json()["error"]
    assert "1,000,000" in response.json()["error"]
    # Without a length (chunked), refused as soon as the bytes read pass the limit.
    body = _big_body(1_000_001)
    chunks = (body[i : i + 65_536] for i in range(0, len(body), 65_536))
    chunked = client.post("/predict", content=chunks, headers=headers)
    assert chunked.status_code == 413, chunked.text[:300]
    # Under the limit, chunked or not, the request is read as usual.
    small = _big_body(1_000)
    assert client.post("/predict", content=small, headers=headers).status_code == 200
    pieces = iter([small[:100], small[100:]])
    assert client.post("/predict", content=pieces, headers=headers).status_code == 200


@pytest.mark.parametrize(
    "content",
    [
        b'{"journeys": [',
        b'{"journeys": [{"customer_id": "C", "events": [{"timestamp": "2025-05-01T10:00:00Z", '
        b'"event": "x", "value": Infinity}]}]}',
        b"\xff\xfe",
    ],
)
def test_malformed_json_answers_400(client, content):
    headers = {**AUTH, "content-type": "application/json"}
    response = client.post("/predict", content=content, headers=headers)
    assert response.status_code == 400, response.text


def test_a_body_that_is_not_json_answers_415(client):
    """A form body used to answer 500 (found by schemathesis)."""
    headers = {**AUTH, "content-type": "multipart/form-data"}
    response = client.post("/predict_customer", content=b'{"customer_id": "C"}', headers=headers)
    assert response.status_code == 415 and "application/json" in response.json()["error"]


def test_the_token_guards_everything_but_the_probes(client):
    body = {"journeys": [GOOD]}
    assert client.post("/predict", json=body).status_code == 401
    wrong = client.post("/predict", json=body, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert "token" in wrong.json()["error"]
    assert client.get("/risk_list?task=churn").status_code == 401
    assert client.get("/metrics").status_code == 401
    not_ascii = {"Authorization": "Bearer s3cret-tökén".encode("latin-1")}
    assert client.post("/predict", json=body, headers=not_ascii).status_code == 401
    assert client.post("/predict", json=body, headers=AUTH).status_code == 200


def test_risk_list_is_the_latest_scored_list(client, workspace):
    response = client.get("/risk_list?task=churn&limit=5&min_risk=0.5", headers=AUTH)
    assert response.status_code == 200, response.text
    rows = response.json()["rows"]
    assert len(rows) == 5
    risks = [r["risk"] for r in rows]
    assert risks == sorted(risks, reverse=True) and min(risks) >= 0.5
    assert rows[0]["reason_1"]
    assert client.get("/risk_list?task=chrun", headers=AUTH).status_code == 404
    bad_limit = client.get("/risk_list?task=churn&limit=0", headers=AUTH)
    assert bad_limit.status_code == 422
    assert "limit" in bad_limit.text


def test_risk_list_sorts_by_value_at_risk(client, workspace):
    response = client.get("/risk_list?task=churn&limit=50&sort=value_at_risk", headers=AUTH)
    assert response.status_code == 200, response.text
    rows = response.json()["rows"]
    at_stake = [r["value_at_risk"] for r in rows]
    assert len(rows) == 50 and at_stake == sorted(at_stake, reverse=True)
    assert all(r["value_at_risk"] == pytest.approx(r["risk"] * r["expected_value"]) for r in rows)
    by_risk = client.get("/risk_list?task=churn&limit=50", headers=AUTH).json()["rows"]
    assert [r["customer_id"] for r in rows] != [r["customer_id"] for r in by_risk]
    assert client.get("/risk_list?task=churn&sort=money", headers=AUTH).status_code == 422


def _predictions_counted(client) -> dict[tuple[str, str], float]:
    """journeyguard_predictions_total of the /predict endpoint, by (task, model version)."""
    text = client.get("/metrics", headers=AUTH).text
    counted = {}
    for line in text.splitlines():
        found = re.match(r"journeyguard_predictions_total\{(.*)\} (\S+)", line)
        if found and 'endpoint="predict"' in found[1]:
            labels = dict(re.findall(r'(\w+)="([^"]*)"', found[1]))
            counted[labels["task"], labels["model_version"]] = float(found[2])
    return counted


def test_metrics_count_predictions_by_task_and_version(client):
    before = _predictions_counted(client)
    assert client.post("/predict", json={"journeys": [GOOD, GOOD]}, headers=AUTH).is_success
    after = _predictions_counted(client)
    rose = {key: after[key] - before.get(key, 0.0) for key in after}
    assert {task for (task, _), n in rose.items() if n == 2} == {"churn", "escalation"}, rose
    assert all(version.isdigit() for _, version in rose)
    assert "journeyguard_prediction_seconds_bucket" in client.get("/metrics", headers=AUTH).text


def test_a_promoted_champion_is_picked_up_without_restart(client, workspace):
    """Runs last in this module: it moves the churn champion to a new version."""
    registry = MlflowClient(
        tracking_uri=workspace.tracking_uri, registry_uri=workspace.tracking_uri
    )
    name = "journeyguard-churn"
    champion = registry.get_model_version_by_alias(name, "champion")
    copy = registry.create_model_version(name, champion.source, run_id=champion.run_id)
    registry.set_registered_model_alias(name, "champion", copy.version)
    deadline = time.monotonic() + 30
    while True:
        result = client.post("/predict", json={"journeys": [GOOD]}, headers=AUTH).json()[0]
        if result["risks"]["churn"]["model_version"] == int(copy.version):
            break
        assert time.monotonic() < deadline, "the new champion was not picked up"
        time.sleep(0.1)


def test_without_a_champion_not_ready_with_the_reason_then_ready_again(client, workspace):
    """A champion removed from the registry: a clear 503 naming the task, not a crash; back
    when a champion is set again. (One service per process: BentoML's metrics are global.)"""
    registry = MlflowClient(
        tracking_uri=workspace.tracking_uri, registry_uri=workspace.tracking_uri
    )
    name = "journeyguard-escalation"
    champion = registry.get_model_version_by_alias(name, "champion")
    registry.delete_registered_model_alias(name, "champion")
    try:
        deadline = time.monotonic() + 30
        while (ready := client.get("/readyz")).status_code != 503:
            assert time.monotonic() < deadline, "the service did not notice"
            time.sleep(0.1)
        assert "escalation" in ready.json()["reason"]
        assert "journeyguard train" in ready.json()["reason"]
        refused = client.post("/predict", json={"journeys": [GOOD]}, headers=AUTH)
        assert refused.status_code == 503
        assert "no champion" in refused.json()["error"]
        assert client.get("/livez").status_code == 200
    finally:
        registry.set_registered_model_alias(name, "champion", champion.version)
    wait_ready(client)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
timestamps = st.sampled_from(
    ["2025-05-01T10:00:00+00:00", "2025-05-01T10:00:00", "2025-13-01T00:00:00Z", "", "0", "1e99"]
) | st.datetimes(timezones=st.just(UTC)).map(lambda d: d.isoformat())
fuzzed_events = st.fixed_dictionaries(
    {"timestamp": timestamps | json_values, "event": st.text(max_size=10) | json_values},
    optional={
        "value": st.floats(allow_nan=False, allow_infinity=False) | json_values,
        "score": st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=4),
        "channel": st.text(max_size=5) | json_values,
        "attributes": st.dictionaries(st.sampled_from(["segment", "country", "x"]), json_values),
    },
)
fuzzed_columns = st.fixed_dictionaries(
    {
        "timestamp": st.lists(timestamps | json_values, max_size=3),
        "event": st.lists(st.text(max_size=10), max_size=3) | json_values,
    },
    optional={
        "value": st.lists(st.floats(allow_nan=False, allow_infinity=False) | st.none(), max_size=3),
        "channel": st.lists(st.text(max_size=5) | json_values, max_size=3),
        "attributes": st.dictionaries(
            st.sampled_from(["segment", "country", "x"]), st.lists(json_values, max_size=3)
        ),
    },
)
fuzzed_journeys = st.fixed_dictionaries(
    {
        "customer_id": st.text(max_size=6) | json_values,
        "events": st.lists(fuzzed_events, max_size=4) | fuzzed_columns,
    },
    optional={"as_of": timestamps | json_values},
)
fuzzed_bodies = (
    st.fixed_dictionaries({"journeys": st.lists(fuzzed_journeys, max_size=3)}) | json_values
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=fuzzed_bodies)
def test_fuzzed_requests_never_answer_500(client, body):
    response = client.post("/predict", json=body, headers=AUTH)
    assert response.status_code < 500, (body, response.text)
    if response.status_code == 200:
        assert len(response.json()) == len(body["journeys"])


@settings(max_examples=50, deadline=None)
@given(body=st.fixed_dictionaries({"customer_id": json_values}, optional={"as_of": timestamps}))
def test_fuzzed_customer_requests_never_answer_500(client, body):
    assert client.post("/predict_customer", json=body, headers=AUTH).status_code < 500


def test_drift_gauges_follow_the_latest_monitor_result(client, workspace):
    import json

    path = workspace.settings.workspace.monitor_result("churn")
    result = {
        "model_version": 1,
        "score_psi": 0.31,
        "top_features": [{"feature": "rate__delivery_delayed", "psi": 0.42}],
        "breach": True,
    }
    path.write_text(json.dumps(result))
    try:
        deadline = time.monotonic() + 30
        while True:
            lines = client.get("/metrics", headers=AUTH).text.splitlines()
            drift = [line for line in lines if line.startswith("journeyguard_drift_psi")]
            if any('feature="rate__delivery_delayed"' in line and "0.42" in line for line in drift):
                break
            assert time.monotonic() < deadline, drift
            time.sleep(0.1)
        breach = [line for line in lines if line.startswith("journeyguard_drift_breach")]
        assert any('task="churn"' in line and line.endswith(" 1.0") for line in breach), breach
    finally:
        path.unlink()
