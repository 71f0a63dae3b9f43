"""The service's request and response bodies: validated at the edge, trusted inside.

Unknown fields are rejected (a typo in a field name should not silently drop data), timestamps
must carry a UTC offset, and numbers must be finite. Size limits come from the `[serving]`
configuration of the running service.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, NotRequired, TypeVar

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    FiniteFloat,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    Tag,
    with_config,
)
from pydantic_core import core_schema
from typing_extensions import TypedDict

# Hard ceilings whatever the configuration says: a request beyond them is refused outright.
MAX_JOURNEYS = 100_000
MAX_EVENTS = 100_000


# Event times are int64 nanoseconds (as in every EventLog): what they can hold, whole days.
EARLIEST, LATEST = datetime(1677, 9, 22, tzinfo=UTC), datetime(2262, 4, 11, tzinfo=UTC)


class _TextOnly:
    """Accepts text only, then parses it as the annotated datetime: a number (a Unix time)
    carries no offset, and pydantic would take it as UTC. A compiled chain, not a Python
    validator (one per event cost a fifth of a large batch's time)."""

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> Any:
        text = core_schema.custom_error_schema(
            core_schema.str_schema(strict=True),
            custom_error_type="datetime_text",
            custom_error_message="expected ISO 8601 text with a UTC offset, such as "
            "2025-05-01T10:00:00Z; a number (a Unix time) carries no offset",
        )
        parsed = handler(source)
        parsed["strict"] = False  # parse the text, inside a strict model too
        return core_schema.chain_schema([text, parsed])

    def __get_pydantic_json_schema__(self, schema: Any, handler: GetJsonSchemaHandler) -> Any:
        return {"type": "string", "format": "date-time"}


# Checked by pydantic's own (compiled) bounds.
Moment = Annotated[AwareDatetime, Field(ge=EARLIEST, le=LATEST), _TextOnly()]


Step = Annotated[str, Field(min_length=1)]
_T = TypeVar("_T")
Column = Annotated[list[_T], Field(min_length=1, max_length=MAX_EVENTS)]


# Strict: a number as text, or `false` as a number, is refused rather than converted (what
# the spec says is all that is taken; schemathesis sends such values and expects a 4xx).
STRICT = ConfigDict(extra="forbid", strict=True)


class Strict(BaseModel):
    model_config = STRICT


@with_config(STRICT)
class EventIn(TypedDict):
    """One event of a journey, in the canonical schema. A dict, not a model: a batch holds
    tens of thousands, and validating dicts costs a quarter less than building models."""

    timestamp: Annotated[Moment, Field(description="ISO 8601 with a UTC offset.")]
    event: Annotated[Step, Field(description="The step, e.g. 'ticket_opened'.")]
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


def _columns_of_one_length(columns: EventColumns) -> EventColumns:
    """Every column holds one value per event: as many as `timestamp`."""
    expected = len(columns["timestamp"])
    given = {name: values for name, values in columns.items() if name != "attributes"}
    given.update((f"attributes.{name}", v) for name, v in columns.get("attributes", {}).items())
    for name, values in given.items():
        if len(values) != expected:
            raise ValueError(
                f"column {name!r} has {len(values)} values; 'timestamp' has {expected}: "
                "every column holds one value per event"
            )
    return columns


@with_config(STRICT)
class EventColumns(TypedDict):
    """A journey's events as columns, one value per event in each: the fields of `EventIn`,
    laid out as a table's columns are (TensorFlow Serving's columnar `inputs` beside its
    row `instances`). Read at a third of the cost of the same events as objects."""

    timestamp: Column[Moment]
    event: Column[Step]
    case_id: NotRequired[Column[str | None]]
    channel: NotRequired[Column[str | None]]
    value: NotRequired[Column[FiniteFloat | None]]
    score: NotRequired[Column[FiniteFloat | None]]
    attributes: NotRequired[dict[str, Column[str | FiniteFloat | None]]]


def events_as_columns(events: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Events given as objects, laid out as `EventColumns`: one list per field, None where an
    event has no value for it (for callers holding objects, and the tests)."""
    columns = {
        name: [event.get(name) for event in events]
        for name in ("timestamp", "event", "case_id", "channel", "value", "score")
    }
    names = sorted({name for event in events for name in event.get("attributes", {})})
    columns["attributes"] = {
        name: [event.get("attributes", {}).get(name) for event in events] for name in names
    }
    return columns


def _layout(events: object) -> str:
    """Which layout to validate `events` against: an object is columns, anything else is
    checked as a list of objects (so an error names only that layout's fields)."""
    return "columns" if isinstance(events, dict) else "objects"


Events = Annotated[
    Annotated[list[EventIn], Field(min_length=1, max_length=MAX_EVENTS), Tag("objects")]
    | Annotated[EventColumns, AfterValidator(_columns_of_one_length), Tag("columns")],
    Discriminator(_layout),
]


class JourneyIn(Strict):
    """A customer's journey as the caller knows it, scored as of `as_of`."""

    customer_id: str = Field(min_length=1)
    events: Events = Field(
        description="The journey's events: a list of event objects, or an object of columns "
        "(one list per field of an event, each with one value per event)."
    )
    as_of: Moment | None = Field(
        default=None, description="The moment to score at (default: now). Later events wait."
    )

    @property
    def columnar(self) -> bool:
        return isinstance(self.events, dict)

    @property
    def event_count(self) -> int:
        return len(self.events["timestamp"]) if self.columnar else len(self.events)


class CustomerIn(Strict):
    """A customer whose events the service reads from the configured event source."""

    customer_id: str = Field(min_length=1)
    as_of: Moment | None = None


class Reason(BaseModel):
    text: str
    contribution: float  # to the log-odds of the outcome


class TaskRisk(BaseModel):
    """One task's answer: a risk for a journey the task is for, otherwise why not (no number)."""

    eligible: bool  # in the task's population at as_of
    risk: float | None = None  # calibrated probability of the outcome within the horizon
    risk_low: float | None = None  # its 95 % interval, from the calibration rows behind it
    risk_high: float | None = None
    band: str | None = None
    reason: str | None = None  # why not eligible, in words ("no activity for 338 days: lapsed")
    reasons: list[Reason]
    model_version: int


class JourneyRisk(BaseModel):
    customer_id: str
    as_of: datetime
    events_seen: int  # events at or before as_of: the ones the risk is based on
    risks: dict[str, TaskRisk]
