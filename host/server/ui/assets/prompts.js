// MLflow's prompt registry: prompts are registered models tagged `mlflow.prompt.is_prompt`, and a
// version keeps its template in the `mlflow.prompt.text` tag. Registry searches leave prompts out
// unless the filter asks for that tag (as MLflow's do), so the Models page never lists them and
// this page asks for them alone.

import { api, h, table, fmtTime, sqlString } from './lib.js';
import { current, setQuery } from './nav.js';
import { emptyState } from './edit.js';

const IS_PROMPT = "tags.`mlflow.prompt.is_prompt` = 'true'";
const TEXT_TAG = 'mlflow.prompt.text';
const TYPE_TAG = '_mlflow_prompt_type';
const RESPONSE_FORMAT_TAG = '_mlflow_prompt_response_format';
const MODEL_CONFIG_TAG = '_mlflow_prompt_model_config';
const EXPERIMENTS_TAG = '_mlflow_experiment_ids';

const chips = (items) => items.map((x) => h('span', { class: 'chip' }, x));
const tagValue = (tags, key) => (tags || []).find((t) => t.key === key)?.value;
/** The tags a user set: MLflow's own keys start with "mlflow." or "_mlflow". */
const userTags = (tags) => (tags || []).filter((t) => !t.key.startsWith('mlflow.') && !t.key.startsWith('_mlflow'));
const promptHref = (name, version) => `#/prompts/${encodeURIComponent(name)}${version ? `?version=${version}` : ''}`;

export async function promptsPage(root, _params, query, gen) {
  const q = query.get('q') || '';
  const prompts = [];
  let token;
  do {
    const filter = q ? `${IS_PROMPT} AND name LIKE ${sqlString(`%${q}%`)}` : IS_PROMPT;
    const r = await api('registered-models/search', { query: { filter, max_results: 1000, page_token: token } });
    prompts.push(...(r.registered_models || []));
    token = r.next_page_token;
  } while (token && prompts.length < 5000);
  if (!current(gen)) return;
  const search = h('input', { type: 'search', id: 'prompt-search', value: q, placeholder: 'Prompt name contains…' });
  root.append(h('h1', {}, 'Prompts'),
    h('form', { class: 'bar', role: 'search', onsubmit: (e) => { e.preventDefault(); setQuery(new URLSearchParams(search.value ? { q: search.value } : {})); } },
      h('label', { for: 'prompt-search', class: 'sr-only' }, 'Search prompts'), search, h('button', { type: 'submit' }, 'Search')));
  if (!prompts.length) {
    root.append(q
      ? emptyState(`No prompt's name contains "${q}".`, null, { id: 'no-prompts' })
      : emptyState('No prompts yet — register one with', 'mlflow.genai.register_prompt(name="greeting", template="Hello {{name}}!")', { id: 'no-prompts' }));
    return;
  }
  root.append(table(['Name', 'Latest version', 'Commit message', 'Aliases', 'Tags', 'Last updated'], prompts.map((p) => {
    const latest = (p.latest_versions || []).reduce((a, v) => (!a || Number(v.version) > Number(a.version) ? v : a), null);
    return h('tr', { 'data-prompt': p.name },
      h('td', {}, h('a', { href: promptHref(p.name) }, p.name)),
      h('td', {}, latest ? `Version ${latest.version}` : ''),
      h('td', {}, latest?.description || ''),
      h('td', {}, chips((p.aliases || []).map((a) => `@${a.alias} → v${a.version}`))),
      h('td', {}, chips(userTags(p.tags).map((t) => `${t.key}: ${t.value}`))),
      h('td', {}, fmtTime(p.last_updated_timestamp)));
  }), { caption: 'Prompts' }));
}

async function promptVersions(name) {
  const versions = [];
  let token;
  do {
    const r = await api('model-versions/search', { query: { filter: `name = ${sqlString(name)} AND ${IS_PROMPT}`, max_results: 1000, page_token: token } });
    versions.push(...(r.model_versions || []));
    token = r.next_page_token;
  } while (token && versions.length < 10000);
  return versions.sort((a, b) => Number(b.version) - Number(a.version));
}

/** A chat template is a JSON list of {role, content}; anything else is shown as text. */
function chatMessages(version) {
  if (tagValue(version.tags, TYPE_TAG) === 'text') return null;
  try {
    const messages = JSON.parse(tagValue(version.tags, TEXT_TAG) || '');
    return Array.isArray(messages) && messages.every((m) => m && typeof m === 'object' && 'role' in m) ? messages : null;
  } catch { return null; }
}

/** The `{{variable}}` names of a template, in order of first use (MLflow's variable pattern). */
function variables(text) {
  const names = [];
  for (const m of String(text).matchAll(/\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*(?:\.[a-zA-Z_][a-zA-Z0-9_]*)*)\s*\}\}/g)) {
    if (!names.includes(m[1])) names.push(m[1]);
  }
  return names;
}

function jsonTag(version, key, label) {
  const raw = tagValue(version.tags, key);
  if (!raw) return null;
  let shown = raw;
  try { shown = JSON.stringify(JSON.parse(raw), null, 2); } catch { /* shown as written */ }
  return [h('h3', {}, label), h('pre', { class: 'json' }, shown)];
}

