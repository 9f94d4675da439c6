"""Issue 11: the dashboard's web UI in a real browser (Debian's Chromium driven by Playwright).

One cluster (head with 4 CPUs and 2 declared GPUs, token auth on) and one browser for the module. The test
creates what a user would look for: a live actor whose name is HTML, a dead actor, two GPU actors, a log
line with markup, a submitted job whose entrypoint is markup. Each view is opened by clicking its
navigation link and must show that data, as text (nothing the cluster sent runs: `window.__xss` stays
unset), with no JavaScript errors in the console. (The page's Content-Security-Policy forbids eval, so the waits
here are locators, not `wait_for_function` strings.) Screenshots of each view go to
`tests/.artifacts/dashboard-ui/` (git-ignored; or $OPENRAY_UI_SCREENSHOTS).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import requests
from prefix_proxy import PrefixProxy
from ray._common import auth, process_registry
from ray.cluster_utils import Cluster

playwright_api = pytest.importorskip("playwright.sync_api")

REPO = Path(__file__).resolve().parents[3]
XSS_NAME = '<script>window.__xss="name"</script>'
XSS_ENTRYPOINT = "echo '<img src=x onerror=\"window.__xss=1\">' ui-job-marker"
XSS_LOG = '<img src=x onerror="window.__xss=2"> ui-log-line'


def _chromium() -> str:
    found = shutil.which("chromium") or os.environ.get("OPENRAY_CHROMIUM")
    if found:
        return found
    try:
        return subprocess.run([str(REPO / "tests/integration/tools/install-browser")], check=True,
                              capture_output=True, text=True).stdout.strip()
    except subprocess.CalledProcessError as e:
        pytest.skip(f"no Chromium (tests/integration/tools/install-browser failed: {e.stderr.strip()})")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    temp_dir = str(tmp_path_factory.mktemp("ui") / "ray")
    saved = os.environ.get("RAY_DASHBOARD_HISTORY_INTERVAL_S")
    os.environ["RAY_DASHBOARD_HISTORY_INTERVAL_S"] = "1"  # the dashboard inherits it: charts fill in quickly
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 4, "num_gpus": 2, "_temp_dir": temp_dir,
                                                      "include_dashboard": True})
    try:
        c.dashboard = "http://" + c.head_node.dashboard_url
        c.temp_dir = temp_dir
        deadline = time.monotonic() + 60
        while True:  # the dashboard process may still be importing when the cluster is up
            try:
                requests.get(c.dashboard + "/api/version", timeout=5)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline, "the dashboard did not start"
                time.sleep(0.3)
        yield c
    finally:
        c.shutdown()
        process_registry.stop_all(temp_dir, force=True, grace_period_s=2)
        if saved is None:
            os.environ.pop("RAY_DASHBOARD_HISTORY_INTERVAL_S", None)
        else:
            os.environ["RAY_DASHBOARD_HISTORY_INTERVAL_S"] = saved


@pytest.fixture(scope="module")
def workload(cluster):
    """The driver's actors and a finished job: what the views must show."""
    import ray
    from ray.job_submission import JobStatus, JobSubmissionClient

    ray.init(address=cluster.address)
    try:
        @ray.remote(num_cpus=0)
        class Pinger:
            def ping(self, text):
                print(text, flush=True)
                return os.getpid()

        @ray.remote(num_gpus=1, num_cpus=0)
        class GpuHolder:
            def ids(self):
                return ray.get_gpu_ids()

        alive = Pinger.options(name=XSS_NAME).remote()
        ray.get(alive.ping.remote(XSS_LOG))
        dead = Pinger.remote()
        ray.get(dead.ping.remote("about to be killed"))
        ray.kill(dead)
        gpus = [GpuHolder.remote() for _ in range(2)]
        gpu_ids = ray.get([g.ids.remote() for g in gpus])
        assert sorted(gpu_ids) == [[0], [1]]

        client = JobSubmissionClient(cluster.dashboard, headers=auth.http_headers())
        job = client.submit_job(entrypoint=XSS_ENTRYPOINT, submission_id="ui-job-1")
        deadline = time.monotonic() + 60
        while client.get_job_status(job) != JobStatus.SUCCEEDED:
            assert time.monotonic() < deadline, client.get_job_info(job)
            time.sleep(0.3)
        yield {"alive": alive._actor_id.hex(), "dead": dead._actor_id.hex(), "gpus": gpus, "gpu_ids": gpu_ids,
               "pinger": Pinger}
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def shots() -> Path:
    path = Path(os.environ.get("OPENRAY_UI_SCREENSHOTS") or REPO / "tests/.artifacts/dashboard-ui")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=_chromium(), args=["--no-sandbox", "--disable-gpu"])
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="module")
def page(browser, cluster, workload):
    """A signed-in tab (through the login form, as a person does), collecting console errors."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    pg = context.new_page()
    pg.errors = []
    pg.on("console", lambda m: pg.errors.append(f"console: {m.text}") if m.type == "error" else None)
    pg.on("pageerror", lambda e: pg.errors.append(f"pageerror: {e}"))
    pg.on("response", lambda r: pg.errors.append(f"HTTP {r.status} {r.url}") if r.status >= 400 else None)
    pg.goto(cluster.dashboard + "/")
    assert "requires a token" in pg.content()
    pg.fill("input[name=token]", os.environ["RAY_AUTH_TOKEN"])
    pg.click("button[type=submit]")
    pg.wait_for_url(re.compile(r".*#/overview$"))
    pg.errors.clear()  # the login page's own 401 (and its favicon) came before the app
    yield pg
    context.close()


def _nav(page, name: str) -> None:
    page.click(f"nav a[data-nav={name}]")
    page.wait_for_url(re.compile(f".*#/{name}"))


def _no_horizontal_scroll(page) -> None:
    assert page.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth + 1")


def _clean(page) -> None:
    assert page.evaluate("window.__xss") is None, "markup from the cluster ran as HTML"
    assert not page.errors, page.errors


def test_overview(page, shots):
    _nav(page, "overview")
    page.wait_for_selector("[data-testid=nodes-alive]")
    assert page.inner_text("[data-testid=nodes-alive]") == "1"
    gpu = page.locator(".meter[data-resource=GPU]")
    gpu.wait_for()
    assert "2 of 2 GPU" in gpu.inner_text()
    page.get_by_text("ui-job-1").first.wait_for()
    page.wait_for_selector("[data-testid=ray-status]")
    assert "Node status" in page.inner_text("[data-testid=ray-status]")
    _no_horizontal_scroll(page)
    page.screenshot(path=str(shots / "overview.png"), full_page=True)
    _clean(page)


def test_jobs_view_and_job_page(page, shots):
    _nav(page, "jobs")
    row = page.locator("[data-testid=jobs-table] tbody tr", has_text="ui-job-1")
    row.wait_for()
    assert "SUCCEEDED" in row.inner_text()
    assert "<img src=x onerror=" in row.inner_text()  # the entrypoint shown as text
    _no_horizontal_scroll(page)
    page.screenshot(path=str(shots / "jobs.png"), full_page=True)
    row.locator("a").first.click()
    page.wait_for_selector("[data-testid=job-page]")
    page.locator("[data-testid=driver-log]", has_text="ui-job-marker").wait_for()
    assert "<img src=x onerror=" in page.inner_text("[data-testid=driver-log]")
    page.screenshot(path=str(shots / "job-page.png"), full_page=True)
    _clean(page)


def test_cluster_view_and_machine_view_with_gpu_ids(page, shots, workload):
    _nav(page, "cluster")
    row = page.locator("[data-testid=node-table] tbody tr", has_text="127.0.0.1")
    # The view refreshes every few seconds and the raylet reports its use about as often: the GPU actors'
    # hold shows within a refresh or two.
    row.filter(has_text="2 of 2 GPU").wait_for(timeout=30000)
    assert "ALIVE" in row.inner_text() and "of 4 CPU" in row.inner_text()
    assert re.search(r"\d+(\.\d+)? GiB of \d+(\.\d+)? GiB", row.inner_text())  # human units, not raw floats
    _no_horizontal_scroll(page)
    page.screenshot(path=str(shots / "cluster.png"), full_page=True)
    row.locator("a").first.click()
    page.wait_for_selector("[data-testid=node-page]")
    holders = page.locator("[data-testid=worker-table] tbody tr", has_text="Actor GpuHolder")
    holders.nth(1).wait_for()
    ids = sorted(holders.nth(i).locator("[data-testid=gpu-ids]").inner_text() for i in range(holders.count()))
    assert ids == ["0", "1"]  # which worker holds GPU 0 and which GPU 1
    page.screenshot(path=str(shots / "node.png"), full_page=True)
    _clean(page)


def test_actors_view_filters_survive_refresh_and_actor_page_logs(page, shots, workload):
    _nav(page, "actors")
    table = "[data-testid=actor-table] tbody tr"
    page.locator(table, has_text=workload["dead"][:8]).wait_for()
    dead = page.locator(table, has_text=workload["dead"][:8])
    assert "DEAD" in dead.inner_text() and "ray.kill" in dead.inner_text()
    alive = page.locator(table, has_text=XSS_NAME)  # the name as text, not a script element
    assert "ALIVE" in alive.inner_text()
    assert page.locator("[data-testid=actor-counts]").inner_text().count("DEAD") == 1
    _no_horizontal_scroll(page)
    page.screenshot(path=str(shots / "actors.png"), full_page=True)
    # A filter stays through the periodic refresh (and in the URL, so a reload keeps it).
    page.select_option("select >> nth=0", "DEAD")
    page.wait_for_url(re.compile(r".*state=DEAD"))
    page.wait_for_timeout(5000)
    assert page.locator(table).count() == 1 and page.locator(table, has_text="DEAD").count() == 1
    page.reload()
    page.locator(table, has_text=workload["dead"][:8]).wait_for()
    assert page.locator(table).count() == 1 and page.input_value("select >> nth=0") == "DEAD"
    page.select_option("select >> nth=0", "")
    page.fill("input.search", "pinger")
    page.locator(table, has_text=XSS_NAME).wait_for()
    page.locator(table, has_text=XSS_NAME).locator("a").first.click()
    page.wait_for_selector("[data-testid=actor-page]")
    page.locator("[data-testid=log-text]", has_text="ui-log-line").first.wait_for()
    assert XSS_LOG in page.inner_text("[data-testid=log-text] >> nth=0")
    page.locator("[data-testid=actor-tasks] tbody tr", has_text="Pinger.ping").wait_for()
    page.screenshot(path=str(shots / "actor-page.png"), full_page=True)
    _clean(page)


def test_live_refresh_shows_a_new_actor_without_a_reload(page, workload):
    _nav(page, "actors")
    page.fill("input.search", "late-actor")
    assert page.locator("[data-testid=actor-table] tbody tr", has_text="late-actor").count() == 0
    late = workload["pinger"].options(name="late-actor").remote()
    page.locator("[data-testid=actor-table] tbody tr", has_text="late-actor").wait_for(timeout=15000)
    assert page.input_value("input.search") == "late-actor"
    del late
    _clean(page)


def test_metrics_view_draws_charts(page, shots):
    _nav(page, "metrics")
    page.locator("[data-testid=chart] canvas").nth(5).wait_for()
    titles = page.locator("[data-testid=chart] h3").all_inner_texts()
    assert "Logical CPUs" in titles and "Actors by state" in titles
    assert page.locator("[data-testid=grafana-link]").count() == 0  # RAY_GRAFANA_HOST is not set
    page.screenshot(path=str(shots / "metrics.png"), full_page=True)
    _clean(page)


# What each chart draws, from its uPlot instance: {title: {series label: [values...]}}.
CHART_DATA = """() => Object.fromEntries([...document.querySelectorAll('[data-testid=chart]')].map((c) => [
  c.querySelector('h3').textContent,
  c.uplot ? Object.fromEntries(c.uplot.series.slice(1).map((s, i) => [s.label, c.uplot.data[i + 1]])) : null]))"""


def _latest(chart: dict | None) -> dict[str, float]:
    """The last point of each series of a chart, zeros left out."""
    return {label: values[-1] for label, values in (chart or {}).items() if values and values[-1]}


def test_metrics_view_charts_tasks_and_actors_by_state(page, shots, cluster, workload):
    """The charts draw the GCS's tables: the latest point of "Tasks by state" and "Actors by state" is what
    the state API lists once the test's tasks and actors have settled."""
    from collections import Counter

    import ray
    from ray.util.state import list_actors, list_tasks

    @ray.remote(num_cpus=0)
    def square(x: int) -> int:
        return x * x

    assert ray.get([square.remote(i) for i in range(30)]) == [i * i for i in range(30)]
    doomed = workload["pinger"].options(name="metrics-doomed").remote()
    ray.get(doomed.ping.remote("soon dead"))
    ray.kill(doomed)
    _nav(page, "metrics")
    deadline = time.monotonic() + 60
    while True:
        actors = dict(Counter(a["state"] for a in list_actors(address=cluster.dashboard, limit=10000)))
        tasks = dict(Counter(t["state"] for t in list_tasks(address=cluster.dashboard, limit=10000)))
        charts = page.evaluate(CHART_DATA)
        drawn_tasks, drawn_actors = _latest(charts.get("Tasks by state")), _latest(charts.get("Actors by state"))
        if drawn_tasks == tasks and drawn_actors == actors:
            break
        assert time.monotonic() < deadline, f"charts {drawn_tasks} {drawn_actors}, state API {tasks} {actors}"
        page.wait_for_timeout(1000)
    assert drawn_tasks["FINISHED"] >= 30 + 2  # the squares and the pings at least
    assert drawn_actors["DEAD"] >= 2 and drawn_actors["ALIVE"] >= 3  # the killed ones; the named and GPU ones
    assert len(charts["Tasks by state"]["FINISHED"]) >= 2  # a series over time, not one number
    page.screenshot(path=str(shots / "metrics-states.png"), full_page=True)
    _clean(page)


