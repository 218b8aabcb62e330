"""A UTC datetime's texts from its minute's text remembered: what `isoformat` gives, for every minute and second."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings as hypothesis_settings, strategies as st

from toolpolicy.store.utc_text import UTCText

START = datetime(2026, 11, 1, tzinfo=UTC)


@hypothesis_settings(max_examples=300, deadline=None)
@given(st.datetimes(timezones=st.just(UTC)))
def test_a_utc_time_is_written_as_isoformat_writes_it(ts: datetime) -> None:
    """The minute's text remembered, the seconds and microseconds added: what `isoformat` gives, as JSON, and SQLite's
    DATETIME text of it."""
    text = UTCText()
    for moment in (ts, ts.replace(second=0, microsecond=0), ts.replace(second=59, microsecond=999_999), ts):
        iso = moment.isoformat(timespec="microseconds")
        assert text.of(moment) == (json.dumps(iso), iso[:10] + " " + iso[11:26])


@hypothesis_settings(max_examples=300, deadline=None)
@given(st.lists(st.datetimes(timezones=st.just(UTC)), min_size=1, max_size=20))
def test_the_sqlite_text_alone_is_what_isoformat_with_a_space_writes(moments: list[datetime]) -> None:
    """One `UTCText` over many values (minutes remembered, asked again, in and out of order), as a writer uses it."""
    text = UTCText()
    for moment in [*moments, *moments, moments[0].replace(second=0, microsecond=0)]:
        assert text.sqlite(moment) == moment.isoformat(" ", "microseconds")[:26]
        assert text.sqlite(moment) == text.of(moment)[1]


def test_remembered_minutes_are_bounded_and_stay_right_after_being_forgotten() -> None:
    text = UTCText()
    moments = [START + timedelta(minutes=index, seconds=index % 60, microseconds=index) for index in range(200)]
    for moment in moments * 2:
        iso = moment.isoformat(timespec="microseconds")
        assert text.of(moment) == (f'"{iso}"', iso[:10] + " " + iso[11:26])
        assert text.sqlite(moment) == iso[:10] + " " + iso[11:26]
    assert len(text._minutes) <= 64
