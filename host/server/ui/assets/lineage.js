// What a run is linked to: the datasets it logged as inputs, the registered model versions made
// from it, and its logged models (MLflow 3), each with a page of its own.

import { api, h, table, errorBox, fmtTime, fmtNum, sqlString } from './lib.js';
import { current } from './nav.js';
import { editableMarkdown } from './markdown.js';
import { tagEditor, emptyState } from './edit.js';
import { artifacts } from './run.js';

/** The UI's address of a logged model: MLflow's UI uses the same one. */
export const loggedModelHref = (info) => `#/experiments/${encodeURIComponent(info.experiment_id)}/models/${encodeURIComponent(info.model_id)}`;

const parseJson = (text) => {
  if (!text) return null;
  try { return JSON.parse(text); } catch { return null; }
};

/** A dataset's source as a short text: its URL, URI, path or table, else the JSON. */
function sourceText(source) {
  const json = parseJson(source);
  if (json && typeof json === 'object') {
    const found = ['url', 'uri', 'path', 'table_name', 'file_path'].find((k) => typeof json[k] === 'string');
    if (found) return json[found];
  }
  return source || '';
}

/** A dataset's schema (MLflow's `mlflow_colspec` or `mlflow_tensorspec`) as a column table. */
function schemaTable(schema) {
  const json = parseJson(schema);
  const cols = json?.mlflow_colspec || json?.mlflow_tensorspec?.features && parseJson(json.mlflow_tensorspec.features);
  if (Array.isArray(cols) && cols.length) {
    return table(['Column', 'Type'], cols.map((c, i) => h('tr', {},
      h('td', {}, c.name ?? `#${i}`),
      h('td', {}, c.type === 'tensor' ? `tensor ${c['tensor-spec']?.dtype ?? ''} ${JSON.stringify(c['tensor-spec']?.shape ?? '')}` : c.type ?? ''))), { caption: 'Dataset schema' });
  }
  return schema ? h('pre', {}, schema) : h('span', { class: 'muted' }, 'no schema');
}

/** A dataset's profile ({"num_rows": 4, …}) as "num rows 4 · num elements 8". */
function profileText(profile) {
  const json = parseJson(profile);
  if (json && typeof json === 'object' && !Array.isArray(json)) {
    return Object.entries(json).map(([k, v]) => `${k.replaceAll('_', ' ')} ${typeof v === 'number' ? fmtNum(v) : JSON.stringify(v)}`).join(' · ');
  }
  return profile || '';
}

/** The run's logged inputs (`run.inputs.dataset_inputs`). */
export function datasetsSection(inputs) {
  const section = h('section', { id: 'datasets' }, h('h2', {}, `Datasets (${inputs.length})`));
  if (!inputs.length) {
    section.append(emptyState('No datasets logged for this run — log one with', 'mlflow.log_input(mlflow.data.from_pandas(df), context="training")'));
    return section;
  }
  section.append(table(['Name', 'Context', 'Digest', 'Source', 'Profile', 'Schema'], inputs.map(({ dataset: d = {}, tags = [] }) => {
    const context = tags.find((t) => t.key === 'mlflow.data.context')?.value || '';
    return h('tr', { 'data-dataset': d.name },
      h('th', { scope: 'row' }, d.name || ''),
      h('td', {}, context),
      h('td', {}, h('code', {}, d.digest || '')),
      h('td', {}, d.source_type ? h('span', { class: 'chip' }, d.source_type) : null, ' ', h('code', { class: 'wrap' }, sourceText(d.source))),
      h('td', { 'data-col': 'profile' }, profileText(d.profile)),
      h('td', {}, d.schema ? h('details', {}, h('summary', {}, 'Columns'), schemaTable(d.schema)) : h('span', { class: 'muted' }, 'none')));
  }), { caption: 'Datasets' }));
  return section;
}

/** Every model version whose source run is `runId`, following page tokens. */
async function versionsOfRun(runId) {
  const versions = [];
  let token;
  do {
    const r = await api('model-versions/search', { query: { filter: `run_id = ${sqlString(runId)}`, max_results: 1000, page_token: token } });
    versions.push(...(r.model_versions || []));
    token = r.next_page_token;
  } while (token && versions.length < 5000);
  return versions;
}

const versionLink = (v) => h('a', { href: `#/models/${encodeURIComponent(v.name)}/versions/${encodeURIComponent(v.version)}`, 'data-model-version': `${v.name}/${v.version}` }, `${v.name} version ${v.version}`);

/** The registered model versions made from this run's models, linked. */
export async function runModelVersions(runId) {
  const section = h('section', { id: 'run-model-versions' });
  let versions;
  try { versions = await versionsOfRun(runId); } catch (e) { section.append(h('h2', {}, 'Registered model versions'), errorBox(e)); return section; }
  versions.sort((a, b) => a.name.localeCompare(b.name) || Number(a.version) - Number(b.version));
  section.append(h('h2', {}, `Registered model versions (${versions.length})`));
  if (!versions.length) {
    section.append(emptyState('No model from this run is registered — register one with', 'mlflow.register_model("runs:/<run id>/model", "<name>")'));
    return section;
  }
  section.append(table(['Version', 'Stage', 'Status', 'Created'], versions.map((v) => h('tr', {},
    h('td', {}, versionLink(v)),
    h('td', {}, v.current_stage || 'None'),
    h('td', {}, v.status || ''),
    h('td', {}, fmtTime(v.creation_timestamp)))), { caption: 'Registered model versions' }));
  return section;
}

/** A logged model's status (LOGGED_MODEL_READY, …) in the runs' colours. */
const statusClass = (status) => ({ LOGGED_MODEL_READY: 'FINISHED', LOGGED_MODEL_UPLOAD_FAILED: 'FAILED' }[status] || status);

