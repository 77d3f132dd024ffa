// The compare page's charts of several runs' params and latest metrics: parallel coordinates
// (brushable axes), a scatter of any two columns and a box plot of a metric grouped by a param.
// Drawn as SVG by hand: a few dozen elements per run, no library needed.

import { h, fmtNum, runName, color, lineChart } from './lib.js';
import { compareValues } from './charts.js';

const SVG = 'http://www.w3.org/2000/svg';
function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null) el.setAttribute(k, v);
  for (const c of children.flat()) if (c !== null && c !== undefined) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

/**
 * The runs' columns: each param and each metric's latest value. A column is numeric when every
 * value it has parses as a finite number; `values` maps run ids to the value (string or number).
 */
export function columnsOf(runs) {
  const cols = new Map();
  for (const kind of ['params', 'metrics']) {
    for (const r of runs) {
      for (const { key, value } of r.data?.[kind] || []) {
        const id = `${kind}.${key}`;
        if (!cols.has(id)) cols.set(id, { id, kind, key, label: `${kind === 'params' ? 'param' : 'metric'} ${key}`, values: new Map() });
        cols.get(id).values.set(r.info.run_id, value);
      }
    }
  }
  for (const c of cols.values()) {
    c.numeric = [...c.values.values()].every((v) => v !== '' && Number.isFinite(Number(v)));
    if (c.numeric) for (const [id, v] of c.values) c.values.set(id, Number(v));
    c.distinct = new Set(c.values.values()).size;
  }
  return [...cols.values()];
}

/** A value → [0, 1] map for a column: linear for numbers, evenly spaced sorted categories. */
function scaleOf(col) {
  const vals = [...col.values.values()];
  if (col.numeric) {
    let lo = Math.min(...vals);
    let hi = Math.max(...vals);
    if (lo === hi) { lo -= 1; hi += 1; }
    return { lo, hi, at: (v) => (v - lo) / (hi - lo), invert: (t) => lo + t * (hi - lo), ticks: [lo, (lo + hi) / 2, hi].map(fmtNum) };
  }
  const cats = [...new Set(vals)].sort(compareValues);
  const pos = new Map(cats.map((c, i) => [c, cats.length === 1 ? 0.5 : i / (cats.length - 1)]));
  return { cats, at: (v) => pos.get(v), ticks: cats };
}

/**
 * Parallel coordinates: one vertical axis per column that differs between the runs, one
 * polyline per run. Drag along an axis to brush a range (several axes combine); runs outside
 * every brush are dimmed. The same ranges can be typed in the "Axis ranges" inputs.
 */
