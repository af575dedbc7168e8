"""The report and the explanation view end to end: real models, real pages, a real browser.

A simulated portfolio is trained on (MLflow in tmp_path), then `forewarn report` and
`forewarn explain` write their pages. The numbers on the page are checked against batch
scoring of the same data and date; headless Chromium (DevTools protocol, network off)
checks that the pages load without a console error, draw their charts, and list the red
projects that scoring says are red. The same runs on little06, which has no cost data.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

from forewarn.cli import app

ROOT = Path(__file__).resolve().parents[2]
LITTLE06 = ROOT / "data" / "examples" / "little06"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


# ------------------------------------------------------------------------- page parsing


class Rows(HTMLParser):
    """The data-* attributes of project rows, by table id, and of headline cells."""

    def __init__(self) -> None:
        super().__init__()
        self.table = ""
        self.rows: dict[str, list[dict[str, str]]] = {}
        self.counts: list[dict[str, str]] = []
        self.missing: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "table":
            self.table = a.get("id", "")
        elif tag == "tr" and "data-project-id" in a:
            self.rows.setdefault(self.table, []).append(a)
        elif tag == "td" and "data-count" in a:
            self.counts.append(a)
        if "data-chart-missing" in a:
            self.missing.append(a["data-chart-missing"])


def rows_of(html: str) -> Rows:
    parser = Rows()
    parser.feed(html)
    return parser


def _num(text: str) -> float:
    return float("nan") if text == "" else float(text)


def _riskiest_first(scores: pd.DataFrame) -> list[str]:
    """The red and amber project ids of a score frame in the report's documented order.

    Red before amber; then the larger probability; ties (calibration saturates at the
    top) by the raw margin of the risk with that probability (the larger if both), then
    the mean probability, the mean margin, the id. Written out here, not imported.
    """
    keyed = []
    for row in scores[scores["rag"].isin(["red", "amber"])].to_dict("records"):
        pairs = [
            (float(row[f"p_{r}"]), float(row[f"margin_{r}"]))
            for r in ("late", "over_budget")
            if not pd.isna(row[f"p_{r}"])
        ]
        top = max(p for p, _ in pairs)
        key = (
            row["rag"] == "red",
            top,
            max(m for p, m in pairs if p == top),
            sum(p for p, _ in pairs) / len(pairs),
            sum(m for _, m in pairs) / len(pairs),
        )
        keyed.append((tuple(-k for k in key), str(row["project_id"])))
    return [pid for _, pid in sorted(keyed)]


# ------------------------------------------------------------------------------ fixtures


@dataclass
class Pages:
    """What one portfolio's run produced: the pages and the scores they must show."""

    report: Path
    view: Path
    project_id: str
    scores: pd.DataFrame  # batch scoring of the same data and date
    report_json: dict[str, Any]
    watch_list_size: int  # the setting the report ran with
    zh: Pages | None = None  # the same pages written with --lang zh-CN


def _invoke(args: list[str]) -> str:
    result = CliRunner().invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A throwaway MLflow store and output folder; never the repo's models/."""
    root = tmp_path_factory.mktemp("store")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
        mp.setenv("FOREWARN_MODELS_DIR", str(root / "models"))
        mp.setenv("FOREWARN_OUT_DIR", str(root / "out"))
        # Fewer than the simulated portfolio's red and amber projects: the cap is exercised.
        mp.setenv("FOREWARN_WATCH_LIST_SIZE", "12")
        yield root


def _pages(
    data: Path, out: Path, as_of: str | None, project_id: str | None, lang: str = "en"
) -> Pages:
    from features.loading import load_portfolio
    from forewarn.settings import Settings
    from serving.batch import score_portfolio
    from serving.champions import load_from_registry

    as_of_args = ["--as-of", as_of] if as_of else []
    as_of_args += ["--lang", lang]
    report = out / "report.html"
    report_json = json.loads(
        _invoke(["report", str(data), "--out", str(report), *as_of_args, "--json"])
    )
    settings = Settings()
    champions = load_from_registry(settings.resolved_tracking_uri())
    batch = score_portfolio(
        load_portfolio(data).portfolio,
        champions,
        pd.Timestamp(report_json["as_of"]).date(),
        red=settings.red_threshold,
        amber=settings.amber_threshold,
        top_drivers=settings.top_drivers,
        explain=True,
        delay_tolerance=settings.delay_tolerance,
        overrun_tolerance=settings.overrun_tolerance,
    )
    scores = batch.frame
    if project_id is None:  # the riskiest running project
        project_id = str(scores.sort_values("p_late", ascending=False)["project_id"].iloc[0])
    view = out / "view.html"
    _invoke(["explain", str(data), project_id, "--out", str(view), *as_of_args])
    return Pages(report, view, project_id, scores, report_json, settings.watch_list_size)