/** A logged model (MLflow 3): its run, params, metrics, tags, registered versions and files. */
export async function loggedModelPage(root, [experimentId, modelId], _query, gen) {
  const { model } = await api(`logged-models/${encodeURIComponent(modelId)}`);
  if (!current(gen)) return;
  const { info, data = {} } = model;
  const [exp, run, versions] = await Promise.all([
    api('experiments/get', { query: { experiment_id: info.experiment_id || experimentId } }).then((r) => r.experiment).catch(() => null),
    info.source_run_id ? api('runs/get', { query: { run_id: info.source_run_id } }).then((r) => r.run).catch(() => null) : null,
    info.source_run_id ? versionsOfRun(info.source_run_id).catch(() => []) : [],
  ]);
  if (!current(gen)) return;
  const mine = versions.filter((v) => v.model_id === info.model_id || v.source === `models:/${info.model_id}`);
  const runLabel = run ? (run.info.run_name || info.source_run_id) : info.source_run_id;
  root.append(
    h('div', { class: 'crumbs' }, h('a', { href: '#/' }, 'Experiments'), ' / ',
      exp ? h('a', { href: `#/experiments/${exp.experiment_id}` }, exp.name) : info.experiment_id, ' / ', 'Logged models', ' / '),
    h('h1', {}, info.name || info.model_id, ' ', h('span', { class: `status ${statusClass(info.status)}` }, (info.status || '').replace(/^LOGGED_MODEL_/, ''))),
    h('dl', { class: 'kv' },
      h('dt', {}, 'Model ID'), h('dd', {}, h('code', {}, info.model_id)),
      h('dt', {}, 'Source run'), h('dd', {}, info.source_run_id ? h('a', { href: `#/runs/${info.source_run_id}`, id: 'logged-model-run' }, runLabel) : 'none'),
      info.model_type ? [h('dt', {}, 'Type'), h('dd', {}, info.model_type)] : null,
      h('dt', {}, 'Created'), h('dd', {}, fmtTime(info.creation_timestamp_ms)),
      h('dt', {}, 'Registered as'), h('dd', { id: 'logged-model-versions' }, mine.length ? mine.map((v, i) => [i ? ', ' : '', versionLink(v)]) : 'not registered'),
      h('dt', {}, 'Artifacts'), h('dd', {}, h('code', {}, info.artifact_uri || ''))));

  const params = [...(data.params || [])].sort((a, b) => a.key.localeCompare(b.key));
  const metrics = [...(data.metrics || [])].sort((a, b) => a.key.localeCompare(b.key));
  root.append(h('div', { class: 'grid2' },
    h('section', {}, h('h2', {}, `Parameters (${params.length})`),
      params.length ? table(['Name', 'Value'], params.map((p) => h('tr', {}, h('th', { scope: 'row' }, p.key), h('td', {}, p.value))), { caption: 'Parameters' })
        : emptyState('No parameters logged for this model.')),
    h('section', {}, h('h2', {}, `Metrics (${metrics.length})`),
      metrics.length ? table(['Name', h('th', { class: 'num' }, 'Value'), h('th', { class: 'num' }, 'Step'), 'Dataset'], metrics.map((m) => h('tr', {},
        h('th', { scope: 'row' }, m.key), h('td', { class: 'num' }, fmtNum(m.value)), h('td', { class: 'num' }, m.step ?? ''), h('td', {}, m.dataset_name || ''))), { caption: 'Metrics' })
        : emptyState('No metrics linked to this model.'))));

  const id = info.model_id;
  root.append(tagEditor((info.tags || []).filter((t) => t.key !== 'mlflow.note.content'), {
    set: (key, value) => api(`logged-models/${encodeURIComponent(id)}/tags`, { method: 'PATCH', body: { tags: [{ key, value }] } }),
    remove: (key) => api(`logged-models/${encodeURIComponent(id)}/tags/${encodeURIComponent(key)}`, { method: 'DELETE' }),
    id: 'logged-model-tags',
    what: 'model',
  }));
  root.append(h('h2', {}, 'Files'), await artifacts(
    (path) => api(`logged-models/${encodeURIComponent(id)}/artifacts/directories`, { query: { artifact_directory_path: path } }),
    info.artifact_uri, 'logged-model-preview'));
}

/** A model version's editable description and tags (model-versions/update, set-tag, delete-tag). */
export function versionEditing(mv) {
  const key = { name: mv.name, version: mv.version };
  return [
    editableMarkdown(mv.description, (text) => api('model-versions/update', { method: 'PATCH', body: { ...key, description: text } }),
      { id: 'version-description', placeholder: 'Describe this version in markdown…' }),
    tagEditor(mv.tags || [], {
      set: (k, value) => api('model-versions/set-tag', { method: 'POST', body: { ...key, key: k, value } }),
      remove: (k) => api('model-versions/delete-tag', { method: 'DELETE', body: { ...key, key: k } }),
      id: 'version-tags',
      what: 'version',
    }),
  ];
}

/** A registered model's editable description (registered-models/update) and tags. */
export function modelEditing(model) {
  const { name } = model;
  return [
    editableMarkdown(model.description, (text) => api('registered-models/update', { method: 'PATCH', body: { name, description: text } }),
      { id: 'model-description', placeholder: 'Describe this model in markdown…' }),
    tagEditor(model.tags || [], {
      set: (key, value) => api('registered-models/set-tag', { method: 'POST', body: { name, key, value } }),
      remove: (key) => api('registered-models/delete-tag', { method: 'DELETE', body: { name, key } }),
      id: 'model-tags',
      what: 'model',
    }),
  ];
}
