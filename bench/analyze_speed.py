"""Benchmark: `journeyguard analyze` against pm4py and retentioneering on the same event log.

Run by hand with the project's Python (see bench/README.md):

    .venv/bin/python bench/analyze_speed.py [--customers 100000] [--rounds 5]
                                            [--skip-retentioneering] [--skip-checks]

1. Creates bench/.venv-compare with bench/compare/requirements.txt when it is missing or the
   requirements changed (the competitors never enter the project's environment).
2. Simulates the log with `journeyguard simulate` into bench/results/data/ when missing.
3. Runs the tools as separate whole processes, alternated round by round, each under
   bench/measure.py, which records its wall time and peak RSS.
4. Prints median time, peak memory and the ratios to journeyguard.
5. Checks that journeyguard's transition counts and variant frequencies equal pm4py's on the
   simulated log and on the Helpdesk log (exported in canonical form, the file every tool
   reads), and prints PASS / FAIL with the first differences.

Timings are reported, never asserted: the exit code is 1 only when an equality check fails.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import shutil
import statistics
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import common

COMPARE = common.BENCH / "compare"
COMPARE_VENV = common.BENCH / ".venv-compare"
REQUIREMENTS = COMPARE / "requirements.txt"
HELPDESK_CONFIG = common.ROOT / "configs" / "helpdesk.toml"

JOURNEYGUARD = "journeyguard"  # `analyze` of a canonical file, in the checks
JG_STORE = "jg store"  # the warehouse export as the source, its ingested store current
JG_FIRST = "jg first run"  # the same, the store removed before each run: ingest included
JG_CANONICAL = "jg canonical"  # the canonical file as the source
JG_BEFORE = "jg before"  # --journeyguard-before over the export (validated on every run)
PM4PY = "pm4py"
RETENTIONEERING = "retentioneering"
COMPETITOR_ENV = {"RETENTIONEERING_NO_TRACK": "1"}  # retentioneering 5 reports usage otherwise
SHOWN_DIFFERENCES = 10
# vs the faster competitor; the runs before the store are shown against the 6x of a first run
TARGET_SPEEDUP = {JG_STORE: 20.0, JG_FIRST: 6.0, JG_CANONICAL: 10.0, JG_BEFORE: 6.0}

Pair = tuple[str, str]


@dataclass
class Run:
    """One measured whole-process run of one tool."""

    tool: str
    round: int
    wall_s: float
    cpu_s: float
    max_rss_kib: int
    returncode: int
    line: dict[str, Any] | None = None

    @property
    def mib(self) -> float:
        return self.max_rss_kib / 1024


@dataclass
class Check:
    """One equality check: its name, whether it passed, and lines describing it."""

    name: str
    passed: bool | None  # None: informational, or skipped
    lines: list[str] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        return {True: "PASS", False: "FAIL", None: "INFO"}[self.passed]


@dataclass
class Setting:
    """Paths and programs of one benchmark run."""

    journeyguard: Path
    compare_python: Path
    results: Path
    max_steps: int
    analyze: bool
    competitors: list[str]
    before: Path | None = None

    @property
    def logs(self) -> Path:
        return self.results / "logs"

    @property
    def data(self) -> Path:
        return self.results / "data"


# -- set-up -------------------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=100_000, help="simulated customers")
    parser.add_argument("--seed", type=int, default=1, help="simulation seed")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of timed runs")
    parser.add_argument("--skip-retentioneering", action="store_true")
    parser.add_argument("--skip-checks", action="store_true", help="timings only")
    parser.add_argument(
        "--fresh-data", action="store_true", help="simulate the log again even if it exists"
    )
    parser.add_argument("--max-steps", type=int, default=10, help="retentioneering step matrix")
    parser.add_argument(
        "--compare-python",
        default=getattr(sys, "_base_executable", sys.executable),
        help="Python >= 3.11 that creates bench/.venv-compare (default: the project's base)",
    )
    common.add_location_options(parser)
    return parser.parse_args(argv)


def ensure_compare_env(base_python: str) -> Path:
    """bench/.venv-compare with the pinned requirements; reinstalls when they change."""
    python = COMPARE_VENV / "bin" / "python"
    stamp = COMPARE_VENV / ".requirements.sha256"
    digest = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    if python.exists() and stamp.exists() and stamp.read_text() == digest:
        return python
    if not python.exists():
        print(f"creating {COMPARE_VENV} with {base_python}", flush=True)
        subprocess.run([base_python, "-m", "venv", str(COMPARE_VENV)], check=True)
    print(
        f"installing {REQUIREMENTS.relative_to(common.ROOT)} into {COMPARE_VENV.name}", flush=True
    )
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "-r", str(REQUIREMENTS)], check=True)
    stamp.write_text(digest)
    return python


def analyze_available(journeyguard: Path) -> bool:
    """Whether this journeyguard has the `analyze` command yet."""
    probe = subprocess.run(
        [str(journeyguard), "analyze", "--help"],
        capture_output=True,
        env=common.child_env(COMPETITOR_ENV),
    )
    return probe.returncode == 0


def jg_out_dir(setting: Setting, label: str) -> Path:
    return setting.results / "jg-out" / label


# -- running ------------------------------------------------------------------------------------


def commands(setting: Setting, events: Path, label: str) -> dict[str, list[str]]:
    """The command of each tool over `events`; journeyguard's writes to results/jg-out/."""
    config = common.write_config(events, setting.results / "configs" / f"{label}.toml")
    out = jg_out_dir(setting, label)
    python = str(setting.compare_python)
    max_steps = ["--max-steps", str(setting.max_steps)]
    analyze = ["analyze", "--config", str(config), "--out", str(out)]
    return {
        JOURNEYGUARD: [str(setting.journeyguard), *analyze],
        PM4PY: [python, str(COMPARE / "run_pm4py.py"), str(events)],
        RETENTIONEERING: [python, str(COMPARE / "run_retentioneering.py"), str(events), *max_steps],
    }


