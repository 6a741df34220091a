"""End to end: a real `tensorboard` process on a loopback port, the Overfitting tab in headless Chromium.

Chromium is driven through its DevTools protocol over a pipe (`--remote-debugging-pipe`), so no
driver package is needed. The screenshot is kept in artifacts/overfitting_tab.png.
Needs Debian's `chromium` (`.ci/run` installs it); skipped when it is not installed.
"""

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = os.path.join(REPO, "artifacts")
SCREENS = os.environ.get("TBREG_SCREENSHOTS", os.path.join(tempfile.gettempdir(), "tbreg-screens"))  # not in git
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--remote-debugging-pipe",
    # A desktop with a mouse: headless has no pointer, and Plotly then pins its toolbars on.
    "--blink-settings=primaryHoverType=2,availableHoverTypes=2,primaryPointerType=4,availablePointerTypes=4",
)

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium: apt-get install -y chromium")


class Browser:
    """Headless Chromium and one page, spoken to through the DevTools protocol on fds 3 and 4."""

    def __init__(self, width=1400, height=1700):
        self._profile = tempfile.mkdtemp(prefix="tbreg-chromium-")
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()
        # A tiny launcher hands Chromium the protocol pipes as fds 3 (commands in), 4 (answers out).
        launcher = (  # copies above fd 9 first, in case the pipes themselves are fds 3 or 4
            "import fcntl, os, sys; "
            f"r, w = (fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in ({to_child_r}, {from_child_w})); "
            "os.dup2(r, 3); os.dup2(w, 4); os.execv(sys.argv[1], sys.argv[1:])"
        )
        command = [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={self._profile}", "about:blank"]
        self.proc = subprocess.Popen(
            [sys.executable, "-c", launcher, *command],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            pass_fds=(to_child_r, from_child_w),
        )
        os.close(to_child_r)
        os.close(from_child_w)
        self._next_id = 0
        self._answers = {}
        self.errors = []  # uncaught page exceptions and console errors
        self._cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self._session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for method in ("Page.enable", "Runtime.enable"):
            self.send(method)
        self.send("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)

    def _read(self):
        buffer = b""
        while chunk := os.read(self._from_child, 1 << 16):
            buffer += chunk
            *messages, buffer = buffer.split(b"\0")
            for raw in messages:
                message = json.loads(raw)
                if message.get("method") == "Page.javascriptDialogOpening":  # e.g. an injected alert()
                    self.errors.append(f"dialog: {message['params'].get('message')}")
                    threading.Thread(
                        target=self.send, args=("Page.handleJavaScriptDialog",), kwargs={"accept": True}
                    ).start()
                elif message.get("method") == "Runtime.exceptionThrown":
                    self.errors.append(message["params"]["exceptionDetails"].get("exception", {}).get("description"))
                elif message.get("method") == "Runtime.consoleAPICalled" and message["params"]["type"] == "error":
                    self.errors.append(
                        " ".join(str(a.get("value", a.get("description"))) for a in message["params"]["args"])
                    )
                if "id" in message:
                    with self._cond:
                        self._answers[message["id"]] = message
                        self._cond.notify_all()

    def call(self, method, session=None, timeout=30, **params):
        with self._cond:
            self._next_id += 1
            ident = self._next_id
        message = {"id": ident, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._to_child, json.dumps(message).encode() + b"\0")
        with self._cond:
            if not self._cond.wait_for(lambda: ident in self._answers, timeout):
                raise TimeoutError(f"Chromium did not answer {method} within {timeout} s")
            answer = self._answers.pop(ident)
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        return answer.get("result", {})

    def send(self, method, **params):
        return self.call(method, session=self._session, **params)

    def goto(self, url):
        self.send("Page.navigate", url=url)

    def evaluate(self, expression):
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(result["exceptionDetails"].get("exception", {}).get("description"))
        return result["result"].get("value")

    def wait_for(self, expression, timeout=45):
        """Polls `expression` until it is truthy; returns its value."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                value = self.evaluate(expression)
            except RuntimeError:
                value = None
            if value:
                return value
            time.sleep(0.25)
        raise TimeoutError(f"page never satisfied: {expression}\nerrors: {self.errors}")

    def screenshot(self, path):
        data = self.send("Page.captureScreenshot", format="png")["data"]
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))
        return path

    def close(self):
        try:
            self.call("Browser.close", timeout=5)
        except (OSError, TimeoutError, RuntimeError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._to_child)
        shutil.rmtree(self._profile, ignore_errors=True)


def start_tensorboard(logdir, *flags, timeout=60):
    """A real `tensorboard --logdir logdir` on 127.0.0.1 and an OS-chosen port: (process, base URL)."""
    cmd = [
        sys.executable,
        "-m",
        "tensorboard.main",
        "--logdir",
        str(logdir),
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        *flags,
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO)
    lines, found = [], []

    def scan():
        for line in proc.stdout:
            lines.append(line)
            match = re.search(r"(http://127\.0\.0\.1:\d+/)", line)
            if match and not found:
                found.append(match.group(1))

    threading.Thread(target=scan, daemon=True).start()
    deadline = time.monotonic() + timeout
    while not found:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("tensorboard did not start:\n" + "".join(lines))
        time.sleep(0.1)
    return proc, found[0]


def get_json(url):
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def wait_until(predicate, timeout=60, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except OSError:
            pass
        time.sleep(0.25)
    raise TimeoutError(f"timed out waiting for {what}")


# JavaScript run in TensorBoard's page: the plugin's iframe document (through any shadow roots).
FRAME_JS = """
(() => {
  const find = (root) => {
    for (const node of root.querySelectorAll("*")) {
      if (node.tagName === "IFRAME" && node.contentDocument && node.contentDocument.querySelector("#curves")) return node;
      if (node.shadowRoot) { const hit = find(node.shadowRoot); if (hit) return hit; }
    }
    return null;
  };
  const frame = find(document);
  return frame ? frame.contentDocument : null;
})()
"""


def in_frame(body):
    return f"(() => {{ const doc = {FRAME_JS}; if (!doc) return null; {body} }})()"


XSS = "<img src=x onerror=alert(1)>"
DOLLARS = ("a$b$c", "tiny,lr=$1")  # names Plotly would typeset as LaTeX: `$…$`
FAMILIES = ["regularizers", "seeded/regularizers", "seeded/sizes", "sizes"]


@pytest.fixture(scope="module")
def logdir(script_tree, tmp_path_factory, tbreg_cache):
    """The scripts' log tree plus runs named like an HTML injection and with `$` (copies of
    sizes/tiny), and seeded/: seed groups and MC dropout made by the scripts (test_plugin.train_seeded)."""
    from test_plugin import train_seeded

    root = tmp_path_factory.mktemp("browser") / "runs"
    shutil.copytree(script_tree["logdir"], root)
    for name in (XSS, *DOLLARS):
        shutil.copytree(root / "sizes" / "tiny", root / "sizes" / name)
    train_seeded(root / "seeded", tbreg_cache)
    return root


@pytest.fixture(scope="module")
def tensorboard(logdir):
    proc, url = start_tensorboard(logdir, "--reload_interval", "1")
    try:
        wait_until(
            lambda: (
                get_json(url + "data/plugins_listing").get("overfitting", {}).get("enabled")
                and [f["family"] for f in get_json(url + "data/plugin/overfitting/families")["families"]] == FAMILIES
            ),
            what="tensorboard to load the log dir",
        )
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def browser():
    b = Browser()
    yield b
    b.close()


@pytest.fixture(scope="module")
def tab(tensorboard, browser):
    """The browser on TensorBoard's Overfitting tab, after its first refresh."""
    browser.goto(tensorboard + "#overfitting")
    browser.wait_for(in_frame("return doc.body.dataset.state === 'ready';"))
    return browser


def select_family(browser, family):
    browser.evaluate(
        in_frame(
            f"""
            const select = doc.querySelector("#family-select");
            if (select.value !== {json.dumps(family)}) {{
              select.value = {json.dumps(family)};
              select.dispatchEvent(new Event("change"));
            }}
            return true;
            """
        )
    )


def test_overfitting_tab_renders_charts_and_table(tensorboard, tab):
    browser = tab
    listing = get_json(tensorboard + "data/plugins_listing")["overfitting"]
    assert listing["tab_name"] == "Overfitting" and listing["enabled"] is True

    select_family(browser, "regularizers")
    state = browser.wait_for(
        in_frame(
            """
            const plot = doc.querySelector("#curves .js-plotly-plot");
            const traces = plot && plot.data ? plot.data.filter((t) => t.mode === "lines" || (t.mode === "markers" && !t.hovertemplate.includes(" · best") && !t.hovertemplate.includes(" · overfitting") && !t.hovertemplate.includes(" · early"))) : [];
            const rows = doc.querySelectorAll("#summary tbody tr");
            if (!traces.length || !rows.length || !rows[0].dataset.run.startsWith("regularizers/")) return null;
            if (!doc.querySelector("#curves .section-note").textContent.endsWith(" in regularizers")) return null;
            const dashes = [...doc.querySelectorAll("#curves .scatterlayer .trace path.js-line")]
              .map((p) => p.style.strokeDasharray || "");
            return {
              family: doc.querySelector("#family-select").value,
              metric: doc.querySelector("#metric-select").value,
              traces: traces.length,
              rows: [...rows].map((r) => r.dataset.run),
              solid: dashes.filter((d) => !d || d === "none").length,
              dashed: dashes.filter((d) => d === "9px, 9px").length,
              dotted: dashes.filter((d) => d === "3px, 3px").length,
              legend: [...doc.querySelectorAll("#curves .legendtext")].map((t) => t.textContent),
              penaltyTraces: doc.querySelectorAll("#regularization .penalty .scatterlayer .trace").length,
              weightTraces: doc.querySelectorAll("#regularization .weights .scatterlayer .trace").length,
              text: doc.body.innerText,
            };
            """
        )
    )
    browser.screenshot(os.path.join(ARTIFACTS, "overfitting_tab.png"))

    # The first family (regularizers): the baseline copy of sizes/tiny first, then l2.
    assert state["family"] == "regularizers"
    assert state["rows"] == ["regularizers/tiny", "regularizers/l2"]
    family = get_json(tensorboard + "data/plugin/overfitting/family?family=regularizers&metric=" + state["metric"])
    splits = [split for run in family["runs"] for split in run["series"]]
    assert splits.count("train") == splits.count("validation") == 2
    assert state["traces"] == len(splits)  # one per run and split (train_eval when logged)
    # train solid, validation dashed, train_eval (inference mode) dotted
    assert (state["solid"], state["dashed"], state["dotted"]) == (2, 2, splits.count("train_eval"))
    assert state["legend"] == ["tiny (baseline)", "l2"]
    assert state["penaltyTraces"] == 2  # data loss + penalty, stacked
    assert "completed" in state["text"]
    weights = get_json(tensorboard + "data/plugin/overfitting/regularization?family=regularizers")["weights"]
    if weights:  # logged by tbreg's weights callback
        browser.wait_for(
            in_frame('return doc.querySelectorAll("#regularization .weights .scatterlayer .trace").length === 2;')
        )
    else:
        assert "No weight histograms" in state["text"]  # the empty state
    assert browser.errors == []


def test_switching_family_and_hparams_dashboard(tensorboard, tab, logdir):
    browser = tab
    select_family(browser, "sizes")
    rows = browser.wait_for(
        in_frame(
            """
            const rows = [...doc.querySelectorAll("#summary tbody tr")].map((r) => r.dataset.run);
            return rows.includes("sizes/small") ? rows : null;
            """
        )
    )
    names = sorted([XSS, *DOLLARS, "small", "tiny"])  # XSS first: "<" sorts before letters
    assert rows == [f"sizes/{name}" for name in names]
    # The injected name renders as text everywhere: table, legend, options; no element is created.
    # Names with `$` are text too, not LaTeX (Plotly would typeset `$…$` with MathJax around).
    page = browser.wait_for(
        in_frame(
            """
            const legend = [...doc.querySelectorAll("#curves .legendtext")].map((t) => t.textContent);
            // the regularization section loads after the curves and the table: wait for its runs too
            const options = [...doc.querySelectorAll("#run-select option")].map((o) => o.textContent);
            return legend.length === 5 && options.length === 5 ? {
              legend,
              cells: [...doc.querySelectorAll("#summary tbody tr")].map((r) => r.querySelector("td").textContent),
              images: doc.querySelectorAll("img").length,
              math: doc.querySelectorAll("#curves [class*=math]").length,
              options,
            } : null;
            """
        )
    )
    assert page == {"legend": names, "cells": names, "images": 0, "math": 0, "options": names}
    # Even with MathJax on the page (a stub that never finishes typesetting: Plotly hides `$…$` text
    # until it does), a redraw keeps every name visible as text.
    shown = browser.wait_for(
        in_frame(
            """
            doc.defaultView.MathJax = {version: "3.2.2", config: {}, startup: {defaultReady() {}},
              typesetClear() {}, tex2svgPromise: () => new Promise(() => {})};
            const smoothing = doc.querySelector(".toolbar input[type=range]");
            smoothing.value = "0.5";
            smoothing.dispatchEvent(new Event("input"));
            const texts = [...doc.querySelectorAll("#curves .legendtext")];
            return texts.map((t) => [t.textContent, getComputedStyle(t).display]);
            """
        )
    )
    assert shown == [[name, "block"] for name in names]
    browser.screenshot(os.path.join(ARTIFACTS, "overfitting_tab_sizes.png"))
    # Sorting: a click on a header sorts by it, a second click reverses.
    rows = get_json(tensorboard + "data/plugin/overfitting/summary?family=sizes")["rows"]
    by_params = [r["run"] for r in sorted(rows, key=lambda r: (r["params"], rows.index(r)))]
    order = """
        const rows = () => [...doc.querySelectorAll("#summary tbody tr")].map((r) => r.dataset.run);
        const header = [...doc.querySelectorAll("#summary th")].find((th) => th.textContent.startsWith("parameters"));
        header.click();
        const ascending = rows();
        [...doc.querySelectorAll("#summary th")].find((th) => th.textContent.startsWith("parameters")).click();
        return [ascending, rows()];
    """
    ascending, descending = browser.evaluate(in_frame(order))
    assert ascending == by_params
    assert [rows[[r["run"] for r in rows].index(run)]["params"] for run in descending] == sorted(
        (r["params"] for r in rows), reverse=True
    )
    # TensorBoard's own HParams dashboard lists every run, the baseline copy included.
    groups = get_json_post(
        tensorboard + "data/plugin/hparams/session_groups",
        {
            "experimentName": "",
            "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"],
            "colParams": [],
            "startIndex": 0,
            "sliceSize": 100,
        },
    )
    sessions = sorted(s["name"] for g in groups["sessionGroups"] for s in g["sessions"])
    recorded = sorted(str(p.parent.relative_to(logdir)) for p in logdir.rglob("run.json"))
    assert sessions == recorded and f"sizes/{XSS}" in sessions and "seeded/sizes/tiny/mean" in sessions
    assert browser.errors == []


