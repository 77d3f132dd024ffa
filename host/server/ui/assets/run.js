// One run: overview, description, params, metrics with charts, tags, children, artifacts.

import {
  api, h, table, errorBox, fmtTime, fmtDuration, fmtNum, tagOf, runName, metricHistory, artifactUrl, sqlString,
} from './lib.js';
import { runChartGrid } from './charts.js';
import { current } from './nav.js';
import { editableMarkdown } from './markdown.js';
import { tagEditor, renameableHeading } from './edit.js';
import { datasetsSection, runModelVersions, loggedModelHref } from './lineage.js';
import { traceHref, traceStatus, fmtMs } from './traces.js';

export async function runPage(root, [runId], query, gen) {
  const run = (await api('runs/get', { query: { run_id: runId } })).run;
  if (!current(gen)) return;
  const { info } = run;
  const data = run.data || {};
  const exp = (await api('experiments/get', { query: { experiment_id: info.experiment_id } })).experiment;
  if (!current(gen)) return;
  const parentId = tagOf(run, 'mlflow.parentRunId');
  const source = tagOf(run, 'mlflow.source.name');
  const deleted = info.lifecycle_stage === 'deleted';
  const lifecycle = h('div', { class: 'bar' });
  const drawLifecycle = (isDeleted) => {
    const toggle = async () => {
      if (!isDeleted && !confirm(`Delete run "${runName(run)}"? It can be restored until the server's garbage collection.`)) return;
      try {
        await api(isDeleted ? 'runs/restore' : 'runs/delete', { method: 'POST', body: { run_id: runId } });
        drawLifecycle(!isDeleted);
      } catch (err) { lifecycle.append(errorBox(err)); }
    };
    lifecycle.replaceChildren(
      ...(isDeleted ? [h('p', { class: 'banner', role: 'status', id: 'run-deleted' }, 'This run is deleted: it is hidden from the runs table until restored.')] : []),
      h('button', { type: 'button', id: 'run-lifecycle', onclick: toggle }, isDeleted ? 'Restore run' : 'Delete run'));
  };
  drawLifecycle(deleted);
  root.append(
    h('div', { class: 'crumbs' }, h('a', { href: '#/' }, 'Experiments'), ' / ', h('a', { href: `#/experiments/${info.experiment_id}` }, exp.name), ' / '),
    renameableHeading(runName(run), (name) => api('runs/update', { method: 'POST', body: { run_id: runId, run_name: name } }),
      { what: 'run', after: [h('span', { class: `status ${info.status}` }, info.status)] }),
    lifecycle,
    h('dl', { class: 'kv' },
      h('dt', {}, 'Run ID'), h('dd', {}, h('code', {}, info.run_id)),
      h('dt', {}, 'Started'), h('dd', {}, fmtTime(info.start_time)),
      h('dt', {}, 'Duration'), h('dd', {}, fmtDuration(info.start_time, info.end_time)),
      h('dt', {}, 'User'), h('dd', {}, info.user_id || ''),
      source ? [h('dt', {}, 'Source'), h('dd', {}, h('code', {}, source))] : null,
      parentId ? [h('dt', {}, 'Parent run'), h('dd', {}, h('a', { href: `#/runs/${parentId}` }, parentId))] : null,
      h('dt', {}, 'Artifacts'), h('dd', {}, h('code', {}, info.artifact_uri))));

  root.append(editableMarkdown(tagOf(run, 'mlflow.note.content'),
    (text) => api('runs/set-tag', { method: 'POST', body: { run_id: runId, key: 'mlflow.note.content', value: text } }),
    { id: 'run-note', placeholder: 'Describe this run in markdown…' }));

  const children = await api('runs/search', {
    method: 'POST',
    body: { experiment_ids: [info.experiment_id], filter: `tags.mlflow.parentRunId = ${sqlString(runId)}`, max_results: 100 },
  });
  if (!current(gen)) return;
  if (children.runs?.length) {
    root.append(h('h2', {}, 'Child runs'), h('ul', {}, children.runs.map((c) => h('li', {}, h('a', { href: `#/runs/${c.info.run_id}` }, runName(c)), ' ', h('span', { class: `status ${c.info.status}` }, c.info.status)))));
  }

  // The traces of this run: logged inside it (mlflow.sourceRun) or linked to it afterwards.
  const linked = await api('/ajax-api/3.0/mlflow/traces/search', {
    method: 'POST',
    body: {
      locations: [{ type: 'MLFLOW_EXPERIMENT', mlflow_experiment: { experiment_id: info.experiment_id } }],
      filter: `run_id = ${sqlString(runId)}`, max_results: 100,
    },
  }).catch(() => ({ traces: [] }));
  if (!current(gen)) return;
  if (linked.traces?.length) {
    root.append(h('section', { id: 'run-traces' }, h('h2', {}, `Traces (${linked.traces.length}${linked.next_page_token ? '+' : ''})`),
      table(['Trace', 'Status', 'Request time', 'Latency'], linked.traces.map((t) => h('tr', { 'data-trace': t.trace_id },
        h('th', { scope: 'row' }, h('a', { href: traceHref(info.experiment_id, t.trace_id), title: t.trace_id }, t.tags?.['mlflow.traceName'] || t.trace_id)),
        h('td', {}, traceStatus(t.state)),
        h('td', {}, fmtTime(Date.parse(t.request_time))),
        h('td', { class: 'num' }, fmtMs(Number.parseFloat(t.execution_duration) * 1000)))), { caption: 'Traces of this run' }),
      linked.next_page_token ? h('p', { class: 'muted' }, h('a', { href: `#/experiments/${info.experiment_id}/traces?filter=${encodeURIComponent(`run_id = ${sqlString(runId)}`)}` }, 'All traces of this run')) : null));
  }

  const params = [...(data.params || [])].sort((a, b) => a.key.localeCompare(b.key));
  const metrics = [...(data.metrics || [])].sort((a, b) => a.key.localeCompare(b.key));
  const histories = new Map();
  await Promise.all(metrics.slice(0, 50).map(async (m) => histories.set(m.key, await metricHistory(runId, m.key))));
  if (!current(gen)) return;
  const metricRows = metrics.map((m) => {
    // Only the first 50 metrics have their history fetched: the others show no min, max or count.
    const hist = histories.get(m.key);
    // A loop, not Math.min(...values): spreading a long history overflows the argument list.
    let min = Infinity;
    let max = -Infinity;
    for (const p of hist || []) {
      const v = Number(p.value);
      if (!Number.isFinite(v)) continue;
      if (v < min) min = v;
      if (v > max) max = v;
    }
    const any = min <= max;
    return h('tr', { 'data-metric': m.key },
      h('th', { scope: 'row' }, m.key),
      h('td', { class: 'num' }, fmtNum(m.value)),
      h('td', { class: 'num' }, any ? fmtNum(min) : ''),
      h('td', { class: 'num' }, any ? fmtNum(max) : ''),
      h('td', { class: 'num' }, hist ? hist.length : ''));
  });
  root.append(h('div', { class: 'grid2' },
    h('section', {}, h('h2', {}, `Parameters (${params.length})`),
      params.length ? table(['Name', 'Value'], params.map((p) => h('tr', { 'data-param': p.key }, h('th', { scope: 'row' }, p.key), h('td', {}, p.value))), { caption: 'Parameters' }) : h('p', { class: 'muted' }, 'None')),
    h('section', {}, h('h2', {}, `Metrics (${metrics.length})`),
      metrics.length ? table(['Name', h('th', { class: 'num' }, 'Latest'), h('th', { class: 'num' }, 'Min'), h('th', { class: 'num' }, 'Max'), h('th', { class: 'num' }, 'Points')], metricRows, { caption: 'Metrics' }) : h('p', { class: 'muted' }, 'None'))));

  if (metrics.length) root.append(runChartGrid(metrics.map((m) => m.key).filter((k) => histories.has(k)), histories, query));

  const tags = (data.tags || []).filter((t) => t.key !== 'mlflow.note.content');
  root.append(tagEditor(tags, {
    set: (key, value) => api('runs/set-tag', { method: 'POST', body: { run_id: runId, key, value } }),
    remove: (key) => api('runs/delete-tag', { method: 'POST', body: { run_id: runId, key } }),
    id: 'run-tags',
    what: 'run',
  }));

  root.append(datasetsSection(run.inputs?.dataset_inputs || []));
  root.append(await runModelVersions(runId));
  if (!current(gen)) return;

  root.append(h('h2', {}, 'Artifacts'), await artifacts(
    (path) => api('artifacts/list', { query: { run_id: runId, path } }),
    info.artifact_uri, 'artifact-preview'));

  // MLflow 3 logs models as logged models, stored beside the run rather than in its artifacts.
  const logged = await api('logged-models/search', {
    method: 'POST',
    body: { experiment_ids: [info.experiment_id], filter: `source_run_id = ${sqlString(runId)}`, max_results: 50 },
  }).then((r) => r.models || []).catch(() => []);
  if (!current(gen)) return;
  if (logged.length) {
    root.append(h('h2', {}, `Logged models (${logged.length})`));
    for (const m of logged) {
      const id = m.info.model_id;
      root.append(h('h3', {}, h('a', { href: loggedModelHref(m.info), 'data-logged-model': id }, m.info.name), ' ', h('code', { class: 'muted' }, id)),
        await artifacts(
          (path) => api(`logged-models/${encodeURIComponent(id)}/artifacts/directories`, { query: { artifact_directory_path: path } }),
          m.info.artifact_uri, `model-preview-${id}`));
    }
  }
}

