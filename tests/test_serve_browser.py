"""The what-if page in a real browser: `planner serve` on 127.0.0.1 (a free port), driven by headless Chromium.

Chromium is Debian's package (`.ci/run` installs it), driven through Playwright for Python with
``executable_path`` — no browser is ever downloaded. The figures the page shows are compared with what
``planner solve --set <the same edit> --json`` prints, in a separate process; a saved scenario is solved
from the CLI; the token and the origin checks are tried from outside.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import pytest
from conftest import EXAMPLE

pytest.importorskip("starlette", reason="the what-if page needs the 'serve' extra: pip install -e '.[serve]'")
pytest.importorskip("playwright", reason="Playwright for Python is not installed: pip install -e '.[test]'")

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
if not Path(CHROMIUM).exists():
    pytest.skip("Debian's chromium is not installed (apt-get install chromium; .ci/run does it)",
                allow_module_level=True)

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]
SETTLED = ("document.body.dataset.busy === '0' && document.body.dataset.pending === '' "
           "&& document.body.dataset.explaining !== '1'")


class Server:
    """`planner serve` in a subprocess; the address is read from what it prints."""

    def __init__(self, path: Path, *extra: str):
        self.path = path
        self.proc = subprocess.Popen([sys.executable, "-m", "planner", "serve", str(path), "--port", "0", *extra],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy())
        self.url = ""
        self.lines: list[str] = []
        for line in self.proc.stdout:  # the server prints its address once the base plan is solved
            self.lines.append(line)
            m = re.search(r"open (http://\S+)", line)
            if m:
                self.url = m.group(1)
                break
        if not self.url:
            self.proc.kill()
            raise RuntimeError("planner serve did not start: " + "".join(self.lines) + self.proc.stderr.read())
        self.base = self.url.split("?")[0]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("page")
    shutil.copy(EXAMPLE, d / "example.xlsx")
    return d


@pytest.fixture(scope="module")
def server(workdir):
    s = Server(workdir / "example.xlsx")
    yield s
    s.stop()
    assert s.proc.returncode is not None


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, server):
    # bypass_csp only lets the test's own waits evaluate JavaScript; the page's scripts are the server's files
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000}, bypass_csp=True, accept_downloads=True)
    pg = ctx.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    pg.goto(server.url)
    pg.wait_for_selector("body[data-ready='1']")
    pg.wait_for_function(SETTLED, timeout=60_000)
    yield pg
    ctx.close()
    assert not errors, errors


def wait_update(pg, seq: int) -> None:
    pg.wait_for_function(f"Number(document.body.dataset.seq) >= {seq} && document.body.dataset.busy === '0'",
                         timeout=60_000)
    pg.wait_for_function(SETTLED, timeout=60_000)


def shown(pg) -> dict:
    """The key figures as the page holds them (exact values) and as it prints them."""
    out = {}
    for el in pg.query_selector_all(".cv[data-key]"):
        out[el.get_attribute("data-key")] = (float(el.get_attribute("data-value")), el.inner_text())
    return out


def served(pg) -> dict[str, float]:
    return {f.get_attribute("data-platform"): float(f.get_attribute("data-served"))
            for f in pg.query_selector_all("figure.plat")}


def sets_shown(pg) -> list[str]:
    return [c.inner_text() for c in pg.query_selector_all("#command ul.sets code")]


def cli_json(path: Path, out: Path, *args: str, analyses: bool = False) -> tuple[dict, Path]:
    """`planner solve … --json` in its own process (without the R&D and explanation re-solves unless asked:
    they do not change the figures compared here)."""
    quick = [] if analyses else ["--no-insights", "--no-explain"]
    res = subprocess.run([sys.executable, "-m", "planner", "solve", str(path), "-o", str(out), "--json", *quick,
                          *args],
                         capture_output=True, text=True, timeout=180)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout), out


def cli_served(report: Path) -> dict[str, float]:
    import openpyxl

    ws = openpyxl.load_workbook(report, read_only=True)["Service"]
    rows = list(ws.iter_rows(values_only=True))
    h = list(rows[0])
    tot: dict[str, float] = {}
    for r in rows[1:]:
        tot[r[h.index("platform")]] = tot.get(r[h.index("platform")], 0.0) + float(r[h.index("served")])
    return tot


def assert_same_as_cli(pg, js: dict, report: Path) -> None:
    from planner.report.fmt import money

    f = shown(pg)
    margin = js["revenue"] - js["cost"]
    assert f["margin"][0] == pytest.approx(margin, rel=1e-7)
    assert f["margin"][1] == money(margin)
    assert f["objective"][0] == pytest.approx(js["objective"], rel=1e-7)
    assert f["objective"][1] == money(js["objective"])
    assert f["fill_rate"][0] == pytest.approx(js["fill_rate"], abs=1e-9)
    assert f["fill_rate"][1] == f"{js['fill_rate']:.1%}"
    assert f["served_units"][0] == pytest.approx(js["served_units"], rel=1e-9)
    assert served(pg) == pytest.approx(cli_served(report), rel=1e-7, abs=1e-3)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---- the analyst's story (issue 20, "Done means") ----------------------------------------------------------------
def test_base_page_shows_what_planner_solve_prints(page, server, tmp_path):
    js, report = cli_json(server.path, tmp_path / "base.xlsx")
    assert_same_as_cli(page, js, report)
    assert sets_shown(page) == []
    words = page.inner_text("#words")
    assert "What binds:" in words
    assert page.query_selector_all("#causes li")  # the example is short: causes are shown for the base


def test_drag_hbm4_one_quarter_later_then_save_it_as_a_scenario(page, server, workdir, tmp_path):
    base_served = served(page)
    base_causes = page.inner_text("#causes")
    slider = page.locator(".lever[data-group='programs'][data-name='HBM4'] input[type=range]")
    slider.focus()
    page.keyboard.press("ArrowRight")  # one step: one quarter later
    wait_update(page, 1)
    assert page.input_value(".lever[data-name='HBM4'] input[type=number]") == "1"
    assert sets_shown(page) == ["Programs[HBM4].qualification_quarters+=1"]
    assert page.inner_text("#cmd") == (f"planner solve {server.path} --set "
                                       "'Programs[HBM4].qualification_quarters+=1'")
    js, report = cli_json(server.path, tmp_path / "hbm4.xlsx", "--set", "Programs[HBM4].qualification_quarters+=1")
    assert_same_as_cli(page, js, report)
    # Vera Rubin's served units, the margin and the causes moved
    now = served(page)
    assert now["Vera Rubin"] < base_served["Vera Rubin"] - 1
    delta = float(page.get_attribute("figure.plat[data-platform='Vera Rubin'] .delta", "data-delta"))
    assert delta == pytest.approx(now["Vera Rubin"] - base_served["Vera Rubin"])
    assert float(page.get_attribute("#fig-margin .delta", "data-delta")) < 0
    assert page.inner_text("#causes") != base_causes and "HBM4" in page.inner_text("#causes")
    assert page.query_selector_all("#help li")

    # save as a scenario: a copy next to the input; the CLI reproduces the page from it
    before = sha(server.path)
    page.fill("#scen-name", "HBM4 one quarter later")
    page.click("#save")
    page.wait_for_selector("#saved-cmd", timeout=60_000)
    copy = workdir / "example-whatif.xlsx"
    assert page.inner_text("#saved-cmd") == f"planner solve {copy} --scenario 'HBM4 one quarter later'"
    assert sha(server.path) == before  # the input itself is untouched
    with zipfile.ZipFile(server.path) as a, zipfile.ZipFile(copy) as b:
        from test_serve import sheet_part

        assert [n for n in a.namelist() if a.read(n) != b.read(n)] == [sheet_part(server.path, "Scenarios")]
    js2, report2 = cli_json(copy, tmp_path / "saved.xlsx", "--scenario", "HBM4 one quarter later")
    assert_same_as_cli(page, js2, report2)


def test_download_gives_the_report_planner_solve_writes(page, server, tmp_path):
    import openpyxl

    page.fill(".lever[data-group='backend'][data-name='TSV-1'] input[type=number]", "1.1")
    page.dispatch_event(".lever[data-group='backend'][data-name='TSV-1'] input[type=number]", "change")
    wait_update(page, 1)
    assert sets_shown(page) == ["Backend[TSV-1].units_per_quarter*=1.1"]
    with page.expect_download(timeout=120_000) as dl:
        page.click("#download")
    got = tmp_path / dl.value.suggested_filename
    dl.value.save_as(got)
    assert got.name == "example-whatif-report.xlsx"
    _, ref = cli_json(server.path, tmp_path / "cli.xlsx", "--set", "Backend[TSV-1].units_per_quarter*=1.1",
                      analyses=True)
    a, b = openpyxl.load_workbook(got, read_only=True), openpyxl.load_workbook(ref, read_only=True)
    assert a.sheetnames == b.sheetnames

    def summary(wb):
        return {r[0]: r[1] for r in wb["Summary"].iter_rows(min_row=2, values_only=True)
                if r[0] not in ("solve_seconds",)}

    assert summary(a) == summary(b)
    assert [r for r in a["ShortfallCauses"].iter_rows(values_only=True)] == [
        r for r in b["ShortfallCauses"].iter_rows(values_only=True)]


# ---- bad input, infeasible plans, sessions ------------------------------------------------------------------------
def test_bad_value_is_a_message_and_the_page_recovers(page):
    base = shown(page)
    box = ".lever[data-group='fabs'][data-name='FAB-A|1b'] input[type=number]"
    page.fill(box, "-1")
    page.dispatch_event(box, "change")
    wait_update(page, 1)
    msg = page.inner_text("#messages")
    assert "do not apply" in msg and "expected a number >= 0" in msg and "Traceback" not in msg
    page.fill(box, "1")
    page.dispatch_event(box, "change")
    wait_update(page, 2)
    assert page.inner_text("#messages") == ""
    assert shown(page) == base


def test_unknown_key_gets_a_did_you_mean(page):
    page.click("text=More edits")
    page.fill("#sets", "Fabs[FAB-Z|1b].wafers_per_quarter*=2")
    page.dispatch_event("#sets", "change")
    wait_update(page, 1)
    assert 'did you mean "FAB-B|1b"' in page.inner_text("#messages")


def test_infeasible_levers_are_explained_on_the_page(page):
    page.click("text=More edits")
    page.fill("#sets", "Platforms[Vera Rubin].min_fill=1")
    page.dispatch_event("#sets", "change")
    wait_update(page, 1)
    msg = page.inner_text("#messages")
    assert "infeasible" in msg and "min_fill needs 120k units, at most 0 possible" in msg
    assert page.inner_text("#figures") == ""


def test_each_browser_session_keeps_its_own_levers(browser, server):
    def open_page():
        ctx = browser.new_context(bypass_csp=True)
        pg = ctx.new_page()
        pg.goto(server.url)
        pg.wait_for_selector("body[data-ready='1']")
        pg.wait_for_function(SETTLED, timeout=60_000)
        return ctx, pg

    (ca, a), (cb, b) = open_page(), open_page()
    a.select_option("#policy", "priority")
    wait_update(a, 1)
    b.fill(".lever[data-group='demand'][data-name='Vera Rubin'] input[type=number]", "1.2")
    b.dispatch_event(".lever[data-group='demand'][data-name='Vera Rubin'] input[type=number]", "change")
    wait_update(b, 1)
    a.reload()
    b.reload()
    for pg in (a, b):
        pg.wait_for_selector("body[data-ready='1']")
        pg.wait_for_function(SETTLED, timeout=60_000)
    assert sets_shown(a) == ["Settings.policy=priority"] and a.input_value("#policy") == "priority"
    assert sets_shown(b) == ["Demand[Vera Rubin|*].units*=1.2"] and b.input_value("#policy") == "margin"
    ca.close()
    cb.close()


# ---- safety -------------------------------------------------------------------------------------------------------
def http(url: str, data: bytes | None = None, headers: dict | None = None) -> tuple[int, str]:
    req = urllib.request.Request(url, data=data, headers=headers or {}, method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_requests_from_elsewhere_are_refused(server):
    api = server.base + "api/view"
    ok = {"Content-Type": "application/json", "X-Planner": "1"}
    body = json.dumps({"state": {"programs": {"HBM4": 1}}}).encode()
    assert http(api, body, ok)[0] == 200
    assert http(api, body, {"Content-Type": "application/json"})[0] == 403  # no X-Planner: a cross-site form
    assert http(api, body, {**ok, "Origin": "http://evil.example"})[0] == 403
    assert http(server.base, headers={"Host": "evil.example"})[0] == 403  # DNS rebinding
    code, text = http(api, b"{not json", ok)
    assert code == 400 and "not JSON" in text
    code, text = http(api, b"x" * 300_000, ok)
    assert code == 400 and "too large" in text
    assert http(server.base)[0] == 200  # and the server is still there


def test_token_is_required_and_checked(browser, workdir):
    s = Server(workdir / "example.xlsx", "--token")
    try:
        assert "?token=" in s.url
        code, text = http(s.base)
        assert code == 403 and "access token" in text
        assert http(s.base + "?token=wrong")[0] == 403
        assert http(s.base + "api/view", b"{}", {"Content-Type": "application/json", "X-Planner": "1"})[0] == 403
        ctx = browser.new_context(bypass_csp=True)
        pg = ctx.new_page()
        resp = pg.goto(s.base)
        assert resp.status == 403
        pg.goto(s.url)  # the printed address: the token in the URL, then a cookie for the page's requests
        pg.wait_for_selector("body[data-ready='1']")
        pg.wait_for_function(SETTLED, timeout=60_000)
        pg.select_option("#policy", "priority")
        wait_update(pg, 1)
        assert sets_shown(pg) == ["Settings.policy=priority"] and pg.inner_text("#messages") == ""
        ctx.close()
    finally:
        s.stop()


def test_host_beyond_loopback_always_prints_a_token():
    from planner.serve.app import is_loopback

    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1") and is_loopback("127.0.0.2")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.10") and not is_loopback("myhost")


def test_concurrent_users_get_their_own_answers(server):
    """Six requests at once, each with other levers: each answer is for its own levers, with the numbers of a
    cold solve of them (the server's threads share one kept model and cache, never a lever state)."""
    from concurrent.futures import ThreadPoolExecutor

    from planner import api
    from planner.io.load import load_plan
    from planner.io.scenarios import apply_edits, parse_override

    states = [{"fabs": {"FAB-A|1b": 0.70 + 0.05 * i}, "demand": {"RTX Spark": 1.0 + 0.1 * i}} for i in range(6)]
    hdr = {"Content-Type": "application/json", "X-Planner": "1"}

    def ask(st):
        code, text = http(server.base + "api/view", json.dumps({"state": st, "seq": 1}).encode(), hdr)
        assert code == 200, text
        return json.loads(text)

    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(ask, states))
    plan = load_plan(server.path)
    for st, a in zip(states, answers, strict=True):
        f = st["fabs"]["FAB-A|1b"]
        assert a["sets"][0] == f"Fabs[FAB-A|1b].wafers_per_quarter*={f:.6g}"
        ref = api.run(apply_edits(plan, [parse_override(s) for s in a["sets"]])).results.summary
        assert a["figures"]["objective"] == pytest.approx(ref["objective"], rel=1e-7)


