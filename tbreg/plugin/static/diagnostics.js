// The tab's "Weight diagnostics" section (route /diagnostics): the family's rank-correlation table
// (which diagnostic orders the runs like their gap) and one measure of one layer over epochs, a line
// per run. Self-contained: index.js only creates it, places `node` and calls refresh({family, filter}, Plotly).
// Names from the log dir reach the DOM only as text and Plotly only through plotlyText().

import {BASELINE_COLOR, fetchJson, formatNumber, plotlyText, runColors} from "./model.js";
import * as views from "./views.js";

const MEASURES = [
  ["spectral", "spectral norm ‖W‖₂"],
  ["frobenius", "Frobenius norm ‖W‖_F"],
  ["stable_rank", "stable rank ‖W‖²_F / ‖W‖²₂"],
  ["alpha", "power-law α (tail of the ESD of WᵀW)"],
  ["sharpness", "sharpness (relative loss increase under weight noise)"],
];
const UNRELIABLE = "alpha_unreliable";

export class Diagnostics {
  constructor() {
    const section = views.section("Weight diagnostics",
      "Per kernel, logged every few epochs by tbreg.callbacks.WeightDiagnostics. The table ranks the family's runs: " +
      "Spearman ρ between each diagnostic (at the logged epoch nearest a run's best epoch) and the run's gap at its best epoch.");
    section.node.id = "diagnostics";
    this.section = section;
    this.node = section.node;
    this.table = views.el("div", {className: "table-wrap"});
    this.measure = "spectral";
    this.layer = null;
    this.measureSelect = views.select("diagnostics-measure", (v) => { this.measure = v; this.draw(); });
    this.layerSelect = views.select("diagnostics-layer", (v) => { this.layer = v; this.draw(); });
    views.setOptions(this.measureSelect, MEASURES, this.measure);
    this.plot = views.el("div", {className: "plot"});
    this.message = views.el("div", {className: "message empty", hidden: true});
    this.chart = views.el("div", {className: "chart diagnostics-chart"}, this.plot, this.message);
    section.body.append(
      this.table,
      views.el("div", {className: "controls"},
        views.field("Measure", this.measureSelect), views.field("Layer", this.layerSelect)),
      this.chart,
    );
    this.answer = null;
    this.text = null;
    this.token = 0;
  }

  /** `params`: the view's runs ({family, filter}: one or several families, the filter). */
  async refresh(params, Plotly) {
    this.Plotly = Plotly;
    const token = ++this.token;
    let result;
    try {
      result = await fetchJson("diagnostics", params);
    } catch (error) {
      if (token !== this.token) return;
      this.answer = this.text = null;
      this.table.replaceChildren(views.message(error.message, "error"));
      this.empty("");
      return;
    }
    if (token !== this.token || result.text === this.text) return;  // stale, or nothing changed
    this.answer = result.value;
    this.text = result.text;
    this.table.replaceChildren(this.correlationTable(this.answer));
    this.draw();
  }

  correlationTable(answer) {
    const logged = answer.runs.some((r) => Object.keys(r.diagnostics).length);
    if (!logged) {
      return views.message("No weight diagnostics logged in this family (tbreg's scripts log them by default; " +
        "--diagnostics_freq=0 turns them off).");
    }
    const head = ["diagnostic", "per run, at its best epoch", "n", "Spearman ρ with the gap", "p", "reading"];
    const rows = answer.correlations.map((c) => views.el("tr", {attrs: {"data-diagnostic": c.diagnostic}},
      views.el("td", {}, c.diagnostic),
      views.el("td", {className: "text"}, c.text),
      views.el("td", {className: "num"}, String(c.n)),
      views.el("td", {className: `num${c.rho !== null && Math.abs(c.rho) >= 0.8 ? " sure" : ""}`},
        c.rho === null ? "–" : (c.rho > 0 ? "+" : "") + c.rho.toFixed(2)),
      views.el("td", {className: "num"}, c.p === null ? "–" : c.p.toPrecision(2)),
      views.el("td", {className: "text"}, c.note)));
    return views.el("table", {className: "summary diagnostics"},
      views.el("thead", {}, views.el("tr", {}, head.map((h) => views.el("th", {}, h)))),
      views.el("tbody", {}, rows));
  }

  draw() {
    const answer = this.answer;
    if (!answer || !this.Plotly) return;
    const layers = [...new Set(answer.runs.flatMap((r) => Object.keys(r.diagnostics[this.measure] || {})))].sort();
    if (!layers.includes(this.layer)) this.layer = layers[0] || null;
    views.setOptions(this.layerSelect, layers.map((l) => [l, l]), this.layer);
    if (!this.layer) {
      this.empty(`No ${this.measure} logged in this family.`);
      return;
    }
    const colors = runColors(answer.runs);
    const data = [];
    const flagged = [];
    for (const run of answer.runs) {
      const series = (run.diagnostics[this.measure] || {})[this.layer];
      if (!series) continue;
      const color = colors.get(run.run) || BASELINE_COLOR;
      const flags = ((run.diagnostics[UNRELIABLE] || {})[this.layer] || {values: []}).values;
      const unreliable = this.measure === "alpha" && flags.some((f) => f > 0);
      if (unreliable) flagged.push(views.runLabel(run));
      const name = plotlyText(views.runLabel(run) + (unreliable ? " (α unreliable)" : ""));
      data.push({
        type: "scatter", mode: "lines+markers", name, x: series.steps, y: series.values,
        line: {color, width: 1.6, dash: unreliable ? "dot" : "solid"},
        marker: {size: 5, color, symbol: unreliable ? "circle-open" : "circle"},
        hovertemplate: `${name}<br>epoch %{x}<br>%{y:.4g}<extra></extra>`,
      });
      if (run.best_epoch !== null && series.steps.length) {  // the logged epoch the table reads
        const nearest = series.steps.reduce((a, b) => (Math.abs(b - run.best_epoch) < Math.abs(a - run.best_epoch) ? b : a));
        const i = series.steps.indexOf(nearest);
        data.push({
          type: "scatter", mode: "markers", showlegend: false, x: [nearest], y: [series.values[i]],
          marker: {size: 11, color, symbol: "star"},
          hovertemplate: `${name}<br>best epoch ${run.best_epoch}, read at ${nearest}: %{y:.4g}<br>gap ${formatNumber(run.gap)}<extra></extra>`,
        });
      }
    }
    const label = MEASURES.find(([m]) => m === this.measure)[1];
    this.message.hidden = flagged.length === 0;
    this.message.className = "message warn";
    this.message.textContent = flagged.length
      ? `α unreliable on ${this.layer} for ${flagged.join(", ")}: fewer than 50 eigenvalues or a tail under 10 (left out of mean_alpha).`
      : "";
    this.plot.hidden = false;
    views.plot(this.Plotly, this.plot, data, {
      height: 320,
      margin: {l: 64, r: 16, t: 28, b: 48},
      uirevision: `${this.measure}/${this.layer}`,
      title: {text: plotlyText(`${label} · ${this.layer}`), font: {size: 13}, x: 0.01, xanchor: "left"},
      xaxis: {title: {text: "epoch"}, gridcolor: "#e8eaed"},
      yaxis: {title: {text: plotlyText(this.measure)}, gridcolor: "#e8eaed"},
      legend: {orientation: "h", x: 0, y: -0.25},
      plot_bgcolor: "white",
    });
  }

  empty(text) {
    if (this.Plotly) this.Plotly.purge(this.plot);
    this.plot.hidden = true;
    this.message.className = "message empty";
    this.message.textContent = text;
    this.message.hidden = !text;
  }
}
