"""Work in a forked child: the same result as in-process, from another process, errors raised."""

from __future__ import annotations

import json
import os
import threading
import time

import pytest

from journeyguard.features.analysis.assemble import analyze, write_analysis
from journeyguard.features.config.model import AnalysisConfig
from journeyguard.features.eventlog.frames import log_from_frame
from journeyguard.features.parallel import PARALLEL_FROM_EVENTS, InChild, can_fork, worth_a_child
from journeyguard.features.sources.simulate import simulate

pytestmark = pytest.mark.skipif(not can_fork(), reason="fork is used on Linux only")


def _pid_and_sum(numbers: list[int]) -> tuple[int, int]:
    return os.getpid(), sum(numbers)


def _fail(message: str) -> None:
    raise ValueError(message)


def test_the_child_computes_the_same_value_in_another_process():
    child_pid, total = InChild(_pid_and_sum, list(range(100_000))).result()
    here_pid, same = InChild(_pid_and_sum, list(range(100_000)), fork=False).result()
    assert total == same == sum(range(100_000))  # a result far larger than a pipe's buffer
    assert here_pid == os.getpid() != child_pid


def test_an_error_in_the_child_is_raised_with_its_traceback():
    with pytest.raises(RuntimeError, match=r"_fail failed in its child(.|\n)*ValueError: no way"):
        InChild(_fail, "no way").result()


def test_a_child_that_dies_without_an_answer_is_reported():
    with pytest.raises(RuntimeError, match="_exit ended in its child process unanswered"):
        InChild(os._exit, 3).result()


def test_the_parallel_analysis_equals_the_one_in_process():
    log = log_from_frame(simulate(400, seed=2).events)
    settings = AnalysisConfig(funnels={}, anchor="ticket_opened")
    apart = analyze(log, settings, source="sim", parallel=True)
    together = analyze(log, settings, source="sim", parallel=False)
    assert json.dumps(apart.summary) == json.dumps(together.summary)
    assert apart.variants_csv == together.variants_csv
    assert apart.summary["funnels"] and apart.summary["variants"]


def test_a_child_whose_result_is_never_taken_is_stopped_on_the_way_out():
    started = time.monotonic()
    with pytest.raises(KeyError), InChild(time.sleep, 60):
        raise KeyError("the caller failed before asking for the result")
    assert time.monotonic() - started < 10  # not the child's 60 s


def test_the_analysis_is_written_whole_and_a_failed_write_is_raised(tmp_path):
    # variants.csv is written by a second thread while the other files are rendered.
    log = log_from_frame(simulate(200, seed=3).events)
    analysis = analyze(log, AnalysisConfig(funnels={}), source="sim", parallel=False)
    write_analysis(analysis, tmp_path / "out")
    assert (tmp_path / "out" / "variants.csv").read_bytes() == analysis.variants_csv
    assert json.loads((tmp_path / "out" / "analysis.json").read_text()) == json.loads(
        json.dumps(analysis.summary)
    )
    assert (tmp_path / "out" / "report.html").read_text().startswith("<!")

    (tmp_path / "blocked" / "variants.csv").mkdir(parents=True)  # a folder where the file goes
    with pytest.raises(IsADirectoryError):
        write_analysis(analysis, tmp_path / "blocked")
    assert (tmp_path / "blocked" / "report.html").exists()  # the others were written meanwhile


def test_a_child_by_default_only_for_a_large_log_in_a_process_without_other_threads():
    alone = threading.active_count() == 1  # earlier tests of the session may leave threads
    assert not worth_a_child(PARALLEL_FROM_EVENTS - 1)
    assert worth_a_child(PARALLEL_FROM_EVENTS) == alone
    release = threading.Event()
    other = threading.Thread(target=release.wait)
    other.start()
    try:
        assert not worth_a_child(PARALLEL_FROM_EVENTS)  # a fork could copy a held lock
    finally:
        release.set()
        other.join()
