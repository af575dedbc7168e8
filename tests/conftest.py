"""Every test starts in English: pages and sentences read the language in force
(`serving.i18n.use`), so each test runs in a block of its own, reset after it whatever it
did. (The full suite once rendered the report golden in Chinese: Jinja had folded
`"red" | rag` into the compiled template in the language of the first page compiled;
serving.report's filters are now evaluated at render time, and test_i18n holds it.)"""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def english_by_default() -> Iterator[None]:
    from serving import i18n

    with i18n.use("en"):
        yield
