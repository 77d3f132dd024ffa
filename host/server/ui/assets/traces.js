// GenAI traces (MLflow 3): an experiment's Traces tab (search with MLflow's trace filter grammar,
// order and paging, all kept in the URL) and one trace's page: the span tree with timing bars,
// the selected span's inputs, outputs, attributes and events, and the trace's assessments, tags
// and metadata.

import { api, h, table, errorBox, fmtTime, fmtNum } from './lib.js';
import { current, setQuery } from './nav.js';
import { emptyState, tagEditor } from './edit.js';
import { experimentAbout } from './experimentedit.js';

/** MLflow 3's trace API as MLflow's own UI calls it. */
const TRACES = '/ajax-api/3.0/mlflow/traces';
const TOKEN_USAGE = 'mlflow.trace.tokenUsage';

/** The views of one experiment: its runs and its traces (a nav of links, one per page). */
export function experimentTabs(id, active) {
  const tab = (key, label, href) => h('a', { href, 'data-tab': key, 'aria-current': key === active ? 'page' : null }, label);
  return h('nav', { class: 'tabs', 'aria-label': 'Experiment views' },
    tab('runs', 'Runs', `#/experiments/${id}`),
    tab('traces', 'Traces', `#/experiments/${id}/traces`));
}

export const traceHref = (expId, traceId) => `#/experiments/${expId}/traces/${encodeURIComponent(traceId)}`;

/** A protobuf Duration ("0.106s") or milliseconds as milliseconds; null when absent. */
function durationMs(v) {
  if (v === undefined || v === null || v === '') return null;
  const n = typeof v === 'number' ? v : Number.parseFloat(String(v)) * (/s$/.test(String(v)) ? 1000 : 1);
  return Number.isFinite(n) ? n : null;
}

