"""schemathesis at length against `journeyguard serve`: every operation of /openapi.json with
many examples, positive and negative, every check but one (see below).

    .venv/bin/python bench/schemathesis_run.py                     # 1,000 examples, seed 1
    .venv/bin/python bench/schemathesis_run.py --examples 5000 --seed 7

Needs a trained workspace (`make demo`). Starts the server on a free port with an API token,
waits until it is ready, runs `schemathesis run` and prints its report; the exit code is
schemathesis'. Not checked: that every request the document allows is accepted (a schema
cannot say that each column holds as many values as `timestamp`, nor the configured
`max_events`); those answer 400 naming the field. The suite runs the same, shortly
(tests/serving/test_openapi.py).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path

import common
from serve_load import free_port, wait_ready

TOKEN = "bench-schemathesis-token"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=common.ROOT / "configs" / "simulator.toml")
    parser.add_argument("--examples", type=int, default=1000, help="per operation")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    results = common.RESULTS
    results.mkdir(parents=True, exist_ok=True)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    command = [str(Path(sys.executable).with_name("journeyguard")), "serve", "--config"]
    server = subprocess.Popen(
        [*command, str(args.config), "--port", str(port)],
        stdout=(results / "schemathesis_run.server.log").open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**common.child_env(), "JOURNEYGUARD_API_TOKEN": TOKEN},
    )
    try:
        wait_ready(base, server)
        schemathesis = str(Path(sys.executable).with_name("schemathesis"))
        code = subprocess.call(
            [
                schemathesis, "run", f"{base}/openapi.json",
                "--header", f"Authorization: Bearer {TOKEN}",
                "--max-examples", str(args.examples),
                "--seed", str(args.seed),
                "--exclude-checks", "positive_data_acceptance",
            ]
        )  # fmt: skip
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    raise SystemExit(code)


if __name__ == "__main__":
    main()