def export_commands(setting: Setting, export: Path, label: str) -> dict[str, list[str]]:
    """journeyguard from the warehouse export's store (current, and removed before each run)
    and the competitors, all over the export."""
    tools = {}
    for tool in (JG_STORE, JG_FIRST):
        name = f"{label}-{tool.replace(' ', '-')}"
        work = setting.results / "jg-work" / name
        config = common.write_config(
            export,
            setting.results / "configs" / f"{name}.toml",
            extra=f"[output]\ndir = {json.dumps(str(work))}\n",
        )
        out = jg_out_dir(setting, name)
        tools[tool] = [
            str(setting.journeyguard),
            "analyze",
            "--config",
            str(config),
            "--out",
            str(out),
        ]
    if setting.before is not None:
        config = common.write_config(export, setting.results / "configs" / f"{label}-before.toml")
        out = jg_out_dir(setting, f"{label}-jg-before")
        tools[JG_BEFORE] = [
            str(setting.before),
            "analyze",
            "--config",
            str(config),
            "--out",
            str(out),
        ]
    competitors = commands(setting, export, label)
    return tools | {name: competitors[name] for name in (PM4PY, RETENTIONEERING)}


def remove_store(command: list[str]) -> None:
    """Before a first run: its config's store and quarantine gone, so the run ingests."""
    from journeyguard.features.config.reader import load_config

    workspace = load_config(command[command.index("--config") + 1]).workspace
    shutil.rmtree(workspace.store, ignore_errors=True)
    workspace.quarantine.unlink(missing_ok=True)


def measured(tool: str, command: list[str], log: Path, round_: int = 0) -> Run:
    """Runs `command` under bench/measure.py; stderr goes to `log`, stdout is parsed."""
    done = common.run_measured(tool, command, log, COMPETITOR_ENV)
    return Run(tool, round_, **done.figures(), line=common.last_json_line(done.stdout))


def run_rounds(setting: Setting, tools: dict[str, list[str]], rounds: int) -> list[Run]:
    """Each round runs every tool once, the order rotating so no tool always goes first."""
    runs = []
    for round_, name in common.rotation(list(tools), rounds):
        if name == JG_FIRST:
            remove_store(tools[name])
        log = setting.logs / f"round{round_}-{name.replace(' ', '-')}.log"
        run = measured(name, tools[name], log, round_)
        runs.append(run)
        status = common.failure_note(run.returncode)
        print(
            f"  round {round_}  {name:<16}{run.wall_s:8.2f} s{run.cpu_s:8.2f} s CPU"
            f"{run.mib:9.0f} MiB{status}"
        )
    return runs


# -- the timing table ---------------------------------------------------------------------------


