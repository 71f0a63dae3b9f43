"""The fault campaign of bench/faults.py, small: 20 seeded faults on SQLite and PostgreSQL
(receiver failures, processes killed with SIGKILL, two schedulers and two dispatchers at once,
windows out of order), then the audit: nothing lost, nothing sent twice, nothing dead that the
receiver has, no second contact inside the cooldown."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture(scope="module")
def faults() -> Iterator[ModuleType]:
    """bench/faults.py as a module, with bench/ on the path as when it runs as a script."""
    sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location("faults", BENCH / "faults.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["faults"] = module  # dataclasses look their module up by name
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop("faults", None)
        sys.path.remove(str(BENCH))


@pytest.mark.slow
def test_a_small_fault_campaign_loses_and_duplicates_nothing(faults, outbox_url) -> None:
    result = faults.run_campaign(outbox_url, 20, seed=5, quiet=True)
    assert result["injected"] >= 20 and result["contact_decisions"] > 0
    assert result["drained"] and result["stuck"] == 0
    assert result["statuses"]["pending"] == 0
    assert (result["lost"], result["duplicated"]) == (0, 0)
    assert (result["dead_but_received"], result["cooldown_breaches"]) == (0, 0)
    injected = {row["fault"]: row["injected"] for row in result["by_fault"]}
    assert sum(injected[kind] for kind in faults.KILL_POINTS) > 0
    assert sum(injected[kind] for kind in faults.RECEIVER_FAULTS) > 0


@pytest.mark.parametrize(
    ("status", "received", "ids", "expected"),
    [
        ("delivered", True, 1, "delivered"),
        ("delivered", False, 1, "lost"),  # marked delivered, never arrived
        ("pending", False, 0, "lost"),
        ("delivered", True, 2, "duplicated"),
        ("dead", True, 1, "dead_but_received"),  # an ambiguous case not recorded as such
        ("dead", False, 0, "dead"),
        ("ambiguous", True, 1, "ambiguous_received"),
        ("ambiguous", False, 0, "ambiguous_not_received"),
    ],
)
def test_the_audit_judges_each_message(faults, status, received, ids, expected) -> None:
    assert faults.audit.__module__ == "fault_audit"
    assert sys.modules["fault_audit"].verdict(status, received, ids) == expected
