// The model registry: models, one model's versions and aliases, one version.

import { api, h, table, errorBox, fmtTime, artifactUrl, sqlString, WASMFLOW } from './lib.js';
import { current } from './nav.js';
import { emptyState } from './edit.js';
import { modelEditing, versionEditing, loggedModelHref } from './lineage.js';

const chips = (items) => items.map((x) => h('span', { class: 'chip' }, x));

export async function modelsPage(root, _params, query, gen) {
  const q = query.get('q') || '';
  const models = [];
  let token;
  do {
    const r = await api('registered-models/search', { query: { filter: q ? `name LIKE ${sqlString(`%${q}%`)}` : undefined, max_results: 1000, page_token: token } });
    models.push(...(r.registered_models || []));
    token = r.next_page_token;
  } while (token && models.length < 5000);
  if (!current(gen)) return;
  const search = h('input', { type: 'search', id: 'model-search', value: q, placeholder: 'Model name contains…' });
  root.append(h('h1', {}, 'Registered models'),
    h('form', { class: 'bar', role: 'search', onsubmit: (e) => { e.preventDefault(); location.hash = `#/models${search.value ? `?q=${encodeURIComponent(search.value)}` : ''}`; } },
      h('label', { for: 'model-search', class: 'sr-only' }, 'Search models'), search, h('button', { type: 'submit' }, 'Search')));
  if (!models.length) {
    root.append(q
      ? emptyState(`No registered model's name contains "${q}".`, null, { id: 'no-models' })
      : emptyState('No registered models yet — register one with', 'mlflow.register_model("runs:/<run id>/model", "<name>")', { id: 'no-models' }));
    return;
  }
  // The registry search leaves prompts out (as MLflow's does): they have their own page.
  root.append(table(['Name', 'Latest versions', 'Aliases', 'Tags', 'Last updated'], models.map((m) => h('tr', { 'data-model': m.name },
    h('td', {}, h('a', { href: `#/models/${encodeURIComponent(m.name)}` }, m.name)),
    h('td', {}, chips((m.latest_versions || []).map((v) => `v${v.version} ${v.current_stage || 'None'}`))),
    h('td', {}, chips((m.aliases || []).map((a) => `@${a.alias} → v${a.version}`))),
    h('td', { 'data-col': 'tags' }, chips((m.tags || []).filter((t) => !t.key.startsWith('mlflow.')).map((t) => `${t.key}: ${t.value}`))),
    h('td', {}, fmtTime(m.last_updated_timestamp)))), { caption: 'Registered models' }));
}

async function allVersions(name) {
  const versions = [];
  let token;
  do {
    const r = await api('model-versions/search', { query: { filter: `name = ${sqlString(name)}`, max_results: 1000, order_by: 'version_number DESC', page_token: token } });
    versions.push(...(r.model_versions || []));
    token = r.next_page_token;
  } while (token && versions.length < 10000);
  return versions.sort((a, b) => Number(b.version) - Number(a.version));
}

export async function modelPage(root, [name], _query, gen) {
  const [model, versions] = await Promise.all([
    api('registered-models/get', { query: { name } }).then((r) => r.registered_model),
    allVersions(name),
  ]);
  if (!current(gen)) return;
  const aliasesOf = (v) => (model.aliases || []).filter((a) => a.version === v.version).map((a) => `@${a.alias}`);
  root.append(
    h('div', { class: 'crumbs' }, h('a', { href: '#/models' }, 'Models'), ' / '),
    h('h1', {}, model.name),
    ...modelEditing(model),
    h('h2', {}, 'Aliases'),
    (model.aliases || []).length
      ? h('ul', { id: 'aliases' }, model.aliases.map((a) => h('li', { 'data-alias': a.alias }, h('code', {}, `@${a.alias}`), ' → ', h('a', { href: `#/models/${encodeURIComponent(name)}/versions/${a.version}` }, `version ${a.version}`))))
      : emptyState(versions.length ? 'No aliases yet — set one below to serve a version by name.' : 'No aliases: a model needs a version first.'),
    ...(versions.length ? [aliasForm(name, versions.map((v) => v.version), '')] : []),
    h('h2', {}, `Versions (${versions.length})`),
    !versions.length ? emptyState('No versions yet — register one with', `mlflow.register_model("runs:/<run id>/model", ${JSON.stringify(name)})`, { id: 'no-versions' }) : table(['Version', 'Stage', 'Aliases', 'Status', 'Source run', 'Created'], versions.map((v) => h('tr', { 'data-version': v.version },
      h('td', {}, h('a', { href: `#/models/${encodeURIComponent(name)}/versions/${v.version}` }, `Version ${v.version}`)),
      h('td', {}, v.current_stage || 'None'),
      h('td', {}, chips(aliasesOf(v))),
      h('td', {}, v.status || ''),
      h('td', {}, v.run_id ? h('a', { href: `#/runs/${v.run_id}` }, v.run_id.slice(0, 12)) : ''),
      h('td', {}, fmtTime(v.creation_timestamp)))), { caption: 'Model versions' }));
}