def summarize(runs: list[Run]) -> dict[str, dict[str, Any]]:
    """Per tool over its successful runs: median, min and max wall time, peak RSS, steps."""
    summary: dict[str, dict[str, Any]] = {}
    for tool in dict.fromkeys(run.tool for run in runs):
        ok = [run for run in runs if run.tool == tool and run.returncode == 0]
        if not ok:
            summary[tool] = {"runs": 0}
            continue
        steps: dict[str, list[float]] = {}
        for run in ok:
            for step, seconds in ((run.line or {}).get("steps_s") or {}).items():
                steps.setdefault(step, []).append(seconds)
        summary[tool] = {
            "runs": len(ok),
            **common.time_and_peak([run.wall_s for run in ok], [run.mib for run in ok]),
            "cpu_median_s": statistics.median(run.cpu_s for run in ok),
            "steps_median_s": {step: statistics.median(v) for step, v in steps.items()},
            "computed": (ok[-1].line or {}).get("computed"),
            "version": (ok[-1].line or {}).get("version"),
        }
    return summary


def print_table(summary: dict[str, dict[str, Any]], events: Path) -> None:
    print(
        f"\nWhole processes on {events.name} (wall time from start to exit, CPU time of all "
        "their processes, peak RSS)"
    )
    base = summary.get(JG_STORE, {})
    header = f"{'tool':<16}{'runs':>5}{'median s':>10}{'min s':>8}{'max s':>8}{'cpu s':>7}"
    header += f"{'peak MiB':>10}"
    print(header + f"{'time / store':>13}{'memory / store':>15}")
    for tool, row in summary.items():
        if not row["runs"]:
            print(f"{tool:<16}{0:>5}  (every run failed)")
            continue
        time_ratio = memory_ratio = "-"
        if base.get("runs"):
            time_ratio = f"{row['median_s'] / base['median_s']:.1f}x"
            memory_ratio = f"{row['peak_mib'] / base['peak_mib']:.2f}x"
        print(
            f"{tool:<16}{row['runs']:>5}{row['median_s']:>10.2f}{row['min_s']:>8.2f}"
            f"{row['max_s']:>8.2f}{row['cpu_median_s']:>7.2f}{row['peak_mib']:>10.0f}"
            f"{time_ratio:>13}{memory_ratio:>15}"
        )
    for tool, row in summary.items():
        if row.get("steps_median_s"):
            steps = ", ".join(f"{k} {v:.2f}" for k, v in row["steps_median_s"].items())
            print(f"  {tool} {row.get('version')} steps, median s: {steps}")
    print_verdict(summary)


def print_verdict(summary: dict[str, dict[str, Any]]) -> None:
    """The issue's targets, reported (never asserted): each journeyguard run against the faster
    competitor, and its peak memory against the lowest competitor's."""
    others = {t: r for t, r in summary.items() if t in (PM4PY, RETENTIONEERING) and r.get("runs")}
    if not others:
        print("target: not measurable in this run (every competitor missing)")
        return
    fastest = min(others, key=lambda t: others[t]["median_s"])
    lowest = min(others, key=lambda t: others[t]["peak_mib"])
    for tool, target in TARGET_SPEEDUP.items():
        base = summary.get(tool, {})
        if not base.get("runs"):
            continue
        speedup = others[fastest]["median_s"] / base["median_s"]
        lower = base["peak_mib"] < others[lowest]["peak_mib"]
        print(
            f"target: {tool} is {speedup:.1f}x faster than {fastest} "
            f"({target:.0f}x {'met' if speedup >= target else 'NOT met'}); peak "
            f"{base['peak_mib']:.0f} MiB vs {lowest} {others[lowest]['peak_mib']:.0f} MiB "
            f"(lower peak {'met' if lower else 'NOT met'})"
        )


# -- equality checks ----------------------------------------------------------------------------


def read_analysis(out: Path) -> tuple[dict[Pair, int], dict[tuple[str, ...], int], dict]:
    """Transition counts and per-pair median hours of analysis.json; every variant's frequency
    from variants.csv (analysis.json keeps the most common ones only)."""
    body = json.loads((out / "analysis.json").read_text())
    transitions = {(t["from"], t["to"]): int(t["count"]) for t in body["transitions"]}
    with (out / "variants.csv").open(newline="", encoding="utf-8") as file:
        variants = {
            tuple(row["steps"].split(" > ")): int(row["journeys"]) for row in csv.DictReader(file)
        }
    medians = {(t["from"], t["to"]): t.get("median_hours") for t in body["transitions"]}
    return transitions, variants, {"meta": body.get("meta", {}), "medians": medians}