def test_signing_in_and_the_app_work_under_a_path_prefix(browser, cluster, workload):
    """Through a reverse proxy that serves the dashboard at /ray/ and rewrites nothing: the login form, its
    redirect, the app's requests and the way back after a lost session all stay under the prefix."""
    with PrefixProxy(cluster.dashboard, "/ray/") as proxy:
        context = browser.new_context()
        pg = context.new_page()
        errors = []
        pg.on("pageerror", lambda e: errors.append(str(e)))
        try:
            pg.goto(proxy.url + "#/actors")
            assert "requires a token" in pg.content()
            assert pg.get_attribute("form", "action") == "./login"
            pg.fill("input[name=token]", os.environ["RAY_AUTH_TOKEN"])
            pg.click("button[type=submit]")
            pg.wait_for_url(proxy.url + "#/overview")
            pg.wait_for_selector("[data-testid=nodes-alive]")
            assert pg.inner_text("[data-testid=nodes-alive]") == "1"
            _nav(pg, "actors")
            pg.locator("[data-testid=actor-table] tbody tr", has_text=workload["dead"][:8]).wait_for()
            # A session that goes stale: to the login page under the prefix, and back to the same view.
            context.clear_cookies()
            pg.wait_for_url(re.compile(re.escape(proxy.url) + r"login\?next=.*"), timeout=15000)
            pg.fill("input[name=token]", os.environ["RAY_AUTH_TOKEN"])
            pg.click("button[type=submit]")
            pg.wait_for_url(proxy.url + "#/actors")
            pg.locator("[data-testid=actor-table] tbody tr", has_text=workload["dead"][:8]).wait_for()
        finally:
            context.close()
        assert proxy.outside == [], "requests left the prefix (absolute URLs)"
        assert errors == []