/** Sets (or moves) an alias to a version; the registry records who did it. */
function aliasForm(name, versions, version) {
  const alias = h('input', { id: 'alias-name', placeholder: 'champion', required: true, pattern: '[A-Za-z0-9_\\-]+' });
  const select = h('select', { id: 'alias-version' }, versions.map((v) => h('option', { value: v, selected: v === version }, `version ${v}`)));
  const status = h('div', { role: 'status' });
  return h('form', {
    class: 'bar',
    onsubmit: async (e) => {
      e.preventDefault();
      status.replaceChildren();
      try {
        await api('registered-models/alias', { method: 'POST', body: { name, alias: alias.value.trim(), version: select.value } });
        window.dispatchEvent(new HashChangeEvent('hashchange'));
      } catch (err) { status.replaceChildren(errorBox(err)); }
    },
  }, h('label', { for: 'alias-name' }, 'Set alias'), alias, h('label', { for: 'alias-version' }, 'to'), select,
  h('button', { type: 'submit', class: 'primary' }, 'Set alias'), status);
}

export async function versionPage(root, [name, version], _query, gen) {
  const [mv, model, events] = await Promise.all([
    api('model-versions/get', { query: { name, version } }).then((r) => r.model_version),
    api('registered-models/get', { query: { name } }).then((r) => r.registered_model),
    api(`${WASMFLOW}/registry/events`, { query: { name, version } }).then((r) => r.events || []).catch(() => null),
  ]);
  if (!current(gen)) return;
  // MLflow 3 registers logged models: the version's source is `models:/<model id>`.
  const modelId = mv.model_id || /^models:\/(m-[^/]+)$/.exec(mv.source || '')?.[1];
  const logged = modelId ? await api(`logged-models/${encodeURIComponent(modelId)}`).then((r) => r.model.info).catch(() => null) : null;
  if (!current(gen)) return;
  const aliases = (model.aliases || []).filter((a) => a.version === mv.version).map((a) => a.alias);
  root.append(
    h('div', { class: 'crumbs' }, h('a', { href: '#/models' }, 'Models'), ' / ', h('a', { href: `#/models/${encodeURIComponent(name)}` }, name), ' / '),
    h('h1', {}, `${name} version ${mv.version}`),
    h('dl', { class: 'kv' },
      h('dt', {}, 'Stage'), h('dd', { id: 'version-stage' }, mv.current_stage || 'None'),
      h('dt', {}, 'Aliases'), h('dd', { id: 'version-aliases' }, aliases.length ? chips(aliases.map((a) => `@${a}`)) : 'none'),
      h('dt', {}, 'Status'), h('dd', {}, mv.status || ''),
      h('dt', {}, 'Source run'), h('dd', {}, mv.run_id ? h('a', { href: `#/runs/${mv.run_id}`, id: 'source-run' }, mv.run_id) : 'none'),
      logged ? [h('dt', {}, 'Logged model'), h('dd', {}, h('a', { href: loggedModelHref(logged), id: 'source-logged-model' }, logged.name || logged.model_id), ' ', h('code', { class: 'muted' }, logged.model_id))] : null,
      h('dt', {}, 'Source'), h('dd', {}, h('code', {}, mv.source || '')),
      h('dt', {}, 'Created'), h('dd', {}, fmtTime(mv.creation_timestamp)),
      h('dt', {}, 'Last updated'), h('dd', {}, fmtTime(mv.last_updated_timestamp))),
    ...versionEditing(mv),
    h('h2', {}, 'Aliases'),
    aliasForm(name, [mv.version], mv.version));

  const signature = h('div', { id: 'signature' }, h('p', { class: 'muted' }, 'Loading the MLmodel file…'));
  root.append(h('h2', {}, 'Signature'), signature);
  root.append(h('h2', {}, 'History'), events === null
    ? h('p', { class: 'muted' }, 'This server keeps no registry history.')
    : events.length
      ? table(['When', 'Who', 'What', 'Details'], events.map((e) => h('tr', { 'data-event': e.kind },
        h('td', {}, fmtTime(e.timestamp)), h('td', {}, e.user_id || 'unknown'), h('td', {}, e.kind.replaceAll('_', ' ')),
        h('td', {}, h('code', {}, describe(e.details))))), { caption: 'Stage and alias history' })
      : h('p', { class: 'muted' }, 'No changes recorded.'));

  try {
    const resolved = await api(`${WASMFLOW}/models/resolve`, { query: { uri: `models:/${name}/${mv.version}` } });
    const url = artifactUrl(resolved.artifact_uri, 'MLmodel');
    if (!url) throw new Error(`the model's files are at ${resolved.artifact_uri}, which the server does not proxy`);
    const res = await fetch(url);
    if (!res.ok) throw new Error(`cannot read the MLmodel file (${res.status})`);
    const text = await res.text();
    if (!current(gen)) return;
    const block = yamlBlock(text, 'signature');
    signature.replaceChildren(
      block ? signatureTables(block) : h('p', { class: 'muted' }, 'The model has no signature.'),
      h('details', {}, h('summary', {}, 'MLmodel'), h('pre', {}, text)));
  } catch (e) {
    signature.replaceChildren(errorBox(e));
  }
}

