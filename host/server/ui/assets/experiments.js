// Experiments list and the runs table of one experiment.

import {
  api, h, table, errorBox, fmtTime, fmtDuration, fmtNum, tagOf, runName, quoteKey, sqlString, WASMFLOW,
} from './lib.js';
import { current, setQuery } from './nav.js';
import { experimentAbout, experimentLifecycle, experimentSummary, runLifecycleButton, noRuns } from './experimentedit.js';
import { emptyState } from './edit.js';
import { experimentTabs } from './traces.js';

export async function experimentsPage(root, _params, query, gen) {
  const q = query.get('q') || '';
  const deletedView = query.get('deleted') === '1';
  const status = h('p', { class: 'muted', role: 'status' });
  const search = h('input', { type: 'search', id: 'exp-search', value: q, placeholder: 'Experiment name contains…' });
  const newName = h('input', { id: 'exp-new', placeholder: 'New experiment name', required: true });
  const createError = h('div');
  root.append(
    h('h1', {}, 'Experiments'),
    h('form', { class: 'bar', role: 'search', onsubmit: (e) => { e.preventDefault(); setQuery(new URLSearchParams({ ...(search.value ? { q: search.value } : {}), ...(deletedView ? { deleted: '1' } : {}) })); } },
      h('label', { for: 'exp-search', class: 'sr-only' }, 'Search experiments'), search, h('button', { type: 'submit' }, 'Search'),
      h('a', { href: deletedView ? '#/' : '#/?deleted=1', id: 'exp-view' }, deletedView ? 'Active experiments' : 'Deleted experiments')),
    h('form', {
      class: 'bar',
      onsubmit: async (e) => {
        e.preventDefault();
        createError.replaceChildren();
        try {
          const r = await api('experiments/create', { method: 'POST', body: { name: newName.value.trim() } });
          location.hash = `#/experiments/${r.experiment_id}`;
        } catch (err) { createError.replaceChildren(errorBox(err)); }
      },
    }, h('label', { for: 'exp-new' }, 'Create'), newName, h('button', { type: 'submit', class: 'primary' }, 'Create experiment')),
    createError, status);

  const experiments = [];
  let token;
  const filter = q ? `name LIKE ${sqlString(`%${q}%`)}` : '';
  do {
    const r = await api('experiments/search', { method: 'POST', body: { filter, max_results: 1000, order_by: ['creation_time DESC'], page_token: token, view_type: deletedView ? 'DELETED_ONLY' : 'ACTIVE_ONLY' } });
    experiments.push(...(r.experiments || []));
    token = r.next_page_token;
  } while (token && experiments.length < 5000);
  if (!current(gen)) return;
  const counts = {};
  for (let i = 0; i < experiments.length; i += 500) {
    const ids = experiments.slice(i, i + 500).map((e) => e.experiment_id);
    Object.assign(counts, (await api(`${WASMFLOW}/experiments/run-counts`, { query: { experiment_ids: ids } })).run_counts);
  }
  if (!current(gen)) return;
  status.textContent = deletedView ? `${experiments.length} deleted experiment${experiments.length === 1 ? '' : 's'}` : `${experiments.length} experiment${experiments.length === 1 ? '' : 's'}`;
  const summaries = await Promise.all(experiments.map(experimentSummary));
  if (!current(gen)) return;
  if (!experiments.length) {
    status.replaceChildren();
    root.append(deletedView ? emptyState('No deleted experiments: experiments deleted here can be restored from this list.', null, { id: 'no-experiments' })
      : q ? emptyState(`No experiment's name contains "${q}".`, null, { id: 'no-experiments' })
        : emptyState('No experiments yet — create one above, or log a run with', 'mlflow.set_experiment("my-experiment")', { id: 'no-experiments' }));
    return;
  }
  const chosen = new Set();
  const showRuns = h('button', { type: 'button', disabled: true, onclick: () => { location.hash = `#/experiments/${[...chosen].join(',')}`; } }, 'Runs of selected experiments');
  const rows = experiments.map((exp, index) => {
    const rowError = h('td', { colspan: 7 });
    const errorRow = h('tr', { hidden: true }, h('td'), rowError);
    const fail = (err) => { rowError.replaceChildren(errorBox(err)); errorRow.hidden = false; };
    const nameCell = h('td', {}, h('a', { href: `#/experiments/${exp.experiment_id}` }, exp.name));
    const rename = () => {
      const input = h('input', { value: exp.name, 'aria-label': `New name for ${exp.name}` });
      nameCell.replaceChildren(h('form', {
        class: 'bar',
        onsubmit: async (e) => {
          e.preventDefault();
          try {
            await api('experiments/update', { method: 'POST', body: { experiment_id: exp.experiment_id, new_name: input.value.trim() } });
            window.dispatchEvent(new HashChangeEvent('hashchange'));
          } catch (err) { fail(err); }
        },
      }, input, h('button', { type: 'submit' }, 'Save'), h('button', { type: 'button', onclick: () => window.dispatchEvent(new HashChangeEvent('hashchange')) }, 'Cancel')));
      input.focus();
    };
    const del = async () => {
      if (!confirm(`Delete experiment "${exp.name}" and its runs?`)) return;
      try {
        await api('experiments/delete', { method: 'POST', body: { experiment_id: exp.experiment_id } });
        window.dispatchEvent(new HashChangeEvent('hashchange'));
      } catch (err) { fail(err); }
    };
    const restore = async () => {
      try {
        await api('experiments/restore', { method: 'POST', body: { experiment_id: exp.experiment_id } });
        window.dispatchEvent(new HashChangeEvent('hashchange'));
      } catch (err) { fail(err); }
    };
    return [
      h('tr', { 'data-experiment': exp.name },
        h('td', {}, h('input', {
          type: 'checkbox', 'aria-label': `Select ${exp.name}`,
          onchange: (e) => {
            if (e.target.checked) chosen.add(exp.experiment_id); else chosen.delete(exp.experiment_id);
            showRuns.disabled = chosen.size === 0;
          },
        })),
        nameCell,
        summaries[index],
        h('td', { class: 'num' }, exp.experiment_id),
        h('td', { class: 'num', 'data-col': 'runs' }, counts[exp.experiment_id] ?? ''),
        h('td', {}, fmtTime(exp.creation_time)),
        h('td', {}, fmtTime(exp.last_update_time)),
        h('td', {}, deletedView
          ? h('button', { type: 'button', onclick: restore, 'aria-label': `Restore ${exp.name}` }, 'Restore')
          : [h('button', { type: 'button', onclick: rename, 'aria-label': `Rename ${exp.name}` }, 'Rename'), ' ',
            exp.experiment_id === '0' ? null : h('button', { type: 'button', onclick: del, 'aria-label': `Delete ${exp.name}` }, 'Delete')])),
      errorRow,
    ];
  });
  root.append(h('div', { class: 'bar' }, showRuns), table([h('th', {}, h('span', { class: 'sr-only' }, 'Select')), 'Name', 'Description and tags', h('th', { class: 'num' }, 'ID'), h('th', { class: 'num' }, 'Runs'), 'Created', 'Last updated', 'Actions'], rows, { caption: 'Experiments' }));
}