def test_a_plan_too_big_composes_commands_instead(browser, workdir):
    s = Server(workdir / "example.xlsx", "--max-columns", "100")
    try:
        assert any("too big to re-solve interactively" in line for line in s.lines)
        ctx = browser.new_context(bypass_csp=True)
        pg = ctx.new_page()
        pg.goto(s.url)
        pg.wait_for_selector("body[data-ready='1']")
        from planner.io.load import load_plan
        from planner.model.build import build_model

        n = build_model(load_plan(EXAMPLE)).lp.n_cols
        assert f"{n:,} LP columns" in pg.inner_text("#toobig") and "planner sweep" in pg.inner_text("#results")
        assert pg.query_selector("#figures") is None and pg.is_disabled("#download")
        box = ".lever[data-group='demand'][data-name='Vera CPU'] input[type=number]"
        pg.fill(box, "1.5")
        pg.dispatch_event(box, "change")
        wait_update(pg, 1)
        assert sets_shown(pg) == ["Demand[Vera CPU|*].units*=1.5"]
        pg.fill(box, "-2")
        pg.dispatch_event(box, "change")
        wait_update(pg, 2)  # composing never solves, but the edits are checked as the CLI will check them
        assert "expected a number >= 0" in pg.inner_text("#messages")
        ctx.close()
    finally:
        s.stop()