def test_logs_view_nodes_files_viewer_and_search(page, shots):
    _nav(page, "logs")
    page.locator("[data-testid=log-nodes] a").first.click()
    page.wait_for_selector("[data-testid=log-files]")
    groups = page.locator(".file-group h3").all_inner_texts()
    assert any(g.startswith("worker_out") for g in groups) and any(g.startswith("raylet") for g in groups)
    page.screenshot(path=str(shots / "logs-files.png"), full_page=True)
    page.locator(".file-group a", has_text="raylet.out").click()
    page.wait_for_selector("[data-testid=log-text] .line")
    page.fill(".log-viewer input.search", "no-such-line-in-any-log")
    page.get_by_text("No line matches.").wait_for()
    page.wait_for_url(re.compile(r".*q=no-such-line"))
    # A worker's file, found by the log line a test actor printed.
    page.goto(page.url.split("#")[0] + "#/logs")
    page.locator("[data-testid=log-nodes] a").first.click()
    files = page.locator(".file-group", has_text="worker_out").locator("a")
    files.first.wait_for()
    for i in range(files.count()):
        files.nth(i).click()
        page.wait_for_selector("[data-testid=log-text]")
        page.locator("[data-testid=log-text]", has_text="Loading").wait_for(state="detached")
        if "ui-log-line" in page.inner_text("[data-testid=log-text]"):
            break
        page.go_back()
    else:
        pytest.fail("no worker_out file shows the actor's log line")
    page.fill(".log-viewer input.search", "ui-log-line")
    assert page.locator("[data-testid=log-text] mark").first.inner_text() == "ui-log-line"
    assert XSS_LOG in page.inner_text("[data-testid=log-text]")
    page.screenshot(path=str(shots / "logs-viewer.png"), full_page=True)
    _clean(page)


