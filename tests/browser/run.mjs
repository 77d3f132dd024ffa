// The web UI in a real browser: loads every page of a server seeded by seed.py and checks what a
// user sees. Usage: node run.mjs <base-url> <seed.json> <screenshot-dir>
import { chromium } from 'playwright-core';
import { readFileSync, mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import { chartSteps } from './charts.mjs';

const [base, seedPath, shots] = process.argv.slice(2);
const seed = JSON.parse(readFileSync(seedPath, 'utf8'));
mkdirSync(shots, { recursive: true });
// The first page of the 10,000-run experiment must be on screen within this (debug builds too).
const BIG_PAGE_BUDGET_MS = Number(process.env.UI_BIG_PAGE_BUDGET_MS || 3000);

// A new, empty profile each run; playwright takes it as launchPersistentContext's first argument.
const context = await chromium.launchPersistentContext(mkdtempSync(join(tmpdir(), 'wasmflow-chromium-')), {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  viewport: { width: 1366, height: 900 },
  colorScheme: 'light',
});
const page = context.pages()[0] || await context.newPage();
const pageErrors = [];
page.on('pageerror', (e) => pageErrors.push(String(e)));
// Failed responses are checked per step (some steps expect one); the console repeats them.
const failedResponses = [];
page.on('console', (m) => { if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) pageErrors.push(m.text()); });
page.on('response', (r) => { if (r.status() >= 400) failedResponses.push(`${r.status()} ${new URL(r.url()).pathname}`); });
// Everything the UI loads comes from the server itself: no CDN, no other host.
page.on('request', (r) => { if (!r.url().startsWith(base) && !r.url().startsWith('blob:') && !r.url().startsWith('data:')) pageErrors.push(`request to another host: ${r.url()}`); });

const rest = async (path, init) => {
  const res = await fetch(`${base}${path}`, init);
  const body = await res.json();
  if (!res.ok) throw new Error(`${path}: ${res.status} ${JSON.stringify(body)}`);
  return body;
};
// A hash change keeps the document: mark the page on screen so the wait is for the new one.
const navigate = async (action) => {
  await page.evaluate(() => document.querySelector('main > div')?.setAttribute('data-old', '')).catch(() => {});
  await action();
  await page.waitForSelector('main > div:not([aria-busy]):not([data-old])');
};
// The same address again is no hash change, so reload to show fresh data.
const go = (hash) => navigate(() => (page.url() === `${base}/${hash}` ? page.reload() : page.goto(`${base}/${hash}`)));
const shot = (name) => page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
const cell = (rowSel, n) => page.locator(`${rowSel} td`).nth(n).innerText();

let metricsStatus = 0;
let passed = 0;
const failed = [];
async function step(name, fn, { expectFailed = [] } = {}) {
  const started = Date.now();
  pageErrors.splice(0);
  failedResponses.splice(0);
  try {
    await fn();
    assert.deepEqual(pageErrors.splice(0), [], 'errors in the page');
    assert.deepEqual([...new Set(failedResponses.splice(0))], typeof expectFailed === 'function' ? expectFailed() : expectFailed, 'failed requests');
    passed++;
    console.log(`ok   ${name} (${Date.now() - started} ms)`);
  } catch (e) {
    failed.push(name);
    pageErrors.splice(0);
    console.log(`FAIL ${name}\n     ${String(e.stack || e).split('\n').slice(0, 6).join('\n     ')}`);
    await shot(`failed-${name.replace(/\W+/g, '-')}`).catch(() => {});
  }
}

const { runs, model } = seed;

await step('experiments list shows names and run counts', async () => {
  await go('#/');
  const demo = page.locator('tr[data-experiment="ui-demo"]');
  await demo.waitFor();
  assert.equal(await demo.locator('td[data-col=runs]').innerText(), '4');
  assert.equal(await page.locator('tr[data-experiment="ui-big"] td[data-col=runs]').innerText(), String(seed.big_runs));
  await shot('experiments');
});

await step('create, rename and delete an experiment', async () => {
  await go('#/');
  await page.getByLabel('Create').fill('ui-created');
  await page.getByRole('button', { name: 'Create experiment' }).click();
  await page.locator('h1', { hasText: 'ui-created' }).waitFor();
  await go('#/');
  await page.getByRole('button', { name: 'Rename ui-created' }).click();
  await page.getByLabel('New name for ui-created').fill('ui-renamed');
  await page.getByRole('button', { name: 'Save' }).click();
  await page.locator('tr[data-experiment="ui-renamed"]').waitFor();
  page.once('dialog', (d) => d.accept());
  await page.getByRole('button', { name: 'Delete ui-renamed' }).click();
  await page.locator('tr[data-experiment="ui-renamed"]').waitFor({ state: 'detached' });
  const exp = await rest('/api/2.0/mlflow/experiments/get-by-name?experiment_name=ui-renamed');
  assert.equal(exp.experiment.lifecycle_stage, 'deleted');
});

