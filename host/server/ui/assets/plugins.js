// Installed plugins, and the models being served with their request rates and latency.

import { api, BASE, h, table, fmtNum } from './lib.js';
import { current } from './nav.js';

export async function pluginsPage(root, _params, _query, gen) {
  const { plugins = [] } = await api('/api/2.0/wasmflow/plugins');
  if (!current(gen)) return;
  root.append(h('h1', {}, 'Plugins'),
    h('p', { class: 'muted' }, 'Flavors are WebAssembly components; install one with ', h('code', {}, 'wasmflow plugins install'), '.'));
  if (!plugins.length) {
    root.append(h('p', { class: 'muted' }, 'No plugins installed.'));
    return;
  }
  root.append(table(['Name', 'Version', 'Loads flavors', 'SHA-256', 'Kind', 'Description'], plugins.map((p) => h('tr', { 'data-plugin': p.name },
    h('td', {}, h('strong', {}, p.name)),
    h('td', {}, p.version),
    h('td', {}, (p.loads || []).map((f) => h('span', { class: 'chip' }, f))),
    h('td', {}, h('code', { title: p.sha256 }, `${p.sha256.slice(0, 16)}…`)),
    h('td', {}, p.builtin ? 'built in' : 'installed'),
    h('td', {}, p.description || ''))), { caption: 'Plugins' }));
}

/** Parses Prometheus' text format into samples: {name, labels, value}. */
export function parsePrometheus(text) {
  const samples = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels = {};
    for (const l of (m[3] || '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[l[1]] = l[2].replace(/\\(.)/g, (_, c) => (c === 'n' ? '\n' : c));
    }
    samples.push({ name: m[1], labels, value: Number(m[4]) });
  }
  return samples;
}

/** Per served version: requests, errors, latency sum/count and histogram buckets. */
function servingStats(samples) {
  const byModel = new Map();
  const entry = (l) => {
    const k = `${l.model}\u0000${l.version}`;
    if (!byModel.has(k)) byModel.set(k, { model: l.model, version: l.version, requests: 0, errors: 0, sum: 0, count: 0, buckets: [], instances: null, memory: null });
    return byModel.get(k);
  };
  for (const s of samples) {
    if (!s.name.startsWith('wasmflow_serving_') || s.labels.model === undefined) continue;
    const e = entry(s.labels);
    switch (s.name) {
      case 'wasmflow_serving_requests_total': e.requests += s.value; break;
      case 'wasmflow_serving_errors_total': e.errors += s.value; break;
      case 'wasmflow_serving_request_duration_seconds_sum': e.sum += s.value; break;
      case 'wasmflow_serving_request_duration_seconds_count': e.count += s.value; break;
      case 'wasmflow_serving_request_duration_seconds_bucket': e.buckets.push([Number(s.labels.le), s.value]); break;
      case 'wasmflow_serving_pool_instances': e.instances = (e.instances || 0) + s.value; break;
      case 'wasmflow_serving_memory_bytes': e.memory = (e.memory || 0) + s.value; break;
      default:
    }
  }
  return [...byModel.values()].sort((a, b) => a.model.localeCompare(b.model) || Number(a.version) - Number(b.version));
}

/** A quantile from cumulative buckets: the upper bound of the first bucket that reaches it. */
function quantile(buckets, q) {
  const sorted = [...buckets].sort((a, b) => a[0] - b[0]);
  const total = sorted.at(-1)?.[1] || 0;
  if (!total) return null;
  const bucket = sorted.find(([, c]) => c >= q * total);
  return bucket && Number.isFinite(bucket[0]) ? bucket[0] : null;
}

const ms = (s) => (s === null || s === undefined ? '' : `${fmtNum(Number((s * 1000).toPrecision(3)))} ms`);

export async function servingPage(root, _params, _query, gen) {
  root.append(h('h1', {}, 'Serving'),
    h('p', { class: 'muted', id: 'serving-help' }, 'Registered models answer at ', h('code', {}, `${BASE}/serving/models/<name>/<version | @alias | stage | latest>/invocations`),
      ' (an alias also without its @, or as ', h('code', {}, `${BASE}/serving/models/<name>@<alias>/invocations`), ', as in ', h('code', {}, 'models:/<name>@<alias>'), '). Rates are measured between refreshes (every 5 s).'));
  const body = h('div', { id: 'serving', 'aria-live': 'polite' });
  root.append(body);
  let previous = null;
  const refresh = async () => {
    let text = null;
    try {
      const res = await fetch(`${BASE}/metrics`);
      if (res.ok) text = await res.text();
    } catch { text = null; }
    if (!current(gen)) return false;
    const stats = text === null ? [] : servingStats(parsePrometheus(text));
    const now = performance.now();
    if (!stats.length) {
      body.replaceChildren(h('p', { class: 'muted', id: 'no-serving' }, text === null ? 'No serving metrics: this server has no /metrics endpoint.' : 'No serving metrics yet: no model has been served since the server started.'));
      return true;
    }
    const rate = (e, field) => {
      const before = previous?.stats.find((p) => p.model === e.model && p.version === e.version);
      if (!before) return '…';
      const dt = (now - previous.at) / 1000;
      return `${fmtNum(Math.max(0, e[field] - before[field]) / dt)}/s`;
    };
    body.replaceChildren(table(['Model', 'Version', 'Requests', 'Request rate', 'Errors', 'Error rate', 'Mean latency', 'p50 ≤', 'p95 ≤', 'Instances', 'Memory'],
      stats.map((e) => h('tr', { 'data-served': `${e.model}/${e.version}` },
        h('td', {}, h('a', { href: `#/models/${encodeURIComponent(e.model)}` }, e.model)),
        h('td', {}, h('a', { href: `#/models/${encodeURIComponent(e.model)}/versions/${e.version}` }, e.version)),
        h('td', { class: 'num' }, fmtNum(e.requests)),
        h('td', { class: 'num' }, rate(e, 'requests')),
        h('td', { class: 'num' }, fmtNum(e.errors)),
        h('td', { class: 'num' }, rate(e, 'errors')),
        h('td', { class: 'num' }, e.count ? ms(e.sum / e.count) : ''),
        h('td', { class: 'num' }, ms(quantile(e.buckets, 0.5))),
        h('td', { class: 'num' }, ms(quantile(e.buckets, 0.95))),
        h('td', { class: 'num' }, e.instances ?? ''),
        h('td', { class: 'num' }, e.memory === null ? '' : `${fmtNum(e.memory / 1048576)} MiB`))), { caption: 'Served models' }));
    previous = { stats, at: now };
    return true;
  };
  await refresh();
  const timer = setInterval(async () => { if (!(await refresh())) clearInterval(timer); }, 5000);
}