def _train(data: Path, store: Path, targets: tuple[str, ...], delay_tolerance: float) -> None:
    """Small, quick models (few trees, few bootstrap resamples) into the throwaway store."""
    from features.loading import load_portfolio
    from training.pipeline import Store, TrainingOptions, train

    results = train(
        load_portfolio(data).portfolio,
        # With the quantile models: the report's P80 columns and the view's fan chart.
        TrainingOptions(
            delay_tolerance=delay_tolerance,
            max_trees=60,
            n_bootstrap=20,
            plots=False,
            cv_folds=3,
            quantiles=True,
        ),
        Store(
            tracking_uri=f"sqlite:///{store / 'mlflow.db'}",
            artifact_root=(store / "artifacts").as_uri(),
        ),
        targets=targets,
    )
    assert all(results[t].version for t in targets), results


@pytest.fixture(scope="module")
def simulated(store: Path) -> Pages:
    """250 simulated projects, small models trained into the throwaway store."""
    data = store / "portfolio"
    _invoke(["simulate", "--out", str(data), "--projects", "250", "--seed", "5"])
    _train(data, store, ("delay", "overrun"), 0.05)
    pages = _pages(data, store / "out", None, None)
    # Made here, while this store's settings are the ones in force (little06 sets others).
    pages.zh = _pages(data, store / "out" / "zh-CN", None, pages.project_id, "zh-CN")
    return pages


@pytest.fixture(scope="module")
def simulated_zh(simulated: Pages) -> Pages:
    """The same portfolio, date and project, written with --lang zh-CN."""
    assert simulated.zh is not None
    return simulated.zh


@pytest.fixture(scope="module")
def little06(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pages]:
    """little06 (delay only, no cost data) with the tolerance its PROVENANCE recommends."""
    root = tmp_path_factory.mktemp("little06")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
        mp.setenv("FOREWARN_MODELS_DIR", str(root / "models"))
        mp.setenv("FOREWARN_OUT_DIR", str(root / "out"))
        mp.setenv("FOREWARN_DELAY_TOLERANCE", "0.5")
        _train(LITTLE06, root, ("delay",), 0.5)
        # Every little06 project has closed: look from a date when many were running.
        pages = _pages(LITTLE06, root / "out", "2001-06-01", None)
        out = root / "out" / "zh-CN"
        pages.zh = _pages(LITTLE06, out, "2001-06-01", pages.project_id, "zh-CN")
        yield pages


@pytest.fixture(scope="module")
def little06_zh(little06: Pages) -> Pages:
    """little06's pages with --lang zh-CN."""
    assert little06.zh is not None
    return little06.zh


PAGES = {("simulated", "en"): "simulated", ("simulated", "zh-CN"): "simulated_zh"}
PAGES |= {("little06", "en"): "little06", ("little06", "zh-CN"): "little06_zh"}


# ------------------------------------------------------------------- numbers, no browser


