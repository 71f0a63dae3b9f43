"""The retention console: the risk list, a customer's journey, the journey report and the
models, as server-rendered pages of the prediction service under `/console`.

`pages` holds the data of each page as plain functions, `data` the cached reads of the
service's sources, and `render` fills a template; the routes live in `journeyguard.serving.service`.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

TEMPLATES = Path(__file__).with_name("templates")


@cache
def _environment() -> Environment:
    """Built on first use, not at import: importing the service stays cheap."""
    environment = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html", "j2"], default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["pct"] = lambda value: "" if value is None else f"{100 * value:.1f}%"
    environment.filters["num"] = lambda value, digits=3: (
        "n/a" if value is None or value != value else f"{value:.{digits}f}"
    )
    environment.filters["when"] = lambda value: (
        "" if not value else str(value)[:16].replace("T", " ")
    )
    return environment


def render(template: str, **context: Any) -> str:
    """The HTML of a console template (`<template>.html.j2`), autoescaped."""
    return _environment().get_template(f"{template}.html.j2").render(**context)