await step('keyboard: tab to an experiment and open it with Enter', async () => {
  await go('#/');
  let found = false;
  for (let i = 0; i < 80 && !found; i++) {
    await page.keyboard.press('Tab');
    found = await page.evaluate(() => document.activeElement?.textContent === 'ui-demo');
  }
  assert.ok(found, 'the ui-demo link is reachable with Tab');
  const outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
  assert.notEqual(outline, 'none', 'the focused link shows a focus ring');
  await page.keyboard.press('Enter');
  await page.locator('h1', { hasText: 'ui-demo' }).waitFor();
});

await step('runs table: names, metric values, sort by a metric', async () => {
  await go(`#/experiments/${seed.experiment_id}`);
  for (const name of ['baseline', 'wide', 'deep', 'baseline-fold-1']) await page.locator(`tr[data-run-name="${name}"]`).waitFor();
  const headers = await page.locator('thead th').allInnerTexts();
  const accCol = headers.findIndex((t) => t.startsWith('accuracy'));
  assert.ok(accCol > 0, `an accuracy column in ${headers}`);
  assert.equal(await cell('tr[data-run-name="deep"]', accCol), String(runs.deep.accuracy));
  await navigate(() => page.getByRole('button', { name: 'accuracy', exact: false }).first().click());
  const first = await page.locator('tbody tr').first().getAttribute('data-run-name');
  assert.equal(first, 'deep', 'the highest accuracy comes first');
  assert.equal(await page.locator('th[aria-sort=descending]').count(), 1);
  await shot('runs');
});

await step('a bad filter shows the parser error inline', async () => {
  await go(`#/experiments/${seed.experiment_id}`);
  const bad = 'metrics.loss >> 1';
  await page.getByLabel('Filter').fill(bad);
  await page.getByRole('button', { name: 'Search' }).click();
  const error = page.locator('#filter-error [role=alert]');
  await error.waitFor();
  const res = await fetch(`${base}/api/2.0/mlflow/runs/search`, { method: 'POST', body: JSON.stringify({ experiment_ids: [seed.experiment_id], filter: bad }) });
  assert.equal(res.status, 400);
  assert.equal(await error.innerText(), (await res.json()).message);
  assert.equal(await page.getByLabel('Filter').getAttribute('aria-invalid'), 'true');
  await shot('filter-error');
}, { expectFailed: ['400 /ajax-api/2.0/mlflow/runs/search'] });

await step('a filter narrows the runs', async () => {
  await go(`#/experiments/${seed.experiment_id}?filter=${encodeURIComponent("params.lr = '0.05'")}`);
  await page.locator('tr[data-run-name="wide"]').waitFor();
  assert.equal(await page.locator('tbody tr').count(), 1);
});

await step('compare two runs: differences, overlay, scatter', async () => {
  await go(`#/experiments/${seed.experiment_id}`);
  await page.getByLabel('Select wide').check();
  await page.getByLabel('Select deep').check();
  await page.getByRole('button', { name: 'Compare selected (2)' }).click();
  await page.locator('h1', { hasText: 'Compare 2 runs' }).waitFor();
  assert.equal(await page.locator('tr[data-key="params.lr"]').getAttribute('class'), 'diff');
  assert.equal(await page.locator('tr[data-key="params.optimizer"]').getAttribute('class'), 'same');
  await page.getByLabel('Metric', { exact: true }).selectOption('loss');
  await page.waitForFunction(() => document.getElementById('overlay-chart')?.dataset.points === '60,70');
  await page.getByLabel('X column').selectOption('params.lr');
  await page.getByLabel('Y column').selectOption('metrics.accuracy');
  await page.waitForFunction(() => document.getElementById('scatter-chart')?.dataset.points === '1,1');
  await shot('compare');
});