def _check_numbers(pages: Pages) -> None:
    """Every running project's numbers on the page equal batch scoring's, to the bit."""
    html = pages.report.read_text(encoding="utf-8")
    parsed = rows_of(html)
    table = {r["data-project-id"]: r for r in parsed.rows["all-table"]}
    expected = pages.scores.set_index("project_id")
    assert set(table) == set(expected.index)
    for pid, row in table.items():
        want = expected.loc[pid]
        for attr, col in (
            ("data-p-late", "p_late"),
            ("data-p-over-budget", "p_over_budget"),
            ("data-spi", "spi"),
            ("data-cpi", "cpi"),
            ("data-elapsed", "elapsed_fraction"),
        ):
            got, ref = _num(row[attr]), float(want[col])
            assert (pd.isna(got) and pd.isna(ref)) or got == ref, (pid, attr, got, ref)
        assert row["data-rag"] == want["rag"]
        assert row["data-rag-late"] == want["rag_late"]
        assert row["data-rag-over-budget"] == want["rag_over_budget"]
    # The watch list: the first N red or amber projects in the documented order; the
    # rest are counted under it, and every one of them is in the full table.
    watch = [r["data-project-id"] for r in parsed.rows.get("watch-table", [])]
    ordered = _riskiest_first(pages.scores)
    assert watch == ordered[: pages.watch_list_size]
    more = len(ordered) - len(watch)
    assert (f"… and {more} more red or amber" in " ".join(html.split())) == (more > 0)
    moved = [r["data-project-id"] for r in parsed.rows.get("moved-table", [])]
    assert set(moved) <= set(ordered[len(watch) :])  # moves below the cut, never above
    assert set(ordered) <= set(table)
    counts = {(c["data-risk"], c["data-rag"]): int(c["data-count"]) for c in parsed.counts}
    for (risk, rag), n in counts.items():
        assert n == int((expected[f"rag_{risk}"] == rag).sum()), (risk, rag)
    assert set(pages.report_json["red"]) == set(expected.index[expected["rag"] == "red"])


@pytest.mark.slow
def test_report_numbers_match_batch_scoring(simulated: Pages) -> None:
    _check_numbers(simulated)
    assert len(simulated.scores) > 20
    assert (simulated.scores["rag"] == "red").any()
    assert len(_riskiest_first(simulated.scores)) > simulated.watch_list_size  # capped
    # The CLI ran the monitoring check and the page carries its verdict.
    assert simulated.report_json["drift"] in ("ok", "drift")
    html = simulated.report.read_text(encoding="utf-8")
    assert f'data-drift="{simulated.report_json["drift"]}"' in html


@pytest.mark.slow
def test_little06_report_says_no_cost_data(little06: Pages) -> None:
    _check_numbers(little06)
    html = little06.report.read_text(encoding="utf-8")
    parsed = rows_of(html)
    assert len(little06.scores) > 5
    assert set(parsed.missing) == {"heat-over-budget", "scatter-over-budget"}
    assert "No cost data: not scored" in html  # the headline's over-budget row
    view = little06.view.read_text(encoding="utf-8")
    assert '<tr data-risk="over_budget" data-rag="na"' in view
    assert "Over budget: no cost data." in view  # the why-section says it, no empty chart
    assert "waterfall-over-budget" not in view
    assert "s-curve" in rows_of(view).missing


@pytest.mark.slow
@pytest.mark.parametrize("portfolio", ["simulated", "little06"])
def test_zh_cn_pages_show_the_english_pages_numbers(
    portfolio: str, request: pytest.FixtureRequest
) -> None:
    en: Pages = request.getfixturevalue(PAGES[portfolio, "en"])
    zh: Pages = request.getfixturevalue(PAGES[portfolio, "zh-CN"])
    assert zh.report_json == {**en.report_json, "out": zh.report_json["out"]}
    assert (zh.project_id, zh.watch_list_size) == (en.project_id, en.watch_list_size)
    for page in ("report", "view"):
        en_html = getattr(en, page).read_text(encoding="utf-8")
        zh_html = getattr(zh, page).read_text(encoding="utf-8")
        assert '<html lang="zh-CN">' in zh_html and '<html lang="en">' in en_html
        a, b = rows_of(en_html), rows_of(zh_html)
        assert (b.rows, b.counts, b.missing) == (a.rows, a.counts, a.missing)
    _check_numbers(en)


# --------------------------------------------------------------------- served by BentoML