def get_json_post(url, body):
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json", "X-XSRF-Protected": "1"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def test_seed_groups_bands_and_mc_dropout_line(tensorboard, tab):
    """A seed group is its mean's lines with a ±std band per split; MC dropout is a dash-dotted line."""
    browser = tab
    select_family(browser, "seeded/regularizers")
    state = browser.wait_for(
        in_frame(
            """
            const plot = doc.querySelector("#curves .js-plotly-plot");
            const rows = [...doc.querySelectorAll("#summary tbody tr")];
            if (!plot || !plot.data || !rows.length) return null;
            if (!rows[0].dataset.run.startsWith("seeded/regularizers/")) return null;
            const note = doc.querySelector("#curves .section-note").textContent;
            if (!note.endsWith(" in seeded/regularizers")) return null;
            const weights = doc.querySelector("#regularization .weights .js-plotly-plot");
            if (!weights || !weights.data || weights.data.length !== 2) return null;
            const lines = plot.data.filter((t) => !t.fill && t.mode === "lines");
            return {
              legend: [...doc.querySelectorAll("#curves .legendtext")].map((t) => t.textContent),
              bands: plot.data.filter((t) => t.fill === "toself").map((t) => t.legendgroup),
              fills: doc.querySelectorAll("#curves .scatterlayer .trace path.js-fill").length,
              lines: lines.map((t) => [t.legendgroup, t.line.dash]),
              mcDash: [...doc.querySelectorAll("#curves .scatterlayer .trace path.js-line")]
                .map((p) => p.style.strokeDasharray).filter((d) => d === "9px, 3px, 3px, 3px").length,
              rows: rows.map((r) => [
                r.dataset.run, r.querySelector("td").textContent, r.querySelector(".status").textContent,
              ]),
              weights: weights.data.map((t) => t.name),
              note: doc.querySelector("#curves .legend-note").textContent,
            };
            """
        )
    )
    browser.screenshot(os.path.join(ARTIFACTS, "overfitting_tab_seeds.png"))
    tiny, dropout = "seeded/regularizers/tiny/mean", "seeded/regularizers/dropout/mean"
    assert state["legend"] == ["tiny (baseline, 2 seeds)", "dropout (2 seeds)"]
    assert state["lines"] == [
        [tiny, "solid"],
        [tiny, "dash"],
        [tiny, "dot"],
        [dropout, "solid"],
        [dropout, "dash"],
        [dropout, "dot"],
        [dropout, "dashdot"],
    ]
    assert state["bands"] == [tiny] * 3 + [dropout] * 4 and state["fills"] == 7  # one band per line, drawn
    assert state["mcDash"] == 1  # the MC-dropout line, dash-dotted
    assert "validation, MC dropout" in state["note"]
    # (the table is still sorted by parameters, descending, from the test before)
    assert state["rows"] == [
        [dropout, "dropout (2 seeds)", "aggregate"],
        [tiny, "tiny (baseline, 2 seeds)", "aggregate"],
    ]
    assert [name.split(" · epoch ")[0] for name in state["weights"]] == [
        "tiny (baseline, 2 seeds) · seed_0",
        "dropout (2 seeds) · seed_0",
    ]
    # The sizes family: its group, and a group without a mean yet as its seed runs, without bands.
    select_family(browser, "seeded/sizes")
    legend = browser.wait_for(
        in_frame(
            """
            const legend = [...doc.querySelectorAll("#curves .legendtext")].map((t) => t.textContent);
            const plot = doc.querySelector("#curves .js-plotly-plot");
            if (legend.length !== 3) return null;
            return [legend, plot.data.filter((t) => t.fill === "toself").map((t) => t.legendgroup)];
            """
        )
    )
    assert legend == [["pending/seed_0", "pending/seed_1", "tiny (2 seeds)"], ["seeded/sizes/tiny/mean"] * 3]
    assert browser.errors == []


