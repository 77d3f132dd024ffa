// Chart grids: every metric of a run as its own chart (the run page), and the experiment's chart
// view across runs (one chart per metric, one line per run or per group of runs), with
// smoothing, a choice of x axis and auto-refresh while runs are active.

import { api, h, errorBox, runName, tagOf, lineChart } from './lib.js';
import { current } from './nav.js';

/** The most points per run and metric the cross-run view asks for (MLflow's UI asks for 320):
 * the server samples longer histories (get-history-bulk-interval), so 100 long runs still draw
 * at once. Narrower charts ask for fewer: one point per two pixels of width. */
export const SAMPLE_POINTS = 320;
const samplePoints = (width) => Math.max(50, Math.min(SAMPLE_POINTS, Math.round(width / 2)));
/** Runs per get-history-bulk-interval request (its limit is 100). */
const RUNS_PER_REQUEST = 20;
/** Auto-refresh intervals offered, in seconds (10 s by default). */
const REFRESH_SECONDS = [2, 5, 10, 30, 60];

/**
 * Exponential moving average with the start-up bias removed (TensorBoard's and MLflow's chart
 * smoothing): weight 0 draws the raw values, 0.99 a nearly flat line. Non-finite values pass
 * through unsmoothed and do not disturb the average.
 */
export function smooth(ys, weight) {
  if (!weight) return ys;
  let last = 0;
  let n = 0;
  return ys.map((y) => {
    if (y === null || !Number.isFinite(y)) return y;
    last = last * weight + (1 - weight) * y;
    n++;
    return last / (1 - weight ** n);
  });
}

/** One series per metric history: the last value at each x (as MLflow draws repeated steps),
 * x as step, seconds since `t0`, or wall-clock seconds. */
export function toSeries(label, points, xMode, t0) {
  const xOf = (p) => {
    const ts = Number(p.timestamp);
    return xMode === 'step' ? Number(p.step) : xMode === 'relative' ? (ts - t0) / 1000 : ts / 1000;
  };
  const yOf = (p) => (p.value === 'NaN' ? NaN : Number(p.value));
  // Histories come ordered by step (get-history-bulk-interval) or by time (get-history), so
  // one pass usually does; only an x out of order needs the map and a sort.
  const xs = [];
  const ys = [];
  for (const p of points) {
    const x = xOf(p);
    const last = xs.length - 1;
    if (last >= 0 && x < xs[last]) {
      const byX = new Map(points.map((q) => [xOf(q), yOf(q)]));
      const sorted = [...byX.keys()].sort((a, b) => a - b);
      return { label, x: sorted, y: sorted.map((v) => byX.get(v)) };
    }
    if (last >= 0 && x === xs[last]) ys[last] = yOf(p);
    else {
      xs.push(x);
      ys.push(yOf(p));
    }
  }
  return { label, x: xs, y: ys };
}

/** The earliest timestamp of several histories (a loop: spreading 10^5 values overflows). */
function firstTimestamp(histories) {
  let t0 = Infinity;
  for (const points of histories) for (const p of points) t0 = Math.min(t0, Number(p.timestamp));
  return t0;
}

/** Orders param and tag values: as numbers when both are numbers ("0.05" before "0.1"),
 * else as text with digit runs compared by value. */
export function compareValues(a, b) {
  const [x, y] = [Number(a), Number(b)];
  if (a !== '' && b !== '' && Number.isFinite(x) && Number.isFinite(y)) return x - y;
  return String(a).localeCompare(String(b), undefined, { numeric: true });
}

const X_LABELS = { step: 'Step', relative: 'Relative time (s)', wall: 'Wall time' };

