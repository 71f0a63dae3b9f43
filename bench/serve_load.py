"""Load on `journeyguard serve` from a second process: latency at a fixed rate, and throughput
in batches.

    .venv/bin/python bench/serve_load.py                    # 100 req/s for 30 s, then batches
    .venv/bin/python bench/serve_load.py --rate 150 --seconds 20 --batches 20

Needs a trained workspace (`make demo`: configs/simulator.toml and its champions in mlruns/).
Starts the server on a free port, waits until it is ready, warms it up, then:

1. open loop: single-journey requests of 30 events sent on a fixed schedule (`--rate` per
   second), latency measured from each request's scheduled start, so a server that falls behind
   shows it (no coordinated omission); p50, p90, p99, max and the answered rate;
2. batches: `--concurrency` clients each posting batches of `--batch-size` journeys of 30
   events, once with the events as objects and once as columns (`EventColumns`); journeys
   per second of each.

With `--overload F` it measures overload instead (issue 18, row 10): the capacity in requests
of `--overload-journeys` journeys (closed loop, 4 clients), then an open loop of such requests
at F times that rate for `--seconds`, while single-journey probes (5 a second) run on until
`--recovery-seconds` after it ends. It prints the statuses, how many 503s carried
`Retry-After`, the latency of accepted requests, and the recovery: the probes' median
before the overload, and their p99 in each 5-second window after it ends.

    .venv/bin/python bench/serve_load.py --overload 3 --seconds 15
    .venv/bin/python bench/serve_load.py --overload 3 --seconds 15 --config C  # another config
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import common

from journeyguard.features.eventlog.frames import log_to_frame

ROOT = common.ROOT
EVENTS_PER_JOURNEY = 30


def journeys(config: Path, n: int, seed: int = 0) -> list[dict]:
    """`n` journeys of 30 events from the configured log: windows of 30 consecutive events of
    its first 400,000 (a window may span two customers), each named anew and scored as of
    its last event."""
    import numpy as np

    from journeyguard.features.config.reader import load_config
    from journeyguard.features.sources.log import load_log

    settings = load_config(config)
    log = load_log(settings)
    events = log_to_frame(log)
    rng = np.random.default_rng(seed)
    rows = events.iloc[: min(len(events), 400_000)]
    records = []
    for row in rows.itertuples(index=False):
        event = {"timestamp": row.timestamp.isoformat(), "event": str(row.event)}
        if isinstance(row.channel, str):
            event["channel"] = row.channel
        if isinstance(row.case_id, str):
            event["case_id"] = row.case_id
        if row.value == row.value:  # not NaN
            event["value"] = float(row.value)
        if row.score == row.score:
            event["score"] = float(row.score)
        event["attributes"] = {"segment": str(row.segment), "country": str(row.country)}
        records.append(event)
    result = []
    starts = rng.integers(0, len(records) - EVENTS_PER_JOURNEY, n)
    for i, start in enumerate(starts):
        chunk = sorted(records[start : start + EVENTS_PER_JOURNEY], key=lambda e: e["timestamp"])
        as_of = chunk[-1]["timestamp"]
        result.append({"customer_id": f"L{i}", "events": chunk, "as_of": as_of})
    return result


def with_columns(journey: dict) -> dict:
    """The journey with its events as columns."""
    from journeyguard.serving.schemas import events_as_columns

    return {**journey, "events": events_as_columns(journey["events"])}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(config: Path, port: int, log_path: Path) -> subprocess.Popen:
    command = [str(Path(sys.executable).with_name("journeyguard")), "serve", "--config"]
    return subprocess.Popen(
        [*command, str(config), "--port", str(port)],
        stdout=log_path.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env=common.child_env(),
    )


def wait_ready(base: str, server: subprocess.Popen, seconds: float = 120) -> None:
    import httpx

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit("the server exited; see its log")
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise SystemExit("the server did not become ready")


async def open_loop(base: str, bodies: list[bytes], rate: float, seconds: float) -> dict:
    import httpx

    limits = httpx.Limits(max_connections=512, max_keepalive_connections=512)
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:

        async def one(body: bytes, scheduled: float) -> None:
            await asyncio.sleep(max(0.0, scheduled - time.perf_counter()))
            try:
                response = await client.post(
                    "/predict", content=body, headers={"content-type": "application/json"}
                )
                status = response.status_code
            except httpx.HTTPError:
                status = 0
            latencies.append(time.perf_counter() - scheduled)
            statuses[status] = statuses.get(status, 0) + 1

        total = int(rate * seconds)
        begin = time.perf_counter() + 0.2
        await asyncio.gather(
            *(one(bodies[i % len(bodies)], begin + i / rate) for i in range(total))
        )
        elapsed = time.perf_counter() - begin
    ordered = sorted(latencies)

    def quantile(q: float) -> float:
        return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {
        "requests": total,
        "rate_asked": rate,
        "rate_answered": round(statuses.get(200, 0) / elapsed, 1),
        "statuses": statuses,
        "p50_ms": round(quantile(0.50), 1),
        "p90_ms": round(quantile(0.90), 1),
        "p99_ms": round(quantile(0.99), 1),
        "max_ms": round(1000 * ordered[-1], 1),
        "mean_ms": round(1000 * statistics.fmean(ordered), 1),
    }


async def batches(base: str, body: bytes, size: int, count: int, concurrency: int) -> dict:
    import httpx

    durations: list[float] = []
    retries: list[int] = []
    # Each batch on a new connection (a connect on loopback costs ~0.1 ms beside a 3-4 MB
    # body). The server's worker processes share the listening socket and a connection
    # stays with the worker that accepted it: kept alive, a random split of the clients
    # (3 on one worker, 1 on the other) left one worker idle half the run. A new connection
    # is accepted by a worker that is free to accept, as a load balancer would route it.
    headers = {"content-type": "application/json", "connection": "close"}

    async def worker(n: int, delay: float) -> None:
        await asyncio.sleep(delay)  # clients start a moment apart, as separate callers do
        async with httpx.AsyncClient(base_url=base, timeout=120) as client:
            for _ in range(n):
                started = time.perf_counter()
                response = await client.post("/predict", content=body, headers=headers)
                while response.status_code == 503 and "retry-after" in response.headers:
                    # Shed (serving.max_in_flight_bytes): retry as a client should.
                    retries.append(1)
                    await asyncio.sleep(float(response.headers["retry-after"]))
                    response = await client.post("/predict", content=body, headers=headers)
                assert response.status_code == 200, response.text[:500]
                durations.append(time.perf_counter() - started)

    begin = time.perf_counter()
    share = [count // concurrency + (i < count % concurrency) for i in range(concurrency)]
    await asyncio.gather(*(worker(n, 0.2 * i) for i, n in enumerate(share)))
    elapsed = time.perf_counter() - begin
    return {
        "batches": count,
        "batch_size": size,
        "concurrency": concurrency,
        "journeys_per_second": round(count * size / elapsed),
        "median_batch_ms": round(1000 * statistics.median(durations), 1),
        "retried_after_503": len(retries),
    }


async def overload(
    base: str, big: bytes, probe: bytes, rate: float, seconds: float, recovery_seconds: float
) -> dict:
    """Big requests at `rate` for `seconds`, and probes from before until after them."""
    import httpx

    limits = httpx.Limits(max_connections=1024, max_keepalive_connections=1024)
    headers = {"content-type": "application/json"}
    big_answers: list[tuple[int, float, bool]] = []  # status, latency, has Retry-After
    probes: list[tuple[float, float]] = []  # sent at (from the start), latency
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=120) as client:

        async def post(body: bytes, scheduled: float) -> tuple[int, float, bool]:
            await asyncio.sleep(max(0.0, scheduled - time.perf_counter()))
            try:
                response = await client.post("/predict", content=body, headers=headers)
                status, retry = response.status_code, "retry-after" in response.headers
            except httpx.HTTPError:
                status, retry = 0, False
            return status, time.perf_counter() - scheduled, retry

        async def one_big(scheduled: float) -> None:
            big_answers.append(await post(big, scheduled))

        async def one_probe(scheduled: float) -> None:
            _, latency, _ = await post(probe, scheduled)
            probes.append((scheduled - begin, latency))

        lead = 3.0  # probes before the overload: the baseline
        begin = time.perf_counter() + 0.2
        total = int(rate * seconds)
        tasks = [one_big(begin + lead + i / rate) for i in range(total)]
        span = lead + seconds + recovery_seconds
        tasks += [one_probe(begin + i / 5) for i in range(int(span * 5))]
        await asyncio.gather(*tasks)
    end = lead + seconds
    baseline = statistics.median(latency for sent, latency in probes if sent < lead)
    after: dict[int, list[float]] = {}  # probes' latencies by 5-second window after the end
    for sent, latency in probes:
        if sent >= end:
            after.setdefault(int((sent - end) // 5) * 5, []).append(latency)
    probe_p99 = {
        f"{start}-{start + 5}s": round(1000 * sorted(v)[min(len(v) - 1, int(0.99 * len(v)))])
        for start, v in sorted(after.items())
    }
    statuses: dict[int, int] = {}
    for status, _, _ in big_answers:
        statuses[status] = statuses.get(status, 0) + 1
    accepted = sorted(latency for status, latency, _ in big_answers if status == 200)
    shed = [retry for status, _, retry in big_answers if status == 503]

    def quantile(values: list[float], q: float) -> float | None:
        return round(values[min(len(values) - 1, int(q * len(values)))], 2) if values else None

    return {
        "requests": total,
        "rate": round(rate, 2),
        "statuses": statuses,
        "503_with_retry_after": sum(shed),
        "accepted_p50_s": quantile(accepted, 0.5),
        "accepted_p99_s": quantile(accepted, 0.99),
        "accepted_max_s": quantile(accepted, 1.0),
        "probe_baseline_ms": round(1000 * baseline, 1),
        "probe_p99_ms_after_the_overload": probe_p99,
    }


def run_overload(base: str, args: argparse.Namespace, sample: list[dict]) -> None:
    big = json.dumps({"journeys": sample[: args.overload_journeys]}).encode()
    probe = json.dumps({"journeys": [sample[0]]}).encode()
    capacity = asyncio.run(batches(base, big, args.overload_journeys, 12, 4))
    rate = args.overload * capacity["journeys_per_second"] / args.overload_journeys
    print("capacity:", json.dumps(capacity))
    result = overload(base, big, probe, rate, args.seconds, args.recovery_seconds)
    print(f"overload at {args.overload}x capacity:", json.dumps(asyncio.run(result)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "simulator.toml")
    parser.add_argument("--rate", type=float, default=100.0, help="requests per second")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--url", help="an already running service instead of starting one")
    parser.add_argument("--overload", type=float, help="measure overload at this x capacity")
    parser.add_argument("--overload-journeys", type=int, default=500)
    parser.add_argument("--recovery-seconds", type=float, default=30.0)
    args = parser.parse_args()

    sample = journeys(args.config, max(args.batch_size, args.overload_journeys, 500))
    singles = [json.dumps({"journeys": [j]}).encode() for j in sample[:500]]
    layouts = {
        "objects": json.dumps({"journeys": sample[: args.batch_size]}).encode(),
        "columns": json.dumps(
            {"journeys": [with_columns(j) for j in sample[: args.batch_size]]}
        ).encode(),
    }
    results = common.RESULTS
    results.mkdir(parents=True, exist_ok=True)
    server = None
    base = args.url
    if base is None:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        server = start_server(args.config, port, results / "serve_load.server.log")
    try:
        if server is not None:
            wait_ready(base, server)
        asyncio.run(open_loop(base, singles, 20, 3))  # warm-up
        if args.overload:
            return run_overload(base, args, sample)
        latency = asyncio.run(open_loop(base, singles, args.rate, args.seconds))
        print("single journeys of 30 events:", json.dumps(latency))
        for layout, batch in layouts.items():
            if args.batches > 0:
                result = batches(base, batch, args.batch_size, args.batches, args.concurrency)
                print(f"batches, events as {layout}:", json.dumps(asyncio.run(result)))
    finally:
        if server is not None:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