def read_export(path: Path) -> tuple[dict[Pair, int], dict[tuple[str, ...], int], dict]:
    """Transition counts, variant frequencies and median hours of a competitor's export."""
    body = json.loads(path.read_text())
    transitions = {(a, b): count for a, b, count, _ in body["transitions"]}
    variants = {tuple(steps): count for steps, count in body.get("variants", [])}
    medians = {(a, b): None if s is None else s / 3600 for a, b, _, s in body["transitions"]}
    other = {"events": body["events"], "journeys": body["journeys"], "medians": medians}
    return transitions, variants, other


def compare_counts(
    name: str, ours: dict, theirs: dict, labels: tuple[str, str], show: Callable[[Any], str]
) -> Check:
    """Every key's count equal in both; lists the largest differences first."""
    keys = ours.keys() | theirs.keys()
    differing = [k for k in keys if ours.get(k, 0) != theirs.get(k, 0)]
    differing.sort(key=lambda k: (-abs(ours.get(k, 0) - theirs.get(k, 0)), show(k)))
    total = sum(ours.values())
    lines = [f"{len(ours):,} vs {len(theirs):,} distinct, {total:,} vs {sum(theirs.values()):,}"]
    if differing:
        lines.append(f"{len(differing):,} differ; first {min(len(differing), SHOWN_DIFFERENCES)}:")
        for key in differing[:SHOWN_DIFFERENCES]:
            lines.append(
                f"  {show(key)}: {labels[0]} {ours.get(key, 0):,}, {labels[1]} "
                f"{theirs.get(key, 0):,}"
            )
    return Check(name, not differing, lines)


def show_pair(pair: Pair) -> str:
    return f"{pair[0]} -> {pair[1]}"


def show_variant(steps: tuple[str, ...]) -> str:
    text = " > ".join(steps)
    return text if len(text) <= 400 else text[:397] + "..."


def compare_medians(ours: dict, theirs: dict, labels: tuple[str, str]) -> Check:
    """Informational: the largest gap between the per-pair median times, in hours."""
    shared = [k for k in ours if ours[k] is not None and theirs.get(k) is not None]
    if not shared:
        return Check(f"median hours per pair, {labels[0]} vs {labels[1]}", None, ["no pairs"])
    worst = max(shared, key=lambda k: abs(ours[k] - theirs[k]))
    gap = abs(ours[worst] - theirs[worst])
    return Check(
        f"median hours per pair, {labels[0]} vs {labels[1]}",
        None,
        [f"largest gap {gap:.6f} h over {len(shared)} pairs ({show_pair(worst)})"],
    )


def tied_pairs(events: Path) -> tuple[int, int]:
    """Adjacent events of one journey with equal timestamps: how many, in how many journeys."""
    import pandas as pd

    frame = pd.read_parquet(events, columns=["customer_id", "timestamp"])
    frame = frame.sort_values(["customer_id", "timestamp"], kind="stable")
    same = (frame["customer_id"].shift() == frame["customer_id"]) & (
        frame["timestamp"].shift() == frame["timestamp"]
    )
    return int(same.sum()), int(frame.loc[same, "customer_id"].nunique())


def competitor_export(setting: Setting, tool: str, events: Path, label: str) -> Path | None:
    """Runs a competitor once (untimed) with --export; the JSON path, or None on failure."""
    out = setting.results / "check" / f"{label}-{tool}.json"
    command = commands(setting, events, label)[tool] + ["--export", str(out)]
    run = measured(tool, command, setting.logs / f"check-{label}-{tool}.log")
    return out if run.returncode == 0 else None


def check_log(setting: Setting, events: Path, label: str, jg_out: Path | None) -> list[Check]:
    """journeyguard vs pm4py (PASS/FAIL), retentioneering vs pm4py counts (cross-check)."""
    ties, tied_journeys = tied_pairs(events)
    checks = [
        Check("equal timestamps", None, [f"{ties:,} tied pairs in {tied_journeys:,} journeys"])
    ]
    pm4py_json = competitor_export(setting, PM4PY, events, label)
    if pm4py_json is None:
        return [*checks, Check("pm4py export", False, ["pm4py failed; see the log"])]
    pm_transitions, pm_variants, pm_other = read_export(pm4py_json)
    if jg_out is None:
        checks.append(Check("journeyguard vs pm4py", None, ["skipped: no analysis.json"]))
    else:
        jg_transitions, jg_variants, jg_other = read_analysis(jg_out)
        labels = (JOURNEYGUARD, PM4PY)
        checks += [
            compare_counts("transition counts", jg_transitions, pm_transitions, labels, show_pair),
            compare_counts("variant frequencies", jg_variants, pm_variants, labels, show_variant),
            compare_medians(jg_other["medians"], pm_other["medians"], labels),
        ]
    if RETENTIONEERING in setting.competitors:
        ret_json = competitor_export(setting, RETENTIONEERING, events, label)
        if ret_json is not None:
            ret_transitions, _, ret_other = read_export(ret_json)
            labels = (RETENTIONEERING, PM4PY)
            counts = compare_counts(
                "cross-check: retentioneering transition counts vs pm4py",
                ret_transitions,
                pm_transitions,
                labels,
                show_pair,
            )
            checks += [
                informational(counts),
                compare_medians(ret_other["medians"], pm_other["medians"], labels),
            ]
    return checks