def test_unknown_route_shows_not_found(page, shots):
    page.goto(page.url.split("#")[0] + "#/no/such/view")
    page.wait_for_selector("[data-testid=not-found]")
    assert "/no/such/view" in page.inner_text("[data-testid=not-found]")
    page.screenshot(path=str(shots / "not-found.png"))
    _nav(page, "overview")
    _clean(page)


def test_connection_lost_banner_keeps_the_data(page):
    _nav(page, "cluster")
    page.locator("[data-testid=node-table] tbody tr", has_text="127.0.0.1").wait_for()
    page.context.set_offline(True)
    try:
        page.wait_for_selector("[data-testid=connection-lost]", timeout=15000)
        assert page.locator("[data-testid=node-table] tbody tr", has_text="127.0.0.1").count() == 1
    finally:
        page.context.set_offline(False)
    page.wait_for_selector("[data-testid=connection-lost]", state="detached", timeout=15000)
    page.errors[:] = [e for e in page.errors if "ERR_INTERNET_DISCONNECTED" not in e]
    _clean(page)


def test_laptop_width_has_no_horizontal_scroll(page):
    page.set_viewport_size({"width": 1024, "height": 700})
    try:
        for name, ready in (("actors", "[data-testid=actor-table]"), ("jobs", "[data-testid=jobs-table]"),
                            ("cluster", "[data-testid=node-table]")):
            _nav(page, name)
            page.wait_for_selector(ready)
            _no_horizontal_scroll(page)
    finally:
        page.set_viewport_size({"width": 1400, "height": 900})


def test_a_lost_session_goes_to_the_login_page(browser, cluster, workload):
    """Without the cookie the page is the login form; a tab whose cookie goes stale is sent there too."""
    context = browser.new_context()
    pg = context.new_page()
    pg.goto(cluster.dashboard + "/#/actors")
    assert "requires a token" in pg.content()
    context.add_cookies([{"name": auth.COOKIE_NAME, "value": os.environ["RAY_AUTH_TOKEN"], "url": cluster.dashboard}])
    pg.reload()  # the same URL: a deep link, now with the cookie
    pg.wait_for_selector("[data-testid=actor-table]")
    context.clear_cookies()
    pg.wait_for_url(re.compile(r".*/login\?next=.*"), timeout=15000)
    assert "requires a token" in pg.content()
    context.close()