const COLUMN_KINDS = { p: ['params', 'Param'], m: ['metrics', 'Metric'], t: ['tags', 'Tag'] };

/** The runs table: server-side filter, order and paging, all kept in the URL. */
export async function runsPage(root, [idList], query, gen) {
  const ids = idList.split(',').filter(Boolean);
  const filter = query.get('filter') || '';
  const order = query.get('order') || 'attributes.start_time DESC';
  const size = Number(query.get('size') || 50);
  const token = query.get('pt') || '';
  const deletedView = query.get('deleted') === '1';
  // The tokens of earlier pages, for "Previous"; the first page's (no token) is "-".
  const prev = query.get('prev') ? query.get('prev').split('|') : [];
  const exps = await Promise.all(ids.map(async (id) => (await api('experiments/get', { query: { experiment_id: id } })).experiment));
  if (!current(gen)) return;
  const expNames = Object.fromEntries(exps.map((e) => [e.experiment_id, e.name]));

  const go = (changes) => {
    const q = new URLSearchParams(query);
    for (const [k, v] of Object.entries(changes)) {
      if (v === '' || v === null || v === undefined) q.delete(k);
      else q.set(k, v);
    }
    setQuery(q);
  };
  const filterInput = h('input', { class: 'filter', id: 'run-filter', value: filter, placeholder: "metrics.accuracy > 0.9 and params.model = 'mlp'", spellcheck: false });
  const filterError = h('div', { id: 'filter-error', 'aria-live': 'polite' });
  const selected = new Set();
  const compareButton = h('button', { type: 'button', disabled: true, onclick: () => { location.hash = `#/compare?runs=${[...selected].join(',')}`; } }, 'Compare selected');
  // The chart view across runs: the selected runs, or without a selection the newest ten.
  const chartButton = h('button', { type: 'button', id: 'chart-runs', onclick: () => { location.hash = `#/experiments/${idList}/charts${selected.size ? `?runs=${[...selected].join(',')}` : ''}`; } }, 'Charts');
  const updateCompare = () => {
    compareButton.disabled = selected.size < 2;
    compareButton.textContent = `Compare selected (${selected.size})`;
    chartButton.textContent = selected.size ? `Chart selected (${selected.size})` : 'Charts';
  };
  updateCompare();
  root.append(
    h('div', { class: 'crumbs' }, h('a', { href: '#/' }, 'Experiments'), ' / '),
    h('h1', {}, exps.map((e) => e.name).join(' + ')),
    ...(exps.length === 1 ? [experimentLifecycle(exps[0]), experimentAbout(exps[0]), experimentTabs(exps[0].experiment_id, 'runs')] : []),
    h('form', { class: 'bar', role: 'search', onsubmit: (e) => { e.preventDefault(); go({ filter: filterInput.value.trim(), pt: '', prev: '' }); } },
      h('label', { for: 'run-filter' }, 'Filter'), filterInput, h('button', { type: 'submit' }, 'Search'),
      filter ? h('button', { type: 'button', onclick: () => go({ filter: '', pt: '', prev: '' }) }, 'Clear') : null),
    filterError);

  let page;
  try {
    page = await api('runs/search', { method: 'POST', body: { experiment_ids: ids, filter, order_by: [order], max_results: size, page_token: token || undefined, run_view_type: deletedView ? 'DELETED_ONLY' : 'ACTIVE_ONLY' } });
  } catch (e) {
    if (!current(gen)) return;
    filterError.replaceChildren(errorBox(e));
    filterInput.setAttribute('aria-invalid', 'true');
    filterInput.setAttribute('aria-describedby', 'filter-error');
    return;
  }
  if (!current(gen)) return;
  const runs = page.runs || [];

  // Columns: chosen ones in the URL, else the first few params and metrics of this page.
  const keys = { p: new Set(), m: new Set(), t: new Set() };
  for (const r of runs) {
    for (const x of r.data?.params || []) keys.p.add(x.key);
    for (const x of r.data?.metrics || []) keys.m.add(x.key);
    for (const x of r.data?.tags || []) if (!x.key.startsWith('mlflow.')) keys.t.add(x.key);
  }
  let cols = query.has('cols') ? query.get('cols').split(',').filter(Boolean) : [
    ...[...keys.p].sort().slice(0, 4).map((k) => `p:${k}`),
    ...[...keys.m].sort().slice(0, 6).map((k) => `m:${k}`),
  ];
  for (const c of cols) keys[c[0]]?.add(c.slice(2));
  const chooser = h('details', { class: 'columns' }, h('summary', {}, `Columns (${cols.length})`),
    Object.entries(COLUMN_KINDS).map(([kind, [, label]]) => (keys[kind].size === 0 ? null : h('fieldset', {}, h('legend', {}, `${label}s`),
      [...keys[kind]].sort().map((k) => {
        const id = `col-${kind}-${k}`;
        const box = h('input', {
          type: 'checkbox', id, checked: cols.includes(`${kind}:${k}`),
          onchange: () => {
            cols = box.checked ? [...cols, `${kind}:${k}`] : cols.filter((c) => c !== `${kind}:${k}`);
            go({ cols: cols.join(',') || ',' });
          },
        });
        return h('span', {}, box, h('label', { for: id }, ` ${k}`));
      })))));

  const [orderKey, orderDir = 'ASC'] = splitOrder(order);
  const sortHeader = (label, key, cls) => {
    const active = key && orderKey === key;
    const dir = active ? orderDir : null;
    const th = h('th', { scope: 'col', class: cls, 'aria-sort': dir ? (dir === 'DESC' ? 'descending' : 'ascending') : null },
      key ? h('button', {
        type: 'button', class: 'sort', title: `Sort by ${label}`,
        onclick: () => go({ order: `${key} ${active && dir === 'DESC' ? 'ASC' : 'DESC'}`, pt: '', prev: '' }),
      }, label, dir ? (dir === 'DESC' ? ' ▼' : ' ▲') : '') : label);
    return th;
  };
  const allBox = h('input', {
    type: 'checkbox', 'aria-label': 'Select all runs on this page',
    onchange: () => {
      for (const b of root.querySelectorAll('input[data-run]')) { b.checked = allBox.checked; b.dispatchEvent(new Event('change')); }
    },
  });
  const headers = [
    h('th', {}, allBox),
    sortHeader('Run', 'attributes.run_name'),
    ids.length > 1 ? h('th', { scope: 'col' }, 'Experiment') : null,
    sortHeader('Status', 'attributes.status'),
    sortHeader('Started', 'attributes.start_time'),
    h('th', { scope: 'col' }, 'Duration'),
    sortHeader('User', 'attributes.user_id'),
    sortHeader('Source', 'tags.`mlflow.source.name`'),
    ...cols.map((c) => {
      const [entity, label] = COLUMN_KINDS[c[0]];
      const key = c.slice(2);
      return sortHeader(`${key}`, `${entity}.${quoteKey(key)}`, c[0] === 'm' ? 'num' : undefined);
    }),
  ];
  const rows = runs.map((r) => {
    const box = h('input', {
      type: 'checkbox', 'data-run': r.info.run_id, 'aria-label': `Select ${runName(r)}`,
      onchange: () => { if (box.checked) selected.add(r.info.run_id); else selected.delete(r.info.run_id); updateCompare(); lifecycle.update(); },
    });
    const value = (c) => {
      const list = r.data?.[COLUMN_KINDS[c[0]][0]] || [];
      const v = list.find((x) => x.key === c.slice(2))?.value;
      return c[0] === 'm' ? h('td', { class: 'num' }, fmtNum(v)) : h('td', {}, v ?? '');
    };
    const source = tagOf(r, 'mlflow.source.name') || '';
    return h('tr', { 'data-run-name': runName(r) },
      h('td', {}, box),
      h('td', {}, h('a', { href: `#/runs/${r.info.run_id}` }, runName(r)),
        tagOf(r, 'mlflow.parentRunId') ? h('span', { class: 'muted', title: 'child run' }, ' ↳') : null),
      ids.length > 1 ? h('td', {}, expNames[r.info.experiment_id]) : null,
      h('td', {}, h('span', { class: `status ${r.info.status}` }, r.info.status)),
      h('td', {}, fmtTime(r.info.start_time)),
      h('td', { class: 'num' }, fmtDuration(r.info.start_time, r.info.end_time)),
      h('td', {}, r.info.user_id || ''),
      h('td', { title: source }, source.split('/').pop()),
      cols.map(value));
  });
  const lifecycle = runLifecycleButton(selected, deletedView, () => window.dispatchEvent(new HashChangeEvent('hashchange')));
  const viewLink = h('a', { href: '#', id: 'runs-view', onclick: (e) => { e.preventDefault(); go({ deleted: deletedView ? '' : '1', pt: '', prev: '' }); } }, deletedView ? 'Active runs' : 'Deleted runs');
  const pageNo = prev.length + 1;
  const pager = h('div', { class: 'bar' },
    h('button', { type: 'button', disabled: prev.length === 0, onclick: () => go({ pt: prev[prev.length - 1].replace(/^-$/, ''), prev: prev.slice(0, -1).join('|') }) }, '← Previous'),
    h('span', { 'data-testid': 'page-info' }, `Page ${pageNo} · runs ${(pageNo - 1) * size + (runs.length ? 1 : 0)}–${(pageNo - 1) * size + runs.length}`),
    h('button', { type: 'button', disabled: !page.next_page_token, onclick: () => go({ pt: page.next_page_token, prev: [...prev, token || '-'].join('|') }) }, 'Next →'),
    h('label', { for: 'page-size' }, 'Per page'),
    h('select', { id: 'page-size', onchange: (e) => go({ size: e.target.value, pt: '', prev: '' }) },
      [25, 50, 100, 500].map((n) => h('option', { value: n, selected: n === size }, n))));
  root.append(h('div', { class: 'bar' }, compareButton, chartButton, lifecycle.element, chooser, viewLink), ...(runs.length || prev.length ? [pager] : []),
    runs.length ? table(headers, rows, { caption: 'Runs' }) : noRuns(exps, { filter, deletedView, firstPage: !prev.length }));
}

/** "metrics.`a b` DESC" → ["metrics.`a b`", "DESC"]. */
function splitOrder(order) {
  const m = /^(.*?)(?:\s+(ASC|DESC))?$/i.exec(order.trim());
  return [m[1], (m[2] || 'ASC').toUpperCase()];
}
