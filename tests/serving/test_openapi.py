"""The OpenAPI document and schemathesis against `journeyguard serve` (issue 18, row 12): a
short, seeded run in the suite; bench/schemathesis_run.py runs it at length."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from hypothesis import HealthCheck, settings

from journeyguard.serving.openapi import openapi_spec
from journeyguard.serving.predict_request import PredictRequest
from tests.serving.conftest import AUTH, TOKEN, Workspace, served

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is a dev extra")
positive_data_acceptance = schemathesis.checks.positive_data_acceptance

EXAMPLES = 30  # per operation; deterministic (tests/conftest.py's hypothesis profile)


@pytest.fixture(scope="module")
def server(workspace: Workspace, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    config = workspace.variant("openapi", f'api_token = "{TOKEN}"')
    log = tmp_path_factory.mktemp("openapi") / "server.log"
    with served(workspace, config, log) as base:
        yield base


# The document the server answers with (test_the_server_serves_this_document), built here so
# the operations are known when tests are collected; 50: the test config's max_journeys.
DOCUMENT = openapi_spec(PredictRequest, max_journeys=50)
schema = schemathesis.openapi.from_dict(DOCUMENT)


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_every_answer_matches_the_document(case, server: str):
    # Not checked: that every request the document allows is accepted. A schema cannot say
    # that each column of a journey holds as many values as `timestamp`, nor the configured
    # `max_events`: such requests answer 400, naming the field, as documented.
    case.call_and_validate(
        base_url=server, headers=AUTH, excluded_checks=[positive_data_acceptance]
    )


def test_no_page_loads_anything_from_elsewhere(server: str):
    """BentoML's index page loaded Google Tag Manager, and /docs.json answered 500."""
    index = httpx.get(f"{server}/", follow_redirects=False)
    assert index.status_code == 303 and index.headers["location"] == "/console"
    document = httpx.get(f"{server}/docs.json", headers=AUTH)
    assert document.status_code == 200
    assert set(document.json()["paths"]) == {"/predict", "/predict_customer", "/risk_list"}
    for path in ("/console/login", "/docs.json", "/openapi.json"):
        text = httpx.get(f"{server}{path}", headers=AUTH).text
        assert "googletagmanager" not in text and "https://" not in text, path


def test_the_server_serves_this_document(server: str):
    assert httpx.get(f"{server}/openapi.json", headers=AUTH).json() == DOCUMENT
    assert len(list(schema.get_all_operations())) == 3
