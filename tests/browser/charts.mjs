// The browser suite's checks of the chart views (charts.js, compare-charts.js): the run page's
// chart grid, the chart view across runs (lines per run and per group, smoothing, x axis), the
// compare page's parallel coordinates, scatter and box plot, and the time the 100-run ×
// 10,000-point chart takes to draw (printed for the report, not asserted).
import assert from 'node:assert/strict';

export async function chartSteps({ page, step, go, navigate, rest, seed, shot }) {
  const { runs } = seed;
  // The uPlot instance of a metric's chart (null until drawn), read in the page.
  const chart = (key, fn) => page.evaluate(({ key, fn }) => {
    const u = document.querySelector(`.chart[data-metric="${key}"]`)?.uplot;
    return u ? new Function('u', `return (${fn})(u)`)(u) : null;
  }, { key, fn: String(fn) });
  const drawn = (key) => page.waitForFunction((k) => document.querySelector(`.chart[data-metric="${k}"]`)?.uplot, key);

  await step('run page: one chart per metric in a grid', async () => {
    await go(`#/runs/${runs.baseline.run_id}`);
    const run = (await rest(`/api/2.0/mlflow/runs/get?run_id=${runs.baseline.run_id}`)).run;
    const keys = run.data.metrics.map((m) => m.key).sort();
    await page.locator('#run-charts .chart[data-metric]').nth(keys.length - 1).waitFor();
    assert.deepEqual(await page.locator('#run-charts .chart[data-metric]').evaluateAll((els) => els.map((e) => e.dataset.metric)), keys);
    for (const k of keys) await drawn(k);
    assert.equal(await chart('loss', (u) => u.data[1].filter((v) => v !== null).length), runs.baseline.loss_points);
    assert.equal(await chart('accuracy', (u) => u.data[1].filter((v) => v !== null).length), 1);
    // The grid uses the screen: two charts side by side on a 1366 px window.
    const boxes = await page.locator('#run-charts figure').evaluateAll((els) => els.map((e) => e.getBoundingClientRect().top));
    assert.equal(boxes[0], boxes[1], 'the two charts share a row');
    await shot('run-charts');
  });

  let long;
  await step('chart view across runs: one line per selected run, grouped by a param', async () => {
    await go(`#/experiments/${seed.experiment_id}`);
    for (const name of ['baseline', 'wide', 'deep']) await page.getByLabel(`Select ${name}`, { exact: true }).check();
    await navigate(() => page.getByRole('button', { name: 'Chart selected (3)' }).click());
    await page.locator('h1', { hasText: 'Charts of 3 runs' }).waitFor();
    await page.waitForFunction(() => document.getElementById('experiment-charts')?.dataset.ready);
    assert.equal(await page.locator('.chart[data-metric="loss"]').getAttribute('data-lines'), '3');
    // One uPlot series per run besides x, each with the run's points.
    assert.deepEqual(await chart('loss', (u) => u.series.slice(1).map((s) => s.label)), ['baseline', 'wide', 'deep']);
    assert.deepEqual(await chart('loss', (u) => u.data.slice(1).map((ys) => ys.filter((v) => v !== null).length)),
      [runs.baseline.loss_points, runs.wide.loss_points, runs.deep.loss_points]);
    await page.getByLabel('Group by').selectOption('params.optimizer');
    assert.equal(await page.locator('.chart[data-metric="loss"]').getAttribute('data-lines'), '1');
    assert.deepEqual(await chart('loss', (u) => u.series.slice(1).map((s) => s.label)), ['optimizer=adam (3 runs, mean)']);
    // The group's line is the mean of its runs at each step: at step 0 every run logged it.
    const mean0 = await chart('loss', (u) => u.data[1][0]);
    const first = await Promise.all(['baseline', 'wide', 'deep'].map(async (n) => {
      const h = await rest(`/api/2.0/mlflow/metrics/get-history?run_id=${runs[n].run_id}&metric_key=loss`);
      return h.metrics.find((m) => m.step === 0 || m.step === '0').value;
    }));
    assert.ok(Math.abs(mean0 - first.reduce((a, b) => a + b) / 3) < 1e-9, `${mean0} is the mean of ${first}`);
    await page.getByLabel('Group by').selectOption('params.lr');
    assert.equal(await page.locator('.chart[data-metric="loss"]').getAttribute('data-lines'), '3');
    await page.getByLabel('Group by').selectOption('');
    await shot('experiment-charts');
  });

  await step('chart view: smoothing changes the drawn points', async () => {
    await drawn('loss');
    const raw = await chart('loss', (u) => u.data[1]);
    await page.getByLabel('Smoothing').fill('0.9');
    await page.waitForFunction(() => document.querySelector('.chart[data-metric="loss"]').dataset.smoothing === '0.9');
    const smoothed = await chart('loss', (u) => u.data[1]);
    assert.equal(smoothed.length, raw.length);
    // The debiased average starts at the first value, then lags behind a falling loss.
    assert.ok(Math.abs(smoothed[0] - raw[0]) < 1e-12, `${smoothed[0]} starts at ${raw[0]}`);
    const changed = raw.filter((v, i) => v !== null && Math.abs(v - smoothed[i]) > 1e-6).length;
    assert.ok(changed > raw.length / 2, `${changed} of ${raw.length} points moved`);
    assert.ok(smoothed[10] > raw[10], 'a smoothed falling curve lies above the raw one');
    await page.getByLabel('Smoothing').fill('0');
    await page.waitForFunction(() => document.querySelector('.chart[data-metric="loss"]').dataset.smoothing === '0');
    assert.deepEqual(await chart('loss', (u) => u.data[1]), raw);
  });

  await step('chart view: x axis as step, relative time, wall time', async () => {
    const steps = await chart('loss', (u) => [u.data[0][0], u.data[0][u.data[0].length - 1]]);
    assert.deepEqual(steps, [0, runs.deep.loss_points - 1]);
    await page.getByLabel('X axis').selectOption('relative');
    // seed.py logs a point a second: the deepest run's span is its step count less one, in s.
    const rel = await chart('loss', (u) => [u.data[0][0], u.data[0][u.data[0].length - 1], u.scales.x.time]);
    assert.equal(rel[0], 0);
    assert.ok(rel[1] >= runs.deep.loss_points - 1, `relative span ${rel[1]} s`);
    assert.equal(rel[2], false);
    await page.getByLabel('X axis').selectOption('wall');
    const wall = await chart('loss', (u) => [u.data[0][0], u.scales.x.time]);
    assert.ok(wall[0] > 1.7e9, `wall time ${wall[0]} is seconds since 1970`);
    assert.equal(wall[1], true);
    await page.getByLabel('X axis').selectOption('step');
  });

  await step('chart view: the charts follow the window\'s width', async () => {
    const widths = () => page.evaluate(() => [...document.querySelectorAll('#experiment-charts .chart')].map((el) => ({
      canvas: el.querySelector('canvas').getBoundingClientRect().width, card: el.parentElement.clientWidth, uplot: el.uplot.width,
    })));
    const before = await widths();
    const viewport = page.viewportSize();
    try {
      await page.setViewportSize({ width: 1000, height: viewport.height });
      await page.waitForFunction((w) => document.querySelector('#experiment-charts .chart').uplot.width < w - 100, before[0].uplot);
      const narrow = await widths();
      for (const [i, w] of narrow.entries()) {
        assert.ok(w.canvas < before[i].canvas - 100, `chart ${i}: canvas ${before[i].canvas} → ${w.canvas} px`);
        assert.equal(w.uplot, w.card - 16, 'the chart fills its card');
      }
    } finally {
      await page.setViewportSize(viewport);
    }
    await page.waitForFunction((w) => document.querySelector('#experiment-charts .chart').uplot.width === w, before[0].uplot);
    assert.deepEqual(await widths(), before);
  });

  await step('chart view: auto-refresh draws the points a running run logs, without a reload', async () => {
    const API = '/api/2.0/mlflow';
    const post = (path, body) => rest(`${API}/${path}`, { method: 'POST', body: JSON.stringify(body) });
    const { experiment_id: exp } = await post('experiments/create', { name: 'ui-live' });
    try {
      const { run } = await post('runs/create', { experiment_id: exp, run_name: 'live', start_time: Date.now() });
      const runId = run.info.run_id;
      const log = (key, steps) => post('runs/log-batch', { run_id: runId, metrics: steps.map((step) => ({ key, value: 1 / (step + 1), timestamp: Date.now(), step })) });
      await log('loss', [0, 1]);
      await go(`#/experiments/${exp}/charts?runs=${runId}`);
      await page.waitForFunction(() => document.getElementById('experiment-charts')?.dataset.ready);
      assert.equal(await page.getByLabel('Auto-refresh while runs are active, every').isChecked(), true, 'on for a running run');
      assert.deepEqual(await chart('loss', (u) => u.data[0]), [0, 1]);
      await page.evaluate(() => { window.notReloaded = true; });
      await page.getByLabel('Refresh interval').selectOption('2');
      await log('loss', [2, 3, 4]);
      await log('accuracy', [4]);
      await page.waitForFunction(() => document.querySelector('.chart[data-metric="loss"]')?.uplot?.data[0].length === 5, null, { timeout: 15_000 });
      assert.deepEqual(await chart('loss', (u) => u.data[1]), [1, 1 / 2, 1 / 3, 1 / 4, 1 / 5]);
      // A metric the run began to log gets its own chart.
      await drawn('accuracy');
      // Once the run ends, the last refresh draws it and auto-refresh stops.
      await post('runs/update', { run_id: runId, status: 'FINISHED', end_time: Date.now() });
      await page.waitForFunction(() => !document.getElementById('chart-refresh').checked, null, { timeout: 15_000 });
      assert.equal(await page.evaluate(() => window.notReloaded), true, 'the page was not reloaded');
    } finally {
      await post('experiments/delete', { experiment_id: exp });
    }
  });

  await step('compare: parallel coordinates with one polyline per run, brushing', async () => {
    const ids = ['baseline', 'wide', 'deep'].map((n) => runs[n].run_id);
    await go(`#/compare?runs=${ids.join(',')}`);
    const lines = page.locator('#parcoords path.pc-line');
    await lines.nth(2).waitFor();
    assert.equal(await lines.count(), 3);
    assert.deepEqual((await lines.evaluateAll((els) => els.map((e) => e.dataset.run))).sort(), [...ids].sort());
    // Typed range on lr (the keyboard's brush): 0.04..0.2 keeps baseline (0.1) and wide (0.05).
    await page.locator('#parcoords').locator('..').getByText('Axis ranges').click();
    await page.getByLabel('param lr from').fill('0.04');
    await page.getByLabel('param lr to').fill('0.2');
    await page.waitForFunction(() => document.getElementById('parcoords').dataset.shown === '2');
    assert.equal(await page.locator(`#parcoords path.pc-line.dim[data-run="${runs.deep.run_id}"]`).count(), 1);
    await page.getByRole('button', { name: 'Clear all ranges' }).click();
    await page.waitForFunction(() => document.getElementById('parcoords').dataset.shown === '3');
    // A drag along the lr axis's top half (the larger rates) brushes it with the mouse.
    const hit = page.locator('#parcoords g.axis[data-col="params.lr"] rect.axis-hit');
    await hit.scrollIntoViewIfNeeded();
    const box = await hit.boundingBox();
    await page.mouse.move(box.x + box.width / 2, box.y + 2);
    await page.mouse.down();
    await page.mouse.move(box.x + box.width / 2, box.y + box.height * 0.45, { steps: 6 });
    await page.mouse.up();
    await page.waitForFunction(() => document.getElementById('parcoords').dataset.shown === '1');
    assert.equal(await page.locator('#parcoords path.pc-line:not(.dim)').getAttribute('data-run'), runs.baseline.run_id);
    assert.equal(await page.getByLabel('param lr from').inputValue() !== '', true, 'the drag shows in the typed range');
    await shot('compare-charts');
  });

  await step('compare: scatter of any two columns and a box plot', async () => {
    await page.getByLabel('X column').selectOption('params.layers');
    await page.getByLabel('Y column').selectOption('metrics.accuracy');
    await page.waitForFunction(() => document.getElementById('scatter-chart')?.dataset.points === '1,1,1');
    const pts = await page.evaluate(() => {
      const u = document.getElementById('scatter-chart').uplot;
      return u.data[0].map((x, i) => [x, u.data.slice(1).map((ys) => ys[i]).find((v) => v !== null)]);
    });
    assert.deepEqual(pts, [[2, runs.baseline.accuracy], [4, runs.wide.accuracy], [8, runs.deep.accuracy]]);
    await page.getByLabel('Metric of the boxes').selectOption('metrics.accuracy');
    await page.getByLabel('Grouped by param').selectOption('params.optimizer');
    await page.waitForFunction(() => document.getElementById('box-plot')?.dataset.boxes === '1');
    assert.equal(await page.locator('#box-plot g.box-group').getAttribute('data-n'), '3');
    await page.getByLabel('Grouped by param').selectOption('params.lr');
    await page.waitForFunction(() => document.getElementById('box-plot')?.dataset.boxes === '3');
    assert.deepEqual(await page.locator('#box-plot g.box-group').evaluateAll((els) => els.map((e) => e.dataset.group)), ['0.01', '0.05', '0.1']);
    assert.equal(await page.locator('#box-plot rect.box').count(), 3);
  });

  await step(`chart view: ${seed.long.runs} runs × ${seed.long.points} points`, async () => {
    await go(`#/experiments/${seed.long.experiment_id}?size=100`);
    await page.locator('tbody tr').nth(seed.long.runs - 1).waitFor();
    await page.getByLabel('Select all runs on this page').check();
    await page.evaluate(() => document.querySelector('main > div')?.setAttribute('data-old', ''));
    const requests = [];
    const count = (r) => requests.push(new URL(r.url()).pathname);
    page.on('request', count);
    const started = Date.now();
    await page.getByRole('button', { name: `Chart selected (${seed.long.runs})` }).click();
    await page.waitForFunction(() => document.getElementById('experiment-charts')?.dataset.ready, null, { timeout: 60_000 });
    long = Date.now() - started;
    page.off('request', count);
    const inPage = await page.evaluate(() => Number(document.getElementById('experiment-charts').dataset.ms));
    const bulk = requests.filter((p) => p.endsWith('/get-history-bulk-interval')).length;
    console.log(`     ${seed.long.runs} runs × ${seed.long.points} points (seeded in ${seed.long.seed_seconds} s): chart on screen in ${long} ms after the click (fetch and draw ${inPage} ms; ${requests.length} requests, ${bulk} of them get-history-bulk-interval)`);
    assert.equal(await page.locator('.chart[data-metric="loss"]').getAttribute('data-lines'), String(seed.long.runs));
    // The server sampled each run to at most 320 points, keeping the first and last step.
    const perRun = await chart('loss', (u) => u.data.slice(1).map((ys) => ys.filter((v) => v !== null).length));
    assert.ok(perRun.every((n) => n > 1 && n <= 320), `points per run ${Math.min(...perRun)}..${Math.max(...perRun)}`);
    const xs = await chart('loss', (u) => [u.data[0][0], u.data[0][u.data[0].length - 1]]);
    assert.deepEqual(xs, [0, seed.long.points - 1]);
    await shot('experiment-charts-100');
  });
}