def test_new_epochs_appear_live(tensorboard, tab, logdir):
    """Training writes two more epochs into sizes/small; TensorBoard reloads; the tab's refresh shows them."""
    import tensorflow as tf

    browser = tab
    select_family(browser, "sizes")
    metric = browser.evaluate(in_frame('return doc.querySelector("#metric-select").value;'))
    points = """
        const plot = doc.querySelector("#curves .js-plotly-plot");
        const trace = plot && plot.data.find((t) => t.legendgroup === "sizes/small" && t.line.dash === "solid");
        const n = trace ? trace.x.length : null;
    """
    before = browser.wait_for(in_frame(points + "return n;"))
    writer = tf.summary.create_file_writer(str(logdir / "sizes" / "small" / "train"))
    with writer.as_default():
        for epoch in (before, before + 1):
            tf.summary.scalar(metric, 1.0, step=epoch)
    writer.close()

    def small_steps():
        runs = get_json(f"{tensorboard}data/plugin/overfitting/family?family=sizes&metric={metric}")["runs"]
        return next(r for r in runs if r["run"] == "sizes/small")["series"]["train"]["steps"]

    wait_until(lambda: small_steps()[-1] == before + 1, what="tensorboard to reload the new epochs")
    browser.evaluate(in_frame('doc.querySelector("button.button").click(); return true;'))
    assert browser.wait_for(in_frame(points + f"return n === {before + 2};"))
    assert browser.errors == []


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """A real tensorboard over tests/demo_tree.py's tree of known curves: (base URL, log dir)."""
    from demo_tree import write_demo

    root = tmp_path_factory.mktemp("demo") / "runs"
    write_demo(root)
    proc, url = start_tensorboard(root, "--reload_interval", "1")
    try:
        wait_until(
            lambda: get_json(url + "data/plugins_listing").get("overfitting", {}).get("enabled"),
            what="tensorboard to load the demo tree",
        )
        yield url, root
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_verdicts_markers_and_confidence_band_in_the_tab_and_the_report(demo, tmp_path):
    """The tab and the report on known curves: each run's verdict, the markers (best epoch,
    onset, early stop, where n drops) and a seed group's 95 % CI band; screenshots of both."""
    url, root = demo
    browser = Browser(height=1500)
    try:
        browser.goto(url + "#overfitting")
        browser.wait_for(in_frame("return doc.body.dataset.state === 'ready';"))
        select_family(browser, "demo")
        state = browser.wait_for(
            in_frame(
                """
            const plot = doc.querySelector("#curves .js-plotly-plot");
            const rows = [...doc.querySelectorAll("#summary tbody tr")];
            if (!plot || !plot.data || rows.length !== 3 || !rows[0].dataset.run.startsWith("demo/")) return null;
            const markers = plot.data.filter((t) => t.mode === "markers" && t.hovertemplate.includes("·"));
            if (!markers.length) return null;
            const header = [...doc.querySelectorAll("#summary thead th")].map((th) => th.textContent);
            return {
              header,
              rows: Object.fromEntries(rows.map((r) => [r.querySelector("td").textContent,
                Object.fromEntries([...r.querySelectorAll("td")].map((td, i) => [header[i], td.textContent]))])),
              markers: markers.map((t) => [t.legendgroup, t.x[0], t.hovertemplate.split("<br>")[0]]),
              drops: plot.data.filter((t) => t.mode === "markers+text").map((t) => [t.legendgroup, t.x, t.text]),
              bands: plot.data.filter((t) => t.fill === "toself").map((t) => t.legendgroup),
              hover: plot.data.find((t) => t.legendgroup === "demo/l2/mean" && t.mode === "lines" && !t.fill).hovertemplate,
            };
            """
            )
        )
        browser.evaluate(in_frame('doc.querySelector("#curves").scrollIntoView(); return true;'))
        browser.screenshot(os.path.join(SCREENS, "tab_verdicts.png"))
        rows = state["rows"]
        assert rows["tiny (baseline, 3 seeds)"]["verdict"].startswith("overfits from epoch 25")
        assert "onset in 3 of 3 seeds, epochs 24–26" in rows["tiny (baseline, 3 seeds)"]["verdict"]
        assert rows["l2 (3 seeds)"]["verdict"].startswith("overfits from epoch 40")
        assert rows["dropout"]["verdict"] == "still improving when stopped (raise --max_epochs)"
        assert rows["l2 (3 seeds)"]["vs baseline (paired)"].startswith("-0.0")  # better than the baseline
        assert rows["l2 (3 seeds)"]["± 95% CI"].startswith("± ")
        groups = {g for g, _, _ in state["markers"]}
        assert groups == {"demo/tiny/mean", "demo/l2/mean", "demo/dropout"}
        assert [m[:2] for m in state["markers"]].count(["demo/tiny/mean", 25]) == 2  # dot and onset's open diamond
        assert state["drops"] == [["demo/l2/mean", [46], ["n=2"]]] * 2  # seed 2 stopped early (train, validation)
        assert set(state["bands"]) == {"demo/tiny/mean", "demo/l2/mean"}
        assert "95% CI of the mean" in state["hover"] and "n = " in state["hover"]
        assert browser.errors == []

        report = tmp_path / "report.html"
        proc = subprocess.run(
            [sys.executable, "-m", "tbreg.cli", "share", "report", str(root), "-o", str(report)],
            capture_output=True,
            text=True,
            cwd=REPO,
            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
        )
        assert proc.returncode == 0, proc.stderr
        browser.goto(report.as_uri())
        seen = browser.wait_for("""(() => {
            const charts = [...document.querySelectorAll(".chart.js-plotly-plot")];
            const loss = charts.find((c) => c.dataset.tag === "epoch_binary_crossentropy");
            if (!loss || !loss.data) return null;
            return {
              verdicts: [...document.querySelectorAll("table.summary tbody tr")].map((r) => r.innerText),
              markers: loss.data.filter((t) => t.meta === "best epoch" || t.meta === "overfitting onset")
                .map((t) => [t.name, t.x[0]]),
              bands: loss.data.filter((t) => t.fill === "toself").map((t) => t.name),
              mc: loss.data.filter((t) => t.line && t.line.dash === "dot").map((t) => t.name),
            };
        })()""")
        browser.evaluate('document.querySelector("table.summary").scrollIntoView(); true')
        browser.screenshot(os.path.join(SCREENS, "report_verdicts.png"))
        assert any("overfits from epoch 25" in v for v in seen["verdicts"])
        assert ["l2 best epoch", 40] in seen["markers"] and ["tiny best epoch", 25] in seen["markers"]
        assert ["l2 overfitting onset", 40] in seen["markers"]  # the open diamond around the dot
        assert "l2 validation 95% CI of the mean" in seen["bands"]
        assert seen["mc"] == ["dropout train_eval"]  # train_eval dotted; no MC line in this tree
        assert browser.errors == []
    finally:
        browser.close()