const TEXT = /\.(txt|log|md|py|r|sh|yaml|yml|toml|cfg|ini|xml|html|js|ts|rs|sql|diff)$|(^|\/)(MLmodel|MLproject|requirements\.txt|conda\.yaml|python_env\.yaml)$/i;
const IMAGE = { png: 'image/png', jpg: 'image/jpeg', jpeg: 'image/jpeg', gif: 'image/gif', svg: 'image/svg+xml', webp: 'image/webp' };
const PREVIEW_LIMIT = 2 * 1024 * 1024;

/** A lazily expanded file tree (`lister(path)` answers `{files}`) with a preview pane. */
export async function artifacts(lister, artifactUri, previewId) {
  const preview = h('div', { class: 'preview', id: previewId, 'aria-live': 'polite' }, h('p', { class: 'muted' }, 'Choose a file to preview it.'));
  const list = async (path) => (await lister(path)).files || [];
  const tree = async (path) => {
    const files = await list(path);
    files.sort((a, b) => (b.is_dir - a.is_dir) || a.path.localeCompare(b.path));
    return h('ul', {}, files.map((f) => {
      const name = f.path.split('/').pop();
      if (f.is_dir) {
        const item = h('li', {});
        const toggle = h('button', {
          type: 'button', class: 'link', 'aria-expanded': 'false',
          onclick: async () => {
            const open = toggle.getAttribute('aria-expanded') === 'true';
            toggle.setAttribute('aria-expanded', String(!open));
            toggle.firstChild.textContent = open ? '▸ ' : '▾ ';
            if (open) item.querySelector('ul')?.remove();
            else item.append(await tree(f.path));
          },
        }, h('span', { 'aria-hidden': 'true' }, '▸ '), `${name}/`);
        item.append(toggle);
        return item;
      }
      return h('li', {}, h('button', { type: 'button', class: 'link', 'data-artifact': f.path, onclick: () => show(artifactUri, f, preview) }, name),
        h('span', { class: 'muted' }, f.file_size !== undefined ? ` ${fmtSize(Number(f.file_size))}` : ''));
    }));
  };
  let top;
  try { top = await tree(''); } catch (e) { return errorBox(e); }
  if (!top.children.length) return h('p', { class: 'muted' }, 'No artifacts.');
  return h('div', { class: 'artifacts' }, h('nav', { class: 'tree', 'aria-label': `Files of ${previewId}` }, top), preview);
}

