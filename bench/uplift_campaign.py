"""Measurement: uplift on the simulator's planted discount campaign, end to end.

Run by hand with the project's Python (see bench/README.md):

    .venv/bin/python bench/uplift_campaign.py [--customers 20000] [--seed 7]

1. `journeyguard simulate --campaign`: two months of weekly discount waves, 10 % held out,
   the planted gain of each customer written beside the log.
2. `journeyguard train --task churn`: the churn champion (what outreach ranks by today).
3. `journeyguard uplift train --experiment discount_campaign --predictions-out F`: the uplift
   champion, its Qini on the test rows and the learners it was chosen among.
4. On the test customers the risk model would rank (in the churn task's population at their
   moment), the share of the planted gain that the top 20 % captures, ranked by predicted
   uplift and ranked by the churn champion's risk, each against the best possible top 20 %.
5. One outreach cycle at the log's last event with `rank_by = "uplift_value"`: its counts, how
   the action ranked, and the first decisions' reasons.

Everything goes to bench/results/uplift/ (gitignored), with its own MLflow store. Numbers are
printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "uplift"
JOURNEYGUARD = Path(sys.executable).with_name("journeyguard")
CONFIG = """
[source]
path = "events.parquet"

[source.attributes]
columns = ["segment", "country"]

[output]
dir = "out"

[tasks.churn]
label = "absent"
match = {{ event = ["repeat_purchase"] }}
horizon = "60d"
snapshots = {{ every = "14d" }}
population = {{ active_within = "90d" }}

[experiments.discount_campaign]
treatment = {{ event = ["discount_sent"] }}
control = {{ event = ["discount_holdout"] }}
outcome = "churn"
goal = "reduce"
action = "discount"

[outreach]
campaign = "retention"
holdout = 0.10
budget = {{ count = {budget} }}

[outreach.actions.discount]
task = "churn"
min_risk = 0.3
cost = 2.0
rank_by = "uplift_value"
"""


def command(*args: str) -> dict:
    env = os.environ | {"MLFLOW_TRACKING_URI": f"sqlite:///{RESULTS / 'mlflow.db'}"}
    done = subprocess.run(
        [str(JOURNEYGUARD), *args], cwd=RESULTS, env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        sys.exit(f"{' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout) if "--json" in args else {}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--budget", type=int, default=300)
    options = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    for stale in ("mlflow.db", "out"):
        subprocess.run(["rm", "-rf", str(RESULTS / stale)], check=True)
    (RESULTS / "jg.toml").write_text(CONFIG.format(budget=options.budget))
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{RESULTS / 'mlflow.db'}"
    command(
        "simulate", "--customers", str(options.customers), "--seed", str(options.seed),
        "--campaign", "--out", "events.parquet",
    )  # fmt: skip
    churn = command("train", "--config", "jg.toml", "--task", "churn", "--json")
    print(f"churn champion: {churn['winner']}, test ROC AUC {churn['metrics']['roc_auc']:.3f}")
    uplift = command(
        "uplift", "train", "--config", "jg.toml", "--experiment", "discount_campaign",
        "--predictions-out", "predictions.parquet", "--json",
    )  # fmt: skip
    print(json.dumps({k: uplift[k] for k in ("rows", "winner", "metrics", "average_effect")}))
    for c in uplift["candidates"]:
        print(f"  {c['name']:<30} validation Qini {c['validation_qini']:+.4f}  test Qini "
              f"{c['test_qini']:+.4f}")  # fmt: skip
    compare_rankings()
    cycle()


def compare_rankings() -> None:
    """Step 4."""
    import numpy as np
    import pandas as pd

    from journeyguard.features.config.reader import load_config
    from journeyguard.features.eventlog.log import Snapshots
    from journeyguard.features.population import eligibility
    from journeyguard.features.sources.log import load_log
    from journeyguard.training.champion import load_champion
    from journeyguard.training.uplift_metrics import gain_captured

    settings = load_config(RESULTS / "jg.toml")
    log = load_log(settings)
    predictions = pd.read_parquet(RESULTS / "predictions.parquet")
    truth = pd.read_parquet(RESULTS / "events.customers.parquet").set_index("customer_id")
    ids = predictions["customer_id"].astype(str).to_numpy()
    moments = truth.loc[ids, "campaign_at"].to_numpy(dtype="datetime64[ns]").view(np.int64)
    journeys = pd.Index(log.journey_ids.astype(str)).get_indexer(pd.Index(ids))
    before = Snapshots(log, journeys.astype(np.int64), moments - 1)  # as outreach decides
    churn = settings.task("churn")
    ranked = eligibility(before, churn).eligible
    risk = load_champion(settings, "churn")[0].predict(before)
    gain = truth.loc[ids, "planted_gain"].to_numpy()
    uplift = predictions["uplift"].to_numpy()
    print(
        f"test customers {len(ids):,}, in the churn population {int(ranked.sum()):,}; share of "
        f"the planted gain captured by the top 20 %: by uplift "
        f"{gain_captured(uplift[ranked], gain[ranked]):.1%}, by churn risk "
        f"{gain_captured(risk[ranked], gain[ranked]):.1%} (all test customers: by uplift "
        f"{gain_captured(uplift, gain):.1%})"
    )


def cycle() -> None:
    """Step 5."""
    import pandas as pd

    from journeyguard.features.config.reader import load_config
    from journeyguard.features.sources.log import load_log
    from journeyguard.outreach.cycle import run_once, utc_now
    from journeyguard.outreach.outbox import decisions_frame, open_outbox, outbox_url
    from journeyguard.outreach.receiver import Receiver

    settings = load_config(RESULTS / "jg.toml")
    as_of = pd.Timestamp(load_log(settings).last_time, tz="UTC")
    secret = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    with Receiver(secret) as receiver:
        result = run_once(settings, as_of=as_of, now=utc_now, url=receiver.url, secret=secret)
    print(json.dumps({k: result[k] for k in ("selected", "contact", "holdout", "suppressed",
                                              "delivered", "ranking")}))  # fmt: skip
    engine = open_outbox(outbox_url(settings))
    decisions = decisions_frame(engine, settings.outreach.campaign)
    engine.dispose()
    for row in decisions[decisions["decision"] == "contact"].head(3).itertuples():
        print(f"  contact {row.customer_id}: {row.reason}")
    held = decisions[decisions["decision"] == "holdout"].head(1)
    for row in held.itertuples():
        print(f"  holdout {row.customer_id}: {row.reason}")


if __name__ == "__main__":
    main()