await step('run page: params, metrics, description, child run', async () => {
  await go(`#/runs/${runs.baseline.run_id}`);
  assert.equal(await page.locator('tr[data-param="lr"] td').innerText(), runs.baseline.lr);
  const loss = page.locator('tr[data-metric="loss"] td');
  assert.equal(await loss.nth(3).innerText(), String(runs.baseline.loss_points));
  assert.equal(await loss.nth(2).innerText(), '2.01', 'max of loss');
  await page.getByRole('link', { name: 'baseline-fold-1' }).waitFor();
  await page.getByRole('button', { name: 'Edit description' }).click();
  await page.getByLabel('Description').fill('Tuned by the browser suite.');
  await page.getByRole('button', { name: 'Save description' }).click();
  await page.getByText('Saved').waitFor();
  const run = await rest(`/api/2.0/mlflow/runs/get?run_id=${runs.baseline.run_id}`);
  assert.equal(run.run.data.tags.find((t) => t.key === 'mlflow.note.content').value, 'Tuned by the browser suite.');
});

await step('run page: zoom, log scale and time axis of a metric chart', async () => {
  await go(`#/runs/${runs.baseline.run_id}`);
  const loss = '#run-charts .chart[data-metric="loss"]';
  const u = (fn) => page.locator(loss).evaluate((el, f) => new Function('u', `return (${f})(u)`)(el.uplot), String(fn));
  await page.waitForFunction((sel) => document.querySelector(sel)?.uplot, loss);
  assert.equal(await page.locator(loss).getAttribute('data-points'), '50');
  // Drag across the middle of the plot to zoom in on x; a double-click resets.
  const over = page.locator(`${loss} .u-over`);
  await over.scrollIntoViewIfNeeded();
  const box = await over.boundingBox();
  await page.mouse.move(box.x + box.width * 0.3, box.y + box.height / 2);
  await page.mouse.down();
  await page.mouse.move(box.x + box.width * 0.6, box.y + box.height / 2, { steps: 8 });
  await page.mouse.up();
  const zoomed = await u((p) => p.scales.x);
  assert.ok(zoomed.min > 10 && zoomed.max < 35, `zoomed to ${zoomed.min}..${zoomed.max}`);
  await over.dblclick();
  const reset = await u((p) => p.scales.x);
  assert.deepEqual([reset.min, reset.max], [0, 49]);
  await page.getByLabel('Log scale').check();
  assert.equal(await u((p) => p.scales.y.distr), 3);
  await page.getByLabel('X axis').selectOption('relative');
  const xs = await u((p) => p.data[0]);
  assert.equal(xs.length, 50);
  assert.equal(xs[49] - xs[0], 49, 'points a second apart span 49 s');
  assert.equal(await page.locator(`${loss} canvas`).count(), 1);
  await shot('run');
});

await step('run page: artifact tree and previews (CSV, JSON, YAML, PNG, MLmodel)', async () => {
  await go(`#/runs/${runs.baseline.run_id}`);
  const preview = page.locator('#artifact-preview');
  await page.getByRole('button', { name: 'data/' }).click();
  await page.locator('[data-artifact="data/history.csv"]').click();
  await preview.locator('table').waitFor();
  assert.deepEqual(await preview.locator('thead th').allInnerTexts(), ['epoch', 'loss', 'accuracy']);
  assert.equal(await preview.locator('tbody tr').count(), 3);
  await page.getByRole('button', { name: 'config/' }).click();
  await page.locator('[data-artifact="config/params.json"]').click();
  await preview.locator('pre', { hasText: '"layers"' }).waitFor();
  await page.locator('[data-artifact="config/params.yaml"]').click();
  await preview.locator('pre', { hasText: 'optimizer: adam' }).waitFor();
  await page.getByRole('button', { name: 'plots/' }).click();
  await page.locator('[data-artifact="plots/gradient.png"]').click();
  await page.waitForFunction(() => document.querySelector('#artifact-preview img')?.naturalWidth === 64);
  await page.getByRole('button', { name: 'exported-model/' }).click();
  await page.locator('[data-artifact="exported-model/MLmodel"]').click();
  await preview.locator('pre', { hasText: 'flavors:' }).waitFor();
  await page.locator('[data-artifact="plots/gradient.png"]').click();
  await page.waitForFunction(() => document.querySelector('#artifact-preview img')?.naturalWidth === 64);
  // The model log_model stored as a logged model: its own file tree under "Logged models".
  await page.locator('h2', { hasText: 'Logged models (1)' }).waitFor();
  const modelPreview = page.locator('[id^="model-preview-"]');
  await page.locator('nav[aria-label^="Files of model-preview-"] [data-artifact="MLmodel"]').click();
  await modelPreview.locator('pre', { hasText: 'sklearn' }).waitFor();
  await shot('artifacts');
});

