// DOM builders and Plotly figures. Names from the log dir are untrusted: they reach the DOM only as
// text (textContent, option labels) and reach Plotly only through plotlyText().

import {
  BASELINE_COLOR, formatNumber, formatPercent, metricLabel, plotlyText, runColors, safeId, smooth,
} from "./model.js";

export const SPLIT_DASH = {train: "solid", validation: "dash", train_eval: "dot", validation_mc: "dashdot"};

/** document.createElement with properties, attributes (`attrs`) and children (strings become text). */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  const {attrs = {}, ...rest} = props;
  Object.assign(node, rest);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  for (const child of children.flat()) {
    if (child !== null && child !== undefined && child !== false) {
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
  }
  return node;
}

export function field(label, control) {
  return el("label", {className: "field"}, el("span", {className: "field-label"}, label), control);
}

/** An empty <select id=…> (fill it with setOptions) calling onChange(value) on every change. */
export function select(id, onChange) {
  const node = el("select", {id});
  node.addEventListener("change", () => onChange(node.value));
  return node;
}

/** Replaces a <select>'s options ([value, label] pairs) keeping `value` selected when present. */
export function setOptions(node, options, value) {
  node.replaceChildren(...options.map(([v, label]) => el("option", {value: v, textContent: label})));
  if (options.some(([v]) => v === value)) node.value = value;
}

export function section(title, subtitle) {
  const body = el("div", {className: "section-body"});
  const note = el("p", {className: "section-note"}, subtitle || "");
  const node = el("section", {className: "card"}, el("h2", {}, title), note, body);
  return {node, body, note};
}

export function message(text, kind = "empty") {
  return el("div", {className: `message ${kind}`}, text);
}

export function familyLabel(family) {
  return family === "" ? "(log dir root)" : family;
}

/** "tiny", "tiny (baseline)", "tiny (3 seeds)": a seed group is named by its model, with its seed count. */
export function runLabel(run) {
  if (run.members) return `${run.name} (${run.members.length} run${run.members.length === 1 ? "" : "s"}, ${run.seeds} curve${run.seeds === 1 ? "" : "s"})`;
  const notes = [];
  if (run.baseline) notes.push("baseline");
  if (run.seeds) notes.push(`${run.seeds} seed${run.seeds === 1 ? "" : "s"}`);
  return notes.length ? `${run.name} (${notes.join(", ")})` : run.name;
}

// typesetMath: false: names are never LaTeX (a sweep's `lr=$1` stays text, even if MathJax is around).
const PLOT_CONFIG = {
  responsive: true, displaylogo: false, displayModeBar: "hover", modeBarButtonsToRemove: ["lasso2d", "select2d"],
  typesetMath: false,
};

function baseLayout(extra = {}) {
  return {
    margin: {l: 64, r: 16, t: 30, b: 48},
    font: {family: "Roboto, 'Helvetica Neue', Arial, sans-serif", size: 12, color: "#3c4043"},
    paper_bgcolor: "#fff",
    plot_bgcolor: "#fff",
    hovermode: "closest",
    legend: {orientation: "v", x: 1.01, y: 1, bgcolor: "rgba(255,255,255,0.8)"},
    xaxis: {gridcolor: "#e8eaed", zeroline: false},
    yaxis: {gridcolor: "#e8eaed", zeroline: false},
    ...extra,
  };
}

/** Draws (or updates in place) a Plotly figure in `node`. */
export function plot(Plotly, node, data, layout) {
  return Plotly.react(node, data, layout, PLOT_CONFIG);
}

// ---------------------------------------------------------------------------------------------
// Family view: one metric, one color per run, train solid / validation dashed / train_eval dotted /
// validation_mc dash-dotted; a seed group is its mean's lines with a shaded ±std band.

export const BAND_LABEL = {ci: "95% CI of the mean", std: "± std (ddof=1)", std0: "± std (the mean run's, ddof=0)"};

// Above this many members the chart has no legend (hide and highlight runs in the table) and
// the markers of all runs are one trace per kind: thousands of traces are slow to draw.
export const LEGEND_MAX = 40;

