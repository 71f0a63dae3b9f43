"""Helpers shared by the benchmarks analyze_speed.py, features_speed.py and train_speed.py.

Imported as `common`: running `python bench/NAME.py` puts bench/ first on sys.path. Standard
library only at import time (pyarrow is imported inside the one function that reads Parquet), so
a benchmark's `--core` process, whose imports are part of what it measures, loads nothing more
than it did before.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
MEASURE = BENCH / "measure.py"
RESULTS = BENCH / "results"

ATTRIBUTES = ("segment", "country")  # text attributes of the simulated log
QUIET_ENV = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "BENTOML_DO_NOT_TRACK": "true",
    "DO_NOT_TRACK": "1",
}
SIMULATED_FILES = (".truth.json", ".customers.parquet", ".parquet")  # the events file last
STDOUT_TAIL = 300  # characters of a run's stdout kept in its record
FAILED_LOG_LINES = 5  # lines of a failed run's stderr log printed


# -- command line and environment ---------------------------------------------------------------


def add_location_options(parser: argparse.ArgumentParser) -> None:
    """Adds `--journeyguard` (the command, default beside this Python) and `--results`."""
    parser.add_argument(
        "--journeyguard",
        type=Path,
        default=Path(sys.executable).with_name("journeyguard"),
        help="the journeyguard command (default: beside this Python)",
    )
    parser.add_argument("--results", type=Path, default=RESULTS, help="where data and logs go")
    parser.add_argument(
        "--journeyguard-before",
        type=Path,
        default=None,
        help="another journeyguard (an older commit) timed beside, on the same input",
    )


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment with the telemetry switches off, plus `extra`."""
    return os.environ | QUIET_ENV | dict(extra or {})


# -- the simulated log and the configs ----------------------------------------------------------


def has_text_columns(path: Path, names: Sequence[str]) -> bool:
    """Whether the Parquet file at `path` holds every column of `names` as text (an older
    simulator left `segment` and `country` out, or wrote them as all-null numbers)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pq.read_schema(path)
    for name in names:
        if name not in schema.names:
            return False
        kind = schema.field(name).type
        if pa.types.is_dictionary(kind):
            kind = kind.value_type
        if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
            return False
    return True


def ensure_simulated_log(
    journeyguard: Path,
    data: Path,
    customers: int,
    seed: int,
    fresh: bool,
    text_columns: Sequence[str] = ATTRIBUTES,
    extra_env: Mapping[str, str] | None = None,
) -> Path:
    """The simulated log `data/events-N-seedS.parquet`, simulated once and then reused by every
    benchmark; simulated again when `fresh` or when it lacks one of `text_columns` as text (an
    empty `text_columns`: an existing file is reused unread).

    `journeyguard simulate` writes under a `.partial` name and the files are renamed at the end
    (the events file last), so an interrupted run leaves no partial file behind and a benchmark
    reading the old file meanwhile keeps reading it whole."""
    path = data / f"events-{customers}-seed{seed}.parquet"
    if not fresh and path.exists():
        if not text_columns or has_text_columns(path, text_columns):
            return path
        print(f"{path.name} lacks the text columns {tuple(text_columns)}: simulating it again")
    data.mkdir(parents=True, exist_ok=True)
    partial = data / f"events-{customers}-seed{seed}.partial.parquet"
    print(f"simulating {customers:,} customers into {path}", flush=True)
    start = time.perf_counter()
    command = [str(journeyguard), "simulate", "--customers", str(customers), "--seed", str(seed)]
    subprocess.run([*command, "--out", str(partial)], check=True, env=child_env(extra_env))
    for suffix in SIMULATED_FILES:
        os.replace(partial.with_name(partial.stem + suffix), path.with_name(path.stem + suffix))
    print(f"  simulated in {time.perf_counter() - start:.1f} s", flush=True)
    return path


def write_config(
    events: Path, config: Path, attributes: Sequence[str] = (), extra: str = ""
) -> Path:
    """Writes a journeyguard config whose source is the canonical Parquet log `events`, with
    `attributes` as its attribute columns (none: no such table) and the TOML `extra` after it
    (for instance a task); returns `config`."""
    config.parent.mkdir(parents=True, exist_ok=True)
    # A JSON string is a valid TOML basic string.
    text = f"[source]\npath = {json.dumps(str(events.resolve()))}\n"
    if attributes:
        columns = ", ".join(json.dumps(name) for name in attributes)
        text += f"[source.attributes]\ncolumns = [{columns}]\n"
    config.write_text(text + extra)
    return config


# -- measured runs ------------------------------------------------------------------------------


@dataclass
class SizedRun:
    """The fields that open a run record of features_speed.py and train_speed.py: one measured
    whole-process run of `kind` on the log of `customers` customers. Each script's subclass adds
    its own fields after these, in the order its result JSON lists them."""

    kind: str
    customers: int
    round: int
    wall_s: float
    cpu_s: float
    max_rss_kib: int
    returncode: int

    @property
    def mib(self) -> float:
        """The peak RSS in MiB."""
        return self.max_rss_kib / 1024


@dataclass
class Measurement:
    """What bench/measure.py recorded about one command, and the command's stdout."""

    wall_s: float
    cpu_s: float
    max_rss_kib: int
    returncode: int
    stdout: str

    def figures(self) -> dict[str, Any]:
        """`wall_s`, `cpu_s`, `max_rss_kib` and `returncode`, as keyword arguments for a run
        record."""
        return {
            "wall_s": self.wall_s,
            "cpu_s": self.cpu_s,
            "max_rss_kib": self.max_rss_kib,
            "returncode": self.returncode,
        }

    @property
    def stdout_tail(self) -> str:
        """The end of stdout, as kept in a run's record."""
        return self.stdout.strip()[-STDOUT_TAIL:]


