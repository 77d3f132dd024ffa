// Descriptions (a run's `mlflow.note.content`, an experiment's, a registered model's and a model
// version's) rendered as markdown, as MLflow's UI renders them.
//
// Safety: markdown-it runs with `html: false`, so raw HTML in the text is shown as text, and its
// link check refuses javascript:, vbscript:, file: and (but for images) data: URLs. Its output is
// then parsed into an inert <template> (nothing runs, nothing loads) and rebuilt keeping only the
// elements and attributes markdown produces, with links limited to http(s), mailto and relative
// addresses: whatever a later version of the library let through, no script or handler reaches
// the page.

import { h } from './lib.js';

let parser = null;

/** The markdown parser, loaded with the first description shown (~120 KB). */
async function markdownIt() {
  if (!parser) {
    const { default: markdownit } = await import('./vendor/markdown-it-15.0.3/markdown-it.min.js');
    parser = markdownit({ html: false, linkify: true, breaks: false });
  }
  return parser;
}

const ALLOWED = new Set([
  'p', 'br', 'hr', 'strong', 'em', 's', 'del', 'code', 'pre', 'blockquote', 'ul', 'ol', 'li',
  'h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'a', 'img', 'table', 'thead', 'tbody', 'tr', 'th', 'td',
]);
const ATTRIBUTES = { a: ['href', 'title'], img: ['src', 'alt', 'title'], ol: ['start'], th: ['style'], td: ['style'], code: ['class'] };
const SAFE_URL = /^(https?:|mailto:|#|\/|\.|[^:/?#]*(?:[/?#]|$))/i;

/** A copy of `node` (from the inert template) with only what markdown makes. */
function clean(node) {
  if (node.nodeType === Node.TEXT_NODE) return document.createTextNode(node.textContent);
  if (node.nodeType !== Node.ELEMENT_NODE) return null;
  const tag = node.localName;
  const children = [...node.childNodes].map(clean).filter(Boolean);
  // An unknown element keeps its text, never itself.
  if (!ALLOWED.has(tag)) return children.length ? h('span', {}, children) : null;
  const el = document.createElement(tag);
  for (const name of ATTRIBUTES[tag] || []) {
    const value = node.getAttribute(name);
    if (value === null) continue;
    if ((name === 'href' || name === 'src') && !SAFE_URL.test(value.trim())) continue;
    if (name === 'style' && !/^text-align:\s*(left|right|center)$/.test(value)) continue;
    if (name === 'class' && !/^language-[\w-]+$/.test(value)) continue;
    el.setAttribute(name, value);
  }
  if (tag === 'a') {
    // Links leave the UI: a new tab, and no window.opener for the page they open.
    if (!(el.getAttribute('href') || '').startsWith('#')) {
      el.setAttribute('target', '_blank');
      el.setAttribute('rel', 'noopener noreferrer nofollow');
    }
  }
  if (tag === 'img') el.setAttribute('loading', 'lazy');
  el.append(...children);
  return el;
}

/** `text` rendered as markdown into a new element (class "markdown"); empty text, none. */
export async function markdown(text, attrs = {}) {
  const el = h('div', { class: 'markdown', ...attrs });
  if (!text) return el;
  const template = document.createElement('template');
  template.innerHTML = (await markdownIt()).render(String(text));
  el.append(...[...template.content.childNodes].map(clean).filter(Boolean));
  return el;
}

/**
 * A description shown as markdown with an Edit button that opens a textarea; `save(text)`
 * writes it through the REST API. A missing description shows only the button.
 */
export function editableMarkdown(text, save, { id, label = 'Description', placeholder = 'Describe it in markdown…' } = {}) {
  let value = text || '';
  const root = h('section', { class: 'description', id });
  const status = h('span', { role: 'status' });
  const show = async () => {
    const editButton = h('button', { type: 'button', 'aria-label': value ? `Edit ${label.toLowerCase()}` : undefined, onclick: edit }, value ? 'Edit' : `Add ${label.toLowerCase()}`);
    // A missing description shows only the button (replaceChildren would print a null).
    const body = value ? [await markdown(value, { 'data-testid': `${id}-rendered` })] : [];
    root.replaceChildren(h('h2', {}, label), ...body, h('div', { class: 'bar' }, editButton, status));
  };
  const edit = () => {
    const area = h('textarea', { id: `${id}-input`, placeholder, rows: 6 });
    area.value = value;
    const cancel = () => { status.replaceChildren(); show(); };
    root.replaceChildren(h('h2', {}, h('label', { for: `${id}-input` }, label)),
      h('form', {
        onsubmit: async (e) => {
          e.preventDefault();
          status.replaceChildren('Saving…');
          try {
            await save(area.value);
            value = area.value;
            status.replaceChildren(h('span', { class: 'ok' }, 'Saved'));
            await show();
          } catch (err) { status.replaceChildren(h('span', { class: 'error', role: 'alert' }, err.message)); }
        },
        onkeydown: (e) => { if (e.key === 'Escape') cancel(); },
      }, area, h('p', { class: 'muted' }, 'Markdown: **bold**, _italic_, `code`, [links](https://…), lists, tables.'),
      h('div', { class: 'bar' }, h('button', { type: 'submit', class: 'primary' }, `Save ${label.toLowerCase()}`), h('button', { type: 'button', onclick: cancel }, 'Cancel'), status)));
    area.focus();
  };
  show();
  return root;
}