export function familyFigure(answer, options, summary = null) {
  const colors = runColors(answer.runs);
  const bands = [];
  const lines = [];
  const marks = [];
  const hidden = options.hidden || new Set();
  const highlight = answer.runs.some((r) => r.run === options.highlight) ? options.highlight : null;
  const legend = answer.runs.length <= LEGEND_MAX;
  const merged = new Map();
  const sameView = summary && JSON.stringify(summary.families) === JSON.stringify(answer.families) &&
    summary.group === answer.group && summary.filter === answer.filter;
  const rows = new Map(sameView ? summary.rows.map((r) => [r.run, r]) : []);
  for (const run of answer.runs) {
    if (hidden.has(run.run) && !legend) continue;
    const label = plotlyText(runLabel(run));
    const color = colors.get(run.run);
    const band = hidden.has(run.run) ? {} : run.band || {};
    const dim = highlight !== null && highlight !== run.run;
    let first = true;
    for (const [split, series] of Object.entries(run.series)) {
      const uid = `${safeId(run.run)}-${split.replace(/[^a-z_]/g, "")}`;
      const spread = band[split] ? bandByStep(band[split]) : null;
      if (spread && !dim) bands.push(bandTrace(series, spread, options.smoothing, color, run.run, uid));
      const smoothed = options.smoothing > 0 ? "<br>smoothed %{y:.4g}" : "";
      const kind = spread ? BAND_LABEL[band[split].kind] : "";
      const value = spread ? `mean %{customdata[0]:.4g} ± %{customdata[1]:.3g} (${kind})<br>n = %{customdata[2]} seeds` : "value %{customdata:.4g}";
      lines.push({
        type: "scatter",
        mode: series.steps.length === 1 ? "markers" : "lines",
        uid,
        name: label,
        legendgroup: run.run,
        showlegend: first && legend,
        visible: hidden.has(run.run) ? "legendonly" : true,
        opacity: dim ? 0.22 : 1,
        x: series.steps,
        y: smooth(series.values, options.smoothing),
        customdata: spread
          ? series.values.map((v, i) => { const d = spread.get(series.steps[i]) || {}; return [v, d.half ?? null, d.n ?? "?"]; })
          : series.values,
        line: {color, dash: SPLIT_DASH[split] || "longdash", width: run.run === highlight ? 3.4 : run.baseline ? 2.5 : 1.8},
        marker: {color},
        hovertemplate: `<b>${label}</b> · ${plotlyText(split)}<br>epoch %{x}<br>${value}${smoothed}<extra></extra>`,
      });
      if (!legend && !spread && run.run !== highlight) mergeLine(merged, lines.pop(), dim, label, split);
      first = false;
      if (spread && !dim && band[split].drops.length) marks.push(nDropTrace(series, band[split], options.smoothing, color, run.run, label, split));
    }
    const row = rows.get(run.run);
    const validation = run.series.validation;
    if (row && validation && !hidden.has(run.run) && !dim) marks.push(...markerTraces(row, validation, options.smoothing, color, run.run, label));
  }
  // many runs: one trace per color, split and dimming (runs apart by a gap), the highlighted run on top
  const data = [...bands, ...merged.values(), ...lines, ...(legend ? marks : mergeMarkers(marks))]; // bands below every line, markers above
  const layout = baseLayout({
    uirevision: `${answer.families}\u0000${answer.metric}\u0000${answer.group}`,
    height: 420,
    showlegend: legend,
    xaxis: {
      title: {text: options.logX ? "epoch (log scale; epoch 0 not shown)" : "epoch"},
      type: options.logX ? "log" : "linear",
      gridcolor: "#e8eaed",
      zeroline: false,
      ...(options.logX ? {} : epochTicks(answer.runs.flatMap((r) => Object.values(r.series)))),
    },
    yaxis: {
      title: {text: plotlyText(metricLabel(answer.metric))},
      gridcolor: "#e8eaed",
      zeroline: false,
      ...yAxisRange(options.yMin, options.yMax, data.map((trace) => trace.y)),
    },
  });
  return {data, layout};
}

