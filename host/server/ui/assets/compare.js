// Several runs side by side: params and metrics with differences marked, a metric overlaid
// across runs, parallel coordinates, a scatter of any two columns and a box plot.

import { api, h, table, fmtNum, runName, metricHistory, lineChart } from './lib.js';
import { current } from './nav.js';
import { parallelCoordinates, scatterAny, boxPlot } from './compare-charts.js';

export async function comparePage(root, _params, query, gen) {
  const ids = (query.get('runs') || '').split(',').filter(Boolean);
  root.append(h('h1', {}, `Compare ${ids.length} runs`));
  if (ids.length < 2) {
    root.append(h('p', { class: 'muted' }, 'Select two or more runs in an experiment\'s runs table to compare them.'));
    return;
  }
  const runs = await Promise.all(ids.map(async (id) => (await api('runs/get', { query: { run_id: id } })).run));
  if (!current(gen)) return;
  const value = (run, kind, key) => (run.data?.[kind] || []).find((x) => x.key === key)?.value;
  const keysOf = (kind) => [...new Set(runs.flatMap((r) => (r.data?.[kind] || []).map((x) => x.key)))].sort();
  const paramKeys = keysOf('params');
  const metricKeys = keysOf('metrics');
  const onlyDiff = h('input', { type: 'checkbox', id: 'only-diff', onchange: () => { for (const tr of root.querySelectorAll('tr.same')) tr.hidden = onlyDiff.checked; } });
  const row = (kind, key) => {
    const values = runs.map((r) => value(r, kind, key));
    const differs = new Set(values.map((v) => (v === undefined ? '\u0000' : String(v)))).size > 1;
    return h('tr', { class: differs ? 'diff' : 'same', 'data-key': `${kind}.${key}` },
      h('th', { scope: 'row' }, kind === 'params' ? 'param ' : 'metric ', h('code', {}, key), differs ? h('span', { class: 'sr-only' }, ' (differs)') : null),
      values.map((v) => h('td', { class: kind === 'metrics' ? 'num' : undefined }, kind === 'metrics' ? fmtNum(v) : v ?? '')));
  };
  root.append(
    h('div', { class: 'bar' }, onlyDiff, h('label', { for: 'only-diff' }, 'Only rows that differ'), h('span', { class: 'muted' }, 'Highlighted rows differ between runs.')),
    table(['', ...runs.map((r) => h('th', { scope: 'col' }, h('a', { href: `#/runs/${r.info.run_id}` }, runName(r))))],
      [...paramKeys.map((k) => row('params', k)), ...metricKeys.map((k) => row('metrics', k))], { caption: 'Parameters and metrics by run' }));

  if (metricKeys.length) {
    const overlayEl = h('div', { class: 'chart', id: 'overlay-chart', role: 'img', 'aria-label': 'Metric across runs' });
    const pick = h('select', { id: 'overlay-metric' }, metricKeys.map((k) => h('option', { value: k }, k)));
    const drawOverlay = async () => {
      const key = pick.value;
      const series = await Promise.all(runs.map(async (r) => {
        const byStep = new Map();
        for (const p of await metricHistory(r.info.run_id, key)) byStep.set(Number(p.step), Number(p.value));
        const xs = [...byStep.keys()].sort((a, b) => a - b);
        return { label: runName(r), x: xs, y: xs.map((x) => byStep.get(x)) };
      }));
      if (current(gen)) lineChart(overlayEl, series, { xLabel: 'step' });
    };
    pick.addEventListener('change', drawOverlay);
    root.append(h('h2', {}, 'Metric across runs'), h('div', { class: 'bar' }, h('label', { for: 'overlay-metric' }, 'Metric'), pick), overlayEl);
    requestAnimationFrame(drawOverlay);
  }

  // Params against metrics: parallel coordinates, then a scatter and a box plot side by side.
  root.append(parallelCoordinates(runs), h('div', { class: 'chart-grid' }, scatterAny(runs), boxPlot(runs)));
}
