// Data side of the tab: fetching the plugin's routes, dropping stale answers, smoothing, formats.

const BASE = new URL("../", import.meta.url); // /data/plugin/overfitting/

/** GETs a plugin route: {text, value} of its JSON; throws an Error with the server's one-line message. */
export async function fetchJson(route, params = {}) {
  const url = new URL(route, BASE);
  for (const [key, value] of Object.entries(params)) {
    if (value === null || value === undefined) continue;
    for (const v of Array.isArray(value) ? value : [value]) url.searchParams.append(key, String(v));
  }
  const response = await fetch(url, {headers: {Accept: "application/json"}});
  const text = await response.text();
  if (!response.ok) throw new Error(text.trim() || `${response.status} ${response.statusText}`);
  return {text, value: JSON.parse(text)};
}

/**
 * Runs one request per view at a time in order: an answer is delivered only if no newer request
 * was started for the same view meanwhile (the selection may have changed while it was in flight).
 */
export class Latest {
  constructor() {
    this.tokens = new Map();
  }

  async run(view, load) {
    const token = (this.tokens.get(view) || 0) + 1;
    this.tokens.set(view, token);
    const result = await load();
    return this.tokens.get(view) === token ? {current: true, result} : {current: false};
  }
}

/** Loads plotly.js (served by the plugin from the plotly Python package) once, as a classic script. */
let plotlyPromise = null;
export function loadPlotly() {
  if (window.Plotly) return Promise.resolve(window.Plotly);
  if (!plotlyPromise) {
    plotlyPromise = new Promise((resolve, reject) => {
      const script = document.createElement("script");
      script.src = new URL("vendor/plotly.min.js", BASE).href;
      script.onload = () => resolve(window.Plotly);
      script.onerror = () => {
        plotlyPromise = null;
        reject(new Error("could not load plotly.js from the plugin (is the plotly package installed?)"));
      };
      document.head.appendChild(script);
    });
  }
  return plotlyPromise;
}

/** TensorBoard's smoothing: an exponential moving average, debiased so early points are not pulled to 0. */
export function smooth(values, weight) {
  if (!(weight > 0)) return values.slice();
  let last = 0;
  let count = 0;
  return values.map((y) => {
    if (y === null || !Number.isFinite(y)) return y;
    last = last * weight + (1 - weight) * y;
    count += 1;
    const debias = weight === 1 ? 1 : 1 - Math.pow(weight, count);
    return last / debias;
  });
}

/**
 * Plotly renders a few HTML-like tags, `%{…}` templates and `$…$` (LaTeX, with MathJax) in text:
 * escape untrusted names for it, as numeric character references it shows literally.
 */
export function plotlyText(text) {
  return String(text).replace(/[&<>"'{}%$]/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** A CSS-safe id for an untrusted name (Plotly uses trace uids in selectors): FNV-1a, hex. */
export function safeId(text) {
  let hash = 0x811c9dc5;
  for (const char of String(text)) {
    hash ^= char.codePointAt(0);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return `h${hash.toString(16)}`;
}

export function formatNumber(value, digits = 4) {
  if (value === null || value === undefined) return "–";
  if (Number.isInteger(value) && Math.abs(value) >= 1000) return value.toLocaleString("en-US");
  if (Number.isInteger(value)) return String(value);
  return Number(value).toPrecision(digits).replace(/(\.\d*?)0+$/, "$1").replace(/\.$/, "");
}

export function formatPercent(value) {
  return value === null || value === undefined ? "–" : `${(100 * value).toFixed(1)}%`;
}

/** Saves `text` as a file named `name` (the browser's download). */
export function download(name, text, type) {
  const url = URL.createObjectURL(new Blob([text], {type}));
  const link = document.createElement("a");
  link.href = url;
  link.download = name;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

/** CSV text of rows (arrays); cells quoted when they need it (RFC 4180). */
export function csv(rows) {
  const cell = (v) => {
    if (v === null || v === undefined) return "";
    const text = typeof v === "object" ? JSON.stringify(v) : String(v);
    return /[",\n\r]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
  };
  return rows.map((row) => row.map(cell).join(",")).join("\r\n") + "\r\n";
}

/** "epoch_sparse_categorical_crossentropy" → "sparse categorical crossentropy". */
export function metricLabel(tag) {
  return tag.replace(/^epoch_/, "").replace(/_/g, " ");
}

// Colors: one per run, stable within a family (Plotly's qualitative "D3" palette without gray).
const PALETTE = [
  "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
  "#8c564b", "#e377c2", "#bcbd22", "#17becf", "#393b79",
];
export const BASELINE_COLOR = "#5f6368";

export function runColors(runs) {
  const colors = new Map();
  let i = 0;
  for (const run of runs) {
    colors.set(run.run, run.baseline ? BASELINE_COLOR : PALETTE[i++ % PALETTE.length]);
  }
  return colors;
}