/** Map step -> {half, n} of a band. */
function bandByStep(band) {
  return new Map(band.steps.map((step, i) => [step, {half: band.half[i], n: band.n ? band.n[i] : null}]));
}

/** The value a line shows at `step` (smoothed as drawn), or null; between two drawn points of a
 * downsampled curve, on the straight line that joins them. */
function valueAt(series, step, smoothing) {
  const values = smooth(series.values, smoothing);
  const i = series.steps.indexOf(step);
  if (i >= 0) return values[i];
  const j = series.steps.findIndex((s) => s > step);
  if (j <= 0) return null;
  const [s0, s1, v0, v1] = [series.steps[j - 1], series.steps[j], values[j - 1], values[j]];
  return v0 === null || v1 === null ? null : v0 + ((v1 - v0) * (step - s0)) / (s1 - s0);
}

/** Adds a run's line trace to the merged trace of its color, split and dimming (`merged`). */
function mergeLine(merged, trace, dim, label, split) {
  const key = `${trace.line.color}|${trace.line.dash}|${trace.line.width}|${dim}`;
  if (!merged.has(key)) {
    merged.set(key, {
      type: "scatter", mode: "lines", legendgroup: "", showlegend: false, opacity: trace.opacity,
      x: [], y: [], customdata: [], hovertext: [], line: trace.line, connectgaps: false,
      hovertemplate: "%{hovertext}<br>epoch %{x}<br>value %{customdata:.4g}<extra></extra>",
    });
  }
  const m = merged.get(key);
  const text = `<b>${label}</b> · ${plotlyText(split)}`;
  trace.x.forEach((x, i) => {
    m.x.push(x);
    m.y.push(trace.y[i]);
    m.customdata.push(trace.customdata[i]);
    m.hovertext.push(text);
  });
  m.x.push(null);
  m.y.push(null);
  m.customdata.push(null);
  m.hovertext.push("");
}

/** Marker traces of many runs as one trace per kind (symbol): one point per run, its own color. */
function mergeMarkers(marks) {
  const kinds = new Map();
  for (const t of marks) {
    const key = `${t.mode}|${t.marker.symbol}|${t.marker.size}`;
    if (!kinds.has(key)) kinds.set(key, {...t, legendgroup: "", x: [], y: [], text: [], customdata: [], hovertext: [], marker: {...t.marker, color: [], line: {...t.marker.line}}});
    const k = kinds.get(key);
    t.x.forEach((x, i) => {
      k.x.push(x);
      k.y.push(t.y[i]);
      k.text.push(t.text ? t.text[i] : "");
      k.customdata.push(Array.isArray(t.customdata) ? t.customdata[i] : null);
      const value = Array.isArray(t.customdata) ? t.customdata[i] : null;
      k.hovertext.push(t.hovertemplate.split("<br>")[0] + (typeof value === "number" ? `<br>validation ${formatNumber(value)}` : ""));
      k.marker.color.push(t.marker.color);
    });
  }
  return [...kinds.values()].map((k) => ({...k, hovertemplate: `%{hovertext}<br>epoch %{x}<extra></extra>`}));
}

/** Where a seed group's n drops (seeds that stopped early): a labelled tick on its line. */
function nDropTrace(series, band, smoothing, color, group, label, split) {
  const n = new Map(band.steps.map((s, i) => [s, band.n[i]]));
  const x = band.drops.filter((s) => series.steps.includes(s));
  return {
    type: "scatter", mode: "markers+text", legendgroup: group, showlegend: false,
    x, y: x.map((s) => valueAt(series, s, smoothing)),
    text: x.map((s) => `n=${n.get(s)}`), textposition: "top center", textfont: {size: 10, color},
    marker: {symbol: "line-ns-open", size: 14, color, line: {width: 2, color}},
    hovertemplate: `<b>${label}</b> · ${plotlyText(split)}<br>epoch %{x}: fewer seeds from here (%{text})<extra></extra>`,
  };
}