/** The signature's inputs and outputs (JSON in single-quoted YAML strings) as tables. */
function signatureTables(block) {
  const parts = [];
  for (const m of unfoldQuoted(block).matchAll(/^\s+(inputs|outputs|params): '(.*)'$/gm)) {
    let specs;
    try { specs = JSON.parse(m[2].replaceAll("''", "'")); } catch { specs = null; }
    if (!Array.isArray(specs)) continue;
    parts.push(h('h3', {}, m[1]), table(['Name', 'Type', 'Shape / details'], specs.map((s, i) => h('tr', {},
      h('td', {}, s.name ?? (specs.length > 1 ? `#${i}` : '')),
      h('td', {}, s.type === 'tensor' ? `tensor ${s['tensor-spec']?.dtype ?? ''}` : s.type ?? ''),
      h('td', {}, h('code', {}, s.type === 'tensor' ? JSON.stringify(s['tensor-spec']?.shape) : s.required === false ? 'optional' : ''))),
    ), { caption: `Signature ${m[1]}` }));
  }
  return h('div', {}, parts, h('details', {}, h('summary', {}, 'As written in MLmodel'), h('pre', {}, block)));
}

/**
 * Joins the continuation lines of single-quoted YAML scalars: PyYAML wraps long ones at ~80
 * columns, and a folded line break (with the next line's indentation) reads as one space. A scalar
 * is still open while its quotes are odd in number (a doubled '' inside it counts two).
 */
function unfoldQuoted(block) {
  const out = [];
  let open = false;
  for (const line of block.split('\n')) {
    if (open) {
      const text = line.trim();
      const prev = out[out.length - 1];
      out[out.length - 1] = text === '' ? `${prev}\n` : prev.endsWith('\n') ? prev + text : `${prev.replace(/[ \t]+$/, '')} ${text}`;
      open = (text.match(/'/g) || []).length % 2 === 0;
      continue;
    }
    out.push(line);
    const m = /^\s*[^\s'"][^:]*:\s+'(.*)$/.exec(line);
    open = !!m && (m[1].match(/'/g) || []).length % 2 === 0;
  }
  return out.join('\n');
}

function describe(details) {
  if (!details || typeof details !== 'object') return String(details ?? '');
  return Object.entries(details).map(([k, v]) => `${k}: ${typeof v === 'object' ? JSON.stringify(v) : v}`).join(', ');
}

/** A top-level key of a YAML document with its indented body, as written. */
function yamlBlock(text, key) {
  const lines = text.split('\n');
  const start = lines.findIndex((l) => l.startsWith(`${key}:`));
  if (start < 0) return null;
  let end = start + 1;
  while (end < lines.length && (lines[end].startsWith(' ') || lines[end] === '')) end++;
  return lines.slice(start, end).join('\n').trimEnd();
}
