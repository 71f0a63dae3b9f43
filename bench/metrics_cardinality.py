"""/metrics under random paths: its size and the workers' memory before and after `--paths`
unauthenticated requests to distinct random paths (issue 18, row 1).

    .venv/bin/python bench/metrics_cardinality.py                 # 3,000 paths
    .venv/bin/python bench/metrics_cardinality.py --paths 10000

Needs a trained workspace (`make demo`). Starts `journeyguard serve` with an API token on a free
port, so every random path answers 401, as in the probe that found it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import common
from serve_load import free_port, wait_ready

TOKEN = "bench-metrics-token"


def workers_rss_mb(server_pid: int) -> float:
    """Resident memory of the server and every process under it (BentoML's workers run in
    sessions of their own), in MB."""
    table = subprocess.run(["ps", "-e", "-o", "pid=,ppid=,rss="], capture_output=True, text=True)
    rows = [tuple(int(v) for v in line.split()) for line in table.stdout.splitlines()]
    tree, total = {server_pid}, 0
    for _ in range(4):  # serve -> bentoml -> arbiter -> workers
        tree |= {pid for pid, parent, _ in rows if parent in tree}
    total = sum(rss for pid, _, rss in rows if pid in tree)
    return round(total / 1024, 1)


async def random_paths(base: str, n: int) -> dict[int, int]:
    import httpx

    statuses: dict[int, int] = {}
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        for start in range(0, n, 50):
            answers = await asyncio.gather(
                *(client.get(f"/{uuid.uuid4().hex}") for _ in range(min(50, n - start)))
            )
            for answer in answers:
                statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1
    return statuses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=common.ROOT / "configs" / "simulator.toml")
    parser.add_argument("--paths", type=int, default=3000)
    args = parser.parse_args()

    import httpx

    results = common.RESULTS
    results.mkdir(parents=True, exist_ok=True)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    command = [str(Path(sys.executable).with_name("journeyguard")), "serve", "--config"]
    server = subprocess.Popen(
        [*command, str(args.config), "--port", str(port)],
        stdout=(results / "metrics_cardinality.server.log").open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**common.child_env(), "JOURNEYGUARD_API_TOKEN": TOKEN},
    )
    auth = {"Authorization": f"Bearer {TOKEN}"}
    try:
        wait_ready(base, server)

        def metrics_kb() -> float:
            return round(len(httpx.get(f"{base}/metrics", headers=auth).content) / 1024, 1)

        before = {"metrics_kb": metrics_kb(), "rss_mb": workers_rss_mb(server.pid)}
        statuses = asyncio.run(random_paths(base, args.paths))
        after = {"metrics_kb": metrics_kb(), "rss_mb": workers_rss_mb(server.pid)}
        print(json.dumps({"paths": args.paths, "statuses": statuses, "before": before,
                          "after": after}))  # fmt: skip
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
