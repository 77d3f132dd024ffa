// Shared helpers: the REST client, a tiny element builder, formatting and charts (uPlot).

// The path the server is mounted at ('' or `mlflow server --static-prefix`'s '/mlflow'): this
// module is served at BASE/ui/lib.js, and the page's links and API calls are made under BASE.
export const BASE = new URL('..', import.meta.url).pathname.replace(/\/$/, '');
export const MLFLOW = '/ajax-api/2.0/mlflow';
export const WASMFLOW = '/ajax-api/2.0/wasmflow';

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** Calls the REST API at `path` (absolute from the server's root, or relative to MLFLOW);
 * `query` becomes the query string (arrays repeat the key). */
export async function api(path, { method = 'GET', query, body } = {}) {
  let url = BASE + (path.startsWith('/') ? path : `${MLFLOW}/${path}`);
  if (query) {
    const qs = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) {
      if (v === undefined || v === null || v === '') continue;
      for (const item of Array.isArray(v) ? v : [v]) qs.append(k, item);
    }
    const s = qs.toString();
    if (s) url += `?${s}`;
  }
  const init = { method, headers: {} };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const res = await fetch(url, init);
  const text = await res.text();
  let json = {};
  try { json = text ? JSON.parse(text) : {}; } catch { json = { message: text }; }
  if (!res.ok) throw new ApiError(res.status, json.error_code || String(res.status), json.message || res.statusText);
  return json;
}

/** Creates an element: h('a', {href: '#/'}, 'text', child, ...). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k in el && typeof v !== 'string') el[k] = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function table(headers, rows, { caption } = {}) {
  return h('div', { class: 'table-wrap' },
    h('table', {},
      caption ? h('caption', { class: 'sr-only' }, caption) : null,
      h('thead', {}, h('tr', {}, headers.filter((x) => x !== null && x !== undefined).map((x) => (x instanceof Node ? x : h('th', { scope: 'col' }, x))))),
      h('tbody', {}, rows)));
}

export function errorBox(e) {
  return h('p', { class: 'error', role: 'alert' }, e instanceof Error ? e.message : String(e));
}

export function fmtTime(ms) {
  if (ms === undefined || ms === null || ms === '') return '';
  const d = new Date(Number(ms));
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export function fmtDuration(start, end) {
  if (!start) return '';
  let s = ((end ? Number(end) : Date.now()) - Number(start)) / 1000;
  if (s < 0) s = 0;
  if (s < 60) return `${s.toFixed(1)}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${Math.round(s % 60)}s`;
  return `${Math.floor(s / 3600)}h ${Math.round((s % 3600) / 60)}m`;
}

export function fmtNum(v) {
  if (v === undefined || v === null || v === '') return '';
  const n = Number(v);
  if (!Number.isFinite(n)) return String(v);
  if (Number.isInteger(n)) return String(n);
  const a = Math.abs(n);
  return a !== 0 && (a < 1e-4 || a >= 1e6) ? n.toExponential(4) : String(Number(n.toPrecision(6)));
}

export const tagOf = (run, key) => (run.data?.tags || []).find((t) => t.key === key)?.value;
export const runName = (run) => run.info.run_name || tagOf(run, 'mlflow.runName') || run.info.run_id;

/** MLflow's search syntax quotes keys with odd characters in backticks. */
export const quoteKey = (key) => (/^[A-Za-z_][A-Za-z0-9_.]*$/.test(key) ? key : `\`${key}\``);
export const sqlString = (s) => `'${String(s).replace(/'/g, "''")}'`;

/** All points of a metric, following page tokens. */
export async function metricHistory(runId, key) {
  const points = [];
  let token;
  do {
    const r = await api('metrics/get-history', { query: { run_id: runId, metric_key: key, max_results: 25000, page_token: token } });
    points.push(...(r.metrics || []));
    token = r.next_page_token;
  } while (token);
  return points;
}

