// MLflow's own UI (the build shipped in the mlflow package) against wasmflow, in a real browser.
// mlflow_ui_proxy.py serves the UI's files and forwards its API calls to wasmflow; this loads each
// page a user opens and checks: no uncaught error in the page, no API call answered 4xx/5xx (each
// is logged with its body), and the seeded names on screen.
// Usage: node mlflow_ui.mjs <proxy-url> <seed.json> <screenshot-dir> <proxy-failures.log>
import { chromium } from 'playwright-core';
import { readFileSync, writeFileSync, mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import assert from 'node:assert/strict';

const [base, seedPath, shots] = process.argv.slice(2);
const seed = JSON.parse(readFileSync(seedPath, 'utf8'));
mkdirSync(shots, { recursive: true });

const context = await chromium.launchPersistentContext(mkdtempSync(join(tmpdir(), 'mlflow-ui-chromium-')), {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  viewport: { width: 1440, height: 900 },
  colorScheme: 'light',
});
const page = context.pages()[0] || await context.newPage();
page.setDefaultTimeout(Number(process.env.MLFLOW_UI_TIMEOUT_MS || 20000));
const pageErrors = [];
page.on('pageerror', (e) => pageErrors.push(String(e.stack || e).split('\n').slice(0, 3).join(' | ')));
// Failed API answers, as the proxy saw them (it also sees the UI's web workers' requests).
const failuresLog = process.argv[5];
let failuresRead = 0;
const newFailures = () => {
  let text = '';
  try { text = readFileSync(failuresLog, 'utf8'); } catch { return []; }
  const lines = text.slice(failuresRead).split('\n').filter(Boolean).map((l) => JSON.parse(l));
  failuresRead = text.length;
  return lines;
};
// MLflow's server answers these 4xx too: `users/current` exists only behind its basic auth (off
// here), and the UI reads the 404 as "no auth".
const ALSO_FAILED_IN_MLFLOW = ['404 GET /ajax-api/2.0/mlflow/users/current'];

// MLflow's UI routes with the hash; each page is its own load so one page's state cannot leak.
const go = async (hash) => { await page.goto(`${base}/#${hash}`); };
const shot = (name) => page.screenshot({ path: join(shots, `${name}.png`), fullPage: false });
const see = (text) => page.getByText(text, { exact: false }).first().waitFor();
// Requests answered after the content shows count too. Not 'networkidle': the metric charts
// poll (auto-refresh), so the network is never idle.
const settle = () => page.waitForTimeout(1500);

let passed = 0;
const failed = [];
async function step(name, fn) {
  const started = Date.now();
  pageErrors.splice(0);
  newFailures();
  let error = null;
  try {
    await fn();
    await settle();
  } catch (e) {
    error = e;
  }
  const failures = newFailures()
    .map((f) => `${f.status} ${f.method} ${f.path} ${f.body.slice(0, 300)}`)
    .filter((f) => !ALSO_FAILED_IN_MLFLOW.some((known) => f.startsWith(`${known} `) || f.startsWith(`${known}?`)));
  const problems = [...pageErrors.splice(0).map((e) => `page error: ${e}`), ...[...new Set(failures)].map((r) => `failed request: ${r}`)];
  if (process.env.MLFLOW_UI_TEXT_DIR) {
    // For comparing with MLflow's own server: what each page shows, as text.
    mkdirSync(process.env.MLFLOW_UI_TEXT_DIR, { recursive: true });
    writeFileSync(join(process.env.MLFLOW_UI_TEXT_DIR, `${name.replace(/\W+/g, '-')}.txt`), await page.locator('body').innerText().catch(() => ''));
  }
  await shot(error || problems.length ? `failed-${name.replace(/\W+/g, '-')}` : name.replace(/\W+/g, '-')).catch(() => {});
  if (!error && problems.length === 0) {
    passed++;
    console.log(`ok   ${name} (${Date.now() - started} ms)`);
    return;
  }
  failed.push(name);
  console.log(`FAIL ${name}`);
  if (error) console.log(`     ${String(error.message || error).split('\n').slice(0, 4).join('\n     ')}`);
  for (const p of problems) console.log(`     ${p}`);
}

const { experiment_id: exp, runs, model_ids: models } = seed;
const alpha = runs['alpha-run'];

await step('experiments list', async () => {
  await go('/experiments');
  await see(seed.experiment_name);
  // The assistant's welcome panel opens on a first visit and hides half of each page; close it
  // (the UI remembers that).
  const assistant = page.getByText('Welcome to MLflow Assistant');
  if (await assistant.isVisible()) {
    await page.getByRole('button', { name: /close/i }).last().click();
    await assistant.waitFor({ state: 'hidden' });
  }
});

await step('runs table of an experiment', async () => {
  await go(`/experiments/${exp}/runs`);
  await see('alpha-run');
  await see('beta-run');
  // The metrics and params the runs have are offered as columns.
  await page.getByRole('button', { name: 'Columns' }).click();
  await see('val_accuracy');
  await see('optimizer');
});

await step('a run dataset drawer', async () => {
  await go(`/experiments/${exp}/runs`);
  await page.getByText(seed.dataset).first().click();
  await page.getByRole('dialog').getByText('label').first().waitFor();
});

await step('runs of an experiment as charts', async () => {
  await go(`/experiments/${exp}/runs?compareRunsMode=CHART`);
  await see(seed.metric);
  await page.locator('.js-plotly-plot, svg.main-svg').first().waitFor();
});

await step('logged models of an experiment', async () => {
  await go(`/experiments/${exp}/models`);
  await page.getByRole('link', { name: 'model' }).first().waitFor();
  await see('alpha-run');
});

await step('run page: overview', async () => {
  await go(`/experiments/${exp}/runs/${alpha}`);
  await page.getByRole('heading', { name: 'alpha-run' }).first().waitFor();
  await see(seed.metric);
  await see('optimizer');
  await see(seed.dataset);
});

await step('run page: model metrics chart', async () => {
  await go(`/experiments/${exp}/runs/${alpha}/model-metrics`);
  await see(seed.metric);
  await page.locator('.js-plotly-plot, canvas, svg.main-svg').first().waitFor();
});

await step('run page: artifacts with a preview', async () => {
  await go(`/experiments/${exp}/runs/${alpha}/artifacts`);
  await see('data');
  await page.getByText('data', { exact: true }).first().click();
  await page.getByText('history.csv', { exact: true }).first().click();
  // The CSV is previewed as a table.
  await see('Previewing the first 2 rows');
  await page.getByRole('columnheader', { name: 'epoch' }).waitFor();
  await page.getByRole('cell', { name: '1.5' }).waitFor();
});

await step('compare runs', async () => {
  const ids = encodeURIComponent(JSON.stringify(Object.values(runs)));
  await go(`/compare-runs?runs=${ids}&experiments=${encodeURIComponent(JSON.stringify([exp]))}`);
  await see('alpha-run');
  await see('beta-run');
  await see(seed.metric);
});

await step('registered models list', async () => {
  await go('/models');
  await see(seed.model);
});

await step('registered model page', async () => {
  await go(`/models/${encodeURIComponent(seed.model)}`);
  await see(seed.model);
  await see(seed.alias);
  await see('Version 2');
});

await step('model version page', async () => {
  await go(`/models/${encodeURIComponent(seed.model)}/versions/1`);
  await see('Version 1');
  await see(seed.alias);
  await see('reviewed');
});

await step('compare model versions', async () => {
  const versions = encodeURIComponent(JSON.stringify({ 1: runs['alpha-run'], 2: runs['beta-run'] }));
  await go(`/compare-model-versions?name=${encodeURIComponent(JSON.stringify(seed.model))}&runs=${versions}`);
  await see('Comparing 2 Versions');
  await see('beta-run');
  await see('val_accuracy');
});

await step('logged model page', async () => {
  await go(`/experiments/${exp}/models/${models['alpha-run']}`);
  await page.getByRole('heading', { name: 'model' }).first().waitFor();
  await see('alpha-run');
  await see(seed.model);
  // The run's metrics at the model's step, linked to it when it was logged.
  await see('Metrics (2)');
  await see(seed.metric);
});

await step('logged model artifacts', async () => {
  await go(`/experiments/${exp}/models/${models['alpha-run']}/artifacts`);
  await page.getByText('MLmodel', { exact: true }).first().click();
  await see('flavors');
});

await context.close();
console.log(`${passed} passed, ${failed.length} failed${failed.length ? `: ${failed.join('; ')}` : ''}`);
process.exit(failed.length ? 1 : 0);