def test_writing_into_the_input_itself_needs_a_confirmation(browser, tmp_path):
    shutil.copy(EXAMPLE, tmp_path / "plan.xlsx")
    s = Server(tmp_path / "plan.xlsx")
    try:
        ctx = browser.new_context(bypass_csp=True)
        pg = ctx.new_page()
        pg.goto(s.url)
        pg.wait_for_selector("body[data-ready='1']")
        pg.select_option("#scenario", "FAB-B 1b loses 25%")
        wait_update(pg, 1)
        pg.fill("#scen-name", "FAB-B trouble")
        pg.check("#to-input")
        before = sha(s.path)
        pg.once("dialog", lambda d: d.dismiss())
        pg.click("#save")
        pg.wait_for_timeout(500)
        assert sha(s.path) == before and not pg.query_selector("#saved-cmd")  # declined: nothing written
        pg.once("dialog", lambda d: d.accept())
        pg.click("#save")
        pg.wait_for_selector("#saved-cmd", timeout=60_000)
        assert pg.inner_text("#saved-cmd") == f"planner solve {s.path} --scenario 'FAB-B trouble'"
        assert not (tmp_path / "plan-whatif.xlsx").exists()
        from planner.io.load import load_plan
        from planner.io.scenarios import edits_from_sheet

        plan = load_plan(s.path)
        assert [e.describe() for e in edits_from_sheet(plan, "FAB-B trouble")] == [
            e.describe() for e in edits_from_sheet(plan, "FAB-B 1b loses 25%")]
        ctx.close()
    finally:
        s.stop()
