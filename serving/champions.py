"""The champion model of each task, loaded from the registry and kept current.

The service asks `current()` on every request; a background thread checks the registry every
`reload_every` and swaps in a newly promoted champion, so promotion needs no restart. Until
every task has a champion the store is not ready, and `reason` says why. The first load happens
before the service takes requests, so no worker answers "loading" while another says ready.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from journeyguard.serving.periodic import every
from journeyguard.training.models import JourneyModel

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Champion:
    task: str
    model: JourneyModel
    version: int


class ChampionStore:
    """Champions of `tasks` from the MLflow registry at `uri`."""

    def __init__(self, tasks: Sequence[str], uri: str, config_path: str) -> None:
        self.tasks = tuple(tasks)
        self.uri = uri
        self.config_path = config_path
        self._champions: dict[str, Champion] = {}
        self._reason = "loading the champion models"
        self._lock = threading.Lock()
        self._stop = threading.Event()  # replaced by `watch`'s

    def current(self) -> dict[str, Champion]:
        """The champions now in use (a snapshot: a reload does not change it under a caller)."""
        return self._champions

    @property
    def ready(self) -> bool:
        return len(self._champions) == len(self.tasks)

    @property
    def reason(self) -> str:
        return "ready" if self.ready else self._reason

    def refresh(self) -> bool:
        """Loads any champion that is new or changed; True when something changed."""
        from journeyguard.training import registry

        with self._lock:
            champions, missing, unloadable = dict(self._champions), [], []
            for task in self.tasks:
                version = registry.champion_version(task, uri=self.uri)
                if version is None:
                    missing.append(task)
                    continue
                if task in champions and champions[task].version == version:
                    continue
                try:
                    loaded = registry.load_model(task, registry.CHAMPION, uri=self.uri)
                except registry.IncompatibleModelError as error:
                    missing.append(task)
                    unloadable.append(str(error))
                    continue
                if loaded is None:  # demoted between the two calls
                    missing.append(task)
                    continue
                model, logged = loaded
                model.prepare_for_scoring()  # here, not in the first request after a reload
                champions[task] = Champion(task, model, logged.version)
                log.info("serving %s v%s", task, logged.version)
            for task in missing:
                champions.pop(task, None)
            changed = champions != self._champions
            self._champions = champions
            if unloadable:
                self._reason = "; ".join(unloadable)
            elif missing:
                self._reason = (
                    f"no champion model for task(s) {', '.join(missing)} in {self.uri}: run "
                    f"`journeyguard train --config {self.config_path} --task {missing[0]}`"
                )
            return changed

    def watch(self, every_seconds: float, on_change: Callable[[], None] | None = None) -> None:
        """Refreshes now, before returning, and then every `every_seconds` in the background;
        calls `on_change` after a refresh that changed the champions."""

        def refresh_quietly() -> None:
            try:
                if self.refresh() and on_change is not None:
                    on_change()
            except Exception as error:  # the registry may be briefly unreachable
                self._reason = f"cannot read the model registry {self.uri}: {error}"
                log.exception("refreshing the champions failed")

        # Before returning: a worker takes requests once the service's __init__ has returned,
        # and readiness is asked of any one worker.
        refresh_quietly()
        self._stop = every(every_seconds, refresh_quietly, "champion-watch", first_now=False)

    def stop(self) -> None:
        self._stop.set()