await step('the mlflow client\'s run address opens the run', async () => {
  await go(`#/experiments/${seed.experiment_id}/runs/${runs.wide.run_id}`);
  await page.locator('h1', { hasText: 'wide' }).waitFor();
});

await step('registry: models, versions, aliases, stages', async () => {
  await go('#/models');
  const row = page.locator(`tr[data-model="${model.name}"]`);
  await row.waitFor();
  assert.match(await row.innerText(), /@champion → v1/);
  await row.getByRole('link').click();
  await page.locator('h1', { hasText: model.name }).waitFor();
  assert.equal(await page.locator('tr[data-version="1"] td').nth(1).innerText(), 'Staging');
  assert.equal(await page.locator('tr[data-version="2"] td').nth(4).innerText(), runs.wide.run_id.slice(0, 12));
});

await step('move an alias from the page; the REST API sees it', async () => {
  await go(`#/models/${model.name}`);
  await page.getByLabel('Set alias').fill('champion');
  await page.getByLabel('to', { exact: true }).selectOption('2');
  await page.getByRole('button', { name: 'Set alias' }).click();
  await page.locator('li[data-alias="champion"]', { hasText: 'version 2' }).waitFor();
  const r = await rest(`/api/2.0/mlflow/registered-models/alias?name=${model.name}&alias=champion`);
  assert.equal(r.model_version.version, '2');
  await shot('model');
});

await step('version page: source run, signature, history', async () => {
  await go(`#/models/${model.name}/versions/2`);
  assert.equal(await page.locator('#source-run').innerText(), runs.wide.run_id);
  const inputs = page.locator('#signature table').first();
  await inputs.waitFor();
  assert.match(await inputs.innerText(), /tensor float64\s+\[-1,2\]/);
  assert.match(await page.locator('#version-aliases').innerText(), /@champion/);
  await page.locator('tr[data-event]').first().waitFor();
  const history = await page.locator('tbody').last().innerText();
  assert.match(history, /champion/);
  await page.locator('#source-run').click();
  await page.locator('h1', { hasText: 'wide' }).waitFor();
  await go(`#/models/${model.name}/versions/1`);
  assert.equal(await page.locator('#version-stage').innerText(), 'Staging');
  await shot('version');
});

await step('plugins: name, version, sha256, flavors', async () => {
  const { plugins } = await rest('/api/2.0/wasmflow/plugins');
  await go('#/plugins');
  assert.ok(plugins.length > 0);
  for (const p of plugins) {
    const row = page.locator(`tr[data-plugin="${p.name}"]`);
    const text = await row.innerText();
    assert.ok(text.includes(p.version) && text.includes(p.sha256.slice(0, 16)), text);
    for (const f of p.loads) assert.ok(text.includes(f), `${p.name} loads ${f}`);
  }
  await shot('plugins');
});