def informational(check: Check) -> Check:
    """The same check reported as INFO: says equal or DIFFERENT but fails nothing."""
    check.lines.insert(0, "equal" if check.passed else "DIFFERENT")
    check.passed = None
    return check


def export_helpdesk(setting: Setting) -> tuple[Path, Path]:
    """The Helpdesk log as journeyguard loads it, and the same rows in reverse file order."""
    import pandas as pd

    from journeyguard.features.config.reader import load_config
    from journeyguard.features.eventlog.canonical import write_canonical
    from journeyguard.features.sources.load import load_events

    canonical = setting.data / "helpdesk-canonical.parquet"
    reversed_ = setting.data / "helpdesk-canonical-reversed.parquet"
    canonical.parent.mkdir(parents=True, exist_ok=True)
    write_canonical(load_events(load_config(HELPDESK_CONFIG).source).log, canonical)
    frame = pd.read_parquet(canonical)
    frame.iloc[::-1].reset_index(drop=True).to_parquet(reversed_, index=False)
    return canonical, reversed_


def run_journeyguard(setting: Setting, events: Path, label: str) -> Path | None:
    """Runs `journeyguard analyze` once (untimed); its output directory, or None."""
    command = commands(setting, events, label)[JOURNEYGUARD]
    run = measured(JOURNEYGUARD, command, setting.logs / f"check-{label}-journeyguard.log")
    return jg_out_dir(setting, label) if run.returncode == 0 else None


def check_helpdesk(setting: Setting) -> list[Check]:
    """The equality checks on Helpdesk, and how each tool treats the order of equal times.

    Every tool also reads the same rows in reverse file order: journeyguard must give the same
    result (PASS/FAIL); the competitors break timestamp ties by input row order (INFO).
    """
    try:
        canonical, reversed_ = export_helpdesk(setting)
    except Exception as error:  # the shared data may be missing on this machine
        return [Check("Helpdesk export", None, [f"skipped: {type(error).__name__}: {error}"])]
    jg_out = run_journeyguard(setting, canonical, "helpdesk") if setting.analyze else None
    checks = check_log(setting, canonical, "helpdesk", jg_out)

    for tool in setting.competitors:
        first = setting.results / "check" / f"helpdesk-{tool}.json"
        second = competitor_export(setting, tool, reversed_, "helpdesk-reversed")
        if first.exists() and second is not None:
            found = row_order_checks(tool, read_export(first), read_export(second))
            checks += [informational(check) for check in found]
    if jg_out is not None:
        jg_reversed = run_journeyguard(setting, reversed_, "helpdesk-reversed")
        if jg_reversed is None:
            checks.append(Check("journeyguard, rows reversed", False, ["the run failed"]))
        else:
            found = row_order_checks(
                JOURNEYGUARD, read_analysis(jg_out), read_analysis(jg_reversed)
            )
            checks += found
    return checks


def row_order_checks(tool: str, first: tuple, second: tuple) -> list[Check]:
    """Transitions (and variants, when the tool has them) of file order vs reversed rows."""
    labels = ("file order", "reversed")
    checks = [
        compare_counts(
            f"{tool}, rows reversed: transitions", first[0], second[0], labels, show_pair
        )
    ]
    if first[1]:
        name = f"{tool}, rows reversed: variants"
        checks.append(compare_counts(name, first[1], second[1], labels, show_variant))
    return checks


def simulated_analysis(setting: Setting, runs: list[Run], events: Path, label: str) -> Path | None:
    """The timed runs' analysis.json when the last of them succeeded; else one more run."""
    jg_runs = [run for run in runs if run.tool == JG_CANONICAL]
    if not jg_runs:
        return None
    if jg_runs[-1].returncode == 0:
        return jg_out_dir(setting, label)
    return run_journeyguard(setting, events, label)