@pytest.mark.slow
def test_service_serves_the_explanation_page(simulated: Pages, store: Path) -> None:
    """The page the CLI writes is also GET /views/explain/{id}, behind the service's auth."""
    import socket
    import sys

    import httpx
    import psutil

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    env = {k: v for k, v in os.environ.items() if not k.startswith("FOREWARN_")}
    env.update(
        MLFLOW_TRACKING_URI=f"sqlite:///{store / 'mlflow.db'}",
        FOREWARN_API_KEY="page-key",
        FOREWARN_DATA=str(store / "portfolio"),
        FOREWARN_WORKERS="1",
        BENTOML_DO_NOT_TRACK="true",
    )
    log = store / "serve.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "bentoml", "serve", "serving.service:Forewarn"),
                *("--host", "127.0.0.1", "--port", str(port)),
            ],
            cwd=ROOT,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}/views/explain/{simulated.project_id}"
    try:
        deadline = time.monotonic() + 180
        while True:
            assert process.poll() is None, log.read_text(errors="replace")[-3000:]
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "service not ready in 180 s"
            time.sleep(0.5)
        assert httpx.get(url, timeout=60).status_code == 401
        auth = {"Authorization": "Bearer page-key"}
        page = httpx.get(
            url, headers=auth, params={"as_of": simulated.report_json["as_of"]}, timeout=60
        )
        assert page.status_code == 200, page.text[:500]
        assert 'data-chart="waterfall-late"' in page.text
        assert 'data-chart="finish-fan"' in page.text  # the CLI's fan chart, served too
        served = rows_of(page.text)
        assert served.missing == rows_of(simulated.view.read_text(encoding="utf-8")).missing
        assert httpx.get(url + "-nope", headers=auth, timeout=60).status_code == 404
    finally:
        # BentoML's workers sit in process groups of their own: stop each by its id.
        workers = psutil.Process(process.pid).children(recursive=True)
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        for worker in workers:
            if worker.is_running():
                worker.kill()


# -------------------------------------------------------------------------- the browser