export function fmtMs(ms) {
  if (ms === null || ms === undefined) return '';
  if (ms < 1) return `${ms.toFixed(2)} ms`;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(2)} s`;
  return `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`;
}

/** A trace's request time (RFC 3339 in v3, milliseconds in v2) as epoch milliseconds. */
const requestMs = (info) => (info.request_time ? Date.parse(info.request_time) : Number(info.timestamp_ms));

/** The token usage MLflow sums into a trace's metadata, or null. */
function tokenUsage(info) {
  try {
    const u = JSON.parse(info.trace_metadata?.[TOKEN_USAGE] || 'null');
    return u && typeof u === 'object' ? u : null;
  } catch { return null; }
}

const usageTitle = (u) => [u.input_tokens !== undefined ? `${u.input_tokens} input` : null, u.output_tokens !== undefined ? `${u.output_tokens} output` : null].filter(Boolean).join(' · ');

export const traceStatus = (state) => h('span', { class: `status ${state || ''}` }, state === 'STATE_UNSPECIFIED' || !state ? 'unknown' : state);

/** A one-line preview: long text is cut, the whole stays in the title. */
function clip(text, n = 90) {
  if (!text) return '';
  const oneLine = String(text).replace(/\s+/g, ' ');
  return oneLine.length > n ? `${oneLine.slice(0, n - 1)}…` : oneLine;
}

/** An assessment's value: a feedback's value or error, an expectation's value. */
function assessmentValue(a) {
  if (a.feedback) {
    if (a.feedback.error) return `error: ${a.feedback.error.error_message || a.feedback.error.error_code || ''}`;
    return a.feedback.value;
  }
  if (a.expectation) {
    if ('value' in a.expectation) return a.expectation.value;
    const s = a.expectation.serialized_value?.value;
    try { return JSON.parse(s); } catch { return s; }
  }
  return undefined;
}

const valueText = (v) => (v === undefined ? '' : typeof v === 'string' ? v : JSON.stringify(v));
const ownTags = (tags) => Object.entries(tags || {}).filter(([k]) => !k.startsWith('mlflow.'));

/** The Traces tab: MLflow's trace search over one experiment. */
export async function tracesPage(root, [expId], query, gen) {
  // MLflow's UI opens a trace from its table with ?selectedTraceId=; the same address works here.
  const selected = query.get('selectedTraceId') || query.get('selectedEvaluationId');
  if (selected) return tracePage(root, [expId, selected], query, gen);
  const filter = query.get('filter') || '';
  const order = query.get('order') || 'timestamp_ms DESC';
  const size = Number(query.get('size') || 50);
  const token = query.get('pt') || '';
  // The tokens of earlier pages, for "Previous"; the first page's (no token) is "-".
  const prev = query.get('prev') ? query.get('prev').split('|') : [];
  const exp = (await api('experiments/get', { query: { experiment_id: expId } })).experiment;
  if (!current(gen)) return;
  const go = (changes) => {
    const q = new URLSearchParams(query);
    for (const [k, v] of Object.entries(changes)) {
      if (v === '' || v === null || v === undefined) q.delete(k);
      else q.set(k, v);
    }
    setQuery(q);
  };
  const filterInput = h('input', { class: 'filter', id: 'trace-filter', value: filter, spellcheck: false, placeholder: "tags.topic = 'docs' AND trace.status = 'OK'", 'aria-describedby': 'trace-filter-help' });
  const filterError = h('div', { id: 'trace-filter-error', 'aria-live': 'polite' });
  root.append(
    h('div', { class: 'crumbs' }, h('a', { href: '#/' }, 'Experiments'), ' / '),
    h('h1', {}, exp.name),
    experimentAbout(exp),
    experimentTabs(expId, 'traces'),
    h('form', { class: 'bar', role: 'search', onsubmit: (e) => { e.preventDefault(); go({ filter: filterInput.value.trim(), pt: '', prev: '' }); } },
      h('label', { for: 'trace-filter' }, 'Filter traces'), filterInput, h('button', { type: 'submit' }, 'Search'),
      filter ? h('button', { type: 'button', onclick: () => go({ filter: '', pt: '', prev: '' }) }, 'Clear') : null),
    h('p', { class: 'muted hint', id: 'trace-filter-help' }, 'MLflow\'s trace filter: ',
      h('code', {}, "trace.status = 'ERROR'"), ', ', h('code', {}, 'trace.execution_time_ms > 500'), ', ',
      h('code', {}, "tags.topic = 'docs'"), ', ', h('code', {}, "metadata.`mlflow.user` = 'ana'"), ', ',
      h('code', {}, "span.name = 'generate'"), '; join with AND.'),
    filterError);

  let page;
  try {
    page = await api(`${TRACES}/search`, {
      method: 'POST',
      body: {
        locations: [{ type: 'MLFLOW_EXPERIMENT', mlflow_experiment: { experiment_id: expId } }],
        filter, order_by: [order], max_results: size, page_token: token || undefined,
      },
    });
  } catch (e) {
    if (!current(gen)) return;
    filterError.replaceChildren(errorBox(e));
    filterInput.setAttribute('aria-invalid', 'true');
    filterInput.setAttribute('aria-describedby', 'trace-filter-error trace-filter-help');
    return;
  }
  if (!current(gen)) return;
  const traces = page.traces || [];

  const [orderKey, orderDir = 'ASC'] = order.trim().split(/\s+/);
  const sortHeader = (label, key, cls) => {
    const active = orderKey === key;
    const dir = active ? orderDir.toUpperCase() : null;
    return h('th', { scope: 'col', class: cls, 'aria-sort': dir ? (dir === 'DESC' ? 'descending' : 'ascending') : null },
      h('button', {
        type: 'button', class: 'sort', title: `Sort by ${label}`,
        onclick: () => go({ order: `${key} ${active && dir === 'DESC' ? 'ASC' : 'DESC'}`, pt: '', prev: '' }),
      }, label, dir ? (dir === 'DESC' ? ' ▼' : ' ▲') : ''));
  };
  // Selection for deleting traces (MLflow's DeleteTraces by ids); a deletion cannot be undone.
  const picked = new Set();
  const boxes = [];
  const deleteStatus = h('span', { role: 'status', id: 'delete-traces-status' });
  const deleteButton = h('button', {
    type: 'button', id: 'delete-traces', disabled: true,
    onclick: async () => {
      const ids = [...picked];
      if (!confirm(`Delete ${ids.length} trace${ids.length === 1 ? '' : 's'} with their spans and assessments? This cannot be undone.`)) return;
      try {
        await api(`${TRACES}/delete-traces`, { method: 'POST', body: { experiment_id: expId, request_ids: ids } });
        window.dispatchEvent(new HashChangeEvent('hashchange'));
      } catch (err) { deleteStatus.replaceChildren(errorBox(err)); }
    },
  }, 'Delete selected');
  const allBox = h('input', {
    type: 'checkbox', id: 'select-all-traces', 'aria-label': 'Select all traces on this page',
    onchange: (e) => { for (const b of boxes) { b.checked = e.target.checked; b.onchange(); } },
  });
  const syncSelection = () => {
    deleteButton.disabled = picked.size === 0;
    deleteButton.textContent = picked.size ? `Delete selected (${picked.size})` : 'Delete selected';
    allBox.checked = boxes.length > 0 && picked.size === boxes.length;
  };
  const headers = [h('th', { scope: 'col', class: 'select' }, allBox), 'Request', 'Response', sortHeader('Name', 'name'), sortHeader('Status', 'status'),
    sortHeader('Request time', 'timestamp_ms'), sortHeader('Latency', 'execution_time_ms', 'num'),
    h('th', { scope: 'col', class: 'num' }, 'Tokens'), 'Tags', 'Assessments'];
  const rows = traces.map((t) => {
    const usage = tokenUsage(t);
    const href = traceHref(expId, t.trace_id);
    const box = h('input', { type: 'checkbox', 'data-select-trace': t.trace_id, 'aria-label': `Select trace ${t.trace_id}` });
    box.onchange = () => { if (box.checked) picked.add(t.trace_id); else picked.delete(t.trace_id); syncSelection(); };
    boxes.push(box);
    return h('tr', { 'data-trace': t.trace_id },
      h('td', { class: 'select' }, box),
      h('td', { class: 'preview-cell' },
        h('a', { href, title: t.request_preview || t.trace_id }, clip(t.request_preview) || t.trace_id),
        h('div', {}, h('code', { class: 'muted trace-id' }, t.trace_id))),
      h('td', { class: 'preview-cell', title: t.response_preview || '' }, clip(t.response_preview)),
      h('td', {}, t.tags?.['mlflow.traceName'] || ''),
      h('td', { 'data-col': 'status' }, traceStatus(t.state)),
      h('td', {}, fmtTime(requestMs(t))),
      h('td', { class: 'num' }, fmtMs(durationMs(t.execution_duration))),
      h('td', { class: 'num', 'data-col': 'tokens', title: usage ? usageTitle(usage) : null }, usage?.total_tokens !== undefined ? fmtNum(usage.total_tokens) : ''),
      h('td', {}, ownTags(t.tags).map(([k, v]) => h('span', { class: 'chip', title: `${k}: ${v}` }, `${k}: ${clip(v, 40)}`))),
      h('td', {}, (t.assessments || []).filter((a) => a.valid !== false).map((a) => h('span', { class: 'chip' }, `${a.assessment_name}: ${clip(valueText(assessmentValue(a)), 30)}`))));
  });
  const pageNo = prev.length + 1;
  const pager = h('div', { class: 'bar' },
    h('button', { type: 'button', disabled: prev.length === 0, onclick: () => go({ pt: prev[prev.length - 1].replace(/^-$/, ''), prev: prev.slice(0, -1).join('|') }) }, '← Previous'),
    h('span', { 'data-testid': 'trace-page-info' }, `Page ${pageNo} · traces ${(pageNo - 1) * size + (traces.length ? 1 : 0)}–${(pageNo - 1) * size + traces.length}`),
    h('button', { type: 'button', disabled: !page.next_page_token, onclick: () => go({ pt: page.next_page_token, prev: [...prev, token || '-'].join('|') }) }, 'Next →'),
    h('label', { for: 'trace-page-size' }, 'Per page'),
    h('select', { id: 'trace-page-size', onchange: (e) => go({ size: e.target.value, pt: '', prev: '' }) },
      [...new Set([25, 50, 100, 500, size])].sort((a, b) => a - b).map((n) => h('option', { value: n, selected: n === size }, n))));
  if (!traces.length) {
    root.append(...(prev.length ? [pager] : []), filter ? emptyState('No traces match the filter.', null, { id: 'no-traces' })
      : prev.length ? emptyState('No more traces.', null, { id: 'no-traces' })
        : emptyState(`No traces yet — trace a function with @mlflow.trace after mlflow.set_experiment(${JSON.stringify(exp.name)}), or send OpenTelemetry spans to`, '/v1/traces', { id: 'no-traces' }));
    return;
  }
  root.append(pager, h('div', { class: 'bar' }, deleteButton, deleteStatus), table(headers, rows, { caption: 'Traces' }));
}

// ---------------------------------------------------------------------------------------------
// One trace.

/** An OTLP AnyValue (snake_case as the API writes it, camelCase as OTLP/JSON does) as JSON. */
function anyValue(v) {
  if (v === null || typeof v !== 'object') return v;
  const pick = (a, b) => (a in v ? v[a] : v[b]);
  if ('string_value' in v || 'stringValue' in v) return pick('string_value', 'stringValue');
  if ('bool_value' in v || 'boolValue' in v) return pick('bool_value', 'boolValue');
  if ('int_value' in v || 'intValue' in v) {
    const n = Number(pick('int_value', 'intValue'));
    return Number.isSafeInteger(n) ? n : String(pick('int_value', 'intValue'));
  }
  if ('double_value' in v || 'doubleValue' in v) return Number(pick('double_value', 'doubleValue'));
  if ('array_value' in v || 'arrayValue' in v) return (pick('array_value', 'arrayValue').values || []).map(anyValue);
  if ('kvlist_value' in v || 'kvlistValue' in v) return attributes(pick('kvlist_value', 'kvlistValue').values || []);
  if ('bytes_value' in v || 'bytesValue' in v) return pick('bytes_value', 'bytesValue');
  return null;
}

/**
 * Span attributes as {key: value}: a list of OTLP key/values (the API) or an object of JSON
 * strings (MLflow's traces.json artifact writes each value json-dumped).
 */
function attributes(attrs) {
  const out = {};
  if (Array.isArray(attrs)) {
    for (const kv of attrs) out[kv.key] = decoded(anyValue(kv.value));
  } else {
    for (const [k, v] of Object.entries(attrs || {})) out[k] = decoded(v);
  }
  return out;
}

/** MLflow json-dumps attribute values; a string that reads as JSON text is shown as its value. */
function decoded(v) {
  if (typeof v !== 'string' || !/^\s*[[{"]/.test(v)) return v;
  try { return JSON.parse(v); } catch { return v; }
}

/** A span id as hex, as MLflow shows it (the API writes OTLP's base64). */
function spanHex(id) {
  if (!id || /^[0-9a-f]{16}$/i.test(id)) return id || '';
  try { return [...atob(id)].map((c) => c.charCodeAt(0).toString(16).padStart(2, '0')).join(''); } catch { return id; }
}

const nanos = (v) => {
  try { return BigInt(String(v ?? 0).split('.')[0] || 0); } catch { return 0n; }
};

const STATUS_NAMES = { 0: 'UNSET', 1: 'OK', 2: 'ERROR', STATUS_CODE_UNSET: 'UNSET', STATUS_CODE_OK: 'OK', STATUS_CODE_ERROR: 'ERROR' };

/**
 * A span in one shape, whichever way it came: the v3 API's OTLP JSON, MLflow 3's traces.json
 * (`Span.to_dict`), or MLflow 2's (`context`, `parent_id`, `start_time`, `status_code`).
 */
function normalizeSpan(s) {
  const status = s.status && typeof s.status === 'object' ? s.status : { code: s.status_code ?? s.status, message: s.status_message };
  return {
    id: s.span_id ?? s.context?.span_id ?? s.spanId,
    parent: s.parent_span_id ?? s.parent_id ?? s.parentSpanId ?? null,
    name: s.name || '(unnamed)',
    start: nanos(s.start_time_unix_nano ?? s.start_time ?? s.startTimeUnixNano),
    end: nanos(s.end_time_unix_nano ?? s.end_time ?? s.endTimeUnixNano),
    attrs: attributes(s.attributes),
    events: (s.events || []).map((e) => ({ name: e.name, time: nanos(e.time_unix_nano ?? e.timestamp ?? e.timeUnixNano), attrs: attributes(e.attributes) })),
    status: { code: STATUS_NAMES[status.code] ?? (status.code ? String(status.code) : 'UNSET'), message: status.message || '' },
  };
}

/** The spans as a forest: roots (no parent, or a parent not in the trace) with sorted children. */
function spanTree(spans) {
  const byId = new Map(spans.map((s) => [s.id, { ...s, children: [] }]));
  const roots = [];
  for (const node of byId.values()) {
    const parent = node.parent ? byId.get(node.parent) : null;
    if (parent && parent !== node) parent.children.push(node); else roots.push(node);
  }
  const byStart = (a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0);
  const sort = (list) => { list.sort(byStart); for (const n of list) sort(n.children); };
  sort(roots);
  return { roots, byId };
}

const pretty = (v) => (typeof v === 'string' ? v : JSON.stringify(v, null, 2));
const jsonBlock = (v, attrs = {}) => h('pre', { class: 'json', ...attrs }, v === undefined ? '' : pretty(v));
const INPUTS = 'mlflow.spanInputs';
const OUTPUTS = 'mlflow.spanOutputs';
const SPAN_TYPE = 'mlflow.spanType';

export async function tracePage(root, [expIdParam, traceId], _query, gen) {
  const trace = (await api(`${TRACES}/get`, { query: { trace_id: traceId } })).trace;
  if (!current(gen)) return;
  const info = trace.trace_info;
  const expId = info.trace_location?.mlflow_experiment?.experiment_id || expIdParam;
  let spans = (trace.spans || []).map(normalizeSpan);
  let spansNote = null;
  // Traces logged by older clients keep their spans in the traces.json artifact only.
  if (!spans.length && info.tags?.['mlflow.trace.spansLocation'] !== 'TRACKING_STORE') {
    try {
      spans = ((await api('get-trace-artifact', { query: { request_id: traceId } })).spans || []).map(normalizeSpan);
    } catch (e) { spansNote = e; }
  }
  const exp = await api('experiments/get', { query: { experiment_id: expId } }).then((r) => r.experiment).catch(() => null);
  if (!current(gen)) return;

  const { roots, byId } = spanTree(spans);
  const t0 = spans.reduce((m, s) => (m === null || s.start < m ? s.start : m), null) ?? 0n;
  const t1 = spans.reduce((m, s) => (s.end > m ? s.end : m), t0);
  const total = Number(t1 - t0) || 1;
  const offsetMs = (ns) => Number(ns - t0) / 1e6;
  const usage = tokenUsage(info);
  const runId = info.trace_metadata?.['mlflow.sourceRun'];
  const name = info.tags?.['mlflow.traceName'] || roots[0]?.name || info.trace_id;

  root.append(
    h('div', { class: 'crumbs' }, h('a', { href: '#/' }, 'Experiments'), ' / ',
      h('a', { href: `#/experiments/${expId}` }, exp?.name || `experiment ${expId}`), ' / ',
      h('a', { href: `#/experiments/${expId}/traces` }, 'Traces'), ' / '),
    h('h1', {}, name, ' ', traceStatus(info.state)),
    h('dl', { class: 'kv', id: 'trace-summary' },
      h('dt', {}, 'Trace ID'), h('dd', {}, h('code', {}, info.trace_id)),
      h('dt', {}, 'Request time'), h('dd', {}, fmtTime(requestMs(info))),
      h('dt', {}, 'Latency'), h('dd', { id: 'trace-latency' }, fmtMs(durationMs(info.execution_duration ?? info.execution_time_ms))),
      usage ? [h('dt', {}, 'Tokens'), h('dd', { id: 'trace-tokens' }, `${fmtNum(usage.total_tokens ?? '')}${usageTitle(usage) ? ` (${usageTitle(usage)})` : ''}`)] : null,
      runId ? [h('dt', {}, 'Run'), h('dd', {}, h('a', { href: `#/runs/${runId}` }, runId))] : null,
      h('dt', {}, 'Spans'), h('dd', { id: 'trace-span-count' }, String(spans.length))));

  // The span tree: a flat list of treeitems (aria-level gives the depth) so that every row's
  // timing bar shares one time axis; collapsed spans hide their descendants.
  const collapsed = new Set();
  let selectedId = roots[0]?.id ?? null;
  const tree = h('div', { class: 'span-tree', role: 'tree', 'aria-label': 'Spans', id: 'span-tree' });
  const detail = h('section', { class: 'span-detail', id: 'span-detail', 'aria-label': 'Selected span' });
  const visible = () => {
    const out = [];
    const walk = (nodes, depth) => {
      nodes.forEach((n, i) => {
        out.push({ node: n, depth, pos: i + 1, size: nodes.length });
        if (!collapsed.has(n.id)) walk(n.children, depth + 1);
      });
    };
    walk(roots, 0);
    return out;
  };
  const focusRow = (id) => tree.querySelector(`[data-span-id="${CSS.escape(id)}"]`)?.focus();
  const select = (id, focus = true) => {
    selectedId = id;
    for (const row of tree.querySelectorAll('[role=treeitem]')) row.setAttribute('aria-selected', String(row.dataset.spanId === id));
    showSpan(byId.get(id));
    if (focus) focusRow(id);
  };
  const toggle = (id, open) => {
    if (open) collapsed.delete(id); else collapsed.add(id);
    drawTree();
    focusRow(id);
  };
  const onKey = (e, rows, index) => {
    const { node, depth } = rows[index];
    const move = (i) => { if (i >= 0 && i < rows.length) select(rows[i].node.id); };
    const parentIndex = () => { for (let i = index - 1; i >= 0; i--) if (rows[i].depth < depth) return i; return -1; };
    const handlers = {
      ArrowDown: () => move(index + 1),
      ArrowUp: () => move(index - 1),
      Home: () => move(0),
      End: () => move(rows.length - 1),
      ArrowRight: () => {
        if (!node.children.length) return;
        if (collapsed.has(node.id)) toggle(node.id, true); else move(index + 1);
      },
      ArrowLeft: () => {
        if (node.children.length && !collapsed.has(node.id)) toggle(node.id, false);
        else move(parentIndex());
      },
      Enter: () => select(node.id),
      ' ': () => select(node.id),
    };
    if (handlers[e.key]) { e.preventDefault(); handlers[e.key](); }
  };
  const drawTree = () => {
    const rows = visible();
    tree.replaceChildren(...rows.map(({ node, depth, pos, size }, index) => {
      const left = (Number(node.start - t0) / total) * 100;
      const width = Math.max((Number(node.end - node.start) / total) * 100, 0.4);
      const hasKids = node.children.length > 0;
      const open = !collapsed.has(node.id);
      const type = node.attrs[SPAN_TYPE];
      return h('div', {
        role: 'treeitem', class: 'span-row', tabindex: node.id === selectedId ? '0' : '-1',
        'data-span-id': node.id, 'data-span': node.name, 'aria-level': depth + 1, 'aria-posinset': pos, 'aria-setsize': size,
        'aria-selected': String(node.id === selectedId), 'aria-expanded': hasKids ? String(open) : null,
        onclick: () => select(node.id),
        onkeydown: (e) => onKey(e, rows, index),
      },
      h('span', { class: 'span-label', style: `padding-left: ${depth * 16}px` },
        hasKids ? h('span', {
          class: 'toggle', 'aria-hidden': 'true', title: open ? 'Collapse' : 'Expand',
          onclick: (e) => { e.stopPropagation(); toggle(node.id, !open); },
        }, open ? '▾' : '▸') : h('span', { class: 'toggle' }),
        h('span', { class: 'span-name' }, node.name),
        type && type !== 'UNKNOWN' ? h('span', { class: 'chip span-type' }, type) : null,
        node.status.code === 'ERROR' ? h('span', { class: 'status ERROR' }, 'ERROR') : null),
      h('span', { class: 'span-duration num' }, fmtMs(Number(node.end - node.start) / 1e6)),
      h('span', { class: 'span-track', 'aria-hidden': 'true' },
        h('span', { class: `span-bar${node.status.code === 'ERROR' ? ' error' : ''}`, style: `left: ${Math.min(left, 99.6)}%; width: ${Math.min(width, 100 - Math.min(left, 99.6))}%` })));
    }));
  };
  const showSpan = (node) => {
    if (!node) { detail.replaceChildren(); return; }
    const rest = Object.entries(node.attrs).filter(([k]) => k !== INPUTS && k !== OUTPUTS);
    const parent = node.parent ? byId.get(node.parent) : null;
    detail.replaceChildren(
      h('h2', {}, node.name, ' ', h('span', { class: `status ${node.status.code}` }, node.status.code)),
      h('dl', { class: 'kv' },
        h('dt', {}, 'Type'), h('dd', {}, node.attrs[SPAN_TYPE] || 'UNKNOWN'),
        h('dt', {}, 'Span ID'), h('dd', {}, h('code', {}, spanHex(node.id))),
        parent ? [h('dt', {}, 'Parent'), h('dd', {}, parent.name)] : null,
        h('dt', {}, 'Start'), h('dd', {}, `+${fmtMs(offsetMs(node.start))} from the trace's start`),
        h('dt', {}, 'Duration'), h('dd', {}, fmtMs(Number(node.end - node.start) / 1e6)),
        node.status.message ? [h('dt', {}, 'Status message'), h('dd', { class: node.status.code === 'ERROR' ? 'error' : '' }, node.status.message)] : null),
      h('h3', {}, 'Inputs'), INPUTS in node.attrs ? jsonBlock(node.attrs[INPUTS], { id: 'span-inputs' }) : h('p', { class: 'muted', id: 'span-inputs' }, 'No inputs recorded.'),
      h('h3', {}, 'Outputs'), OUTPUTS in node.attrs ? jsonBlock(node.attrs[OUTPUTS], { id: 'span-outputs' }) : h('p', { class: 'muted', id: 'span-outputs' }, 'No outputs recorded.'),
      h('h3', {}, `Attributes (${rest.length})`),
      rest.length ? table(['Key', 'Value'], rest.map(([k, v]) => h('tr', { 'data-attribute': k }, h('th', { scope: 'row' }, k), h('td', {}, typeof v === 'object' && v !== null ? jsonBlock(v) : valueText(v)))), { caption: 'Span attributes' })
        : h('p', { class: 'muted' }, 'No attributes.'),
      h('h3', {}, `Events (${node.events.length})`),
      node.events.length ? h('ol', { class: 'events', id: 'span-events' }, node.events.map((e) => h('li', { 'data-event': e.name },
        h('strong', {}, e.name), ' ', h('span', { class: 'muted' }, `+${fmtMs(offsetMs(e.time))}`),
        Object.keys(e.attrs).length ? jsonBlock(e.attrs) : null)))
        : h('p', { class: 'muted' }, 'No events.'));
  };
  drawTree();
  showSpan(byId.get(selectedId));
  root.append(h('h2', {}, `Spans (${spans.length})`),
    spans.length ? h('div', { class: 'trace-layout' }, h('div', { class: 'span-pane' }, tree), detail)
      : spansNote ? errorBox(spansNote) : emptyState('This trace has no spans.', null, { id: 'no-spans' }));

  root.append(assessmentsSection(info));
  const setTag = (key, value) => api(`${TRACES}/${encodeURIComponent(traceId)}/tags`, { method: 'PATCH', body: { key, value } });
  root.append(tagEditor(Object.entries(info.tags || {}).map(([key, value]) => ({ key, value })), {
    set: setTag,
    remove: (key) => api(`${TRACES}/${encodeURIComponent(traceId)}/tags`, { method: 'DELETE', query: { key } }),
    id: 'trace-tags',
    what: 'trace',
  }));
  const metadata = Object.entries(info.trace_metadata || {}).sort(([a], [b]) => a.localeCompare(b));
  root.append(h('section', { id: 'trace-metadata' }, h('h2', {}, `Metadata (${metadata.length})`),
    metadata.length ? table(['Key', 'Value'], metadata.map(([k, v]) => h('tr', { 'data-metadata': k }, h('th', { scope: 'row' }, k), h('td', {}, h('code', { class: 'wrap' }, v)))), { caption: 'Trace metadata' })
      : h('p', { class: 'muted' }, 'No metadata.')));
}