/** The controls both grids share: x axis, smoothing, log scale. `onChange` redraws. */
function controls(query, onChange, { log = true } = {}) {
  const xSelect = h('select', { id: 'chart-x' }, Object.entries(X_LABELS).map(([v, label]) => h('option', { value: v, selected: query.get('x') === v }, label)));
  const initial = Math.min(Math.max(Number(query.get('smooth')) || 0, 0), 0.99);
  const smoothing = h('input', { type: 'range', id: 'chart-smooth', min: 0, max: 0.99, step: 0.01, value: String(initial) });
  const smoothOut = h('output', { for: 'chart-smooth', id: 'chart-smooth-value' }, initial.toFixed(2));
  const logBox = log ? h('input', { type: 'checkbox', id: 'chart-log' }) : null;
  xSelect.addEventListener('change', onChange);
  smoothing.addEventListener('input', () => { smoothOut.textContent = Number(smoothing.value).toFixed(2); onChange(); });
  logBox?.addEventListener('change', onChange);
  const bar = h('div', { class: 'bar' },
    h('label', { for: 'chart-x' }, 'X axis'), xSelect,
    h('label', { for: 'chart-smooth' }, 'Smoothing'), smoothing, smoothOut,
    logBox ? [logBox, h('label', { for: 'chart-log' }, 'Log scale')] : null);
  return {
    bar,
    get x() { return xSelect.value; },
    get weight() { return Number(smoothing.value); },
    get log() { return !!logBox?.checked; },
  };
}

/** A grid cell holding one metric's chart. */
function card(key) {
  const el = h('div', { class: 'chart', 'data-metric': key, role: 'img', 'aria-label': `Chart of ${key}` });
  return { el, cell: h('figure', { class: 'chart-card' }, h('figcaption', {}, key), el) };
}

/** Draws `series` (already smoothed) into a card, sized to the card's width. */
function drawCard(el, series, ctl, yLabel) {
  const canLog = ctl.log && series.every((s) => s.y.every((v) => v === null || v > 0));
  lineChart(el, series, { xLabel: X_LABELS[ctl.x], yLabel, time: ctl.x === 'wall', log: canLog, height: 240, fill: true });
  el.dataset.smoothing = String(ctl.weight);
}

/**
 * The run page's charts: one per metric in a responsive grid. `histories` maps each metric key
 * to its points (the page has fetched them for the metrics table).
 */
export function runChartGrid(keys, histories, query) {
  const grid = h('div', { class: 'chart-grid', id: 'run-charts' });
  const cards = keys.map((k) => ({ key: k, ...card(k) }));
  grid.append(...cards.map((c) => c.cell));
  const note = h('p', { class: 'muted', role: 'status' }, 'Drag across a chart to zoom; double-click to reset.');
  const draw = () => {
    const t0 = firstTimestamp(keys.map((k) => histories.get(k)));
    for (const c of cards) {
      const s = toSeries(c.key, histories.get(c.key), ctl.x, t0);
      drawCard(c.el, [{ ...s, y: smooth(s.y, ctl.weight) }], ctl, c.key);
    }
  };
  const ctl = controls(query, draw);
  // uPlot measures its container, so draw once the section is in the document.
  requestAnimationFrame(draw);
  return h('section', {}, h('h2', {}, `Charts (${keys.length})`), ctl.bar, grid, note);
}

/** Runs' metric points for one key through get-history-bulk-interval, by run id. */
async function sampledHistories(runIds, key, points) {
  const out = new Map(runIds.map((id) => [id, []]));
  const chunks = [];
  for (let i = 0; i < runIds.length; i += RUNS_PER_REQUEST) chunks.push(runIds.slice(i, i + RUNS_PER_REQUEST));
  await Promise.all(chunks.map(async (ids) => {
    const r = await api('metrics/get-history-bulk-interval', { query: { run_ids: ids, metric_key: key, max_results: points } });
    for (const m of r.metrics || []) out.get(m.run_id)?.push(m);
  }));
  return out;
}

/** The runs of `ids` in that order, with their data: runs/search filters by run id in pages
 * of 100 ids at most (MLflow's IN list limit). */
async function runsByIds(experimentIds, ids) {
  const chunks = [];
  for (let i = 0; i < ids.length; i += 100) chunks.push(ids.slice(i, i + 100));
  const pages = await Promise.all(chunks.map(async (chunk) => {
    const list = chunk.map((id) => `'${id.replace(/'/g, "''")}'`).join(',');
    return (await api('runs/search', { method: 'POST', body: { experiment_ids: experimentIds, filter: `attributes.run_id IN (${list})`, max_results: 1000 } })).runs || [];
  }));
  const order = new Map(ids.map((id, i) => [id, i]));
  return pages.flat().sort((a, b) => order.get(a.info.run_id) - order.get(b.info.run_id));
}

