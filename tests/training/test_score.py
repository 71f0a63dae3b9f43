"""Risk bands against the base rate, for rare and for common outcomes; the risk list of a log
with its value models fitted beside the scoring."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from journeyguard.features.config.reader import load_config
from journeyguard.training import registry, value
from journeyguard.training.score import bands, score_log
from tests.workspace import AS_OF, TRAINED_TASKS, TrainedWorkspace


def test_bands_for_a_rare_outcome_are_multiples_of_the_base_rate():
    risk = np.array([0.01, 0.035, 0.04, 0.06, 0.5])
    assert bands(risk, 0.03).tolist() == ["low", "low", "medium", "high", "high"]


def test_bands_for_a_common_outcome_stay_below_certainty():
    risk = np.array([0.5, 0.8, 0.85, 0.9, 0.99])
    assert bands(risk, 0.8).tolist() == ["low", "low", "medium", "high", "high"]


def test_degenerate_base_rates_do_not_break_the_bands():
    risk = np.array([0.0, 0.5, 1.0])
    assert bands(risk, 0.0).tolist() == ["low", "high", "high"]
    assert bands(risk, 1.0).tolist() == ["low", "low", "high"]


@pytest.mark.parametrize("task", TRAINED_TASKS)
def test_value_models_fitted_in_a_second_process_give_the_same_list(
    trained_workspace: TrainedWorkspace, task: str
) -> None:
    settings = load_config(trained_workspace.config)
    model, _ = registry.load_model(task, "champion", uri=trained_workspace.tracking_uri)
    value.value_models.cache_clear()
    apart = score_log(trained_workspace.log, model, AS_OF, settings.task(task), parallel=True)
    assert value.value_models.cache_info().currsize == 0  # fitted in the other process
    here = score_log(trained_workspace.log, model, AS_OF, settings.task(task), parallel=False)
    assert value.value_models.cache_info().currsize == 1
    assert here["expected_value"].notna().any()  # the value models were fitted and used
    pd.testing.assert_frame_equal(apart, here, check_exact=True)
