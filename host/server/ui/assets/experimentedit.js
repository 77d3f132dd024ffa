// Editing on the experiment pages: an experiment's description and tags, deleting and restoring
// runs and experiments, and the runs table's empty state.

import { api, h, errorBox } from './lib.js';
import { editableMarkdown, markdown } from './markdown.js';
import { tagEditor, emptyState } from './edit.js';

/** MLflow keeps an experiment's description in its `mlflow.note.content` tag, as a run's. */
export const NOTE = 'mlflow.note.content';
const noteOf = (exp) => (exp.tags || []).find((t) => t.key === NOTE)?.value;

/** The description (markdown, editable) and the tags of one experiment. */
export function experimentAbout(exp) {
  const id = exp.experiment_id;
  const setTag = (key, value) => api('experiments/set-experiment-tag', { method: 'POST', body: { experiment_id: id, key, value } });
  const tags = (exp.tags || []).filter((t) => t.key !== NOTE);
  const ownTags = tags.filter((t) => !t.key.startsWith('mlflow.'));
  return h('div', { class: 'about' },
    editableMarkdown(noteOf(exp), (text) => setTag(NOTE, text), { id: 'experiment-description', placeholder: 'Describe this experiment in markdown…' }),
    h('details', { class: 'columns', id: 'experiment-tags-box' }, h('summary', {}, `Experiment tags (${ownTags.length})`),
      tagEditor(tags, {
        set: setTag,
        remove: (key) => api('experiments/delete-experiment-tag', { method: 'POST', body: { experiment_id: id, key } }),
        id: 'experiment-tags',
        what: 'experiment',
      })));
}

/**
 * The experiment page's Delete button (after a confirm), or for a deleted experiment a banner
 * and Restore, as the run page has for a run. The page is drawn again after either.
 */
export function experimentLifecycle(exp) {
  // The Default experiment (id 0) cannot be deleted: the list offers no Delete either.
  if (exp.experiment_id === '0') return null;
  const deleted = exp.lifecycle_stage === 'deleted';
  const box = h('div', { class: 'bar', id: 'experiment-lifecycle' });
  const toggle = async () => {
    if (!deleted && !confirm(`Delete experiment "${exp.name}" and its runs? It can be restored from "Deleted experiments".`)) return;
    try {
      await api(deleted ? 'experiments/restore' : 'experiments/delete', { method: 'POST', body: { experiment_id: exp.experiment_id } });
      window.dispatchEvent(new HashChangeEvent('hashchange'));
    } catch (err) { box.append(errorBox(err)); }
  };
  box.append(...[
    deleted ? h('p', { class: 'banner', role: 'status', id: 'experiment-deleted' }, 'This experiment is deleted: it is listed under "Deleted experiments" until restored.') : null,
    h('button', { type: 'button', id: 'experiment-lifecycle-button', onclick: toggle }, deleted ? 'Restore experiment' : 'Delete experiment'),
  ].filter(Boolean));
  return box;
}

/** The description's first paragraph and the own tags of an experiment, for the list. */
export async function experimentSummary(exp) {
  const note = noteOf(exp);
  const tags = (exp.tags || []).filter((t) => !t.key.startsWith('mlflow.'));
  const cell = h('td', { class: 'summary', 'data-col': 'about' });
  if (note) cell.append(await markdown(note.split(/\n\s*\n/)[0], { class: 'markdown clamp' }));
  if (tags.length) cell.append(h('div', {}, tags.map((t) => h('span', { class: 'chip', title: `${t.key}: ${t.value}` }, `${t.key}: ${t.value}`))));
  return cell;
}

/** Delete (active view) or restore (deleted view) the runs selected in the table. */
export function runLifecycleButton(selected, deletedView, after) {
  const status = h('span', { role: 'status' });
  const button = h('button', {
    type: 'button',
    disabled: true,
    id: deletedView ? 'restore-runs' : 'delete-runs',
    onclick: async () => {
      const ids = [...selected];
      if (!deletedView && !confirm(`Delete ${ids.length} run${ids.length === 1 ? '' : 's'}? They can be restored from "Deleted runs".`)) return;
      try {
        for (const run_id of ids) await api(deletedView ? 'runs/restore' : 'runs/delete', { method: 'POST', body: { run_id } });
        after();
      } catch (err) { status.replaceChildren(errorBox(err)); }
    },
  }, deletedView ? 'Restore selected' : 'Delete selected');
  const update = () => { button.disabled = selected.size === 0; };
  return { element: h('span', {}, button, status), update };
}

/** What the runs table says when it has no rows. */
export function noRuns(exps, { filter, deletedView, firstPage }) {
  if (filter) return emptyState('No runs match the filter.', null, { id: 'no-runs' });
  if (deletedView) return emptyState('No deleted runs: runs deleted from this experiment can be restored here.', null, { id: 'no-runs' });
  if (!firstPage) return emptyState('No more runs.', null, { id: 'no-runs' });
  const name = exps.length === 1 ? exps[0].name : exps[0]?.name || 'my-experiment';
  return emptyState('No runs yet — log one with', `mlflow.set_experiment(${JSON.stringify(name)}); mlflow.start_run()`, { id: 'no-runs' });
}
