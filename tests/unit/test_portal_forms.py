"""The portal's shared field readers and date formatting."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from enclave.portal.forms import DateFields, text_field
from enclave.portal.web import long_date


def test_date_fields_read_what_was_typed_and_parse_only_real_dates() -> None:
    form = {"end-day": " 31 ", "end-month": "12", "end-year": "2026", "other": "x" * 50}
    typed = DateFields.read(form, "end")
    assert typed == DateFields("31", "12", "2026")
    assert typed.value() == date(2026, 12, 31)
    assert DateFields.read({}, "end").value() is None  # three empty boxes: no date
    assert DateFields.of(date(2027, 1, 5)) == DateFields("5", "1", "2027")
    assert DateFields.of(None) == DateFields()
    for day, month, year in (("31", "2", "2026"), ("1", "", "2026"), ("one", "1", "2026")):
        with pytest.raises(ValueError, match=r"out of range|invalid literal"):
            DateFields(day, month, year).value()
    assert DateFields.read({"end-year": "2" * 50}, "end").year == "222222"  # cut, as every field is


def test_text_field_trims_cuts_and_ignores_files() -> None:
    assert text_field({"a": "  hello  "}, "a") == "hello"
    assert text_field({"a": "x" * 10}, "a", 4) == "xxxx"
    assert text_field({"a": object()}, "a") == ""
    assert text_field({}, "a") == ""


def test_long_date_says_dates_and_moments_in_utc() -> None:
    assert long_date(date(2026, 12, 7)) == "7 December 2026"
    paris = timezone(timedelta(hours=1))
    assert long_date(datetime(2026, 12, 7, 0, 30, tzinfo=paris)) == "6 December 2026 at 23:30 UTC"
    assert long_date(datetime(2026, 12, 7, 14, 5, tzinfo=UTC)) == "7 December 2026 at 14:05 UTC"
    assert long_date(None) == ""