/** Each preview's pending request and image object URL, so a click supersedes the earlier ones. */
const previewRequests = new WeakMap();
const previewObjectUrls = new WeakMap();

async function show(artifactUri, file, preview) {
  // A slow answer for an earlier click must not overwrite this one: only the latest request renders.
  const request = {};
  previewRequests.set(preview, request);
  preview.dataset.file = file.path;
  const latest = () => previewRequests.get(preview) === request;
  // The previous image's blob is about to leave the page: release it.
  const oldUrl = previewObjectUrls.get(preview);
  if (oldUrl) {
    URL.revokeObjectURL(oldUrl);
    previewObjectUrls.delete(preview);
  }
  const url = artifactUrl(artifactUri, file.path);
  const head = h('p', {}, h('strong', {}, file.path), ' ', url ? h('a', { href: url, download: file.path.split('/').pop() }, 'Download') : null);
  if (!url) {
    preview.replaceChildren(head, h('p', { class: 'muted' }, `These files are at ${artifactUri}, which the server does not proxy.`));
    return;
  }
  if (Number(file.file_size) > PREVIEW_LIMIT) {
    preview.replaceChildren(head, h('p', { class: 'muted' }, 'Too large to preview.'));
    return;
  }
  preview.replaceChildren(head, h('p', { class: 'muted' }, 'Loading…'));
  try {
    const res = await fetch(url);
    if (!res.ok) throw new Error(`cannot read ${file.path}: ${res.status} ${await res.text()}`);
    const ext = (file.path.split('.').pop() || '').toLowerCase();
    let body;
    if (IMAGE[ext]) {
      const blob = new Blob([await res.arrayBuffer()], { type: IMAGE[ext] });
      if (!latest()) return;
      const src = URL.createObjectURL(blob);
      previewObjectUrls.set(preview, src);
      body = h('img', { src, alt: file.path });
    } else {
      const text = await res.text();
      if (!latest()) return;
      if (ext === 'json') {
        try { body = h('pre', {}, JSON.stringify(JSON.parse(text), null, 2)); } catch { body = h('pre', {}, text); }
      } else if (ext === 'csv' || ext === 'tsv') {
        body = csvTable(text, ext === 'tsv' ? '\t' : ',');
      } else if (TEXT.test(file.path) || !/[\x00-\x08\x0e-\x1f]/.test(text.slice(0, 4096))) {
        body = h('pre', {}, text);
      } else {
        body = h('p', { class: 'muted' }, 'Binary file.');
      }
    }
    if (latest()) preview.replaceChildren(head, body);
  } catch (e) {
    if (latest()) preview.replaceChildren(head, errorBox(e));
  }
}

/** A CSV file as a table (the first 500 rows), with RFC 4180 quoting. */
function csvTable(text, sep) {
  const rows = [];
  let row = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length && rows.length <= 500; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') { field += '"'; i++; } else if (c === '"') quoted = false; else field += c;
    } else if (c === '"') quoted = true;
    else if (c === sep) { row.push(field); field = ''; } else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') i++;
      row.push(field); field = ''; rows.push(row); row = [];
    } else field += c;
  }
  if (field || row.length) { row.push(field); rows.push(row); }
  const [header = [], ...body] = rows;
  return table(header, body.slice(0, 500).map((r) => h('tr', {}, r.map((v) => h('td', { class: /^-?\d+(\.\d+)?(e-?\d+)?$/i.test(v) ? 'num' : undefined }, v)))), { caption: 'CSV preview' });
}

function fmtSize(n) {
  if (!Number.isFinite(n)) return '';
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}