class Chromium:
    """Headless Chromium driven over the DevTools protocol, offline, one page."""

    def __init__(self, binary: str) -> None:
        import websocket

        self.profile = tempfile.mkdtemp(prefix="forewarn-chromium-")
        self.proc = subprocess.Popen(
            [
                binary,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={self.profile}",
                "--remote-debugging-port=0",
                "--window-size=1300,900",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        port_file = Path(self.profile) / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text().strip()):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.close()
                raise RuntimeError("chromium did not open its DevTools port")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json") as response:
            targets = json.load(response)
        page = next(t for t in targets if t["type"] == "page")
        self.ws = websocket.create_connection(
            page["webSocketDebuggerUrl"], timeout=60, suppress_origin=True
        )
        self.next_id = 0
        self.events: list[dict[str, Any]] = []
        for method in ("Runtime.enable", "Log.enable", "Page.enable", "Network.enable"):
            self.call(method)
        # Offline: a page that needed the network (a CDN script, say) fails here loudly.
        self.call(
            "Network.emulateNetworkConditions",
            offline=True,
            latency=0,
            downloadThroughput=-1,
            uploadThroughput=-1,
        )

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                result: dict[str, Any] = message.get("result", {})
                return result
            self.events.append(message)

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def open(self, url: str, charts: int, timeout: float = 60) -> None:
        """Navigate and wait until `charts` Plotly charts have drawn their SVG."""
        self.events.clear()
        self.call("Page.navigate", url=url)
        deadline = time.monotonic() + timeout
        drawn = -1
        while time.monotonic() < deadline:
            drawn = self.evaluate(
                "document.readyState === 'complete' ? "
                "document.querySelectorAll('.js-plotly-plot svg.main-svg').length > 0 ? "
                "[...document.querySelectorAll('.js-plotly-plot')].filter("
                "d => d.querySelector('svg.main-svg')).length : 0 : -1"
            )
            if drawn >= charts:
                return
            time.sleep(0.2)
        raise AssertionError(f"{url}: {drawn} of {charts} charts drawn after {timeout} s")

    def errors(self) -> list[str]:
        """Console errors, uncaught exceptions and failed loads since the last `open`."""
        out = []
        for e in self.events:
            method, params = e.get("method"), e.get("params", {})
            if method == "Runtime.exceptionThrown":
                out.append(str(params["exceptionDetails"]))
            elif method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
                out.append(" ".join(str(a.get("value", a)) for a in params["args"]))
            elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
                out.append(params["entry"]["text"])
            elif method == "Network.loadingFailed":
                out.append(f"load failed: {params.get('errorText')}")
        return out

    def screenshot(self, path: Path, selector: str | None = None, width: int = 1300) -> None:
        """The page from the top (at most 12,000 px: taller captures come out blank), or
        the element `selector` matches, whole."""
        height = int(self.evaluate("document.documentElement.scrollHeight"))
        self.call(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=min(height, 12_000),
            deviceScaleFactor=1,
            mobile=False,
        )
        time.sleep(0.5)  # let Plotly's responsive charts settle at the new size
        params: dict[str, Any] = {"format": "png"}
        if selector is not None:
            box = self.evaluate(
                f"(() => {{ const r = document.querySelector({json.dumps(selector)})"
                ".getBoundingClientRect();"
                " return [r.x, r.y + window.scrollY, r.width, r.height]; })()"
            )
            params["clip"] = dict(zip(("x", "y", "width", "height"), box, strict=True)) | {
                "scale": 1
            }
            params["captureBeyondViewport"] = True
        data = self.call("Page.captureScreenshot", **params)
        path.write_bytes(base64.b64decode(data["data"]))
        self.call("Emulation.clearDeviceMetricsOverride")

    def close(self) -> None:
        if getattr(self, "ws", None) is not None:
            self.ws.close()
        self.proc.kill()
        self.proc.wait(timeout=10)
        shutil.rmtree(self.profile, ignore_errors=True)


@pytest.fixture(scope="module")
def browser() -> Iterator[Chromium]:
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (make browser, or apt-get install chromium)")
    chromium = Chromium(CHROMIUM)
    try:
        yield chromium
    finally:
        chromium.close()


def _has_cjk_font() -> bool:
    if shutil.which("fc-list") is None:
        return False
    listed = subprocess.run(["fc-list"], capture_output=True, text=True, check=False).stdout
    return "Noto Sans CJK" in listed


def _expected_charts(html: str) -> int:
    return html.count('class="chart" data-chart=')


def _check_in_browser(pages: Pages, browser: Chromium, shots: Path, lang: str = "en") -> None:
    for name, path in (("report", pages.report), ("view", pages.view)):
        html = path.read_text(encoding="utf-8")
        charts = _expected_charts(html)
        assert charts >= 2, f"{name}: only {charts} charts on the page"
        browser.open(path.as_uri(), charts)
        assert browser.errors() == [], f"{name}: console errors"
        # Every chart container holds a drawn, non-empty SVG.
        sizes = browser.evaluate(
            "[...document.querySelectorAll('.js-plotly-plot')].map(d => {"
            " const s = d.querySelector('svg.main-svg'); const r = s.getBoundingClientRect();"
            " return [d.id, r.width, r.height, d.querySelectorAll('svg *').length]; })"
        )
        assert len(sizes) == charts
        for div_id, width, height, shapes in sizes:
            assert width > 100 and height > 100 and shapes > 20, (name, div_id)
        if lang == "zh-CN":
            if not _has_cjk_font():
                pytest.skip("no CJK font (make browser installs fonts-noto-cjk)")
            # The page names a CJK font the machine has (Debian's fonts-noto-cjk, installed
            # by make browser), and shows Chinese, charts included: glyphs, not boxes.
            assert browser.evaluate("document.documentElement.lang") == "zh-CN"
            assert browser.evaluate("document.fonts.check('16px \"Noto Sans CJK SC\"', '预警')")
            text = browser.evaluate(
                "document.body.innerText + [...document.querySelectorAll('svg text')]"
                ".map(t => t.textContent).join(' ')"
            )
            assert sum("\u4e00" <= ch <= "\u9fff" for ch in text) > 200, name
        browser.screenshot(shots / f"{name}.png")
        assert (shots / f"{name}.png").stat().st_size > 10_000
        if name == "report":
            _check_kpis_and_ranges(browser, pages, lang)
            browser.screenshot(shots / "report-kpi.png", "#kpi")
        else:
            _check_fan_chart(browser, lang)
            browser.screenshot(shots / "view-fan.png", "#finish-fan")
        if name == "report":  # the charts sit below a long watch list: shoot them too
            browser.screenshot(shots / "report-portfolio-view.png", "#portfolio-view")
            browser.screenshot(shots / "report-trust.png", "#about")
            _check_heatmap_labels(browser)
            _check_watch_list_fits(browser, shots)

    browser.open(pages.report.as_uri(), _expected_charts(pages.report.read_text()))
    red_on_page = browser.evaluate(
        "[...document.querySelectorAll('#watch-table tbody tr[data-rag=\"red\"]')]"
        ".map(r => r.dataset.projectId)"
    )
    # The red rows shown are the top N's red ones, in order; every red project is in the
    # full table (collapsed, so read from the DOM, not from what is visible).
    scores = pages.scores
    red = set(scores.loc[scores["rag"] == "red", "project_id"])
    top_n = _riskiest_first(scores)[: pages.watch_list_size]
    assert red_on_page == [pid for pid in top_n if pid in red]
    red_in_full = browser.evaluate(
        "[...document.querySelectorAll('#all-table tbody tr[data-rag=\"red\"]')]"
        ".map(r => r.dataset.projectId)"
    )
    assert sorted(red_in_full) == sorted(red)
    # Highest risk first: the red rows' larger probability never increases down the table.
    tops = browser.evaluate(
        "[...document.querySelectorAll('#watch-table tbody tr[data-rag=\"red\"]')]"
        ".map(r => Math.max(+r.dataset.pLate || 0, +r.dataset.pOverBudget || 0))"
    )
    assert tops == sorted(tops, reverse=True)


# What a reader sees, in each language (the zh-CN catalogue's words, written out here).
WORDS = {
    "en": {"kpi": "Portfolio KPIs for", "p80_finish": "P80 finish", "p80_cost": "P80 cost",
           "p50_line": "P50 finish"},
    "zh-CN": {"kpi": "年项目组合 KPI", "p80_finish": "P80 完工日期", "p80_cost": "P80 成本",
              "p50_line": "P50 完工日期"},
}  # fmt: skip
_VISIBLE = (
    "const vis = e => { if (!e || !e.checkVisibility()) return false;"
    " const r = e.getBoundingClientRect(); return r.width > 0 && r.height > 0; };"
)


def _check_kpis_and_ranges(browser: Chromium, pages: Pages, lang: str) -> None:
    """The KPI block of "At a glance" and the watch list's P80 columns are on screen, in
    the page's language, with batch scoring's dates."""
    words = WORDS[lang]
    seen = browser.evaluate(
        "(() => {" + _VISIBLE + " const k = document.querySelector('#kpi');"
        " const row = td => [td.closest('tr').dataset.projectId, td.dataset.finishP80 ??"
        " td.dataset.costP80, td.innerText.trim(), vis(td)];"
        " return {kpi: vis(k), year: k && k.dataset.year, expected: k && k.dataset.onTimeExpected,"
        "  heading: k && k.querySelector('h3').innerText,"
        "  items: k ? [...k.querySelectorAll('li')].filter(vis).map(l => l.innerText) : [],"
        "  heads: [...document.querySelectorAll('#watch-table thead th')].filter(vis)"
        "   .map(t => t.innerText.trim()),"
        "  finish: [...document.querySelectorAll('#watch-table tbody td[data-finish-p80]')]"
        "   .map(row),"
        "  cost: [...document.querySelectorAll('#watch-table tbody td[data-cost-p80]')].map(row)};"
        "})()"
    )
    assert seen["kpi"], "the KPI block is not visible"
    assert words["kpi"] in seen["heading"] and seen["year"] in seen["heading"], seen["heading"]
    assert seen["items"], "no KPI sentence on screen"
    if seen["expected"]:  # the expected on-time share, as the sentence prints it
        assert f"{round(100 * float(seen['expected']))}" in " ".join(seen["items"]), seen["items"]
    assert words["p80_finish"] in seen["heads"] and words["p80_cost"] in seen["heads"], seen
    watch = [r["data-project-id"] for r in rows_of(pages.report.read_text()).rows["watch-table"]]
    assert [pid for pid, *_ in seen["finish"]] == watch
    batch = pages.scores.set_index("project_id")
    for pid, iso, text, visible in seen["finish"]:
        assert visible, pid
        want = batch.loc[pid, "finish_p80"]
        assert iso == pd.Timestamp(want).date().isoformat(), (pid, iso, want)
        assert iso[:4] in text and text != "—", (pid, text)  # a date a person reads
    for pid, amount, text, visible in seen["cost"]:
        assert visible, pid
        want = batch.loc[pid, "cost_p80"]
        if pd.isna(want):  # no budget, or no cost model (little06): a dash, not a number
            assert amount == "" and text == "—", (pid, amount, text)
        else:
            assert float(amount) == pytest.approx(float(want)), pid
            assert any(ch.isdigit() for ch in text), (pid, text)


def _check_fan_chart(browser: Chromium, lang: str) -> None:
    """The explanation view's fan chart: drawn and visible, two shaded bands, the P50 line
    with one point per past report, its legend in the page's language."""
    fan = browser.evaluate(
        "(() => {" + _VISIBLE + " const d = document.querySelector('#finish-fan');"
        " if (!d) return null;"
        " const line = d.data.find(t => (t.mode || '').includes('markers'));"
        " return {visible: vis(d), fills: d.querySelectorAll('path.js-fill').length,"
        "  legend: [...d.querySelectorAll('.legendtext')].map(t => t.textContent),"
        "  points: line ? line.y.length : 0, dates: line ? line.x.length : 0,"
        "  markers: d.querySelectorAll('.scatterlayer .point').length}; })()"
    )
    assert fan is not None, "no fan chart on the explanation view"
    assert fan["visible"]
    assert fan["fills"] >= 2, fan  # the P10–P90 and P50–P80 bands
    assert WORDS[lang]["p50_line"] in fan["legend"], fan["legend"]
    assert fan["points"] == fan["dates"] >= 2 and fan["markers"] >= fan["points"], fan


def _check_heatmap_labels(browser: Chromium) -> None:
    """Each heatmap cell's label ("63 red of 108") fits its cell: none is clipped."""
    cells = browser.evaluate(
        "[...document.querySelectorAll('[id^=heat-].js-plotly-plot')].map(d => {"
        " const plot = d.querySelector('.nsewdrag').getBoundingClientRect();"
        " const cols = d.data[0].x.length;"
        " return [d.id, plot.width / cols,"
        "  [...d.querySelectorAll('.heatmap-label text')].map(t => t.getBBox().width)]; })"
    )
    assert cells, "no heatmap on the report"
    for div_id, cell, labels in cells:
        assert labels, div_id
        # The cells have a 2 px gap between them (xgap).
        assert max(labels) <= cell - 2, (div_id, f"{max(labels):.0f} px label in {cell:.0f} px")


def _check_watch_list_fits(browser: Chromium, shots: Path) -> None:
    """At 1,400 px the watch list needs no sideways scroll and "Since" is in view."""
    browser.call(
        "Emulation.setDeviceMetricsOverride",
        width=1400,
        height=900,
        deviceScaleFactor=1,
        mobile=False,
    )
    time.sleep(0.3)
    scroll, client, since_right, viewport = browser.evaluate(
        "(() => { const w = document.querySelector('#watch-table').parentElement;"
        " const th = [...document.querySelectorAll('#watch-table thead th')].pop();"
        " return [w.scrollWidth, w.clientWidth, th.getBoundingClientRect().right,"
        " window.innerWidth]; })()"
    )
    browser.call("Emulation.clearDeviceMetricsOverride")
    assert scroll <= client, f"the watch list scrolls sideways: {scroll} px in {client} px"
    assert since_right <= viewport
    browser.screenshot(shots / "report-watch-list-1400.png", "#watch-list", width=1400)


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.parametrize("lang", ["en", "zh-CN"])
def test_pages_render_in_chromium(
    lang: str, browser: Chromium, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    _check_in_browser(request.getfixturevalue(PAGES["simulated", lang]), browser, tmp_path, lang)
    print(f"screenshots: {tmp_path}")  # shown with -s, for a person to look at


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.parametrize("lang", ["en", "zh-CN"])
def test_little06_pages_render_in_chromium(
    lang: str, browser: Chromium, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    _check_in_browser(request.getfixturevalue(PAGES["little06", lang]), browser, tmp_path, lang)
    print(f"screenshots: {tmp_path}")