const isActive = (run) => run.info.status === 'RUNNING' || run.info.status === 'SCHEDULED';
const metricKeys = (runs) => [...new Set(runs.flatMap((r) => (r.data?.metrics || []).map((m) => m.key)))].sort();

/** The value a run is grouped by: `params.x`, `tags.x` (empty when the run has none). */
function groupValue(run, by) {
  const [kind, ...rest] = by.split('.');
  const key = rest.join('.');
  if (kind === 'tags') return tagOf(run, key) ?? '';
  return (run.data?.params || []).find((p) => p.key === key)?.value ?? '';
}

/** Mean of several series at each x, the line drawn for a group of runs. */
function meanSeries(label, series) {
  const sums = new Map();
  for (const s of series) {
    s.x.forEach((x, i) => {
      const y = s.y[i];
      if (!Number.isFinite(y)) return;
      const acc = sums.get(x) || [0, 0];
      acc[0] += y;
      acc[1] += 1;
      sums.set(x, acc);
    });
  }
  const x = [...sums.keys()].sort((a, b) => a - b);
  return { label, x, y: x.map((v) => sums.get(v)[0] / sums.get(v)[1]) };
}

/**
 * The experiment's chart view: `#/experiments/<ids>/charts?runs=a,b` (the runs chosen in the
 * table; without `runs`, the ten newest), one chart per metric and one line per run, or per
 * group with `group=params.x` / `tags.x`.
 */
