// The "Overfitting" tab: TensorBoard imports this module in the tab's iframe and calls render().
// Wiring only: state, controls and refresh; data comes from model.js, DOM and figures from views.js.

import {Latest, csv, download, fetchJson, loadPlotly, metricLabel, runColors} from "./model.js";
import * as views from "./views.js";
import {Diagnostics} from "./diagnostics.js";

const LIVE_SECONDS = 10;

const state = {
  families: [],
  family: null,
  compare: [],  // more families in the same comparison
  filter: "",
  group: "",
  hidden: new Set(),  // runs hidden in the chart
  highlight: null,  // the run whose curves stand out
  columns: "varying",  // hyperparameter columns: "varying" (those that differ), "all", "none"
  weightsLogY: false,
  weightsView: "overlay",  // or "history": one run's distribution over its epochs
  metric: null,
  smoothing: 0.6,
  band: "ci",
  logX: false,
  yMin: null,
  yMax: null,
  sort: {key: null, descending: false},
  regRun: null,
  weightTag: null,
  weightEpoch: null,
  live: true,
};
const answers = {curves: null, summary: null, regularization: null, weights: null};
const answerTexts = {};  // the JSON each view last drew: a live refresh that changed nothing redraws nothing
const latest = new Latest();
let Plotly = null;
let plotlyReady = null;
let ui = null;

export async function render() {
  const style = views.el("link", {rel: "stylesheet", href: new URL("./style.css", import.meta.url).href});
  document.head.append(style);
  readUrl();
  ui = buildPage();
  document.body.replaceChildren(ui.page);
  // plotly.js (3.5 MB: ~0.9 s to compile and run, blocking the page, until the browser has cached its
  // compiled code) loads while the first answers are on their way (the plugin warmed up at start)
  plotlyReady = loadPlotly().then((loaded) => { Plotly = loaded; return loaded; });
  try {
    await Promise.all([plotlyReady, refreshAll()]);
  } catch (error) {
    ui.status.textContent = error.message;
    return;
  }
  document.body.dataset.state = "ready";
  setInterval(() => {
    if (state.live && document.visibilityState !== "hidden") refreshAll();
  }, LIVE_SECONDS * 1000);
}

// ---------------------------------------------------------------------------------------------
// The view in the URL: TensorBoard's page keeps `#overfitting&view=<query>` (its own hash part
// names the tab; it leaves other `&key=value` parts alone), so a link or a reload reopens the view.
// The tab is TensorBoard's same-origin iframe; elsewhere (a proxy that isolates it) its own hash.

const URL_KEY = "view";

function hostWindow() {
  try {
    return window.parent !== window && window.parent.location.hash !== undefined ? window.parent : window;
  } catch (error) {
    return window;  // cross-origin parent
  }
}