/** The best epoch (a dot on the validation curve), the verdict's onset and where early stopping fired. */
function markerTraces(row, validation, smoothing, color, group, label) {
  const out = [];
  const add = (epoch, symbol, what, size = 10, open = false) => {
    const y = valueAt(validation, epoch, smoothing);
    if (epoch === null || epoch === undefined || y === null) return;
    out.push({
      type: "scatter", mode: "markers", legendgroup: group, showlegend: false, x: [epoch], y: [y],
      customdata: [validation.values[validation.steps.indexOf(epoch)]],
      marker: open ? {symbol, size, color: "#202124", line: {width: 2, color: "#202124"}} : {symbol, size, color, line: {width: 1.5, color: "#202124"}},
      hovertemplate: `<b>${label}</b> · ${what}<br>epoch %{x}<br>validation %{customdata:.4g}<extra></extra>`,
    });
  };
  add(row.best_epoch, "circle", "best epoch (lowest validation data loss)");
  // an open diamond: around the dot when the onset is the best epoch
  if (row.onset !== null && row.onset !== undefined) add(row.onset, "diamond-open", `overfitting onset: ${plotlyText(row.verdict)}`, 16, true);
  if (row.status === "early_stopped") add(row.stop_epoch, "x", "early stopping fired", 11);
  return out;
}

/** The band mean ± half-width around `series` (smoothed like the line): one closed shape, not in the legend. */
function bandTrace(series, spread, smoothing, color, group, uid) {
  const upper = [];
  const lower = [];
  series.values.forEach((v, i) => {
    const d = (spread.get(series.steps[i]) || {}).half;
    const known = v !== null && d !== null && d !== undefined;
    upper.push(known ? v + d : null);
    lower.push(known ? v - d : null);
  });
  return {
    type: "scatter",
    mode: "lines",
    uid: `${uid}-band`,
    legendgroup: group,
    showlegend: false,
    hoverinfo: "skip",
    x: [...series.steps, ...series.steps.slice().reverse()],
    y: [...smooth(upper, smoothing), ...smooth(lower, smoothing).reverse()],
    fill: "toself",
    fillcolor: hexToRgba(color, 0.16),
    line: {width: 0, color},
  };
}

/** Whole-epoch ticks when there are only a few epochs (Plotly would put ticks at 0.5). */
export function epochTicks(seriesList) {
  const last = Math.max(0, ...seriesList.map((s) => (s && s.steps.length ? s.steps[s.steps.length - 1] : 0)));
  return last < 10 ? {tick0: 0, dtick: 1} : {};
}

/** Plotly settings for a y-range whose ends are numbers or null (that end follows the data). */
function yAxisRange(min, max, arrays) {
  if (min === null && max === null) return {autorange: true};
  let low = Infinity;
  let high = -Infinity;
  for (const v of arrays.flat()) {
    if (v !== null && Number.isFinite(v)) {
      low = Math.min(low, v);
      high = Math.max(high, v);
    }
  }
  if (low > high) [low, high] = [0, 1];
  const pad = 0.05 * (high - low || 1);
  return {autorange: false, range: [min === null ? low - pad : min, max === null ? high + pad : max]};
}

// ---------------------------------------------------------------------------------------------
// Summary table

