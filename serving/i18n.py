"""The PMO's language: gettext catalogs and Babel's number, money and date formats.

Two languages: ``en`` (the messages in the code are English) and ``zh-CN``. Every sentence
a person reads on a page, in a driver or in the CLI's tables goes through `_` / `ngettext`
with named placeholders, so word order is the translator's; feature codes (``spi``), JSON
keys and data attributes never change with the language.

The catalog is `serving/locale/zh_CN/LC_MESSAGES/forewarn.po`, extracted with Babel
(``make messages``). It is compiled when first used, in memory (Babel's own `read_po` and
`write_mo`, ~20 ms once per process), rather than at build time: no `.mo` to forget to
rebuild or to ship beside the `.po`, and a source checkout, an installed wheel and a Bento
all read the same file. A test holds every extracted message translated.

The language in force is a context variable set with `use(lang)` by the entry points (the
CLI, a page, an API request); helpers below read it, so it need not be threaded through
every function that formats a number.
"""

from __future__ import annotations

import contextvars
import gettext as _gettext
import io
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache
from pathlib import Path
from typing import Any

LOCALE_DIR = Path(__file__).parent / "locale"
DOMAIN = "forewarn"
DEFAULT = "en"
#: The languages Forewarn speaks, by the tag users type (BCP 47) → Babel's locale name.
LANGUAGES: dict[str, str] = {"en": "en", "zh-CN": "zh_CN"}


def normalise(lang: str | None) -> str | None:
    """A language tag as one of LANGUAGES ('zh', 'zh_cn', 'zh-Hans' → 'zh-CN'); None if not
    one we speak."""
    if lang is None:
        return None
    tag = lang.strip().replace("_", "-").lower()
    if not tag:
        return None
    if tag == "en" or tag.startswith("en-"):
        return "en"
    if tag in ("zh", "zh-cn", "zh-hans", "zh-hans-cn", "zh-sg", "zh-hans-sg"):
        return "zh-CN"
    return None


def check(lang: str) -> str:
    """The normalised tag, or ValueError naming the languages there are."""
    found = normalise(lang)
    if found is None:
        raise ValueError(f"language {lang!r} is not one of: {', '.join(LANGUAGES)}")
    return found


def from_accept_language(header: str | None) -> str | None:
    """The best language of an Accept-Language header that we speak (q-values honoured)."""
    if not header:
        return None
    ranked: list[tuple[float, int, str]] = []
    for i, part in enumerate(header.split(",")):
        pieces = part.strip().split(";")
        q = 1.0
        for p in pieces[1:]:
            key, _, value = p.strip().partition("=")
            if key == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        found = normalise(pieces[0])
        if found is not None and q > 0:
            ranked.append((-q, i, found))
    return min(ranked)[2] if ranked else None


# ---------------------------------------------------------------------------- catalogs


@cache
def translations(lang: str) -> _gettext.NullTranslations:
    """The compiled catalog of a language (English: the messages as written)."""
    lang = check(lang)
    if lang == DEFAULT:
        return _gettext.NullTranslations()
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    po = LOCALE_DIR / LANGUAGES[lang] / "LC_MESSAGES" / f"{DOMAIN}.po"
    with po.open("rb") as f:
        catalog = read_po(f, locale=LANGUAGES[lang], domain=DOMAIN)
    buffer = io.BytesIO()
    write_mo(buffer, catalog, use_fuzzy=False)
    buffer.seek(0)
    return _gettext.GNUTranslations(buffer)


@dataclass(frozen=True)
class Language:
    """The language in force and how its pages write large amounts."""

    lang: str = DEFAULT
    #: In zh-CN, amounts of 10,000 and more as 万 / 亿 (1.2亿, 350万) instead of grouped digits.
    wan_yi: bool = True

    @property
    def locale(self) -> str:
        return LANGUAGES[self.lang]


_CURRENT: contextvars.ContextVar[Language] = contextvars.ContextVar(
    "forewarn_language",
    default=Language(),  # noqa: B039 - frozen: never mutated
)


def current() -> Language:
    return _CURRENT.get()


@contextmanager
def use(lang: str | None = None, *, wan_yi: bool | None = None) -> Iterator[Language]:
    """Speak `lang` (None: keep the one in force) inside the block."""
    now = _CURRENT.get()
    chosen = Language(
        check(lang) if lang is not None else now.lang,
        now.wan_yi if wan_yi is None else wan_yi,
    )
    token = _CURRENT.set(chosen)
    try:
        yield chosen
    finally:
        _CURRENT.reset(token)


def _(message: str) -> str:
    """The message in the language in force."""
    return translations(_CURRENT.get().lang).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return translations(_CURRENT.get().lang).ngettext(singular, plural, n)


def N_(message: str) -> str:  # noqa: N802 - gettext's name for the marker
    """Marks a message for extraction; translated later, where it is shown, with `_`."""
    return message


