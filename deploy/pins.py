"""Prints `name==version` for every package JourneyGuard needs at run time, at the versions of
this environment: the images (Dockerfile, bentofile.yaml) install what was tested here.

The closure of the installed `journeyguard` distribution's requirements, following each
dependency's own (extras only where a requirement names them, markers evaluated here); the dev
extras (pytest, ruff, ...) are not part of it. Run by `make dist`:

    .venv/bin/python deploy/pins.py > build/dist/requirements.txt
"""

from __future__ import annotations

import sys
from importlib.metadata import PackageNotFoundError, distribution

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = "journeyguard"


def runtime_pins(root: str = ROOT) -> dict[str, str]:
    """Canonical name -> installed version of every run-time dependency of `root`."""
    pins: dict[str, str] = {}
    pending: list[tuple[str, frozenset[str]]] = [(root, frozenset())]
    seen: set[tuple[str, frozenset[str]]] = set()
    while pending:
        name, extras = pending.pop()
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        try:
            dist = distribution(name)
        except PackageNotFoundError:
            continue  # an optional dependency whose marker holds but is not installed here
        if canonicalize_name(name) != ROOT:
            pins[canonicalize_name(name)] = dist.version
        for text in dist.requires or []:
            requirement = Requirement(text)
            wanted = [{"extra": extra} for extra in extras] or [{"extra": ""}]
            marker = requirement.marker
            if marker is None or any(marker.evaluate(env) for env in wanted):
                pending.append((requirement.name, frozenset(requirement.extras)))
    return pins


def main() -> None:
    pins = runtime_pins()
    sys.stdout.write("".join(f"{name}=={pins[name]}\n" for name in sorted(pins)))


if __name__ == "__main__":
    main()