/** A value typed in a form: JSON when it parses (true, 0.8, {"a": 1}), else the text itself. */
function parseValue(text) {
  const t = text.trim();
  try { return JSON.parse(t); } catch { return t; }
}

/** The form that adds an assessment, or (with `a`) changes one's value and rationale. */
function assessmentForm(traceId, a, done) {
  const editing = Boolean(a);
  const id = editing ? `edit-${a.assessment_id}` : 'new-assessment';
  const v = editing ? assessmentValue(a) : undefined;
  const name = h('input', { id: `${id}-name`, required: true, value: editing ? a.assessment_name : '', disabled: editing, placeholder: 'quality' });
  const kind = h('select', { id: `${id}-kind`, disabled: editing },
    h('option', { value: 'feedback', selected: !editing || Boolean(a.feedback) }, 'Feedback'),
    h('option', { value: 'expectation', selected: editing && Boolean(a.expectation) }, 'Expectation'));
  const value = h('input', { id: `${id}-value`, required: true, value: v === undefined ? '' : valueText(v), placeholder: 'true, 0.8, "text" or JSON' });
  const rationale = h('input', { id: `${id}-rationale`, value: editing ? a.rationale || '' : '', placeholder: 'why (optional)' });
  const status = h('span', { role: 'status' });
  const field = (label, input) => h('label', {}, label, ' ', input);
  return h('form', {
    class: 'bar assessment-form', id,
    onsubmit: async (e) => {
      e.preventDefault();
      const isFeedback = kind.value === 'feedback';
      const body = isFeedback ? { feedback: { value: parseValue(value.value) } } : { expectation: { value: parseValue(value.value) } };
      if (rationale.value.trim()) body.rationale = rationale.value.trim();
      try {
        if (editing) {
          const mask = [isFeedback ? 'feedback' : 'expectation', ...(isFeedback ? ['rationale'] : [])].join(',');
          await api(`${TRACES}/${encodeURIComponent(traceId)}/assessments/${encodeURIComponent(a.assessment_id)}`,
            { method: 'PATCH', body: { assessment: { trace_id: traceId, assessment_id: a.assessment_id, ...body }, update_mask: mask } });
        } else {
          await api(`${TRACES}/${encodeURIComponent(traceId)}/assessments`, {
            method: 'POST',
            body: { assessment: { trace_id: traceId, assessment_name: name.value.trim(), source: { source_type: 'HUMAN', source_id: 'wasmflow-ui' }, ...body } },
          });
        }
        done();
      } catch (err) { status.replaceChildren(errorBox(err)); }
    },
  },
  field('Name', name), field('Kind', kind), field('Value', value), field('Rationale', rationale),
  h('button', { type: 'submit' }, editing ? 'Save' : 'Add assessment'),
  editing ? h('button', { type: 'button', onclick: () => done() }, 'Cancel') : null,
  status);
}