export const SUMMARY_COLUMNS = [
  {key: "name", label: "run", title: "Run dir", format: (v, row) => runLabel(row)},
  {key: "params", label: "parameters", format: (v) => formatNumber(v), numeric: true},
  {key: "best_epoch", label: "best epoch", title: "Epoch of the lowest validation data loss", format: (v) => formatNumber(v), numeric: true},
  {key: "best_value", label: "best val. data loss", title: "Lowest validation data loss", format: (v) => formatNumber(v), numeric: true},
  {key: "train_value", label: "train data loss", title: "Training data loss at the best epoch", format: (v) => formatNumber(v), numeric: true},
  {key: "best_ci", label: "± 95% CI", title: "A seed group's 95% confidence interval (t, n−1 degrees of freedom) of its mean validation data loss at the best epoch", format: (v) => (v === null ? "–" : `± ${formatNumber(v, 3)}`), numeric: true},
  {key: "gap", label: "gap", title: "Validation minus training data loss at the best epoch; the training loss in inference mode (train_eval) where it was logged", format: (v, row) => formatNumber(v, 3) + (row.gap_note ? " (dropout on)" : ""), numeric: true},
  {key: "stop_epoch", label: "stop epoch", title: "Last epoch trained (so far, while running)", format: (v) => formatNumber(v), numeric: true},
  {key: "status", label: "status", format: (v) => v || "–"},
  {key: "penalty_share", label: "penalty share", title: "Share of the regularization penalty in the training loss at the best epoch", format: (v) => formatPercent(v), numeric: true},
  {key: "verdict", label: "verdict", title: "What the curves mean (onset: Prechelt's GL criterion on the smoothed validation curve)", format: (v, row) => [v, row.onset_spread].filter(Boolean).join("; ") || "–"},
  {key: "paired_diff", label: "vs baseline (paired)", title: "Best validation data loss minus the baseline's, seed k against seed k: mean difference [95% CI]", format: (v, row) => (v === null || v === undefined ? "–" : `${signed(v)} [${signed(row.paired_low)}, ${signed(row.paired_high)}]${row.paired_excludes_zero ? "" : " (≈ noise)"}`), numeric: true},
];

function signed(value) {
  return (value >= 0 ? "+" : "") + formatNumber(value, 3);
}

function compare(a, b) {
  if (a === b) return 0;
  if (a === null || a === undefined) return 1; // missing values last, whatever the direction
  if (b === null || b === undefined) return -1;
  return typeof a === "number" && typeof b === "number" ? a - b : String(a).localeCompare(String(b));
}

export function sortRows(rows, sort) {
  if (!sort.key) return rows.slice();
  const sign = sort.descending ? -1 : 1;
  return rows.slice().sort((x, y) => {
    const a = x[sort.key];
    const b = y[sort.key];
    if (a === null || a === undefined || b === null || b === undefined) return compare(a, b);
    return sign * compare(a, b);
  });
}

/** A column per hyperparameter `key`: its value, or "–" for a run without it. */
function hparamColumn(key) {
  return {
    key: `hp:${key}`, label: key, title: `hyperparameter ${key} (run.json)`, hparam: key,
    format: (v, row) => (row.varies && row.varies.includes(key) ? "(varies)" : v === null || v === undefined ? "–" : typeof v === "number" ? formatNumber(v) : String(v)),
    numeric: true,
  };
}

/** The columns of the table: the run, the hyperparameters `keys`, then the summary's. */
export function tableColumns(keys) {
  return [SUMMARY_COLUMNS[0], ...keys.map(hparamColumn), ...SUMMARY_COLUMNS.slice(1)];
}

/** A row's value in a column (a hyperparameter's from its `hparams`). */
export function cellValue(row, column) {
  return column.hparam ? (row.hparams || {})[column.hparam] : row[column.key];
}

/** Rows with their hyperparameter columns' values as keys of their own (`hp:<key>`), for sorting. */
export function withHparams(rows, columns) {
  return rows.map((row) => Object.assign(Object.create(null), row, Object.fromEntries(
    columns.filter((c) => c.hparam).map((c) => [c.key, cellValue(row, c)]))));
}

/**
 * The summary <table>; clicking a header calls onSort(key). `view`: `keys` (the hyperparameter
 * columns), `hidden` (runs hidden in the chart: their box unticked), `highlight`, and the
 * callbacks onToggle(run) (the box) and onHighlight(run) (a click elsewhere on the row).
 */
