"""中文 and English: the catalog is complete, sentences read in Chinese, numbers do not move.

The catalog test extracts the messages from the code with Babel (babel.cfg, as `make
messages` does) and holds every one translated in serving/locale/zh_CN. The rendered pages
are checked on their visible text: in zh-CN no Latin word is left but proper names (the
projects', portfolios', types' and models' own), feature codes and the EVM abbreviations.
"""

from __future__ import annotations

import re
from datetime import date
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from features.catalogue import FEATURES
from features.contract import Portfolio
from features.simulator import simulate_portfolio
from serving import i18n
from serving.explain import sentence
from serving.report import build_report, model_card
from serving.views import build_explanation, explain_page_app

ROOT = Path(__file__).resolve().parents[2]
PO = ROOT / "serving" / "locale" / "zh_CN" / "LC_MESSAGES" / "forewarn.po"
RED, AMBER = 0.60, 0.35
KW: dict[str, Any] = {
    "red": RED,
    "amber": AMBER,
    "top_drivers": 3,
    "delay_tolerance": 0.05,
    "overrun_tolerance": 0.05,
}

#: Latin words a Chinese page may show: EVM abbreviations and the tool's own name.
ABBREVIATIONS = {
    "SPI", "CPI", "TCPI", "SV", "IEAC", "EAC", "BAC", "PV", "EV", "AC", "AUC", "EVM", "PMO",
    "RAG", "S", "t", "p", "Forewarn", "DATA", "forewarn", "drift", "retrain", "as", "of",
}  # fmt: skip
#: Contract column names that "not known: ... gives no <column>" sentences name.
CODES = {f.name for f in FEATURES} | {
    c.split(".", 1)[1] for f in FEATURES for c in f.inputs if "." in c
}


def extracted() -> dict[str, list[tuple[str, int]]]:
    """Every message id in the code, as Babel extracts it with babel.cfg: id → places."""
    from babel.messages.extract import extract_from_dir
    from babel.messages.frontend import parse_mapping_cfg

    with (ROOT / "babel.cfg").open() as f:
        method_map, options_map = parse_mapping_cfg(f)
    found: dict[str, list[tuple[str, int]]] = {}
    for filename, lineno, message, _comments, _context in extract_from_dir(
        ROOT, method_map, options_map
    ):
        ids = message if isinstance(message, tuple) else (message,)
        for m in ids:
            found.setdefault(m, []).append((filename, lineno))
    return found


def _placeholders(text: str) -> set[str]:
    return set(re.findall(r"\{(\w+)\}", text)) | set(re.findall(r"%\((\w+)\)s", text))


# ------------------------------------------------------------------------------ catalog


def test_every_message_in_the_code_has_a_zh_cn_translation() -> None:
    from babel.messages.pofile import read_po

    with PO.open("rb") as f:
        catalog = read_po(f, locale="zh_CN")
    translated: dict[str, str] = {}
    for m in catalog:
        if not m.id:
            continue
        ids = m.id if isinstance(m.id, tuple) else (m.id,)
        strings = m.string if isinstance(m.string, tuple) else (m.string,)
        for i in ids:
            if strings and strings[0] and "fuzzy" not in m.flags:
                translated[i] = strings[0]
    found = extracted()
    assert len(found) > 300  # the extraction really ran over the code and the templates
    missing = {m: places[0] for m, places in found.items() if m not in translated}
    assert missing == {}, f"{len(missing)} messages lack zh-CN: run make messages, translate"
    # Each translation keeps the message's placeholders (word order is the translator's).
    for message in found:
        assert _placeholders(translated[message]) == _placeholders(message), message


def test_the_zh_cn_catalog_passes_babel_checks() -> None:
    """What `pybabel compile` checks: a brace message whose text reads as %-format too
    ("{pct}% complete": "% c") must keep those %-placeholders, so none may have them."""
    from babel.messages.pofile import read_po

    with PO.open("rb") as f:
        catalog = read_po(f, locale="zh_CN")
    problems = [(message.id, str(error)) for message, errors in catalog.check() for error in errors]
    assert problems == []


def test_compiled_catalog_translates_at_run_time() -> None:
    with i18n.use("zh-CN"):
        assert i18n._("Early-warning report") == "项目预警报告"
        assert i18n.rag_word("red") == "红"
    assert i18n._("Early-warning report") == "Early-warning report"  # back to the default