function templateView(version) {
  const messages = chatMessages(version);
  const text = tagValue(version.tags, TEXT_TAG) ?? '';
  const vars = variables(messages ? messages.map((m) => (typeof m.content === 'string' ? m.content : JSON.stringify(m.content))).join('\n') : text);
  return [
    h('h3', {}, messages ? `Template: ${messages.length} chat message${messages.length === 1 ? '' : 's'}` : 'Template'),
    messages
      ? h('ol', { class: 'messages', id: 'prompt-messages' }, messages.map((m) => h('li', { 'data-role': m.role },
        h('span', { class: 'role' }, m.role), h('pre', {}, typeof m.content === 'string' ? m.content : JSON.stringify(m.content, null, 2)))))
      : h('pre', { class: 'template', id: 'prompt-template' }, text),
    h('p', { id: 'prompt-variables' }, vars.length ? ['Variables: ', chips(vars.map((v) => `{{${v}}}`))] : h('span', { class: 'muted' }, 'No variables.')),
    jsonTag(version, RESPONSE_FORMAT_TAG, 'Response format'),
    jsonTag(version, MODEL_CONFIG_TAG, 'Model configuration'),
  ];
}

export async function promptPage(root, [name], query, gen) {
  const [prompt, versions] = await Promise.all([
    api('registered-models/get', { query: { name } }).then((r) => r.registered_model),
    promptVersions(name),
  ]);
  if (!current(gen)) return;
  const aliases = prompt.aliases || [];
  const aliasesOf = (v) => aliases.filter((a) => a.version === v.version).map((a) => `@${a.alias}`);
  const chosen = versions.find((v) => v.version === query.get('version')) || versions[0];
  const experiments = (tagValue(prompt.tags, EXPERIMENTS_TAG) || '').split(',').filter(Boolean);
  const tags = userTags(prompt.tags);
  root.append(
    h('div', { class: 'crumbs' }, h('a', { href: '#/prompts' }, 'Prompts'), ' / '),
    h('h1', {}, prompt.name),
    ...(tagValue(prompt.tags, 'mlflow.prompt.is_prompt') === 'true' ? []
      : [h('p', { class: 'banner', role: 'status' }, 'This is a registered model, not a prompt: ', h('a', { href: `#/models/${encodeURIComponent(name)}` }, 'open it under Models'), '.')]),
    h('dl', { class: 'kv' },
      h('dt', {}, 'Tags'), h('dd', { id: 'prompt-tags' }, tags.length ? chips(tags.map((t) => `${t.key}: ${t.value}`)) : 'none'),
      h('dt', {}, 'Experiments'), h('dd', {}, experiments.length ? experiments.map((id, i) => [i ? ', ' : '', h('a', { href: `#/experiments/${id}` }, id)]) : 'none'),
      h('dt', {}, 'Created'), h('dd', {}, fmtTime(prompt.creation_timestamp)),
      h('dt', {}, 'Last updated'), h('dd', {}, fmtTime(prompt.last_updated_timestamp))),
    h('h2', {}, 'Aliases'),
    aliases.length
      ? h('ul', { id: 'prompt-aliases' }, aliases.map((a) => h('li', { 'data-alias': a.alias }, h('code', {}, `@${a.alias}`), ' → ',
        h('a', { href: promptHref(name, a.version) }, `version ${a.version}`))))
      : emptyState('No aliases yet — set one with', `mlflow.genai.set_prompt_alias(${JSON.stringify(name)}, alias="production", version=1)`, { id: 'no-prompt-aliases' }),
    h('h2', {}, `Versions (${versions.length})`));
  if (!versions.length) {
    root.append(emptyState('No versions yet — register one with', `mlflow.genai.register_prompt(${JSON.stringify(name)}, template="…")`, { id: 'no-prompt-versions' }));
    return;
  }
  root.append(table(['Version', 'Aliases', 'Commit message', 'Type', 'Created'], versions.map((v) => h('tr', { 'data-version': v.version, class: v === chosen ? 'selected' : null },
    h('td', {}, h('a', { href: promptHref(name, v.version), 'aria-current': v === chosen ? 'true' : null }, `Version ${v.version}`)),
    h('td', {}, chips(aliasesOf(v))),
    h('td', {}, v.description || ''),
    h('td', {}, chatMessages(v) ? 'chat' : 'text'),
    h('td', {}, fmtTime(v.creation_timestamp)))), { caption: 'Prompt versions' }));
  const versionTags = userTags(chosen.tags);
  const ref = aliasesOf(chosen)[0] ? `prompts:/${name}${aliasesOf(chosen)[0]}` : `prompts:/${name}/${chosen.version}`;
  root.append(h('section', { id: 'prompt-version', 'data-version': chosen.version },
    h('h2', {}, `Version ${chosen.version}`, ' ', chips(aliasesOf(chosen))),
    h('dl', { class: 'kv' },
      h('dt', {}, 'Commit message'), h('dd', { id: 'prompt-commit' }, chosen.description || h('span', { class: 'muted' }, 'none')),
      h('dt', {}, 'Tags'), h('dd', {}, versionTags.length ? chips(versionTags.map((t) => `${t.key}: ${t.value}`)) : 'none'),
      h('dt', {}, 'Created'), h('dd', {}, fmtTime(chosen.creation_timestamp)),
      h('dt', {}, 'Load with'), h('dd', {}, h('code', {}, `mlflow.genai.load_prompt(${JSON.stringify(ref)})`))),
    templateView(chosen)));
}
