from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.helpers.portal import chromium


@pytest.fixture
def browser() -> Iterator[Any]:
    """Debian's Chromium, headless, driven by Playwright."""
    with chromium() as launched:
        yield launched