/** The URL that downloads an artifact through the server's proxy, or null for other stores. */
export function artifactUrl(artifactUri, path) {
  const m = /^mlflow-artifacts:\/*(.*)$/.exec(artifactUri || '');
  if (!m) return null;
  const base = m[1].replace(/\/+$/, '');
  const full = [base, path].filter(Boolean).join('/');
  return `${BASE}/ajax-api/2.0/mlflow-artifacts/artifacts/${full.split('/').map(encodeURIComponent).join('/')}`;
}

function pad(min, max) {
  const span = max - min || Math.abs(max) || 1;
  return [min - span * 0.08, max + span * 0.08];
}

const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf', '#bcbd22', '#7f7f7f'];
export const color = (i) => PALETTE[i % PALETTE.length];

/** The x values of several series merged, and each series' y values at them (null where a
 * series has no point). Series sampled at the same steps, the usual case, share one x array. */
function mergeSeries(series) {
  const first = series[0]?.x || [];
  const shared = series.every((s) => s.x === first || (s.x.length === first.length && s.x.every((x, i) => x === first[i])));
  if (shared) return [first, ...series.map((s) => s.y)];
  const xs = [...new Set(series.flatMap((s) => s.x))].sort((a, b) => a - b);
  const index = new Map(xs.map((x, i) => [x, i]));
  return [xs, ...series.map((s) => {
    const ys = new Array(xs.length).fill(null);
    s.x.forEach((x, i) => { ys[index.get(x)] = s.y[i]; });
    return ys;
  })];
}

/** A chart's width in its container: `fill` charts span it (less a card's padding), others
 * stop at 1100 px. */
function chartWidth(el, fill) {
  const parent = el.parentElement?.clientWidth || 800;
  return fill ? Math.max(240, parent - 16) : Math.max(320, Math.min(parent, 1100) - 10);
}

/** Keeps a chart as wide as its container when the window or the grid changes size. */
function followWidth(el) {
  if (el.resizeObserver || !el.parentElement) return;
  let frame = 0;
  el.resizeObserver = new ResizeObserver(() => {
    cancelAnimationFrame(frame);
    frame = requestAnimationFrame(() => {
      if (!el.isConnected) {
        el.resizeObserver.disconnect();
        el.resizeObserver = null;
        return;
      }
      const u = el.uplot;
      const width = u && chartWidth(el, u.fill);
      if (u && width !== u.width) u.setSize({ width, height: u.height });
    });
  });
  el.resizeObserver.observe(el.parentElement);
}

/**
 * Draws series that each have their own x values on one uPlot chart: the x values are merged
 * and a series is null where it has no point. Returns the uPlot instance (also on el.uplot).
 * Drag selects a range to zoom; double-click resets. Drawn again with the same series and
 * options, the chart keeps its canvas and only takes the new values; it follows its
 * container's width (`fill`: all of it).
 */
export function lineChart(el, series, { xLabel = 'step', yLabel, time = false, log = false, scatter = false, height = 300, fill = false } = {}) {
  const data = mergeSeries(series);
  const dark = matchMedia('(prefers-color-scheme: dark)').matches;
  const shape = JSON.stringify([xLabel, yLabel, time, log, scatter, height, fill, dark, series.map((s) => [s.label, s.x.length < 60])]);
  el.dataset.points = series.map((s) => s.x.length).join(',');
  if (el.uplot && el.uplot.shape === shape) {
    el.uplot.setData(data);
    return el.uplot;
  }
  el.uplot?.destroy();
  el.replaceChildren();
  const axisColor = dark ? '#c8d0d8' : '#333';
  const gridColor = dark ? '#2c333b' : '#e6e9ed';
  const axis = (label) => ({ label, stroke: axisColor, grid: { stroke: gridColor }, ticks: { stroke: gridColor } });
  const opts = {
    width: chartWidth(el, fill),
    height,
    // A legend of dozens of runs would dwarf the chart and slow every cursor move.
    legend: { show: series.length <= 20 },
    scales: {
      // A scatter's points would sit on the plot's edges without some room around them.
      x: scatter ? { time, range: (u, min, max) => pad(min, max) } : { time },
      y: log ? { distr: 3 } : scatter ? { range: (u, min, max) => pad(min, max) } : {},
    },
    axes: [axis(xLabel), axis(yLabel || (series.length === 1 ? series[0].label : 'value'))],
    series: [
      { label: xLabel, value: time ? (u, v) => (v == null ? '' : fmtTime(v * 1000)) : undefined },
      ...series.map((s, i) => ({
        label: s.label,
        stroke: color(i),
        width: 1.5,
        spanGaps: true,
        points: { show: scatter || s.x.length < 60, size: scatter ? 7 : 4, fill: color(i) },
        paths: scatter ? () => null : undefined,
      })),
    ],
  };
  const u = new uPlot(opts, data, el);
  u.shape = shape;
  u.fill = fill;
  el.uplot = u;
  followWidth(el);
  return u;
}