def test_verdict_words_are_catalog_entries_keyed_by_code() -> None:
    assert [i18n.verdict_words(c) for c in ("better", "cant_tell", "worse")] == [
        "better",
        "can't tell",
        "worse",
    ]
    with i18n.use("zh-CN"):
        assert [i18n.verdict_words(c) for c in ("better", "cant_tell", "worse")] == [
            "更好",
            "无法判断",
            "更差",
        ]
    assert i18n.verdict_words("maybe") is None
    card = model_card("delay", _Loaded({"verdict": "cant_tell"}))
    assert card.verdict == "cant_tell"


class _Loaded:
    name, version, run_id = "forewarn-delay", "3", "abc"

    def __init__(self, tags: dict[str, str]) -> None:
        self.tags = tags


def test_scoring_reasons_are_in_the_catalog() -> None:
    from serving.scoring import NO_BUDGET

    assert NO_BUDGET in i18n.REASONS
    with i18n.use("zh-CN"):
        assert i18n.reason(NO_BUDGET).startswith("基准中没有完工预算")
        assert i18n.reason("no delay model is loaded") == "未加载延期模型"
        assert i18n.reason("something else") == "something else"  # unknown: as it is


def test_languages_and_accept_language() -> None:
    assert [i18n.normalise(t) for t in ("zh", "zh_CN", "zh-Hans", "EN-gb", "fr")] == [
        "zh-CN",
        "zh-CN",
        "zh-CN",
        "en",
        None,
    ]
    with pytest.raises(ValueError, match="en, zh-CN"):
        i18n.check("fr")
    assert i18n.from_accept_language("zh-CN,zh;q=0.9,en;q=0.8") == "zh-CN"
    assert i18n.from_accept_language("fr-FR,en;q=0.5,zh;q=0.4") == "en"
    assert i18n.from_accept_language("en;q=0.2, zh-CN;q=0.9") == "zh-CN"
    assert i18n.from_accept_language("fr, de") is None
    assert i18n.from_accept_language(None) is None


def test_dates_and_amounts_per_locale() -> None:
    day = date(2026, 3, 31)
    assert i18n.fmt_day(day) == "31 Mar 2026"
    assert i18n.fmt_money(1234567.4) == "1,234,567"
    with i18n.use("zh-CN"):
        assert i18n.fmt_day(day) == "2026年3月31日"
        assert i18n.fmt_day(pd.Timestamp("2024-05-01")) == "2024年5月1日"
        assert i18n.fmt_money(123_456_789) == "1.23亿"
        assert i18n.fmt_money(3_500_000) == "350万"
        assert i18n.fmt_money(125_000) == "12.5万"
        assert i18n.fmt_money(10_242_559) == "1,024.26万"
        assert i18n.fmt_money(9_800) == "9,800"
    with i18n.use("zh-CN", wan_yi=False):  # FOREWARN_WAN_YI=false: grouped digits
        assert i18n.fmt_money(3_500_000) == "3,500,000"
    # Babel agrees on the Chinese long date the page writes without calling it.
    from babel.dates import format_date

    assert format_date(day, "long", locale="zh_CN") == "2026年3月31日"


# ------------------------------------------------------------------ driver sentences

VALUES: dict[str, Any] = {
    "planned_duration_days": 84.0,
    "cpi": 0.86,
    "cpi_change_6": -0.12,
    "report_cadence_days": 14.0,
    "forecast_slip": 0.1,
    "changes_pending": 3.0,
    "closed_projects": 240.0,
    "project_type": "it",
}


def _zh(feature: str) -> str:
    with i18n.use("zh-CN"):
        return sentence(feature, VALUES.get)