await step('serving: metrics table or a clear "no metrics" state', async () => {
  const res = await fetch(`${base}/metrics`);
  metricsStatus = res.status;
  const text = res.ok ? await res.text() : '';
  await go('#/serving');
  if (res.ok) {
    // /metrics answered, so the served model's row is required: seed.py sent this version its
    // requests through /serving/models/…/invocations. Only a 404 may show "no serving metrics".
    assert.ok(/^wasmflow_serving_requests_total\{/m.test(text), 'GET /metrics has no wasmflow_serving_requests_total');
    const { model: name, version, requests } = seed.served;
    const row = page.locator(`tr[data-served="${name}/${version}"]`);
    await row.waitFor();
    assert.equal(await row.locator('td').nth(2).innerText(), String(requests));
  } else {
    assert.equal(res.status, 404, `GET /metrics: ${res.status}`);
    await page.locator('#no-serving').waitFor();
  }
  await shot('serving');
}, { expectFailed: () => (metricsStatus === 404 ? ['404 /metrics'] : []) });

await step('serving: the page reads the serving metrics in Prometheus text', async () => {
  // The metric names /metrics exports; routed here so the page is checked whatever this build
  // has served. The numbers below follow from this text.
  const sample = [
    '# TYPE wasmflow_serving_requests_total counter',
    'wasmflow_serving_requests_total{model="ui-classifier",version="2"} 40',
    'wasmflow_serving_errors_total{model="ui-classifier",version="2"} 2',
    'wasmflow_serving_request_duration_seconds_bucket{model="ui-classifier",version="2",le="0.005"} 10',
    'wasmflow_serving_request_duration_seconds_bucket{model="ui-classifier",version="2",le="0.01"} 30',
    'wasmflow_serving_request_duration_seconds_bucket{model="ui-classifier",version="2",le="0.05"} 40',
    'wasmflow_serving_request_duration_seconds_bucket{model="ui-classifier",version="2",le="+Inf"} 40',
    'wasmflow_serving_request_duration_seconds_sum{model="ui-classifier",version="2"} 0.4',
    'wasmflow_serving_request_duration_seconds_count{model="ui-classifier",version="2"} 40',
    'wasmflow_serving_pool_instances{model="ui-classifier",version="2"} 2',
    'wasmflow_serving_memory_bytes{model="ui-classifier",version="2"} 3145728',
    '',
  ].join('\n');
  await page.route('**/metrics', (route) => route.fulfill({ status: 200, contentType: 'text/plain; version=0.0.4', body: sample }));
  try {
    await go('#/serving');
    const cells = await page.locator('tr[data-served="ui-classifier/2"] td').allInnerTexts();
    assert.deepEqual(cells, ['ui-classifier', '2', '40', '…', '2', '…', '10 ms', '10 ms', '50 ms', '2', '3 MiB']);
  } finally {
    await page.unroute('**/metrics');
  }
});

await step('runs of several experiments in one table', async () => {
  await go('#/');
  await page.getByLabel('Select ui-demo').check();
  await page.getByLabel('Select ui-big').check();
  await page.getByRole('button', { name: 'Runs of selected experiments' }).click();
  await page.locator('h1', { hasText: 'ui-demo + ui-big' }).waitFor();
  // Newest first: the demo's runs, then the big experiment's newest.
  await page.locator('tr[data-run-name="deep"]').waitFor();
  await page.locator('tr[data-run-name="big-09999"]').waitFor();
  assert.equal(await page.locator('[data-testid=page-info]').innerText(), 'Page 1 · runs 1–50');
  assert.ok((await page.locator('thead th').allInnerTexts()).includes('Experiment'));
  assert.equal(await page.locator('tr[data-run-name="deep"] td').nth(2).innerText(), 'ui-demo');
});

await step(`10,000-run experiment: first page within ${BIG_PAGE_BUDGET_MS} ms, sort and page`, async () => {
  // A cold load: without leaving first, the previous page's 50-row table would still be on screen
  // when the fragment changes, and the wait below could pass before the big page rendered.
  await page.goto('about:blank');
  const started = Date.now();
  await page.goto(`${base}/#/experiments/${seed.big_experiment_id}`);
  await page.locator('h1').filter({ hasText: /^ui-big$/ }).waitFor();
  await page.locator('tbody tr').nth(49).waitFor();
  const elapsed = Date.now() - started;
  console.log(`     first page of ${seed.big_runs} runs on screen in ${elapsed} ms`);
  assert.ok(elapsed < BIG_PAGE_BUDGET_MS, `${elapsed} ms`);
  assert.equal(await page.locator('[data-testid=page-info]').innerText(), 'Page 1 · runs 1–50');
  await navigate(() => page.getByRole('button', { name: 'score' }).click());
  assert.equal(await page.locator('tbody tr').first().getAttribute('data-run-name'), 'big-02321');
  await page.getByRole('button', { name: 'Next →' }).click();
  await page.locator('[data-testid=page-info]', { hasText: 'runs 51–100' }).waitFor();
  await page.getByRole('button', { name: '← Previous' }).click();
  await page.locator('[data-testid=page-info]', { hasText: 'runs 1–50' }).waitFor();
  assert.equal(await page.locator('tbody tr').first().getAttribute('data-run-name'), 'big-02321');
  await shot('big-experiment');
});

await chartSteps({ page, step, go, navigate, rest, seed, shot });
// Editing, descriptions as markdown, datasets, links between runs and models, empty states.
await (await import('./editing.mjs')).editingChecks({ page, step, go, navigate, rest, shot, seed, base });
// Traces, spans, assessments and prompts.
await (await import('./genai.mjs')).genaiChecks({ page, step, go, navigate, rest, shot, seed, base });

await step('dark mode', async () => {
  await page.emulateMedia({ colorScheme: 'dark' });
  await go(`#/runs/${runs.baseline.run_id}`);
  await page.waitForFunction(() => document.querySelector('#run-charts .chart')?.uplot);
  const bg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  assert.equal(bg, 'rgb(20, 23, 27)');
  await shot('run-dark');
  await page.emulateMedia({ colorScheme: 'light' });
});

await context.close();
console.log(`${passed} passed, ${failed.length} failed${failed.length ? `: ${failed.join('; ')}` : ''}`);
process.exit(failed.length ? 1 : 0);
