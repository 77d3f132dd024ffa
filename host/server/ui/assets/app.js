// The UI's router: pages live under the URL's fragment (#/...), so the server only serves "/".

import { h, errorBox } from './lib.js';
import { experimentsPage, runsPage } from './experiments.js';
import { runPage } from './run.js';
import { comparePage } from './compare.js';
import { experimentChartsPage } from './charts.js';
import { modelsPage, modelPage, versionPage } from './registry.js';
import { pluginsPage, servingPage } from './plugins.js';
import { current, nextPage } from './nav.js';
import { loggedModelPage } from './lineage.js';
import { tracesPage, tracePage } from './traces.js';
import { promptsPage, promptPage } from './prompts.js';

const routes = [
  [/^\/?$/, experimentsPage, 'experiments'],
  [/^\/experiments\/([^/]+)$/, runsPage, 'experiments'],
  [/^\/experiments\/([^/]+)\/charts$/, experimentChartsPage, 'experiments'],
  [/^\/runs\/([^/]+)$/, runPage, 'experiments'],
  // The address the mlflow client prints after a run ("View run at …/#/experiments/1/runs/<id>").
  [/^\/experiments\/[^/]+\/runs\/([^/]+)$/, runPage, 'experiments'],
  // A logged model (MLflow 3), at the address MLflow's UI gives it.
  [/^\/experiments\/([^/]+)\/models\/([^/]+)$/, loggedModelPage, 'experiments'],
  [/^\/compare$/, comparePage, 'experiments'],
  // GenAI: an experiment's traces and one trace; the prompt registry.
  [/^\/experiments\/([^/]+)\/traces$/, tracesPage, 'experiments'],
  [/^\/experiments\/([^/]+)\/traces\/([^/]+)$/, tracePage, 'experiments'],
  [/^\/prompts$/, promptsPage, 'prompts'],
  [/^\/prompts\/([^/]+)$/, promptPage, 'prompts'],
  [/^\/models$/, modelsPage, 'models'],
  [/^\/models\/([^/]+)$/, modelPage, 'models'],
  [/^\/models\/([^/]+)\/versions\/([^/]+)$/, versionPage, 'models'],
  [/^\/plugins$/, pluginsPage, 'plugins'],
  [/^\/serving$/, servingPage, 'serving'],
];

// The path (without the query) last rendered: null before the first page.
let shownPath = null;

/**
 * After a page renders: the title names it, and on a route change (a new path, not the first
 * load nor a new sort or page of the same list) focus moves to <main> so keyboard and screen
 * reader users start at the new content, unless they have already moved into it.
 */
function settle(main, path, gen) {
  if (!current(gen)) return;
  const heading = main.querySelector('h1')?.textContent.trim();
  document.title = heading ? `${heading} · wasmflow` : 'wasmflow';
  const routeChanged = shownPath !== null && shownPath !== path;
  shownPath = path;
  if (routeChanged && !(main.contains(document.activeElement) && document.activeElement !== main)) {
    // <main> has tabindex=-1 for this; its focus ring would only frame the whole page.
    main.style.outline = 'none';
    main.focus({ preventScroll: true });
  }
}

async function render() {
  const gen = nextPage();
  const raw = location.hash.replace(/^#/, '') || '/';
  const [path, qs = ''] = raw.split('?');
  const query = new URLSearchParams(qs);
  const main = document.getElementById('main');
  for (const [re, page, nav] of routes) {
    const m = re.exec(path);
    if (!m) continue;
    for (const a of document.querySelectorAll('nav a')) {
      if (a.dataset.nav === nav) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    }
    const root = h('div', { 'aria-busy': 'true' });
    main.replaceChildren(root);
    try {
      await page(root, m.slice(1).map(decodeURIComponent), query, gen);
    } catch (e) {
      if (current(gen)) root.append(errorBox(e));
      console.error(e);
    }
    root.removeAttribute('aria-busy');
    settle(main, path, gen);
    return;
  }
  main.replaceChildren(h('h1', {}, 'Not found'), h('p', {}, 'No page at ', h('code', {}, raw), '. ', h('a', { href: '#/' }, 'Experiments')));
  settle(main, path, gen);
}

// The skip link must not route: the fragment is the page's address, `#main` is no page.
document.querySelector('a.skip')?.addEventListener('click', (event) => {
  event.preventDefault();
  document.getElementById('main').focus();
});

window.addEventListener('hashchange', render);
render();