def is_chinese() -> bool:
    return _CURRENT.get().lang == "zh-CN"


# ------------------------------------------------------------------------- formatting


def _missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        import pandas as pd

        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def fmt_day(value: Any) -> str:
    """A date: '1 May 2024' (no day/month order to misread) or '2024年5月1日'."""
    if _missing(value):
        return "—"
    if isinstance(value, datetime):
        day = value.date()
    elif isinstance(value, date):
        day = value
    else:
        import pandas as pd

        day = pd.Timestamp(value).date()
    if is_chinese():
        return f"{day.year}年{day.month}月{day.day}日"  # Babel's zh_CN 'long' date, cheaper
    return f"{day.day} {day:%b %Y}"


def fmt_integer(value: Any) -> str:
    """A count with the locale's grouping."""
    if _missing(value):
        return "—"
    from babel.numbers import format_decimal

    return format_decimal(round(float(value)), locale=_CURRENT.get().locale)


def fmt_money(value: Any) -> str:
    """An amount without decimals, grouped per locale; in zh-CN (setting) 万 / 亿 units."""
    if _missing(value):
        return "—"
    amount = float(value)
    language = _CURRENT.get()
    if language.lang == "zh-CN" and language.wan_yi and abs(amount) >= 10_000:
        return wan_yi(amount)
    from babel.numbers import format_decimal

    return format_decimal(round(amount), locale=language.locale)


def wan_yi(amount: float) -> str:
    """An amount in Chinese units, to the hundredth of the unit: 10,242,559 → '1,024.26万',
    123,456,789 → '1.23亿', 3,500,000 → '350万' (trailing zeros dropped)."""
    size, unit = (1e8, "亿") if abs(amount) >= 1e8 else (1e4, "万")
    text = f"{amount / size:,.2f}".rstrip("0").rstrip(".")
    return f"{text}{unit}"


def fmt_short_money(amount: float) -> str:
    """A budget in a sentence: '1.2 M' / '3.5 k' in English, '120万' in Chinese."""
    if is_chinese():
        return wan_yi(amount) if abs(amount) >= 10_000 else f"{amount:.0f}"
    for size, suffix in ((1e9, " bn"), (1e6, " M"), (1e3, " k")):
        if abs(amount) >= size:
            return f"{amount / size:.3g}{suffix}"
    return f"{amount:.0f}"


_MONTHS = (
    N_("January"),
    N_("February"),
    N_("March"),
    N_("April"),
    N_("May"),
    N_("June"),
    N_("July"),
    N_("August"),
    N_("September"),
    N_("October"),
    N_("November"),
    N_("December"),
)


def month_name(month: int) -> str:
    return _(_MONTHS[month - 1])


# ----------------------------------------------------------------------- shared words

#: The three-valued verdict of a challenger against the rules and the champion (training
#: writes the code; pages show the words).
VERDICTS: dict[str, str] = {
    "better": N_("better"),
    "cant_tell": N_("can't tell"),
    "worse": N_("worse"),
}


def verdict_code(value: str | None) -> str | None:
    """A verdict as one of better / cant_tell / worse ("can't tell" too); None otherwise."""
    if value is None:
        return None
    code = value.strip().lower().replace("'", "").replace(" ", "_")
    return code if code in VERDICTS else None


def verdict_words(code: str | None) -> str | None:
    """'better' / "can't tell" / 'worse' in the language in force; None for an unknown code."""
    known = verdict_code(code)
    return None if known is None else _(VERDICTS[known])


RAG_WORDS: dict[str, str] = {
    "red": N_("Red"),
    "amber": N_("Amber"),
    "green": N_("Green"),
    "n/a": N_("No RAG"),
}


def rag_word(rag: str) -> str:
    """Red / Amber / Green (红 / 黄 / 绿) for a RAG code."""
    return _(RAG_WORDS.get(rag, rag))


#: Scoring's reasons (serving.scoring makes them in English), marked for the catalog; a
#: test holds them equal to scoring's.
REASONS = (
    N_(
        "no budget (BAC) in the baseline: the overrun risk is measured against it, so it is "
        "not scored"
    ),
)

_REASON_PATTERN = re.compile(r"^no (delay|overrun) model is loaded$")


def reason(text: Any) -> Any:
    """A scoring reason (why a risk is not scored) in the language in force.

    Reasons are made in English by scoring (the same strings are the catalog's message
    ids); one that is not in the catalog comes back as it is.
    """
    if not isinstance(text, str) or not text:
        return text
    if _CURRENT.get().lang == DEFAULT:
        return text
    match = _REASON_PATTERN.match(text)
    if match:
        target = _(TARGET_WORDS[match.group(1)])
        return _("no {target} model is loaded").format(target=target)
    return _(text)


TARGET_WORDS = {"delay": N_("delay"), "overrun": N_("overrun")}