def run_measured(
    name: str, command: list[str], log: Path, extra_env: Mapping[str, str] | None = None
) -> Measurement:
    """Runs `command` under bench/measure.py (a fresh small parent that takes its wall time and
    peak RSS); stderr goes to `log`, measure.py's result to `log` with `.measure.json`, stdout
    is kept. A failed run prints the end of its log, named `name`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    result = log.with_suffix(".measure.json")
    with log.open("w") as errors:
        finished = subprocess.run(
            [sys.executable, str(MEASURE), str(result), "--", *command],
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
            env=child_env(extra_env),
        )
    numbers = json.loads(result.read_text())
    done = Measurement(
        numbers["wall_s"],
        numbers.get("cpu_s", float("nan")),
        numbers["max_rss_kib"],
        numbers["returncode"],
        finished.stdout,
    )
    if done.returncode != 0:
        tail = log.read_text().strip().splitlines()[-FAILED_LOG_LINES:]
        print(f"  {name} failed ({done.returncode}); end of {log}:", *tail, sep="\n    ")
    return done


def rotation(names: Sequence[str], rounds: int) -> Iterator[tuple[int, str]]:
    """(round, name) for rounds 1..`rounds`, each name once a round, the order rotating from
    round to round so that no measurement always goes first."""
    for round_ in range(1, rounds + 1):
        shift = (round_ - 1) % len(names)
        for name in [*names[shift:], *names[:shift]]:
            yield round_, name


def failure_note(returncode: int) -> str:
    """The progress line's note on a failed run; empty for a successful one."""
    return "" if returncode == 0 else f"  FAILED (exit {returncode})"


def last_json_line(stdout: str) -> dict[str, Any] | None:
    """The last line of `stdout` that starts with "{", parsed (None when there is none or it is
    not JSON): the one-line result a core or competitor process prints."""
    for line in reversed(stdout.strip().splitlines()):
        if line.startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                return None
    return None


def first_json(stdout: str) -> dict[str, Any] | None:
    """The JSON object that starts at the first line beginning with "{" (log lines before it
    are skipped; a command may print its result indented over many lines)."""
    lines = stdout.splitlines(keepends=True)
    for number, line in enumerate(lines):
        if line.startswith("{"):
            try:
                value, _ = json.JSONDecoder().raw_decode("".join(lines[number:]))
            except json.JSONDecodeError:
                return None
            return value if isinstance(value, dict) else None
    return None