# One sentence per feature family, pinned as a Chinese PMO reads it.
@pytest.mark.parametrize(
    ("family", "feature", "expected"),
    [
        ("baseline", "planned_duration_days", "计划工期 12 周（约 3 个月）"),
        ("progress", "cpi", "成本绩效指数 CPI 为 0.86：每花费 1.00 挣得 0.86 的工作"),
        ("trends", "cpi_change_6", "最近 6 期报告中（约 10 周），CPI 从 0.98 降至 0.86"),
        ("timeline", "forecast_slip", "预测完工日期比基准推迟 8 天"),
        ("changes", "changes_pending", "3 个变更请求待决"),
        ("context", "closed_projects", "对比项目组合历史中的 240 个已关闭项目（模型所知的历史）"),
    ],
)
def test_a_driver_sentence_per_family_in_chinese(family: str, feature: str, expected: str) -> None:
    assert {f.name: f.family for f in FEATURES}[feature] == family
    assert _zh(feature) == expected
    assert sentence(feature, VALUES.get) != expected  # the default stays English


def test_closed_projects_is_not_stated_as_a_fact_about_the_date() -> None:
    # It counts the comparison base the models score with (fixed at training), not the
    # projects closed before the scoring date: the old sentence said the latter.
    text = sentence("closed_projects", VALUES.get)
    assert "before this date" not in text
    assert text == (
        "Compared with 240 closed projects of the portfolio's history (as the models know it)"
    )


LATIN = re.compile(r"[A-Za-z][A-Za-z_']*")


def _foreign(text: str, allowed: set[str]) -> list[str]:
    """The Latin words of a Chinese text that are not allowed names or codes."""
    return [w for w in LATIN.findall(text) if w not in allowed and w.strip("'") not in allowed]


def test_every_feature_reads_in_chinese_known_or_missing() -> None:
    typical: dict[str, Any] = {
        f.name: ("it" if f.unit == "category" else 0.5 if f.unit != "month" else 3.0)
        for f in FEATURES
    }
    allowed = ABBREVIATIONS | CODES | {"it"}
    for f in FEATURES:
        for get in (typical.get, lambda name: None):
            text = sentence(f.name, get)  # English, for the message in the assertion
            with i18n.use("zh-CN"):
                zh = sentence(f.name, get)
            assert _foreign(zh, allowed) == [], (f.name, zh, text)


# ------------------------------------------------------------------ pages, both ways


class Visible(HTMLParser):
    """The text a person sees (not scripts, styles or attributes), and numeric cells."""

    def __init__(self) -> None:
        super().__init__()
        self.skip = 0
        self.text: list[str] = []
        self.nums: list[str] = []
        self.in_num = 0
        self.attrs: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag in ("script", "style"):
            self.skip += 1
        if tag == "td" and "num" in a.get("class", "").split():
            self.in_num += 1
            self.nums.append("")
        self.attrs += [(k, v) for k, v in a.items() if k.startswith("data-")]

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self.skip -= 1
        if tag == "td" and self.in_num:
            self.in_num -= 1

    def handle_data(self, data: str) -> None:
        if self.skip:
            return
        self.text.append(data)
        if self.in_num:
            self.nums[-1] += data.strip()


def visible(html: str) -> Visible:
    page = Visible()
    page.feed(html)
    return page


def _names(portfolio: Portfolio, *extra: str) -> set[str]:
    """The data's own words: project ids and names, portfolios, types, change request ids
    (proper names)."""
    p = portfolio.projects
    words: set[str] = set()
    for col in ("project_id", "name", "portfolio", "project_type"):
        for value in p[col].dropna().astype(str):
            words.update(LATIN.findall(value))
    for value in portfolio.changes["change_id"].dropna().astype(str):
        words.update(LATIN.findall(value))
    for e in extra:
        words.update(LATIN.findall(e))
    return words


@pytest.fixture(scope="module")
def portfolio() -> Portfolio:
    return simulate_portfolio(80, seed=11).portfolio


def _report(portfolio: Portfolio, models: dict[str, Any], lang: str) -> str:
    return build_report(
        portfolio,
        models,
        [],
        as_of=None,
        since=None,
        drift=None,
        watch_list_size=5,
        lang=lang,
        **KW,
    ).html


def test_zh_cn_report_and_view_have_no_english_sentence(
    portfolio: Portfolio, models: dict[str, Any]
) -> None:
    pid = str(
        portfolio.projects.loc[portfolio.projects["status"] == "active", "project_id"].iloc[0]
    )
    report = _report(portfolio, models, "zh-CN")
    view = build_explanation(portfolio, pid, models, [], as_of=None, lang="zh-CN", **KW).html
    allowed = ABBREVIATIONS | CODES | _names(portfolio, portfolio.source)
    for name, html in (("report", report), ("view", view)):
        assert '<html lang="zh-CN">' in html
        text = " ".join(visible(html).text)
        assert re.search(r"[\u4e00-\u9fff]", text)
        left = _foreign(text, allowed)
        assert left == [], f"{name}: English words on the zh-CN page: {sorted(set(left))}"
    # And the English pages do say it in English (the check above can fail).
    english = _foreign(" ".join(visible(_report(portfolio, models, "en")).text), allowed)
    assert {"Projects", "running", "Models"} <= set(english)