def test_tab_is_active_for_a_plain_keras_log_in_tensorboard(tmp_path):
    """`tensorboard` itself (RustBoard by default) over keras.callbacks.TensorBoard's log alone,
    with the plugin's flag `--overfitting_warm_up=false`."""
    import keras
    import numpy as np

    keras.utils.set_random_seed(0)
    x, y = np.random.default_rng(0).normal(size=(64, 4)), np.arange(64) % 2
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, "relu"), keras.layers.Dense(1)])
    model.compile("adam", keras.losses.BinaryCrossentropy(from_logits=True))
    model.fit(
        x,
        y,
        validation_split=0.25,
        epochs=3,
        verbose=0,
        callbacks=[keras.callbacks.TensorBoard(str(tmp_path / "logs" / "run1"))],
    )
    # the plugin's own flag (its TBLoader): read on request, no warm-up at start
    proc, url = start_tensorboard(tmp_path / "logs", "--reload_interval", "1", "--overfitting_warm_up=false")
    try:
        wait_until(
            lambda: get_json(url + "data/plugins_listing")["overfitting"]["enabled"],
            what="the Overfitting tab to be enabled",
        )
        (family,) = get_json(url + "data/plugin/overfitting/families")["families"]
        assert [r["name"] for r in family["runs"]] == ["run1"] and "epoch_loss" in family["metrics"]
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def view_hash(**params):
    """TensorBoard's hash for the Overfitting tab with a view (`#overfitting&view=<query>`)."""
    import urllib.parse

    query = urllib.parse.urlencode([(k, v) for k, vs in params.items() for v in (vs if isinstance(vs, list) else [vs])])
    return "#overfitting&view=" + urllib.parse.quote(query, safe="")