export function summaryTable(answer, sort, onSort, colors, view = {}) {
  const columns = tableColumns(view.keys || []);
  const hidden = view.hidden || new Set();
  const head = el("tr", {}, columns.map((column) => {
    const active = sort.key === column.key;
    const arrow = active ? (sort.descending ? " ▼" : " ▲") : "";
    const th = el("th", {
      className: `${column.numeric ? "num" : ""} sortable${active ? " active" : ""}`,
      title: column.title || "",
      attrs: {"aria-sort": active ? (sort.descending ? "descending" : "ascending") : "none", role: "button", tabindex: "0"},
    }, column.label + arrow);
    th.addEventListener("click", () => onSort(column.key));
    th.addEventListener("keydown", (e) => (e.key === "Enter" || e.key === " ") && onSort(column.key));
    return th;
  }));
  const body = sortRows(withHparams(answer.rows, columns), sort).slice(0, view.limit ?? Infinity).map((row) => {
    const box = el("input", {type: "checkbox", checked: !hidden.has(row.run), title: "show in the chart"});
    box.addEventListener("click", (e) => e.stopPropagation());
    box.addEventListener("change", () => view.onToggle && view.onToggle(row.run));
    const classes = [row.baseline ? "baseline" : "", hidden.has(row.run) ? "hidden-run" : "", view.highlight === row.run ? "highlight" : ""];
    const tr = el("tr", {className: classes.filter(Boolean).join(" "), attrs: {"data-run": row.run}},
    columns.map((column) => {
      const text = column.format(row[column.key], row);
      if (column.key === "name") {
        const swatch = el("span", {className: "swatch", attrs: {style: `background:${colors.get(row.run) || BASELINE_COLOR}`}});
        return el("td", {title: row.run, className: "name"}, box, swatch, text);
      }
      if (column.key === "gap") {
        const why = row.gap_note || (row.gap_split === "train_eval" ? "against train_eval: the training data in inference mode (dropout off)" : "");
        return el("td", {className: `num${row.gap_note ? " warn" : ""}`, title: why}, text);
      }
      if (column.key === "verdict") {
        return el("td", {className: `verdict verdict-${String(row.verdict_kind || "unknown").replace(/[^a-z_]/g, "")}`}, text);
      }
      if (column.key === "paired_diff") {
        return el("td", {className: `num${row.paired_excludes_zero ? " sure" : ""}`, title: row.paired_text || ""}, text);
      }
      if (column.key === "status") {
        return el("td", {}, el("span", {className: `status status-${String(row.status || "unknown").replace(/[^a-z_]/g, "")}`}, text));
      }
      return el("td", {className: column.hparam ? "num hparam" : column.numeric ? "num" : ""}, text);
    }));
    tr.addEventListener("click", () => view.onHighlight && view.onHighlight(row.run));
    return tr;
  });
  return el("table", {className: "summary"}, el("thead", {}, head), el("tbody", {}, body));
}

// ---------------------------------------------------------------------------------------------
// Regularization view

export function penaltyFigure(run, color) {
  const data = [];
  if (run.data_loss) {
    data.push({
      type: "scatter", mode: "lines", name: "data loss", stackgroup: "loss",
      x: run.data_loss.steps, y: run.data_loss.values,
      line: {color, width: 1.5}, fillcolor: hexToRgba(color, 0.35),
      hovertemplate: "data loss<br>epoch %{x}<br>%{y:.4g}<extra></extra>",
    });
  }
  if (run.penalty) {
    data.push({
      type: "scatter", mode: "lines", name: "penalty", stackgroup: "loss",
      x: run.penalty.steps, y: run.penalty.values,
      line: {color: "#c5221f", width: 1.5}, fillcolor: "rgba(197,34,31,0.30)",
      hovertemplate: "penalty<br>epoch %{x}<br>%{y:.4g}<extra></extra>",
    });
  }
  const layout = baseLayout({
    height: 300,
    uirevision: run.run,
    xaxis: {title: {text: "epoch"}, gridcolor: "#e8eaed", ...epochTicks([run.data_loss, run.penalty])},
    yaxis: {title: {text: "training loss (stacked)"}, gridcolor: "#e8eaed", rangemode: "tozero"},
    legend: {orientation: "h", x: 0, y: 1.12},
    margin: {l: 64, r: 16, t: 24, b: 48},
  });
  return {data, layout};
}

