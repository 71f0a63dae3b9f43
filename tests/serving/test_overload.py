"""Overload sheds early with a reason, and client errors log one line (issue 18, row 10)."""

from __future__ import annotations

import asyncio
import logging

import httpx

from journeyguard.serving.overload import BENTOML_REQUEST_LOGGER, AdmissionMiddleware
from tests.serving.conftest import AUTH


def admitting(limit: int) -> tuple[AdmissionMiddleware, asyncio.Event]:
    """The middleware in front of an app that answers once `gate` is set."""
    gate = asyncio.Event()

    async def scoring(scope, receive, send):
        while (await receive()).get("more_body"):
            pass
        await gate.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"[]"})

    return AdmissionMiddleware(scoring, lambda: limit), gate


def test_requests_past_the_limit_are_shed_at_once_with_retry_after():
    async def scenario() -> None:
        middleware, gate = admitting(limit=100)
        transport = httpx.ASGITransport(app=middleware)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            first = asyncio.create_task(client.post("/predict", content=b"x" * 60))
            await asyncio.sleep(0.05)
            assert middleware.in_flight == 1
            shed = await client.post("/predict", content=b"x" * 60)  # 120 bytes > 100
            assert shed.status_code == 503
            assert shed.headers["retry-after"] == "1"
            assert "serving.max_in_flight_bytes" in shed.json()["error"]
            fits = asyncio.create_task(client.post("/predict_customer", content=b"x" * 30))
            other = asyncio.create_task(client.post("/elsewhere", content=b"x" * 500))
            await asyncio.sleep(0.05)
            assert middleware.in_flight == 2  # the one that fits; other paths are not counted
            gate.set()
            answers = await asyncio.gather(first, fits, other)
            assert [a.status_code for a in answers] == [200, 200, 200]
            assert (middleware.in_flight, middleware.in_flight_bytes) == (0, 0)
            # A request alone is admitted whatever its size.
            assert (await client.post("/predict", content=b"x" * 500)).status_code == 200

    asyncio.run(scenario())


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_a_bad_request_logs_one_line_not_a_traceback(client):
    handler = Records()
    target = logging.getLogger(BENTOML_REQUEST_LOGGER)
    target.addHandler(handler)
    try:
        response = client.post("/predict", json={"journeys": [{}]}, headers=AUTH)
    finally:
        target.removeHandler(handler)
    assert response.status_code == 400
    (record,) = handler.records
    assert record.exc_info is None and record.exc_text is None
    line = handler.format(record)
    assert "\n" not in line and "400 ValidationError" in line, line