/** Feedback and expectations on the trace (overridden ones marked), as MLflow 3 logs them; each
 * can be changed or deleted, and new ones added (MLflow's assessments API). */
function assessmentsSection(info) {
  const traceId = info.trace_id;
  const section = h('section', { id: 'assessments' });
  let editingId = null;
  const reload = async () => {
    editingId = null;
    try {
      const fresh = (await api(`${TRACES}/${encodeURIComponent(traceId)}`)).trace.trace_info;
      draw(fresh.assessments || []);
    } catch (err) { section.append(errorBox(err)); }
  };
  const remove = async (a) => {
    if (!confirm(`Delete assessment "${a.assessment_name}"?`)) return;
    try {
      await api(`${TRACES}/${encodeURIComponent(traceId)}/assessments/${encodeURIComponent(a.assessment_id)}`, { method: 'DELETE' });
      await reload();
    } catch (err) { section.append(errorBox(err)); }
  };
  const draw = (list) => {
    section.replaceChildren(h('h2', {}, `Assessments (${list.length})`));
    if (!list.length) {
      section.append(emptyState('No assessments yet — add one below, or log one with', `mlflow.log_feedback(trace_id=${JSON.stringify(traceId)}, name="quality", value=True)`, { id: 'no-assessments' }));
    } else {
      section.append(table(['Name', 'Kind', 'Value', 'Source', 'Rationale', 'Span', 'Updated', ''], list.map((a) => {
        const v = assessmentValue(a);
        const src = a.source || {};
        const row = h('tr', { 'data-assessment': a.assessment_name, 'data-assessment-id': a.assessment_id, class: a.valid === false ? 'muted' : null },
          h('th', { scope: 'row' }, a.assessment_name, a.valid === false ? h('span', { class: 'muted' }, ' (overridden)') : null),
          h('td', {}, a.feedback ? 'Feedback' : a.expectation ? 'Expectation' : ''),
          h('td', { 'data-col': 'value' }, typeof v === 'object' && v !== null ? jsonBlock(v) : valueText(v)),
          h('td', { 'data-col': 'source' }, [src.source_type, src.source_id].filter(Boolean).join(': ')),
          h('td', { 'data-col': 'rationale' }, a.rationale || ''),
          h('td', {}, a.span_id ? h('code', {}, a.span_id) : ''),
          h('td', {}, fmtTime(Date.parse(a.last_update_time || a.create_time))),
          h('td', { class: 'actions' },
            h('button', { type: 'button', 'data-action': 'edit', 'aria-label': `Edit assessment ${a.assessment_name}`, onclick: () => { editingId = a.assessment_id; draw(list); } }, 'Edit'),
            ' ',
            h('button', { type: 'button', 'data-action': 'delete', 'aria-label': `Delete assessment ${a.assessment_name}`, onclick: () => remove(a) }, 'Delete')));
        if (a.assessment_id !== editingId) return row;
        return [row, h('tr', { class: 'edit-row' }, h('td', { colspan: 8 }, assessmentForm(traceId, a, reload)))];
      }).flat(), { caption: 'Assessments' }));
    }
    section.append(h('h3', {}, 'Add an assessment'), assessmentForm(traceId, null, reload));
  };
  draw(info.assessments || []);
  return section;
}