function hashParams(win) {
  return new URLSearchParams(win.location.hash.replace(/^#/, ""));
}

function readUrl() {
  const text = hashParams(hostWindow()).get(URL_KEY);
  if (!text) return;
  const q = new URLSearchParams(text);
  const number = (key) => (q.has(key) && q.get(key) !== "" && Number.isFinite(Number(q.get(key))) ? Number(q.get(key)) : null);
  if (q.has("family")) state.family = q.get("family");
  state.compare = q.getAll("compare");
  if (q.has("metric")) state.metric = q.get("metric");
  if (number("smoothing") !== null) state.smoothing = Math.min(0.99, Math.max(0, number("smoothing")));
  state.logX = q.get("logx") === "1";
  state.yMin = number("ymin");
  state.yMax = number("ymax");
  if (["ci", "std"].includes(q.get("band"))) state.band = q.get("band");
  state.hidden = new Set(q.getAll("hide"));
  state.filter = q.get("filter") || "";
  state.group = q.get("group") || "";
  state.highlight = q.get("highlight") || null;
  if (["varying", "all", "none"].includes(q.get("columns"))) state.columns = q.get("columns");
  if (q.has("sort")) state.sort = {key: q.get("sort"), descending: q.get("desc") === "1"};
}

function writeUrl() {
  const q = new URLSearchParams();
  if (state.family !== null) q.set("family", state.family);
  for (const f of state.compare) q.append("compare", f);
  if (state.metric) q.set("metric", state.metric);
  q.set("smoothing", String(state.smoothing));
  if (state.logX) q.set("logx", "1");
  if (state.yMin !== null) q.set("ymin", String(state.yMin));
  if (state.yMax !== null) q.set("ymax", String(state.yMax));
  if (state.band !== "ci") q.set("band", state.band);
  for (const run of state.hidden) q.append("hide", run);
  if (state.filter) q.set("filter", state.filter);
  if (state.group) q.set("group", state.group);
  if (state.highlight) q.set("highlight", state.highlight);
  if (state.columns !== "varying") q.set("columns", state.columns);
  if (state.sort.key) {
    q.set("sort", state.sort.key);
    if (state.sort.descending) q.set("desc", "1");
  }
  const win = hostWindow();
  const hash = hashParams(win);
  hash.set(URL_KEY, q.toString());
  const text = "#" + hash.toString().replace(/^overfitting=(&|$)/, "overfitting$1");
  if (win.location.hash !== text) win.history.replaceState(win.history.state, "", text);
}

/** The families of the comparison: the chosen one and the ones added to it. */
function selectedFamilies() {
  return [state.family, ...state.compare.filter((f) => f !== state.family)];
}

function viewParams() {
  return {family: selectedFamilies(), filter: state.filter || null, group: state.group || null};
}

/** The runs of the sections below the table (regularization, weights, diagnostics): the view's, ungrouped. */
function sectionParams() {
  return {family: selectedFamilies(), filter: state.filter || null};
}

// ---------------------------------------------------------------------------------------------
// Page

class ChartSlot {
  constructor(className = "") {
    this.plot = views.el("div", {className: "plot"});
    this.message = views.el("div", {className: "message empty", hidden: true});
    this.node = views.el("div", {className: `chart ${className}`}, this.plot, this.message);
  }

  show(figure) {
    this.message.hidden = true;
    this.plot.hidden = false;
    this.plotted = true;
    this.figure = figure;
    return plotlyReady.then(() => (this.figure === figure ? views.plot(Plotly, this.plot, figure.data, figure.layout) : null));
  }

  empty(text, kind = "empty") {
    this.figure = null;
    if (this.plotted && Plotly) Plotly.purge(this.plot);
    this.plotted = false;
    this.plot.hidden = true;
    this.message.className = `message ${kind}`;
    this.message.textContent = text;
    this.message.hidden = false;
  }
}

function numberInput(placeholder, onChange) {
  const input = views.el("input", {type: "number", step: "any", placeholder, className: "short"});
  input.addEventListener("change", () => onChange(input.value === "" ? null : Number(input.value)));
  return input;
}

function buildPage() {
  const familySelect = views.select("family-select", (value) => selectFamily(value));
  const metricSelect = views.select("metric-select", (value) => {
    state.metric = value;
    writeUrl();
    refreshCurves();
  });
  const compareSelect = views.select("compare-select", (value) => {
    if (value && !state.compare.includes(value)) state.compare.push(value);
    compareSelect.value = "";
    drawCompare();
    selectionChanged();
  });
  const compareChips = views.el("span", {className: "chips", id: "compare-chips"});
  const filterInput = views.el("input", {type: "search", id: "filter-input", className: "filter", value: state.filter,
    placeholder: "filter: l2 > 1e-4, dropout = 0.5, a name regex"});
  filterInput.addEventListener("change", () => {
    state.filter = filterInput.value.trim();
    selectionChanged();
  });
  const filterMessage = views.el("span", {className: "filter-message", id: "filter-message", attrs: {"aria-live": "polite"}});
  const groupSelect = views.select("group-select", (value) => {
    state.group = value;
    state.highlight = null;
    selectionChanged();
  });
  const smoothing = views.el("input", {type: "range", min: "0", max: "0.99", step: "0.01", value: String(state.smoothing)});
  const smoothingValue = views.el("span", {className: "value"}, state.smoothing.toFixed(2));
  smoothing.addEventListener("input", () => {
    state.smoothing = Number(smoothing.value);
    smoothingValue.textContent = state.smoothing.toFixed(2);
    writeUrl();
    drawCurves();
  });
  const logX = views.el("input", {type: "checkbox", checked: state.logX});
  logX.addEventListener("change", () => {
    state.logX = logX.checked;
    writeUrl();
    drawCurves();
  });
  const bandSelect = views.select("band-select", (value) => {
    state.band = value;
    writeUrl();
    refreshCurves();
  });
  views.setOptions(bandSelect, [["ci", "95% CI of the mean"], ["std", "± std"]], state.band);
  const yMin = numberInput("auto", (v) => { state.yMin = v; writeUrl(); drawCurves(); });
  const yMax = numberInput("auto", (v) => { state.yMax = v; writeUrl(); drawCurves(); });
  yMin.id = "y-min";
  yMax.id = "y-max";
  if (state.yMin !== null) yMin.value = String(state.yMin);
  if (state.yMax !== null) yMax.value = String(state.yMax);
  smoothing.id = "smoothing";
  logX.id = "log-x";
  const live = views.el("input", {type: "checkbox", checked: state.live});
  live.addEventListener("change", () => { state.live = live.checked; });
  const refresh = views.el("button", {type: "button", className: "button"}, "Refresh");
  refresh.addEventListener("click", () => refreshAll());
  const status = views.el("span", {className: "status-line", attrs: {"aria-live": "polite"}}, "Loading…");

  const toolbar = views.el("header", {className: "toolbar"},
    views.field("Family", familySelect),
    views.field("Compare with", views.el("span", {className: "inline"}, compareSelect, compareChips)),
    views.field("Metric", metricSelect),
    views.field("Smoothing", views.el("span", {className: "inline"}, smoothing, smoothingValue)),
    views.el("label", {className: "check"}, logX, "log-scale epochs"),
    views.field("y range", views.el("span", {className: "inline"}, yMin, "–", yMax)),
    views.field("Seed band", bandSelect),
    views.el("span", {className: "spacer"}),
    views.el("label", {className: "check"}, live, `live (every ${LIVE_SECONDS} s)`),
    refresh,
    status,
  );
  const columnsSelect = views.select("columns-select", (value) => {
    state.columns = value;
    writeUrl();
    drawSummary();
  });
  views.setOptions(columnsSelect, [["varying", "those that differ"], ["all", "all"], ["none", "none"]], state.columns);
  const downloadButton = (label, onClick) => {
    const b = views.el("button", {type: "button", className: "button small"}, label);
    b.addEventListener("click", onClick);
    return b;
  };
  const filterBar = views.el("div", {className: "toolbar filterbar"},
    views.field("Filter runs", views.el("span", {className: "inline"}, filterInput, filterMessage)),
    views.field("Group by", groupSelect),
    views.field("Hyperparameter columns", columnsSelect),
    views.el("span", {className: "spacer"}),
    views.el("span", {className: "inline downloads"}, "Download:",
      downloadButton("curves CSV", () => downloadCurves("csv")),
      downloadButton("curves JSON", () => downloadCurves("json")),
      downloadButton("table CSV", () => downloadTable("csv")),
      downloadButton("table JSON", () => downloadTable("json"))),
  );

  const curves = views.section("Runs of the family", "");
  curves.node.id = "curves";
  const curvesChart = new ChartSlot();
  curves.body.append(
    views.el("div", {className: "legend-note"},
      views.el("span", {className: "dash solid"}), "train",
      views.el("span", {className: "dash dashed"}), "validation",
      views.el("span", {className: "dash dotted"}), "train, inference mode",
      views.el("span", {className: "dash dashdot"}), "validation, MC dropout",
      views.el("span", {className: "band"}), "a seed group's band (see Seed band; hover: n seeds)",
      views.el("span", {className: "marker dot"}), "best epoch",
      views.el("span", {className: "marker diamond"}), "overfitting onset (open diamond)",
      views.el("span", {className: "marker cross"}), "early stopping fired",
      views.el("span", {className: "hint"}, "· hover for values · click a run in the legend or its box in the table to hide it, a table row to highlight it")),
    curvesChart.node,
  );
  curvesChart.plot.id = "curves-plot";
  const curvesInfo = views.el("p", {className: "section-note info", id: "curves-info"});
  curves.note.after(curvesInfo);

  const summary = views.section("Summary", "Best epoch = lowest validation data loss (the loss without the penalty); a seed group's row is its mean over the seeds. Click a header to sort.");
  summary.node.id = "summary";
  const summaryBody = views.el("div", {className: "table-wrap"});
  summary.body.append(summaryBody);

  const reg = views.section("Regularization", "");
  reg.node.id = "regularization";
  const regRunSelect = views.select("run-select", (value) => {
    state.regRun = value;
    drawRegularization();
  });
  const penaltyChart = new ChartSlot("penalty");
  const layersChart = new ChartSlot("layers");
  const weightSelect = views.select("weights-select", (value) => {
    state.weightTag = value;
    state.weightEpoch = null;
    refreshWeights();
  });
  const epochInput = views.el("input", {type: "number", min: "0", step: "1", className: "short"});
  const epochSlider = views.el("input", {type: "range", min: "0", step: "1"});
  const setEpoch = (value) => {
    state.weightEpoch = Math.max(0, Math.round(Number(value) || 0));
    epochInput.value = String(state.weightEpoch);
    epochSlider.value = String(state.weightEpoch);
    refreshWeights();
  };
  epochInput.addEventListener("change", () => setEpoch(epochInput.value));
  epochSlider.addEventListener("change", () => setEpoch(epochSlider.value));
  const weightsChart = new ChartSlot("weights");
  const weightsView = views.select("weights-view", (value) => {
    state.weightsView = value;
    refreshWeights();
  });
  views.setOptions(weightsView, [["overlay", "all runs at one epoch"], ["history", "the chosen run over its epochs (heatmap)"]], state.weightsView);
  const weightsLogY = views.el("input", {type: "checkbox", checked: state.weightsLogY, id: "weights-log-y"});
  weightsLogY.addEventListener("change", () => {
    state.weightsLogY = weightsLogY.checked;
    drawWeights();
  });
  const epochField = views.field("Epoch", views.el("span", {className: "inline"}, epochSlider, epochInput));
  const weightControls = views.el("div", {className: "controls"},
    views.field("Weights", weightSelect),
    views.field("Show", weightsView),
    epochField,
    views.el("label", {className: "check"}, weightsLogY, "log scale (an L1 spike at 0 no longer flattens the rest)"));
  reg.body.append(
    views.el("div", {className: "controls"}, views.field("Run", regRunSelect)),
    views.el("div", {className: "grid2"},
      views.el("div", {}, views.el("h3", {}, "Training loss = data loss + penalty"), penaltyChart.node),
      views.el("div", {}, views.el("h3", {}, "Penalty per layer"), layersChart.node)),
    views.el("h3", {}, "Weight distribution across runs"),
    weightControls,
    weightsChart.node,
  );

  const diagnostics = new Diagnostics();
  const page = views.el("div", {className: "page"}, toolbar, filterBar,
    views.el("main", {}, curves.node, summary.node, reg.node, diagnostics.node));
  return {
    diagnostics,
    page, familySelect, metricSelect, status, curves, curvesChart, summary, summaryBody, reg,
    compareSelect, compareChips, curvesInfo, filterInput, filterMessage, groupSelect, columnsSelect, epochField,
    regRunSelect, penaltyChart, layersChart, weightSelect, epochInput, epochSlider, weightsChart, weightControls,
  };
}

// ---------------------------------------------------------------------------------------------
// Selection

function currentFamily() {
  return state.families.find((f) => f.family === state.family) || null;
}

function selectFamily(family) {
  state.family = family;
  state.compare = state.compare.filter((f) => f !== family);
  state.hidden = new Set();
  state.highlight = null;
  drawCompare();
  state.regRun = null;
  state.weightTag = null;
  state.weightEpoch = null;
  syncMetric();
  writeUrl();
  refreshViews();
}

/** The filter, group or compared families changed: curves and table, then the sections below. */
function selectionChanged() {
  writeUrl();
  return Promise.all([refreshCurves(), refreshSummary()]).then(refreshSections);
}

function drawCompare() {
  const others = state.families.map((f) => f.family).filter((f) => f !== state.family && !state.compare.includes(f));
  views.setOptions(ui.compareSelect, [["", others.length ? "+ add a family" : "—"], ...others.map((f) => [f, views.familyLabel(f)])], "");
  ui.compareChips.replaceChildren(...state.compare.map((f) => {
    const remove = views.el("button", {type: "button", className: "chip-x", title: `remove ${views.familyLabel(f)}`}, "×");
    remove.addEventListener("click", () => {
      state.compare = state.compare.filter((x) => x !== f);
      drawCompare();
      selectionChanged();
    });
    return views.el("span", {className: "chip"}, views.familyLabel(f), remove);
  }));
}

function syncMetric() {
  const family = currentFamily();
  const chosen = state.families.filter((f) => selectedFamilies().includes(f.family));
  const metrics = family ? [...new Set(chosen.flatMap((f) => f.metrics))].sort() : [];
  if (!metrics.includes(state.metric)) state.metric = family ? family.data_loss : null;
  views.setOptions(ui.metricSelect, metrics.map((m) => [m, metricLabel(m) + (family && m === family.data_loss ? " (data loss)" : "")]), state.metric);
}

// ---------------------------------------------------------------------------------------------
// Refresh: families, then every view

let refreshing = null;

function refreshAll() {
  if (!refreshing) {
    refreshing = (async () => {
      try {
        const outcome = await latest.run("families", () => fetchJson("families"));
        if (!outcome.current) return;
        state.families = outcome.result.value.families;
        if (!currentFamily()) state.family = state.families.length ? state.families[0].family : null;
        const names = new Set(state.families.map((f) => f.family));
        state.compare = state.compare.filter((f) => names.has(f) && f !== state.family);
        views.setOptions(ui.familySelect, state.families.map((f) => [f.family, `${views.familyLabel(f.family)} (${f.runs.length})`]), state.family);
        drawCompare();
        syncMetric();
        writeUrl();
        await refreshViews();
        ui.status.textContent = `updated ${new Date().toLocaleTimeString()}`;
      } catch (error) {
        ui.status.textContent = `error: ${error.message}`;
      } finally {
        refreshing = null;
      }
    })();
  }
  return refreshing;
}

function refreshViews() {
  if (state.family === null) {
    const text = "No tbreg runs in this log dir yet: train a family (tbreg-train-sizes) and they appear here.";
    ui.curvesChart.empty(text);
    ui.summaryBody.replaceChildren(views.message(text));
    ui.penaltyChart.empty(text);
    ui.layersChart.empty("");
    ui.weightsChart.empty("");
    return Promise.resolve();
  }
  // the regularization and diagnostics sections (below the fold) after the curves and the table:
  // on a big family their routes would compete with theirs for the server's CPU
  return Promise.all([refreshCurves(), refreshSummary()]).then(refreshSections);
}

function refreshSections() {
  return Promise.all([refreshRegularization(), plotlyReady.then((loaded) => ui.diagnostics.refresh(sectionParams(), loaded))]);
}

/** Fetches a view's data and draws it, unless a newer request for the view started meanwhile. */
async function load(view, route, params, onAnswer, onError) {
  let outcome;
  try {
    outcome = await latest.run(view, () => fetchJson(route, params));
  } catch (error) {
    answers[view] = null;
    answerTexts[view] = null;
    onError(error);
    return;
  }
  if (outcome.current && outcome.result.text !== answerTexts[view]) {
    answers[view] = outcome.result.value;
    answerTexts[view] = outcome.result.text;
    await onAnswer(outcome.result.value);
  }
}

function refreshCurves() {
  if (!state.metric) {
    ui.curvesChart.empty("No epoch_ scalars in this family yet.");
    return Promise.resolve();
  }
  return load("curves", "family", {...viewParams(), metric: state.metric, band: state.band}, drawCurves,
    (error) => { ui.curves.note.textContent = ""; ui.curvesInfo.textContent = ""; ui.curvesChart.empty(error.message, "error"); showFilterError(error); });
}

/** A bad filter or group-by: its one-line message beside the filter box (and in the views). */
function showFilterError(error) {
  ui.filterMessage.textContent = error ? error.message.replace(/^Invalid argument: /, "") : "";
  ui.filterInput.classList.toggle("bad", Boolean(error));
}

function drawCurves() {
  const answer = answers.curves;
  if (!answer) return;
  showFilterError(null);
  const where = answer.families.map(views.familyLabel).join(" + ");
  const what = answer.group ? `runs grouped by ${answer.group} (mean of every run and seed in a group, with its band)` : "runs";
  const shown = answer.shown === answer.total ? `${answer.total}` : `${answer.shown} of ${answer.total} (filter: ${answer.filter})`;
  const sampled = answer.points ? ` Curves of more than ${answer.points} points are drawn with about ${answer.points} of their ${answer.longest} ` +
    "(each curve's minimum, maximum, best epoch and ends exactly; the table and the downloads use every epoch)." : "";
  const plain = !answer.group && answer.shown === answer.total;
  ui.curves.note.textContent = plain ? `${metricLabel(answer.metric)} of every run in ${where}` : `${metricLabel(answer.metric)} of the ${what} in ${where}`;
  const legendNote = answer.runs.length > views.LEGEND_MAX ? ` No legend above ${views.LEGEND_MAX} lines: hide and highlight runs in the table.` : "";
  ui.curvesInfo.textContent = (plain ? "" : `${shown} runs.`) + sampled + legendNote;
  if (!answer.runs.length) {
    ui.curvesChart.empty(answer.filter ? `No run of ${where} matches the filter ${answer.filter}.` : "No runs.");
    return;
  }
  const plot = ui.curvesChart.plot;
  Promise.resolve(ui.curvesChart.show(views.familyFigure(answer, state, answers.summary))).then(() => {
    if (!plot.on) return;  // superseded by a newer figure before plotly.js was ready
    plot.removeAllListeners("plotly_legendclick");
    plot.removeAllListeners("plotly_legenddoubleclick");
    plot.on("plotly_legendclick", (event) => {
      const run = event.data[event.curveNumber].legendgroup;
      if (run) toggleRun(run);
      return false;  // the tab, not Plotly, keeps which runs are hidden (in the URL too)
    });
    plot.on("plotly_legenddoubleclick", () => false);
  });
}

function toggleRun(run) {
  if (state.hidden.has(run)) state.hidden.delete(run);
  else state.hidden.add(run);
  writeUrl();
  drawCurves();
  drawSummaryTable();
}

function highlightRun(run) {
  state.highlight = state.highlight === run ? null : run;
  writeUrl();
  drawCurves();
  drawSummaryTable();
}

function refreshSummary() {
  return load("summary", "summary", viewParams(), drawSummary,
    (error) => { ui.summaryBody.replaceChildren(views.message(error.message, "error")); showFilterError(error); });
}

const TABLE_ROWS = 200;  // rows drawn at first (a table of 1,000 runs is slow to build)
let showAllRows = false;

function hparamKeys(answer) {
  if (state.columns === "none") return [];
  return state.columns === "all" ? answer.hparam_keys : answer.varying;
}

function drawSummaryTable() {
  const answer = answers.summary;
  if (!answer) return;
  const onSort = (key) => {
    state.sort = {key, descending: state.sort.key === key ? !state.sort.descending : false};
    writeUrl();
    drawSummaryTable();
  };
  const keys = hparamKeys(answer);
  const limit = showAllRows ? Infinity : TABLE_ROWS;
  const table = answer.rows.length
    ? views.summaryTable(answer, state.sort, onSort, runColors(answer.rows),
      {keys, hidden: state.hidden, highlight: state.highlight, onToggle: toggleRun, onHighlight: highlightRun, limit})
    : views.message(answer.filter ? `No run matches the filter ${answer.filter}.` : "No runs.");
  const more = [];
  if (answer.rows.length > limit) {
    const all = views.el("button", {type: "button", className: "button small", id: "all-rows"}, `show all ${answer.rows.length} rows`);
    all.addEventListener("click", () => { showAllRows = true; drawSummaryTable(); });
    more.push(views.el("p", {className: "section-note"}, `The first ${limit} rows (in the table's order) of ${answer.rows.length}; filter or group to narrow. `, all));
  }
  ui.summaryBody.replaceChildren(table, ...more);
}

function drawSummary() {
  const answer = answers.summary;
  if (!answer) return;
  showFilterError(null);
  views.setOptions(ui.groupSelect, [["", "— (each run)"], ...answer.hparam_keys.map((k) => [k, k])], state.group);
  if (state.group && !answer.hparam_keys.includes(state.group)) views.setOptions(ui.groupSelect, [["", "— (each run)"], ...answer.hparam_keys.map((k) => [k, k]), [state.group, state.group]], state.group);
  const c = answer.criterion;
  ui.summary.note.textContent = "Best epoch = lowest validation data loss (the loss without the penalty); the gap is " +
    "against the training loss in inference mode (train_eval) where it was logged, else Keras' training loss (marked \"dropout on\" for a model with dropout). " +
    `Onset: Prechelt's GL${c.threshold} (validation ${c.threshold}% above its lowest so far) on a centred ` +
    `${c.window}-epoch moving average. A seed group's row is its mean; ± is the ${100 * c.confidence}% CI over its seeds. Click a header to sort.` +
    (answer.group ? ` Grouped by ${answer.group}: a row is the mean curve of every run and seed in the group; ± and the onsets are over those curves.` : "") +
    " Untick a run's box to hide it in the chart; click a row to highlight its curves.";
  drawSummaryTable();
  drawCurves();  // the markers come from the summary
}

// ---------------------------------------------------------------------------------------------
// Downloads: what the view shows (its runs, filter and group), the curves with every epoch.

function fileStem() {
  const parts = [...selectedFamilies(), state.group && `by-${state.group}`].filter(Boolean);
  return parts.join("_").replace(/[^A-Za-z0-9_.=-]+/g, "-") || "root";
}

async function downloadCurves(format) {
  if (!state.metric) return;
  ui.status.textContent = "preparing the download…";
  try {
    const {text, value} = await fetchJson("family", {...viewParams(), metric: state.metric, band: state.band, points: 0});
    const name = `${fileStem()}_${state.metric}`;
    if (format === "json") {
      download(`${name}.json`, text, "application/json");
    } else {
      const rows = [["run", "name", "split", "epoch", "value", "band_half_width", "band_n"]];
      for (const run of value.runs) {
        for (const [split, series] of Object.entries(run.series)) {
          const band = (run.band || {})[split];
          const at = band ? new Map(band.steps.map((s, i) => [s, [band.half[i], band.n ? band.n[i] : null]])) : new Map();
          series.steps.forEach((step, i) => rows.push([run.run, run.name, split, step, series.values[i], ...(at.get(step) || [null, null])]));
        }
      }
      download(`${name}.csv`, csv(rows), "text/csv");
    }
    ui.status.textContent = `downloaded ${name}.${format}`;
  } catch (error) {
    ui.status.textContent = `download failed: ${error.message}`;
  }
}

function downloadTable(format) {
  const answer = answers.summary;
  if (!answer) return;
  const name = `${fileStem()}_summary`;
  if (format === "json") {
    download(`${name}.json`, JSON.stringify(answer, null, 1), "application/json");
    return;
  }
  const columns = views.tableColumns(answer.hparam_keys);
  const rows = views.sortRows(views.withHparams(answer.rows, columns), state.sort).map((row) => [row.run,
    ...columns.map((c) => views.cellValue(row, c)), row.onset_spread, row.paired_text]);
  const header = ["run", ...columns.map((c) => c.key.replace(/^hp:/, "")), "onset_spread", "paired_text"];
  download(`${name}.csv`, csv([header, ...rows]), "text/csv");
}

function refreshRegularization() {
  return load("regularization", "regularization", sectionParams(), (answer) => {
    drawRegularization();
    const tags = Object.keys(answer.weights);
    if (!tags.includes(state.weightTag)) {
      state.weightTag = tags.find((t) => t.endsWith("/kernel")) || tags[0] || null;
      state.weightEpoch = null;
    }
    views.setOptions(ui.weightSelect, tags.map((t) => [t, t.replace(/^weights\//, "")]), state.weightTag);
    return refreshWeights();
  }, (error) => {
    ui.penaltyChart.empty(error.message, "error");
    ui.layersChart.empty("");
  });
}

function drawRegularization() {
  const answer = answers.regularization;
  if (!answer) return;
  const runs = answer.runs;
  if (!runs.some((r) => r.run === state.regRun)) {
    const penalized = runs.find((r) => r.penalty && r.penalty.values.some((v) => v > 0));
    state.regRun = (penalized || runs[0] || {}).run || null;
  }
  views.setOptions(ui.regRunSelect, runs.map((r) => [r.run, views.runLabel(r)]), state.regRun);
  if (state.weightsView === "history" && answers.weights && answers.weights.run !== state.regRun) refreshWeights();
  const run = runs.find((r) => r.run === state.regRun);
  const colors = runColors(runs);
  ui.reg.note.textContent = run && run.penalty_source
    ? `Penalty from ${run.penalty_source}; per-layer penalties and weights come from tbreg's callbacks.`
    : "Per-layer penalties and weights come from tbreg's callbacks.";
  if (!runs.length) {
    ui.penaltyChart.empty(state.filter ? `No run matches the filter ${state.filter}.` : "No runs.");
  } else if (!run || (!run.data_loss && !run.penalty)) {
    ui.penaltyChart.empty("No training loss logged for this run yet.");
  } else {
    ui.penaltyChart.show(views.penaltyFigure(run, colors.get(run.run)));
  }
  if (!run || !Object.keys(run.layers).length) {
    ui.layersChart.empty("No per-layer penalties (regularization/<layer> tags) logged for this run.");
  } else {
    ui.layersChart.show(views.layersFigure(run));
  }
}

function refreshWeights() {
  const regularization = answers.regularization;
  ui.weightControls.hidden = !regularization || !state.weightTag;
  if (ui.weightControls.hidden) {
    ui.weightsChart.empty("No weight histograms (weights/<layer>/kernel tags) logged in this family.");
    return Promise.resolve();
  }
  const last = regularization.weights[state.weightTag];
  ui.epochSlider.max = String(last);
  if (state.weightEpoch === null) state.weightEpoch = last;
  ui.epochSlider.value = String(state.weightEpoch);
  ui.epochInput.value = String(state.weightEpoch);
  ui.epochField.hidden = state.weightsView === "history";
  answerTexts.weights = null;  // the view or the scale may have changed: draw the answer again
  if (state.weightsView === "history") {
    return load("weights", "weight_history", {...sectionParams(), tag: state.weightTag, run: state.regRun}, drawWeights,
      (error) => ui.weightsChart.empty(error.message, "error"));
  }
  return load("weights", "weights", {...sectionParams(), tag: state.weightTag, epoch: state.weightEpoch}, drawWeights,
    (error) => ui.weightsChart.empty(error.message, "error"));
}

function drawWeights() {
  const answer = answers.weights;
  if (!answer) return;
  if (answer.shares) ui.weightsChart.show(views.weightHistoryFigure(answer, state.weightsLogY));
  else ui.weightsChart.show(views.weightsFigure(answer, runColors(answers.regularization.runs), state.weightsLogY));
}
