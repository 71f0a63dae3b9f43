"""The service's request and response bodies: validated at the edge, trusted inside.

Unknown fields are rejected (a typo in a field name should not silently drop data), timestamps
must carry a UTC offset, and numbers must be finite. Size limits come from the `[serving]`
configuration of the running service.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, NotRequired

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, FiniteFloat, with_config
from typing_extensions import TypedDict

# Hard ceilings whatever the configuration says: a request beyond them is refused outright.
MAX_JOURNEYS = 100_000
MAX_EVENTS = 100_000


# Event times are int64 nanoseconds (as in every EventLog): what they can hold, whole days.
EARLIEST, LATEST = datetime(1677, 9, 22, tzinfo=UTC), datetime(2262, 4, 11, tzinfo=UTC)


# Checked by pydantic's own (compiled) bounds: a Python validator per event cost a fifth of
# a large batch's time.
Moment = Annotated[AwareDatetime, Field(ge=EARLIEST, le=LATEST)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


@with_config(ConfigDict(extra="forbid"))
class EventIn(TypedDict):
    """One event of a journey, in the canonical schema. A dict, not a model: a batch holds
    tens of thousands, and validating dicts costs a quarter less than building models."""

    timestamp: Annotated[Moment, Field(description="ISO 8601 with a UTC offset.")]
    event: Annotated[str, Field(min_length=1, description="The step, e.g. 'ticket_opened'.")]
    case_id: NotRequired[str | None]
    channel: NotRequired[str | None]
    value: NotRequired[FiniteFloat | None]
    score: NotRequired[FiniteFloat | None]
    attributes: NotRequired[
        Annotated[
            dict[str, str | FiniteFloat | None],
            Field(description="Attributes the models know, e.g. segment."),
        ]
    ]


class JourneyIn(Strict):
    """A customer's journey as the caller knows it, scored as of `as_of`."""

    customer_id: str = Field(min_length=1)
    events: list[EventIn] = Field(min_length=1, max_length=MAX_EVENTS)
    as_of: Moment | None = Field(
        default=None, description="The moment to score at (default: now). Later events wait."
    )


class CustomerIn(Strict):
    """A customer whose events the service reads from the configured event source."""

    customer_id: str = Field(min_length=1)
    as_of: Moment | None = None


class Reason(BaseModel):
    text: str
    contribution: float  # to the log-odds of the outcome


class TaskRisk(BaseModel):
    risk: float  # calibrated probability of the task's outcome within its horizon
    band: str
    reasons: list[Reason]
    model_version: int


class JourneyRisk(BaseModel):
    customer_id: str
    as_of: datetime
    events_seen: int  # events at or before as_of: the ones the risk is based on
    risks: dict[str, TaskRisk]