# -- summaries, tables and records --------------------------------------------------------------


def time_and_peak(walls: Sequence[float], peaks_mib: Sequence[float]) -> dict[str, float]:
    """`median_s`, `min_s` and `max_s` of the wall times and `peak_mib`, the highest peak RSS,
    of a measurement's successful runs (at least one)."""
    return {
        "median_s": statistics.median(walls),
        "min_s": min(walls),
        "max_s": max(walls),
        "peak_mib": max(peaks_mib),
    }


def cell(value: float | None, width: int, spec: str = "") -> str:
    """`value` formatted with `spec`, right-aligned in `width`; "-" when it is None."""
    return f"{value:>{width}{spec}}" if value is not None else f"{'-':>{width}}"


def arguments(args: argparse.Namespace, leave_out: Sequence[str] = ()) -> dict[str, str]:
    """The command-line arguments as text, for a result file."""
    return {k: str(v) for k, v in vars(args).items() if k not in leave_out}


def code_state() -> dict[str, Any]:
    """The commit and the files changed since it (read-only git queries): the code that the
    numbers belong to."""

    def git(*words: str) -> str:
        try:
            done = subprocess.run(
                ["git", "--no-optional-locks", *words], cwd=ROOT, capture_output=True, text=True
            )
        except OSError:
            return ""
        return done.stdout.strip() if done.returncode == 0 else ""

    return {
        "commit": git("rev-parse", "HEAD"),
        "changed": git("status", "--porcelain", "--untracked-files=no").splitlines(),
    }


def write_record(results: Path, name: str, body: dict[str, Any]) -> Path:
    """Writes `body` as indented JSON to `results/NAME-YYYYmmdd-HHMMSS.json`; returns the path."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = results / f"{name}-{stamp}.json"
    path.write_text(json.dumps(body, indent=2, default=str))
    return path


# -- the log as a warehouse exports it ----------------------------------------------------------


def warehouse_export(events: Path, out: Path, seed: int = 0, last_day_at_end: bool = False) -> Path:
    """The canonical log `events` as a plain Parquet file, the way a warehouse exports it: text
    as plain strings (no dictionary), rows in random order (`seed`), no canonical mark. With
    `last_day_at_end`, the rows of the last UTC day come after all the others (a daily export
    that grew by one day, in a row group of its own); the file without them is `out` with
    `.history` before its suffix.
    Written once; an existing file is reused."""
    history = out.with_name(f"{out.stem}.history{out.suffix}")
    if out.exists() and (history.exists() or not last_day_at_end):
        return out
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = pq.read_table(events)
    plain = {}
    for name in table.column_names:
        column = table.column(name)
        if pa.types.is_dictionary(column.type):
            column = column.cast(column.type.value_type)
        plain[name] = column
    table = pa.table(plain)  # without the canonical mark in the schema's metadata
    table = table.take(np.random.default_rng(seed).permutation(table.num_rows))
    out.parent.mkdir(parents=True, exist_ok=True)
    if last_day_at_end:
        day = pc.floor_temporal(table.column("timestamp"), unit="day")
        last = pc.equal(day, pc.max(day))
        older = table.filter(pc.invert(last))
        pq.write_table(older, history)
        # An exporter that appends a day adds its rows as row groups of their own.
        with pq.ParquetWriter(out, older.schema) as writer:
            writer.write_table(older)
            writer.write_table(table.filter(last))
        return out
    pq.write_table(table, out)
    return out


def compile_project(journeyguard: Path) -> None:
    """Bytecode for the project's packages, as pip writes for the competitors' installed ones
    (an editable install has none, and PYTHONDONTWRITEBYTECODE may keep it from being
    written: every run would compile the sources again, about 70 ms)."""
    python = journeyguard.with_name("python")
    packages = [str(ROOT / name) for name in ("features", "training", "serving", "outreach")]
    subprocess.run([str(python), "-m", "compileall", "-q", *packages], check=True)
