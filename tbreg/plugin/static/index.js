// The "Overfitting" tab: TensorBoard imports this module in the tab's iframe and calls render().
// Wiring only: state, controls and refresh; data comes from model.js, DOM and figures from views.js.

import {Latest, fetchJson, loadPlotly, metricLabel, runColors} from "./model.js";
import * as views from "./views.js";
import {Diagnostics} from "./diagnostics.js";

const LIVE_SECONDS = 10;

const state = {
  families: [],
  family: null,
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
let ui = null;

export async function render() {
  const style = views.el("link", {rel: "stylesheet", href: new URL("./style.css", import.meta.url).href});
  document.head.append(style);
  ui = buildPage();
  document.body.replaceChildren(ui.page);
  try {
    Plotly = await loadPlotly();
  } catch (error) {
    ui.status.textContent = error.message;
    return;
  }
  await refreshAll();
  document.body.dataset.state = "ready";
  setInterval(() => {
    if (state.live && document.visibilityState !== "hidden") refreshAll();
  }, LIVE_SECONDS * 1000);
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
    return views.plot(Plotly, this.plot, figure.data, figure.layout);
  }

  empty(text, kind = "empty") {
    if (this.plotted) Plotly.purge(this.plot);
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
    refreshCurves();
  });
  const smoothing = views.el("input", {type: "range", min: "0", max: "0.99", step: "0.01", value: String(state.smoothing)});
  const smoothingValue = views.el("span", {className: "value"}, state.smoothing.toFixed(2));
  smoothing.addEventListener("input", () => {
    state.smoothing = Number(smoothing.value);
    smoothingValue.textContent = state.smoothing.toFixed(2);
    drawCurves();
  });
  const logX = views.el("input", {type: "checkbox", checked: state.logX});
  logX.addEventListener("change", () => {
    state.logX = logX.checked;
    drawCurves();
  });
  const bandSelect = views.select("band-select", (value) => {
    state.band = value;
    refreshCurves();
  });
  views.setOptions(bandSelect, [["ci", "95% CI of the mean"], ["std", "± std"]], state.band);
  const yMin = numberInput("auto", (v) => { state.yMin = v; drawCurves(); });
  const yMax = numberInput("auto", (v) => { state.yMax = v; drawCurves(); });
  const live = views.el("input", {type: "checkbox", checked: state.live});
  live.addEventListener("change", () => { state.live = live.checked; });
  const refresh = views.el("button", {type: "button", className: "button"}, "Refresh");
  refresh.addEventListener("click", () => refreshAll());
  const status = views.el("span", {className: "status-line", attrs: {"aria-live": "polite"}}, "Loading…");

  const toolbar = views.el("header", {className: "toolbar"},
    views.field("Family", familySelect),
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
      views.el("span", {className: "hint"}, "· hover for values · click a run in the legend to hide it")),
    curvesChart.node,
  );

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
  const weightControls = views.el("div", {className: "controls"},
    views.field("Weights", weightSelect),
    views.field("Epoch", views.el("span", {className: "inline"}, epochSlider, epochInput)));
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
  const page = views.el("div", {className: "page"}, toolbar,
    views.el("main", {}, curves.node, summary.node, reg.node, diagnostics.node));
  return {
    diagnostics,
    page, familySelect, metricSelect, status, curves, curvesChart, summary, summaryBody, reg,
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
  state.regRun = null;
  state.weightTag = null;
  state.weightEpoch = null;
  syncMetric();
  refreshViews();
}

function syncMetric() {
  const family = currentFamily();
  const metrics = family ? family.metrics : [];
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
        views.setOptions(ui.familySelect, state.families.map((f) => [f.family, `${views.familyLabel(f.family)} (${f.runs.length})`]), state.family);
        syncMetric();
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
  return Promise.all([refreshCurves(), refreshSummary(), refreshRegularization(), ui.diagnostics.refresh(state.family, Plotly)]);
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
  return load("curves", "family", {family: state.family, metric: state.metric, band: state.band}, drawCurves,
    (error) => ui.curvesChart.empty(error.message, "error"));
}

function drawCurves() {
  const answer = answers.curves;
  if (!answer) return;
  ui.curves.note.textContent = `${metricLabel(answer.metric)} of every run in ${views.familyLabel(answer.family)}`;
  ui.curvesChart.show(views.familyFigure(answer, state, answers.summary));
}

function refreshSummary() {
  return load("summary", "summary", {family: state.family}, drawSummary,
    (error) => ui.summaryBody.replaceChildren(views.message(error.message, "error")));
}

function drawSummary() {
  const answer = answers.summary;
  if (!answer) return;
  const onSort = (key) => {
    state.sort = {key, descending: state.sort.key === key ? !state.sort.descending : false};
    drawSummary();
  };
  const colors = runColors(answer.rows);
  const c = answer.criterion;
  ui.summary.note.textContent = "Best epoch = lowest validation data loss (the loss without the penalty); the gap is " +
    "against the training loss in inference mode (train_eval) where it was logged, else Keras' training loss (marked \"dropout on\" for a model with dropout). " +
    `Onset: Prechelt's GL${c.threshold} (validation ${c.threshold}% above its lowest so far) on a centred ` +
    `${c.window}-epoch moving average. A seed group's row is its mean; ± is the ${100 * c.confidence}% CI over its seeds. Click a header to sort.`;
  ui.summaryBody.replaceChildren(views.summaryTable(answer, state.sort, onSort, colors));
  drawCurves();  // the markers come from the summary
}

function refreshRegularization() {
  return load("regularization", "regularization", {family: state.family}, (answer) => {
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
  const run = runs.find((r) => r.run === state.regRun);
  const colors = runColors(runs);
  ui.reg.note.textContent = run && run.penalty_source
    ? `Penalty from ${run.penalty_source}; per-layer penalties and weights come from tbreg's callbacks.`
    : "Per-layer penalties and weights come from tbreg's callbacks.";
  if (!run || (!run.data_loss && !run.penalty)) {
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
  return load("weights", "weights", {family: state.family, tag: state.weightTag, epoch: state.weightEpoch},
    (answer) => ui.weightsChart.show(views.weightsFigure(answer, runColors(regularization.runs))),
    (error) => ui.weightsChart.empty(error.message, "error"));
}
