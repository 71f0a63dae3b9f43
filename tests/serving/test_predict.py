"""The service's core without HTTP: requests to times exactly as batch loading has them."""

from __future__ import annotations

from datetime import timedelta, timezone

import pydantic
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter

from journeyguard.serving.predict import _event_times, nanoseconds
from journeyguard.serving.schemas import EARLIEST, LATEST, Moment

offsets = st.integers(-23 * 60 - 59, 23 * 60 + 59).map(lambda m: timezone(timedelta(minutes=m)))
local_times = st.datetimes(
    min_value=EARLIEST.replace(tzinfo=None) + timedelta(days=1),
    max_value=LATEST.replace(tzinfo=None) - timedelta(days=1),
)
moments = st.builds(lambda local, offset: local.replace(tzinfo=offset), local_times, offsets)
validate = TypeAdapter(list[Moment]).validate_python


@given(st.lists(moments, max_size=20))
def test_event_times_are_the_exact_nanoseconds_of_every_moment(given_moments):
    # As requests bring them: ISO text with an offset, validated by the request schema.
    validated = validate([moment.isoformat() for moment in given_moments])
    assert _event_times(validated).tolist() == [nanoseconds(m) for m in given_moments]


def test_event_times_reach_both_bounds_of_the_schema():
    validated = validate([EARLIEST.isoformat(), LATEST.isoformat()])
    assert _event_times(validated).tolist() == [nanoseconds(EARLIEST), nanoseconds(LATEST)]
    with pytest.raises(pydantic.ValidationError):
        validate([(EARLIEST - timedelta(microseconds=1)).isoformat()])