VIEW_STATE_JS = """
  const plot = doc.querySelector("#curves .js-plotly-plot");
  const rows = [...doc.querySelectorAll("#summary tbody tr")];
  if (!plot || !plot.data || !rows.length || doc.body.dataset.state !== "ready") return null;
  const lines = plot.data.filter((t) => t.mode === "lines" && !t.fill);
  return {
    family: doc.querySelector("#family-select").value,
    metric: doc.querySelector("#metric-select").value,
    smoothing: doc.querySelector("#smoothing").value,
    logX: doc.querySelector("#log-x").checked,
    yMin: doc.querySelector("#y-min").value,
    yMax: doc.querySelector("#y-max").value,
    filter: doc.querySelector("#filter-input").value,
    group: doc.querySelector("#group-select").value,
    xType: plot.layout.xaxis.type,
    yRange: plot.layout.yaxis.range,
    rows: rows.map((r) => r.dataset.run),
    unticked: rows.filter((r) => !r.querySelector("td input[type=checkbox]").checked).map((r) => r.dataset.run),
    hiddenLines: [...new Set(lines.filter((t) => t.visible === "legendonly").map((t) => t.legendgroup))],
    shownLines: [...new Set(lines.filter((t) => t.visible !== "legendonly").map((t) => t.legendgroup))],
    hash: doc.defaultView.parent.location.hash,
  };
"""