def print_same_analysis(setting: Setting, label: str, export_label: str) -> None:
    """Whether the runs from the export's store and the first runs wrote the analysis the
    canonical file gave (transition counts, variants, median hours)."""

    def essence(out: Path) -> tuple:
        transitions, variants, other = read_analysis(out)
        return transitions, variants, other["medians"]  # not the meta: it names the source

    canonical = essence(jg_out_dir(setting, label))
    for tool in (JG_STORE, JG_FIRST, *([JG_BEFORE] if setting.before else [])):
        same = essence(jg_out_dir(setting, f"{export_label}-{tool.replace(' ', '-')}")) == canonical
        print(f"  {'PASS' if same else 'FAIL'} {tool}: the same analysis as the canonical file")


def print_checks(title: str, checks: list[Check]) -> None:
    print(f"\n{title}")
    for check in checks:
        print(f"  {check.verdict:<5}{check.name}: {check.lines[0] if check.lines else ''}")
        for line in check.lines[1:]:
            print(f"         {line}")


# -- main ---------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    compare_python = ensure_compare_env(args.compare_python)
    setting = Setting(
        journeyguard=args.journeyguard,
        compare_python=compare_python,
        results=args.results.resolve(),
        max_steps=args.max_steps,
        analyze=analyze_available(args.journeyguard),
        competitors=[PM4PY] if args.skip_retentioneering else [PM4PY, RETENTIONEERING],
        before=args.journeyguard_before,
    )
    events = common.ensure_simulated_log(
        setting.journeyguard,
        setting.data,
        args.customers,
        args.seed,
        args.fresh_data,
        text_columns=(),  # analyze reads only customer_id, event and timestamp
        extra_env=COMPETITOR_ENV,
    )

    label = f"sim-{args.customers}"
    export = common.warehouse_export(
        events, setting.data / f"export-{args.customers}-seed{args.seed}.parquet"
    )
    all_commands = export_commands(setting, export, f"export-{args.customers}")
    all_commands[JG_CANONICAL] = commands(setting, events, label)[JOURNEYGUARD]
    jg_tools = [JG_STORE, JG_FIRST, JG_CANONICAL] if setting.analyze else []
    jg_tools += [JG_BEFORE] if setting.before is not None else []
    chosen = jg_tools + setting.competitors
    if not setting.analyze:
        print(f"NOTE: `{setting.journeyguard} analyze` does not exist yet: competitors only")
    common.compile_project(setting.journeyguard)
    if setting.analyze:  # the store the store runs find current
        measured(JG_STORE, all_commands[JG_STORE], setting.logs / "ingest-store.log")
    print(f"{args.rounds} rounds of {', '.join(chosen)} on {export.name}", flush=True)
    runs = run_rounds(setting, {name: all_commands[name] for name in chosen}, args.rounds)
    summary = summarize(runs)
    print_table(summary, export)
    if setting.analyze:
        print_same_analysis(setting, label, f"export-{args.customers}")

    checks: dict[str, list[Check]] = {}
    if not args.skip_checks:
        jg_out = simulated_analysis(setting, runs, events, label)
        checks[events.name] = check_log(setting, events, label, jg_out)
        print_checks(f"Checks on {events.name}", checks[events.name])
        checks["helpdesk"] = check_helpdesk(setting)
        print_checks(
            "Checks on Helpdesk (the canonical log journeyguard loads)", checks["helpdesk"]
        )

    record = save(setting, args, runs, summary, checks)
    print(f"\nrecorded in {record}")
    failed = [c.name for group in checks.values() for c in group if c.passed is False]
    if failed:
        print(f"FAILED checks: {', '.join(failed)}")
    sys.exit(1 if failed else 0)


def save(
    setting: Setting,
    args: argparse.Namespace,
    runs: list[Run],
    summary: dict,
    checks: dict[str, list[Check]],
) -> Path:
    """Writes everything measured to bench/results/analyze_speed-*.json."""
    body = {
        "arguments": common.arguments(args),
        "analyze_available": setting.analyze,
        "runs": [run.__dict__ for run in runs],
        "summary": summary,
        "checks": {
            log: [{"name": c.name, "verdict": c.verdict, "lines": c.lines} for c in group]
            for log, group in checks.items()
        },
    }
    return common.write_record(setting.results, f"analyze_speed-{args.customers}", body)


if __name__ == "__main__":
    main()