export function layersFigure(run) {
  const layers = Object.entries(run.layers);
  const data = layers.map(([layer, series], i) => ({
    type: "scatter", mode: "lines", name: plotlyText(layer),
    x: series.steps, y: series.values,
    line: {width: 1.6, color: LAYER_COLORS[i % LAYER_COLORS.length]},
    hovertemplate: `${plotlyText(layer)}<br>epoch %{x}<br>%{y:.4g}<extra></extra>`,
  }));
  const layout = baseLayout({
    height: 300,
    uirevision: run.run,
    xaxis: {title: {text: "epoch"}, gridcolor: "#e8eaed", ...epochTicks(Object.values(run.layers))},
    yaxis: {title: {text: "penalty per layer"}, gridcolor: "#e8eaed", rangemode: "tozero"},
    legend: {orientation: "h", x: 0, y: 1.12},
    margin: {l: 64, r: 16, t: 24, b: 48},
  });
  return {data, layout};
}

const LAYER_COLORS = ["#174ea6", "#188038", "#e37400", "#a142f4", "#d01884", "#007b83"];

/** Each run's histogram of one weights tag as an outlined, lightly filled step curve. */
export function weightsFigure(answer, colors, logY = false) {
  const data = answer.runs.map((run) => {
    const x = [];
    const y = [];
    const total = run.buckets.reduce((sum, b) => sum + (b[2] || 0), 0) || 1;
    for (const [left, right, count] of run.buckets) {
      x.push(left, right);
      y.push(count / total, count / total);
    }
    const color = colors.get(run.run) || BASELINE_COLOR;
    const label = plotlyText(runLabel(run) + (run.seed_run ? ` · ${run.seed_run}` : ""));
    return {
      type: "scatter", mode: "lines", name: `${label} · epoch ${run.epoch}`,
      x, y, fill: "tozeroy", fillcolor: hexToRgba(color, 0.18),
      line: {color, width: 1.6},
      hovertemplate: `<b>${label}</b> · epoch ${run.epoch}<br>weight %{x:.3g}<br>share %{y:.2%}<extra></extra>`,
    };
  });
  const layout = baseLayout({
    height: 320,
    uirevision: answer.tag,
    xaxis: {title: {text: `${plotlyText(answer.tag)} value`}, gridcolor: "#e8eaed"},
    yaxis: logY
      ? {title: {text: "share of weights (log scale)"}, gridcolor: "#e8eaed", type: "log", tickformat: ".1~%"}
      : {title: {text: "share of weights"}, gridcolor: "#e8eaed", tickformat: ".0%", rangemode: "tozero"},
  });
  return {data, layout};
}

/**
 * One run's weight distribution over its epochs: an epoch × value heatmap of the share of
 * weights per bin (answer of /weight_history), on a log color scale when `logY`.
 */
export function weightHistoryFigure(answer, logY = false) {
  const z = answer.shares.map((row) => row.map((v) => (logY ? (v > 0 ? Math.log10(v) : null) : v)));
  const data = [{
    type: "heatmap", x: answer.epochs, y: answer.centers, z: z[0] ? z[0].map((_, j) => z.map((row) => row[j])) : [],
    colorscale: "Viridis", zsmooth: false,
    colorbar: {title: {text: logY ? "log10 share" : "share"}, thickness: 12},
    hovertemplate: `epoch %{x}<br>weight %{y:.3g}<br>${logY ? "log10 share %{z:.2f}" : "share %{z:.2%}"}<extra></extra>`,
  }];
  const layout = baseLayout({
    height: 320,
    uirevision: `${answer.run}\u0000${answer.tag}`,
    xaxis: {title: {text: "epoch"}, gridcolor: "#e8eaed"},
    yaxis: {title: {text: `${plotlyText(answer.tag)} value`}, gridcolor: "#e8eaed"},
  });
  return {data, layout};
}

function hexToRgba(hex, alpha) {
  const n = parseInt(hex.slice(1), 16);
  return `rgba(${(n >> 16) & 255},${(n >> 8) & 255},${n & 255},${alpha})`;
}