export function parallelCoordinates(runs) {
  const cols = columnsOf(runs).filter((c) => c.distinct > 1 || c.kind === 'metrics').slice(0, 24);
  const wrap = h('div', { class: 'svg-chart', id: 'parcoords' });
  const status = h('p', { class: 'muted', role: 'status', id: 'parcoords-status' });
  const rangesBox = h('details', { class: 'columns' }, h('summary', {}, 'Axis ranges (type a range to brush an axis)'));
  if (cols.length < 2) {
    return h('section', {}, h('h2', {}, 'Parallel coordinates'), h('p', { class: 'muted' }, 'The runs differ in fewer than two params or metrics.'));
  }
  // Brushes in each axis's own units: [lo, hi] for numbers, a set of categories otherwise.
  const brushes = new Map();
  const scales = new Map(cols.map((c) => [c.id, scaleOf(c)]));
  const height = 360;
  const top = 36;
  const bottom = 40;
  const plotH = height - top - bottom;
  const left = 60;
  // As wide as the page allows (the section is not laid out yet), with room for tick labels.
  const avail = (document.getElementById('main')?.clientWidth || 1200) - 60;
  const gap = Math.min(260, Math.max(120, (avail - left * 2) / (cols.length - 1)));
  const width = left * 2 + gap * (cols.length - 1);
  const yOf = (t) => top + (1 - t) * plotH;
  const svg = s('svg', { width, height, viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': `Parallel coordinates of ${runs.length} runs over ${cols.length} columns` });
  const linesG = s('g', {});
  const axesG = s('g', {});
  svg.append(linesG, axesG);

  const lines = runs.map((r, i) => {
    let d = '';
    let pen = 'M';
    cols.forEach((c, k) => {
      const v = c.values.get(r.info.run_id);
      if (v === undefined) { pen = 'M'; return; }
      d += `${pen}${left + k * gap},${yOf(scales.get(c.id).at(v)).toFixed(1)} `;
      pen = 'L';
    });
    const path = s('path', { class: 'pc-line', d: d.trim(), stroke: color(i), 'data-run': r.info.run_id }, s('title', {}, runName(r)));
    linesG.append(path);
    return { run: r, path };
  });

  const inside = (c, v) => {
    const b = brushes.get(c.id);
    if (!b) return true;
    if (v === undefined) return false;
    return c.numeric ? v >= b[0] && v <= b[1] : b.has(v);
  };
  const inputs = new Map();
  const update = () => {
    let shown = 0;
    for (const { run, path } of lines) {
      const ok = cols.every((c) => inside(c, c.values.get(run.info.run_id)));
      path.classList.toggle('dim', !ok);
      if (ok) { shown++; linesG.append(path); }
    }
    status.textContent = brushes.size ? `${shown} of ${runs.length} runs within the brushed ranges.` : `${runs.length} runs. Drag along an axis to brush a range; click an axis to clear it.`;
    wrap.dataset.shown = String(shown);
    for (const c of cols) {
      const rect = axesG.querySelector(`rect.brush[data-col="${CSS.escape(c.id)}"]`);
      const b = brushes.get(c.id);
      if (!b || !c.numeric) { rect.setAttribute('height', 0); } else {
        const sc = scales.get(c.id);
        const y1 = yOf(sc.at(b[1]));
        const y0 = yOf(sc.at(b[0]));
        rect.setAttribute('y', Math.min(y0, y1));
        rect.setAttribute('height', Math.abs(y0 - y1));
      }
      const pair = inputs.get(c.id);
      if (pair && document.activeElement !== pair[0] && document.activeElement !== pair[1]) {
        pair[0].value = b && c.numeric ? fmtNum(b[0]) : '';
        pair[1].value = b && c.numeric ? fmtNum(b[1]) : '';
      }
    }
  };

  cols.forEach((c, k) => {
    const x = left + k * gap;
    const sc = scales.get(c.id);
    const g = s('g', { class: 'axis', 'data-col': c.id });
    g.append(s('line', { x1: x, x2: x, y1: top, y2: top + plotH }));
    const ticks = c.numeric ? sc.ticks.map((t, i) => [t, i / 2]) : sc.ticks.slice(0, 12).map((t) => [t, sc.at(t)]);
    for (const [label, t] of ticks) {
      g.append(s('line', { x1: x - 4, x2: x, y1: yOf(t), y2: yOf(t) }), s('text', { x: x - 7, y: yOf(t) + 4, 'text-anchor': 'end' }, String(label).slice(0, 14)));
    }
    g.append(s('text', { x, y: top - 14, 'text-anchor': 'middle', 'font-weight': 600 }, c.key.length > 18 ? `${c.key.slice(0, 17)}…` : c.key),
      s('text', { x, y: height - 14, 'text-anchor': 'middle', class: 'muted' }, c.kind === 'params' ? 'param' : 'metric'));
    g.append(s('rect', { class: 'brush', 'data-col': c.id, x: x - 8, width: 16, y: top, height: 0 }));
    // The drag target: a band around the axis.
    const hit = s('rect', { class: 'axis-hit', x: x - 14, width: 28, y: top - 4, height: plotH + 8 });
    g.append(hit);
    let start = null;
    const tAt = (ev) => {
      const box = svg.getBoundingClientRect();
      const y = (ev.clientY - box.top) * (height / box.height);
      return Math.min(1, Math.max(0, 1 - (y - top) / plotH));
    };
    const setFromT = (a, b) => {
      const [t0, t1] = [Math.min(a, b), Math.max(a, b)];
      if (c.numeric) brushes.set(c.id, [sc.invert(t0), sc.invert(t1)]);
      else brushes.set(c.id, new Set(sc.cats.filter((cat) => sc.at(cat) >= t0 - 1e-9 && sc.at(cat) <= t1 + 1e-9)));
    };
    hit.addEventListener('pointerdown', (ev) => { start = tAt(ev); hit.setPointerCapture(ev.pointerId); ev.preventDefault(); });
    hit.addEventListener('pointermove', (ev) => {
      if (start === null) return;
      const t = tAt(ev);
      if (Math.abs(t - start) * plotH > 3) { setFromT(start, t); update(); }
    });
    hit.addEventListener('pointerup', (ev) => {
      if (start === null) return;
      const t = tAt(ev);
      if (Math.abs(t - start) * plotH <= 3) brushes.delete(c.id); else setFromT(start, t);
      start = null;
      update();
    });
    axesG.append(g);
  });

  // Typed ranges: the keyboard's way to brush (numeric axes).
  const numericCols = cols.filter((c) => c.numeric);
  rangesBox.append(h('div', { class: 'pc-ranges' }, numericCols.map((c) => {
    const mk = (which) => h('input', { type: 'number', step: 'any', id: `pc-${which}-${c.id}`, 'aria-label': `${c.label} ${which}`, size: 8 });
    const lo = mk('from');
    const hi = mk('to');
    inputs.set(c.id, [lo, hi]);
    const onInput = () => {
      const sc = scales.get(c.id);
      if (lo.value === '' && hi.value === '') brushes.delete(c.id);
      else brushes.set(c.id, [lo.value === '' ? sc.lo : Number(lo.value), hi.value === '' ? sc.hi : Number(hi.value)]);
      update();
    };
    lo.addEventListener('input', onInput);
    hi.addEventListener('input', onInput);
    return h('span', { class: 'bar' }, h('label', { for: lo.id }, c.label), lo, h('label', { for: hi.id }, 'to'), hi);
  })), h('button', { type: 'button', onclick: () => { brushes.clear(); for (const [a, b] of inputs.values()) { a.value = ''; b.value = ''; } update(); } }, 'Clear all ranges'));

  wrap.append(svg);
  update();
  return h('section', {}, h('h2', {}, 'Parallel coordinates'), wrap, status, rangesBox);
}

/** A scatter of any two numeric columns (params or latest metrics), one point per run. */
export function scatterAny(runs) {
  const cols = columnsOf(runs).filter((c) => c.numeric);
  if (cols.length < 2) return h('section', {}, h('h2', {}, 'Scatter'), h('p', { class: 'muted' }, 'Fewer than two numeric params or metrics to plot.'));
  const el = h('div', { class: 'chart', id: 'scatter-chart', role: 'img', 'aria-label': 'Scatter of two columns' });
  const note = h('p', { class: 'muted', role: 'status' });
  const opts = () => cols.map((c) => h('option', { value: c.id }, c.label));
  const xs = h('select', { id: 'scatter-x' }, opts());
  const ys = h('select', { id: 'scatter-y' }, opts());
  // By default a param against a metric, the question a scatter usually answers.
  xs.value = (cols.find((c) => c.kind === 'params') || cols[0]).id;
  ys.value = (cols.find((c) => c.kind === 'metrics' && c.id !== xs.value) || cols.find((c) => c.id !== xs.value)).id;
  const draw = () => {
    const cx = cols.find((c) => c.id === xs.value);
    const cy = cols.find((c) => c.id === ys.value);
    const series = [];
    let skipped = 0;
    for (const r of runs) {
      const x = cx.values.get(r.info.run_id);
      const y = cy.values.get(r.info.run_id);
      if (x === undefined || y === undefined) skipped++;
      else series.push({ label: runName(r), x: [x], y: [y] });
    }
    note.textContent = skipped ? `${skipped} run(s) without both values are left out.` : '';
    lineChart(el, series, { xLabel: cx.label, yLabel: cy.label, scatter: true, height: 320, fill: true });
  };
  xs.addEventListener('change', draw);
  ys.addEventListener('change', draw);
  requestAnimationFrame(draw);
  return h('section', { class: 'chart-card' }, h('h2', {}, 'Scatter'),
    h('div', { class: 'bar' }, h('label', { for: 'scatter-x' }, 'X column'), xs, h('label', { for: 'scatter-y' }, 'Y column'), ys), el, note);
}

/** The quantile q of sorted numbers (linear interpolation, as numpy's default). */
function quantile(sorted, q) {
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

/** Box plots of a metric's latest value, one box per value of a param (or tag-free: all runs). */
export function boxPlot(runs) {
  const cols = columnsOf(runs);
  const metrics = cols.filter((c) => c.kind === 'metrics' && c.numeric);
  const params = cols.filter((c) => c.kind === 'params');
  if (!metrics.length) return h('section', {}, h('h2', {}, 'Box plot'), h('p', { class: 'muted' }, 'No numeric metric to plot.'));
  const el = h('div', { class: 'svg-chart', id: 'box-plot' });
  const my = h('select', { id: 'box-metric' }, metrics.map((c) => h('option', { value: c.id }, c.key)));
  const by = h('select', { id: 'box-param' }, h('option', { value: '' }, 'Nothing: one box'), params.map((c) => h('option', { value: c.id }, c.key)));
  // By default the param with the fewest distinct values above one: the most runs per box.
  const fewest = params.filter((c) => c.distinct > 1).sort((a, b) => a.distinct - b.distinct)[0];
  if (fewest) by.value = fewest.id;
  const draw = () => {
    const metric = metrics.find((c) => c.id === my.value);
    const param = params.find((c) => c.id === by.value);
    const groups = new Map();
    for (const r of runs) {
      const v = metric.values.get(r.info.run_id);
      if (v === undefined) continue;
      const g = param ? String(param.values.get(r.info.run_id) ?? '(none)') : 'all runs';
      if (!groups.has(g)) groups.set(g, []);
      groups.get(g).push({ v, run: r });
    }
    const names = [...groups.keys()].sort(compareValues);
    const all = [...groups.values()].flat().map((p) => p.v);
    let lo = Math.min(...all);
    let hi = Math.max(...all);
    if (lo === hi) { lo -= 1; hi += 1; }
    const pad = (hi - lo) * 0.08;
    lo -= pad;
    hi += pad;
    const width = Math.max(320, el.clientWidth - 8);
    const height = 320;
    const left = 64;
    const top = 14;
    const plotH = height - top - 46;
    const band = (width - left - 10) / Math.max(1, names.length);
    const yOf = (v) => top + (1 - (v - lo) / (hi - lo)) * plotH;
    const svg = s('svg', { width, height, role: 'img', 'aria-label': `Box plot of ${metric.key}${param ? ` by ${param.key}` : ''}` });
    const axis = s('g', { class: 'axis' }, s('line', { x1: left, x2: left, y1: top, y2: top + plotH }),
      s('text', { x: 14, y: top + plotH / 2, transform: `rotate(-90 14 ${top + plotH / 2})`, 'text-anchor': 'middle' }, metric.key));
    for (let i = 0; i <= 4; i++) {
      const v = lo + ((hi - lo) * i) / 4;
      axis.append(s('line', { x1: left - 4, x2: left, y1: yOf(v), y2: yOf(v) }), s('text', { x: left - 7, y: yOf(v) + 4, 'text-anchor': 'end' }, fmtNum(Number(v.toPrecision(3)))));
    }
    svg.append(axis);
    names.forEach((name, i) => {
      const pts = groups.get(name);
      const sorted = pts.map((p) => p.v).sort((a, b) => a - b);
      const [q1, med, q3] = [0.25, 0.5, 0.75].map((q) => quantile(sorted, q));
      const cx = left + band * (i + 0.5);
      const bw = Math.min(60, band * 0.5);
      const g = s('g', { class: 'box-group', 'data-group': name, 'data-n': pts.length },
        s('title', {}, `${param ? param.key : ''}${param ? '=' : ''}${name}: ${pts.length} run(s), median ${fmtNum(med)}, quartiles ${fmtNum(q1)}–${fmtNum(q3)}, range ${fmtNum(sorted[0])}–${fmtNum(sorted[sorted.length - 1])}`),
        s('line', { class: 'whisker', x1: cx, x2: cx, y1: yOf(sorted[0]), y2: yOf(sorted[sorted.length - 1]) }),
        s('line', { class: 'whisker', x1: cx - bw / 4, x2: cx + bw / 4, y1: yOf(sorted[0]), y2: yOf(sorted[0]) }),
        s('line', { class: 'whisker', x1: cx - bw / 4, x2: cx + bw / 4, y1: yOf(sorted[sorted.length - 1]), y2: yOf(sorted[sorted.length - 1]) }),
        s('rect', { class: 'box', x: cx - bw / 2, width: bw, y: yOf(q3), height: Math.max(1, yOf(q1) - yOf(q3)) }),
        s('line', { class: 'median', x1: cx - bw / 2, x2: cx + bw / 2, y1: yOf(med), y2: yOf(med) }),
        pts.map((p, k) => s('circle', { class: 'dot', cx: cx + bw * 0.7 + (k % 5) * 4, cy: yOf(p.v), r: 3 }, s('title', {}, `${runName(p.run)}: ${fmtNum(p.v)}`))),
        s('text', { x: cx, y: top + plotH + 18, 'text-anchor': 'middle' }, name.length > 16 ? `${name.slice(0, 15)}…` : name),
        s('text', { x: cx, y: top + plotH + 34, 'text-anchor': 'middle', class: 'muted' }, `n=${pts.length}`));
      svg.append(g);
    });
    el.replaceChildren(svg);
    el.dataset.boxes = String(names.length);
  };
  my.addEventListener('change', draw);
  by.addEventListener('change', draw);
  requestAnimationFrame(draw);
  return h('section', { class: 'chart-card' }, h('h2', {}, 'Box plot'),
    h('div', { class: 'bar' }, h('label', { for: 'box-metric' }, 'Metric of the boxes'), my, h('label', { for: 'box-param' }, 'Grouped by param'), by), el);
}
