"""Forms as the design system shows them: errors in a summary at the top of the page linking to each
field, with the same sentence beside the field; and the fields as the user typed them, to show again
on an error."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any

from enclave.domain.errors import EnclaveError


class FormErrors:
    """Field name -> the message to show, in the order the fields appear on the page."""

    def __init__(self) -> None:
        self._messages: dict[str, str] = {}

    def add(self, field: str, message: str) -> None:
        self._messages.setdefault(field, message)

    def get(self, field: str) -> str | None:
        return self._messages.get(field)

    def __bool__(self) -> bool:
        return bool(self._messages)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._messages.items())

    def __len__(self) -> int:
        return len(self._messages)


def text_field(form: Any, name: str, limit: int = 2000) -> str:
    """A text field as typed, trimmed and cut at ``limit``; empty when missing (or sent as a file)."""
    value = form.get(name)
    return value.strip()[:limit] if isinstance(value, str) else ""


@dataclass(frozen=True)
class DateFields:
    """The three boxes of the design system's date input (``name-day``, ``-month``, ``-year``), as
    typed."""

    day: str = ""
    month: str = ""
    year: str = ""

    @classmethod
    def read(cls, form: Any, name: str) -> DateFields:
        return cls(
            text_field(form, f"{name}-day", 4),
            text_field(form, f"{name}-month", 4),
            text_field(form, f"{name}-year", 6),
        )

    @classmethod
    def of(cls, value: date | None) -> DateFields:
        return cls(str(value.day), str(value.month), str(value.year)) if value is not None else cls()

    def value(self) -> date | None:
        """``None`` for three empty boxes; ``ValueError`` for anything else that is not a real date."""
        if not (self.day or self.month or self.year):
            return None
        return date(int(self.year), int(self.month), int(self.day))


def refusal_sentence(exc: EnclaveError) -> str:
    """A use case's refusal (lower case, no full stop) as the error summary shows it."""
    detail = exc.detail.strip().rstrip(".")
    return detail[:1].upper() + detail[1:]
