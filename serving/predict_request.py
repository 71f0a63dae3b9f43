"""The body of `/predict`: its journeys, within the running service's limits (`[serving]`)."""

from __future__ import annotations

from typing import Annotated, Any

import bentoml
from pydantic import AfterValidator, BeforeValidator, Field

from journeyguard.serving.schemas import MAX_JOURNEYS, JourneyIn, Strict


def _count_within_limit(journeys: Any) -> Any:
    """The configured number of journeys (`serving.max_journeys`), counted before any journey
    is validated: a request over it is refused for that alone, at once."""
    limit = bentoml.get_current_service().settings.serving.max_journeys
    if isinstance(journeys, list) and len(journeys) > limit:
        raise ValueError(
            f"at most {limit} journeys per request (serving.max_journeys); "
            f"got {len(journeys)}: split the batch"
        )
    return journeys


def _within_limits(journeys: list[JourneyIn]) -> list[JourneyIn]:
    """The configured size limit of each journey (`serving.max_events`)."""
    limits = bentoml.get_current_service().settings.serving
    if not journeys:
        raise ValueError("expected at least one journey")
    for position, journey in enumerate(journeys):
        if journey.event_count > limits.max_events:
            raise ValueError(
                f"journeys[{position}] has {journey.event_count} events; at most "
                f"{limits.max_events} per journey (serving.max_events)"
            )
    return journeys


class PredictRequest(Strict):
    journeys: Annotated[
        list[JourneyIn],
        BeforeValidator(_count_within_limit),
        Field(max_length=MAX_JOURNEYS),
        AfterValidator(_within_limits),
    ]