export async function experimentChartsPage(root, [idList], query, gen) {
  const ids = idList.split(',').filter(Boolean);
  const wanted = (query.get('runs') || '').split(',').filter(Boolean);
  let runs;
  if (wanted.length) runs = await runsByIds(ids, wanted);
  else {
    runs = (await api('runs/search', { method: 'POST', body: { experiment_ids: ids, order_by: ['attributes.start_time DESC'], max_results: 10 } })).runs || [];
  }
  if (!current(gen)) return;
  root.append(
    h('div', { class: 'crumbs' }, h('a', { href: '#/' }, 'Experiments'), ' / ', h('a', { href: `#/experiments/${idList}` }, 'Runs'), ' / '),
    h('h1', {}, `Charts of ${runs.length} run${runs.length === 1 ? '' : 's'}`));
  if (!runs.length) {
    root.append(h('p', { class: 'muted' }, 'No runs to chart: select runs in the experiment\'s runs table, then choose "Chart selected".'));
    return;
  }
  const keys = metricKeys(runs);
  if (!keys.length) {
    root.append(h('p', { class: 'muted' }, 'These runs have logged no metrics yet.'));
    return;
  }
  const groupKeys = [
    ...[...new Set(runs.flatMap((r) => (r.data?.params || []).map((p) => p.key)))].sort().map((k) => `params.${k}`),
    ...[...new Set(runs.flatMap((r) => (r.data?.tags || []).map((t) => t.key)))].filter((k) => !k.startsWith('mlflow.')).sort().map((k) => `tags.${k}`),
  ];
  const groupSelect = h('select', { id: 'chart-group' }, h('option', { value: '' }, 'None: one line per run'),
    groupKeys.map((k) => h('option', { value: k, selected: query.get('group') === k }, k)));
  const refreshBox = h('input', { type: 'checkbox', id: 'chart-refresh' });
  const every = h('select', { id: 'chart-refresh-every' }, REFRESH_SECONDS.map((n) => h('option', { value: n, selected: n === 10 }, `${n} s`)));
  const status = h('p', { class: 'muted', role: 'status', id: 'chart-status' });
  const grid = h('div', { class: 'chart-grid', id: 'experiment-charts' });
  const cards = [];
  // A card per metric key; a refresh adds the keys a running run has begun to log.
  const addCards = (list) => {
    for (const k of list) {
      if (cards.some((c) => c.key === k)) continue;
      const c = { key: k, ...card(k) };
      cards.push(c);
      grid.append(c.cell);
    }
  };
  addCards(keys);
  // The fetched points by metric, then by run id; refetched on refresh.
  const data = new Map();

  const draw = () => {
    const t0 = firstTimestamp([...data.values()].flatMap((byRun) => [...byRun.values()]));
    const by = groupSelect.value;
    for (const c of cards) {
      const byRun = data.get(c.key);
      if (!byRun) continue;
      const perRun = runs.filter((r) => byRun.get(r.info.run_id)?.length)
        .map((r) => ({ run: r, s: toSeries(runName(r), byRun.get(r.info.run_id), ctl.x, t0) }));
      let series;
      if (by) {
        const groups = new Map();
        for (const { run, s } of perRun) {
          const v = groupValue(run, by);
          if (!groups.has(v)) groups.set(v, []);
          groups.get(v).push(s);
        }
        series = [...groups.entries()].sort(([a], [b]) => compareValues(a, b))
          .map(([v, list]) => meanSeries(`${by.replace(/^\w+\./, '')}=${v === '' ? '(none)' : v} (${list.length} run${list.length === 1 ? '' : 's'}, mean)`, list));
      } else series = perRun.map((p) => p.s);
      series = series.map((s) => ({ ...s, y: smooth(s.y, ctl.weight) }));
      c.el.dataset.lines = String(series.length);
      if (series.length) drawCard(c.el, series, ctl, c.key);
    }
  };
  const ctl = controls(query, draw);
  groupSelect.addEventListener('change', draw);

  // Fetches the sampled points of `runIds` (all runs at first, the active ones on a refresh)
  // for every metric key, one request per key and RUNS_PER_REQUEST runs, then draws once.
  const load = async (runIds) => {
    const started = performance.now();
    const points = samplePoints(cards[0].el.parentElement.clientWidth - 16);
    const fetched = await Promise.all(cards.map(async (c) => [c.key, await sampledHistories(runIds, c.key, points)]));
    if (!current(gen)) return false;
    for (const [k, byRun] of fetched) {
      if (!data.has(k)) data.set(k, new Map());
      for (const [id, list] of byRun) data.get(k).set(id, list);
    }
    draw();
    grid.dataset.ready = String(Number(grid.dataset.ready || 0) + 1);
    grid.dataset.ms = String(Math.round(performance.now() - started));
    status.textContent = `Drawn ${new Date().toLocaleTimeString()}: up to ${points} sampled points per run and metric. Drag to zoom; double-click to reset.`;
    return true;
  };

  // Auto-refresh while any run is still running: re-read the runs (status and new metric
  // keys), then the points of the runs that were or are active; finished runs' stay as drawn.
  refreshBox.checked = runs.some(isActive);
  let timer = null;
  const schedule = () => {
    clearTimeout(timer);
    if (!refreshBox.checked || !current(gen)) return;
    timer = setTimeout(async () => {
      if (!current(gen) || !refreshBox.checked) return;
      try {
        const wasActive = new Set(runs.filter(isActive).map((r) => r.info.run_id));
        const fresh = await runsByIds(ids, runs.map((r) => r.info.run_id));
        if (!current(gen)) return;
        runs = fresh;
        addCards(metricKeys(runs));
        const changed = runs.filter((r) => isActive(r) || wasActive.has(r.info.run_id)).map((r) => r.info.run_id);
        if (await load(changed)) {
          if (!runs.some(isActive)) refreshBox.checked = false;
          schedule();
        }
      } catch (e) { status.replaceChildren(errorBox(e)); }
    }, Number(every.value) * 1000);
  };
  refreshBox.addEventListener('change', schedule);
  every.addEventListener('change', schedule);

  root.append(
    h('div', { class: 'bar' }, h('label', { for: 'chart-group' }, 'Group by'), groupSelect,
      refreshBox, h('label', { for: 'chart-refresh' }, 'Auto-refresh while runs are active, every'),
      h('label', { for: 'chart-refresh-every', class: 'sr-only' }, 'Refresh interval'), every),
    ctl.bar, grid, status);
  try {
    await load(runs.map((r) => r.info.run_id));
  } catch (e) {
    if (current(gen)) status.replaceChildren(errorBox(e));
    return;
  }
  schedule();
}
