// Editing controls shared by the pages: a tag table with add, edit and delete, and an inline
// rename. Each change goes through MLflow's REST API (the callers pass the calls), as MLflow's UI
// does, and the control redraws from what was saved.

import { h, table } from './lib.js';

/**
 * Tags as a table with Edit and Delete per row and an Add form below. `tags` is [{key, value}];
 * `set(key, value)` and `remove(key)` write them. `id` prefixes the elements' ids; `what` names the
 * owner in labels ("run", "experiment", …). Keys starting with "mlflow." are MLflow's own and are
 * shown but not editable, as in MLflow's UI.
 */
export function tagEditor(tags, { set, remove, id, what }) {
  let list = [...tags].sort((a, b) => a.key.localeCompare(b.key));
  const root = h('section', { class: 'tags', id });
  const status = h('div', { role: 'status', 'aria-live': 'polite' });
  const fail = (err) => status.replaceChildren(h('p', { class: 'error', role: 'alert' }, err.message));

  const draw = (focusKey) => {
    const rows = list.map((t) => {
      const own = t.key.startsWith('mlflow.');
      const valueCell = h('td', {}, t.value);
      const edit = () => {
        const input = h('input', { value: t.value, 'aria-label': `Value of tag ${t.key}`, class: 'wide' });
        valueCell.replaceChildren(h('form', {
          class: 'bar',
          onsubmit: async (e) => {
            e.preventDefault();
            try {
              await set(t.key, input.value);
              t.value = input.value;
              status.replaceChildren();
              draw(t.key);
            } catch (err) { fail(err); }
          },
          onkeydown: (e) => { if (e.key === 'Escape') draw(t.key); },
        }, input, h('button', { type: 'submit', class: 'primary' }, 'Save'), h('button', { type: 'button', onclick: () => draw(t.key) }, 'Cancel')));
        input.focus();
        input.select();
      };
      const del = async () => {
        if (!confirm(`Delete tag "${t.key}"?`)) return;
        try {
          await remove(t.key);
          list = list.filter((x) => x.key !== t.key);
          status.replaceChildren(h('span', { class: 'ok' }, `Deleted tag ${t.key}`));
          draw();
        } catch (err) { fail(err); }
      };
      return h('tr', { 'data-tag': t.key },
        h('th', { scope: 'row' }, t.key),
        valueCell,
        h('td', { class: 'actions' }, own ? null : [
          h('button', { type: 'button', onclick: edit, 'aria-label': `Edit tag ${t.key}`, 'data-edit': t.key }, 'Edit'), ' ',
          h('button', { type: 'button', onclick: del, 'aria-label': `Delete tag ${t.key}` }, 'Delete')]));
    });
    const key = h('input', { id: `${id}-key`, placeholder: 'key', required: true });
    const value = h('input', { id: `${id}-value`, placeholder: 'value' });
    const add = h('form', {
      class: 'bar',
      onsubmit: async (e) => {
        e.preventDefault();
        const k = key.value.trim();
        try {
          await set(k, value.value);
          list = [...list.filter((x) => x.key !== k), { key: k, value: value.value }].sort((a, b) => a.key.localeCompare(b.key));
          status.replaceChildren(h('span', { class: 'ok' }, `Saved tag ${k}`));
          draw();
          root.querySelector(`#${id}-key`).focus();
        } catch (err) { fail(err); }
      },
    }, h('label', { for: `${id}-key` }, 'Add tag'), key, h('label', { for: `${id}-value`, class: 'sr-only' }, 'Tag value'), value,
    h('button', { type: 'submit' }, 'Add tag'));
    root.replaceChildren(
      h('h2', {}, `Tags (${list.length})`),
      list.length ? table(['Name', 'Value', h('th', { scope: 'col' }, h('span', { class: 'sr-only' }, 'Actions'))], rows, { caption: `Tags of this ${what}` })
        : h('p', { class: 'muted' }, `This ${what} has no tags yet.`),
      add, status);
    if (focusKey) root.querySelector(`button[data-edit="${CSS.escape(focusKey)}"]`)?.focus();
  };
  draw();
  return root;
}

/**
 * A heading whose text can be renamed in place: `save(name)` writes it. Returns the <h1>.
 */
export function renameableHeading(name, save, { what, after = [] } = {}) {
  const heading = h('h1', {});
  const show = (text) => {
    heading.replaceChildren(h('span', { 'data-testid': 'name' }, text), ' ', ...after, ' ',
      h('button', { type: 'button', class: 'small', 'aria-label': `Rename ${what}`, onclick: () => edit(text) }, 'Rename'));
  };
  const edit = (text) => {
    const input = h('input', { value: text, 'aria-label': `New ${what} name`, required: true });
    const error = h('span', { role: 'alert', class: 'error' });
    heading.replaceChildren(h('form', {
      class: 'bar',
      onsubmit: async (e) => {
        e.preventDefault();
        try {
          await save(input.value.trim());
          show(input.value.trim());
          document.title = `${input.value.trim()} · wasmflow`;
          heading.querySelector('button').focus();
        } catch (err) { error.textContent = err.message; }
      },
      onkeydown: (e) => { if (e.key === 'Escape') { show(text); heading.querySelector('button').focus(); } },
    }, input, h('button', { type: 'submit', class: 'primary' }, 'Save'), h('button', { type: 'button', onclick: () => show(text) }, 'Cancel'), error));
    input.focus();
    input.select();
  };
  show(name);
  return heading;
}

/** An empty state that reads as a sentence, with an optional code hint. */
export function emptyState(sentence, code, attrs = {}) {
  return h('p', { class: 'empty muted', ...attrs }, sentence, code ? [' ', h('code', {}, code)] : null);
}