# VIEW_STATE_JS once the table shows groups
GROUPED_STATE_JS = VIEW_STATE_JS.replace(
    "return {", "if (!rows[0].dataset.run.startsWith('group:')) return null; return {"
)


def test_a_deep_link_reopens_the_same_view(demo):
    """A link with the view in TensorBoard's hash opens the tab on that view (family, metric,
    smoothing, log-x, y-range, hidden runs, filter); a change in the tab goes into the hash, and the
    link then reopens it in a fresh browser (a colleague) and after a reload; a bad filter is a
    one-line message beside the filter box, not a blank page."""
    url, _ = demo
    link = url + view_hash(
        family="demo",
        metric="epoch_binary_crossentropy",
        smoothing="0.3",
        logx="1",
        ymin="0.3",
        ymax="1.2",
        hide="demo/l2/mean",
        filter="dropout = 0",
    )
    first = Browser(height=1300)
    try:
        first.goto(link)
        state = first.wait_for(in_frame(VIEW_STATE_JS))
        assert state["family"] == "demo" and state["metric"] == "epoch_binary_crossentropy"
        assert (state["smoothing"], state["logX"], state["yMin"], state["yMax"]) == ("0.3", True, "0.3", "1.2")
        assert state["xType"] == "log" and state["yRange"] == [0.3, 1.2]
        assert state["filter"] == "dropout = 0"
        assert state["rows"] == ["demo/tiny/mean", "demo/l2/mean"]  # the dropout run is filtered out
        assert state["unticked"] == ["demo/l2/mean"] and state["hiddenLines"] == ["demo/l2/mean"]
        assert state["shownLines"] == ["demo/tiny/mean"]
        # the regularization section below follows the filter too
        picker = first.wait_for(
            in_frame(
                """const options = [...doc.querySelectorAll("#run-select option")].map((o) => o.value);
                return options.length ? options : null;"""
            )
        )
        assert picker == ["demo/tiny/mean", "demo/l2/mean"]
        first.screenshot(os.path.join(SCREENS, "tab_deep_link.png"))

        # a change in the tab: group by dropout, no filter, l2 shown again -> into the hash
        first.evaluate(
            in_frame(
                """
            const filter = doc.querySelector("#filter-input");
            filter.value = "";
            filter.dispatchEvent(new Event("change"));
            const group = doc.querySelector("#group-select");
            group.value = "dropout";
            group.dispatchEvent(new Event("change"));
            return true;
            """
            )
        )
        grouped = first.wait_for(in_frame(GROUPED_STATE_JS))
        assert grouped["rows"] == ["group:dropout=0", "group:dropout=0.5"]
        assert "group%3Ddropout" in grouped["hash"] and "filter" not in grouped["hash"]
        link = first.evaluate("location.href")
        assert first.errors == []
    finally:
        first.close()

    colleague = Browser(height=1300)
    try:
        colleague.goto(link)
        again = colleague.wait_for(in_frame(GROUPED_STATE_JS))
        for key in ("family", "metric", "smoothing", "logX", "yMin", "yMax", "filter", "group", "rows", "yRange"):
            assert again[key] == grouped[key], key
        colleague.send("Page.reload")
        reloaded = colleague.wait_for(in_frame(GROUPED_STATE_JS))
        assert reloaded["rows"] == grouped["rows"] and reloaded["group"] == "dropout"
        colleague.screenshot(os.path.join(SCREENS, "tab_grouped.png"))

        # a bad filter: one line beside the box, the page stays
        colleague.evaluate(
            in_frame(
                """
            const filter = doc.querySelector("#filter-input");
            filter.value = "nope > 1";
            filter.dispatchEvent(new Event("change"));
            return true;
            """
            )
        )
        message = colleague.wait_for(in_frame('return doc.querySelector("#filter-message").textContent;'))
        assert message.startswith("filter 'nope > 1': no hyperparameter 'nope'") and "\n" not in message
        assert colleague.evaluate(in_frame('return !!doc.querySelector("#family-select");'))
        colleague.screenshot(os.path.join(SCREENS, "tab_bad_filter.png"))
        assert [e for e in colleague.errors if "400" not in str(e)] == []
    finally:
        colleague.close()
