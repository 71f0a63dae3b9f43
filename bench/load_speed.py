"""What a bad row costs the CSV loader: `load_events` on a clean file (pyarrow reads it) and on
the same file with one malformed row (read again record by record, `features/sources/rows.py`).

    .venv/bin/python bench/load_speed.py                      # 20,000 customers, 3 rounds
    .venv/bin/python bench/load_speed.py --customers 100000 --rounds 5

Writes the CSV files under bench/results/data once; prints wall seconds (median, min, max)
and the median CPU seconds of the rounds.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from journeyguard.features.config.model import SourceConfig
from journeyguard.features.sources.load import load_events
from journeyguard.features.sources.simulate import simulate

RESULTS = Path(__file__).resolve().parent / "results" / "data"


def write_files(customers: int, seed: int) -> tuple[Path, Path]:
    """The simulated log as CSV, and a copy with one row of a field too many in its middle."""
    clean = RESULTS / f"events-{customers}-seed{seed}.csv"
    broken = clean.with_name(clean.stem + "-one-bad-row.csv")
    if not broken.exists():
        RESULTS.mkdir(parents=True, exist_ok=True)
        frame = simulate(customers, seed).events
        frame.to_csv(clean, index=False)
        lines = clean.read_text().splitlines(keepends=True)
        middle = len(lines) // 2
        bad = lines[middle].rstrip("\n") + ",a field too many\n"
        broken.write_text("".join([*lines[:middle], bad, *lines[middle:]]))
    return clean, broken


def timed(path: Path, rounds: int) -> tuple[list[float], list[float], int, int]:
    """Wall and CPU seconds of each round (CPU too: this VM's 2 cores are often shared)."""
    wall, cpu, result = [], [], None
    for _ in range(rounds):
        start, start_cpu = time.perf_counter(), time.process_time()
        result = load_events(SourceConfig(path=path))
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    assert result is not None
    return wall, cpu, result.summary.rows_read, len(result.quarantine)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    for kind, path in zip(
        ("clean", "one bad row"), write_files(options.customers, options.seed), strict=True
    ):
        wall, cpu, rows, quarantined = timed(path, options.rounds)
        print(
            f"{kind:<12} {rows:>10,} rows  {quarantined:>6,} quarantined  "
            f"wall median {statistics.median(wall):6.2f} s (min {min(wall):.2f}, "
            f"max {max(wall):.2f})  CPU median {statistics.median(cpu):6.2f} s"
        )


if __name__ == "__main__":
    main()
