"""Form errors as the design system shows them: an error summary at the top of the page linking to
each field, and the same sentence beside the field."""

from __future__ import annotations

from collections.abc import Iterator


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
