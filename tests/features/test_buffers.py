"""Between numpy and Arrow through buffers: the same values as pyarrow's own conversions."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from journeyguard.features.arrays import found_sorted
from journeyguard.features.eventlog import buffers

# Text as a load leaves it: any characters, none ending in NUL (numpy's text drops those).
texts = st.text(st.characters(codec="utf-8"), max_size=6).filter(lambda t: not t.endswith("\0"))


# Ids of one pattern: the values' bytes are searched as they lie, without a layout.
same_length = st.text("ab9é", min_size=3, max_size=3).filter(lambda t: len(t.encode()) == 3)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(known=st.sets(texts, max_size=30), asked=st.sets(texts, max_size=10))
def test_found_texts_finds_what_a_search_of_python_strings_finds(known, asked):
    assert_found_as_python_finds(known, asked)


@settings(max_examples=100, deadline=None, derandomize=True)
@given(known=st.sets(same_length, max_size=30), asked=st.sets(texts, max_size=10))
def test_found_texts_of_one_length_finds_what_python_finds(known, asked):
    assert_found_as_python_finds(known, asked)


def assert_found_as_python_finds(known: set[str], asked: set[str]) -> None:
    known_sorted = np.array(sorted(known), dtype=object)
    queries = np.array(sorted(asked | set(list(known)[:3])), dtype=object)
    strings = buffers.strings(known_sorted)
    expected = found_sorted(known_sorted, queries) if len(known_sorted) else np.zeros(0, int)
    held, found = buffers.found_texts(strings, queries)
    assert found.tolist() == expected.tolist()
    assert queries[held].tolist() == known_sorted[expected].tolist()
    assert buffers.texts_at(strings, found).tolist() == known_sorted[expected].tolist()


@settings(max_examples=100, deadline=None, derandomize=True)
@given(values=st.lists(st.one_of(st.none(), st.floats(allow_nan=False)), max_size=40))
def test_numbers_cross_both_ways(values):
    numbers = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    array = buffers.fixed_width(numbers, pa.float64(), ~np.isnan(numbers))
    assert array.to_pylist() == values
    back = buffers.with_missing(array.slice(1), np.nan)
    assert np.array_equal(back, numbers[1:], equal_nan=True)
    positions = np.arange(len(numbers) - 1)[::-2]
    picked = buffers.values_at(array.slice(1), positions, np.nan)
    assert np.array_equal(picked, back[positions], equal_nan=True)