def test_numbers_on_the_zh_cn_pages_equal_the_english_ones(
    portfolio: Portfolio, models: dict[str, Any]
) -> None:
    pid = str(
        portfolio.projects.loc[portfolio.projects["status"] == "active", "project_id"].iloc[0]
    )
    pages = {
        lang: (
            visible(_report(portfolio, models, lang)),
            visible(
                build_explanation(portfolio, pid, models, [], as_of=None, lang=lang, **KW).html
            ),
        )
        for lang in ("en", "zh-CN")
    }
    for i in (0, 1):
        en, zh = pages["en"][i], pages["zh-CN"][i]
        # Every data attribute (probabilities to the bit, RAG codes, counts) is the same...
        assert zh.attrs == en.attrs and len(en.attrs) > 10
        # ...and so is every number a person reads in a numeric cell: exactly, but for
        # amounts in 万 / 亿, which equal the English figure to the digits they show.
        en_nums, zh_nums = [_numbers(n) for n in en.nums], [_numbers(n) for n in zh.nums]
        assert [len(n) for n in zh_nums] == [len(n) for n in en_nums]
        assert sum(len(n) for n in en_nums) > 5
        for want, got in zip(en_nums, zh_nums, strict=True):
            for (value, _), (shown, precision) in zip(want, got, strict=True):
                assert abs(shown - value) <= precision, (shown, value)


NUMBER = re.compile(r"([+-]?\d[\d,]*(?:\.(\d+))?)\s*(万|亿)?")


def _numbers(text: str) -> list[tuple[float, float]]:
    """The numbers in a cell's text as (value, how far the shown digits may be from it):
    '1,024.26万' → (10242600.0, 50.0); '64%' → (64.0, 0.0) (no unit: exact)."""
    out = []
    for digits, decimals, unit in NUMBER.findall(text):
        scale = {"万": 1e4, "亿": 1e8}.get(unit, 1.0)
        value = float(digits.replace(",", "")) * scale
        out.append((value, 0.5 * 10 ** -len(decimals) * scale if unit else 0.0))
    return out


def test_view_route_speaks_the_asked_language(portfolio: Portfolio, models: dict[str, Any]) -> None:
    from starlette.testclient import TestClient

    pid = str(
        portfolio.projects.loc[portfolio.projects["status"] == "active", "project_id"].iloc[0]
    )
    client = TestClient(explain_page_app(lambda: models, lambda: [], lambda: portfolio, **KW))
    english = client.get(f"/explain/{pid}")
    assert english.status_code == 200 and '<html lang="en">' in english.text
    by_query = client.get(f"/explain/{pid}?lang=zh-CN")
    assert '<html lang="zh-CN">' in by_query.text and "项目现状" in by_query.text
    by_header = client.get(f"/explain/{pid}", headers={"Accept-Language": "zh-CN,zh;q=0.9"})
    assert '<html lang="zh-CN">' in by_header.text
    bad = client.get(f"/explain/{pid}?lang=klingon")
    assert bad.status_code == 400 and "en, zh-CN" in bad.text


def test_cli_refuses_a_language_it_does_not_speak(monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from forewarn.cli import app

    for command in (["report", "nowhere"], ["explain", "nowhere", "P1"]):
        result = CliRunner().invoke(app, [*command, "--lang", "fr"])
        assert result.exit_code == 2 and "en, zh-CN" in result.output, result.output
    monkeypatch.setenv("FOREWARN_LANG", "klingon")
    result = CliRunner().invoke(app, ["report", "nowhere"])
    assert result.exit_code == 2 and "FOREWARN_" in result.output
    monkeypatch.setenv("FOREWARN_LANG", "zh_cn")
    from forewarn.settings import Settings

    assert Settings().lang == "zh-CN"
