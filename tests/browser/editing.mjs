// The browser suite's editing checks (imported by run.mjs): tags, names, descriptions as
// markdown, deleting and restoring, datasets, links between runs, logged models and model
// versions, and empty states. Every change made on a page is read back through the REST API.
import assert from 'node:assert/strict';

export async function editingChecks({ page, step, go, navigate, rest, shot, seed, base }) {
  const ed = seed.editing;
  const { runs, model } = seed;
  const API = '/api/2.0/mlflow';
  const runTags = async (runId) => Object.fromEntries((await rest(`${API}/runs/get?run_id=${runId}`)).run.data.tags.map((t) => [t.key, t.value]));
  const accept = () => page.once('dialog', (d) => d.accept());

  await step('editing: a run tag added, edited and deleted from the page; the REST API sees each', async () => {
    await go(`#/runs/${ed.data_run_id}`);
    await page.getByLabel('Add tag').fill('reviewed-by');
    await page.getByLabel('Tag value').fill('the browser suite');
    await page.getByRole('button', { name: 'Add tag', exact: true }).click();
    await page.locator('#run-tags tr[data-tag="reviewed-by"]').waitFor();
    assert.equal((await runTags(ed.data_run_id))['reviewed-by'], 'the browser suite');
    // Edit with the keyboard: the Edit button, type, Enter.
    await page.getByRole('button', { name: 'Edit tag reviewed-by' }).click();
    await page.getByLabel('Value of tag reviewed-by').fill('ana');
    await page.keyboard.press('Enter');
    await page.locator('#run-tags tr[data-tag="reviewed-by"] td', { hasText: /^ana$/ }).waitFor();
    assert.equal((await runTags(ed.data_run_id))['reviewed-by'], 'ana');
    assert.equal(await page.evaluate(() => document.activeElement?.getAttribute('aria-label')), 'Edit tag reviewed-by', 'focus returns to the Edit button');
    accept();
    await page.getByRole('button', { name: 'Delete tag reviewed-by' }).click();
    await page.locator('#run-tags tr[data-tag="reviewed-by"]').waitFor({ state: 'detached' });
    assert.equal((await runTags(ed.data_run_id))['reviewed-by'], undefined);
    // MLflow's own tags are shown but offer no Delete.
    assert.equal(await page.getByRole('button', { name: 'Delete tag mlflow.runName' }).count(), 0);
  });

  await step('editing: a run renamed from its page', async () => {
    await go(`#/runs/${ed.scratch_run_id}`);
    await page.getByRole('button', { name: 'Rename run' }).click();
    await page.getByLabel('New run name').fill('scratch-renamed');
    await page.keyboard.press('Enter');
    await page.locator('h1 [data-testid=name]', { hasText: 'scratch-renamed' }).waitFor();
    const { run } = await rest(`${API}/runs/get?run_id=${ed.scratch_run_id}`);
    assert.equal(run.info.run_name, 'scratch-renamed');
    assert.equal(run.data.tags.find((t) => t.key === 'mlflow.runName').value, 'scratch-renamed');
    await go(`#/experiments/${ed.notes_experiment_id}`);
    await page.locator('tr[data-run-name="scratch-renamed"]').waitFor();
  });

  await step('editing: a run deleted from its page, listed under deleted runs, restored from there', async () => {
    await go(`#/runs/${ed.scratch_run_id}`);
    accept();
    await page.getByRole('button', { name: 'Delete run' }).click();
    await page.locator('#run-deleted').waitFor();
    assert.equal((await rest(`${API}/runs/get?run_id=${ed.scratch_run_id}`)).run.info.lifecycle_stage, 'deleted');
    await go(`#/experiments/${ed.notes_experiment_id}`);
    await page.locator('tr[data-run-name="with-data"]').waitFor();
    assert.equal(await page.locator('tr[data-run-name="scratch-renamed"]').count(), 0, 'a deleted run leaves the table');
    await navigate(() => page.getByRole('link', { name: 'Deleted runs' }).click());
    await page.getByLabel('Select scratch-renamed').check();
    await navigate(() => page.getByRole('button', { name: 'Restore selected' }).click());
    assert.equal((await rest(`${API}/runs/get?run_id=${ed.scratch_run_id}`)).run.info.lifecycle_stage, 'active');
    await page.locator('#no-runs', { hasText: 'No deleted runs' }).waitFor();
    // And the run page's Restore button undoes its Delete.
    await go(`#/runs/${ed.scratch_run_id}`);
    accept();
    await page.getByRole('button', { name: 'Delete run' }).click();
    await page.getByRole('button', { name: 'Restore run' }).click();
    await page.getByRole('button', { name: 'Delete run' }).waitFor();
    assert.equal((await rest(`${API}/runs/get?run_id=${ed.scratch_run_id}`)).run.info.lifecycle_stage, 'active');
  });

  await step('editing: an experiment deleted and restored from the list', async () => {
    const { experiment_id: id } = await rest(`${API}/experiments/create`, { method: 'POST', body: JSON.stringify({ name: 'ui-trash' }) });
    await go('#/');
    accept();
    await page.getByRole('button', { name: 'Delete ui-trash' }).click();
    await page.locator('tr[data-experiment="ui-trash"]').waitFor({ state: 'detached' });
    await navigate(() => page.getByRole('link', { name: 'Deleted experiments' }).click());
    await page.getByRole('button', { name: 'Restore ui-trash' }).click();
    await page.locator('tr[data-experiment="ui-trash"]').waitFor({ state: 'detached' });
    assert.equal((await rest(`${API}/experiments/get?experiment_id=${id}`)).experiment.lifecycle_stage, 'active');
    await rest(`${API}/experiments/delete`, { method: 'POST', body: JSON.stringify({ experiment_id: id }) });
  });

  await step('markdown: descriptions rendered, hostile HTML and javascript: links inert', async () => {
    await go(`#/experiments/${ed.notes_experiment_id}`);
    const rendered = page.locator('[data-testid="experiment-description-rendered"]');
    await rendered.waitFor();
    assert.equal(await rendered.locator('strong').first().innerText(), 'churn');
    assert.equal(await rendered.locator('a[href="https://mlflow.org/docs/latest/"]').getAttribute('rel'), 'noopener noreferrer nofollow');
    assert.equal(await rendered.locator('table td').first().innerText(), 'train');
    // The raw HTML shows as text; nothing ran, nothing of it is in the DOM.
    assert.match(await rendered.innerText(), /<script>window.__xss = 'script'<\/script>/);
    assert.equal(await page.evaluate(() => window.__xss), undefined, 'no script, handler or javascript: link ran');
    assert.equal(await page.locator('main script, main img[onerror], main [onerror], main a[href^="javascript"]').count(), 0);
    assert.equal(await rendered.locator('a').count(), 1, 'the javascript: link is not a link');
    // The run's note too, and the experiments list shows the description's first paragraph.
    await go(`#/runs/${ed.data_run_id}`);
    const note = page.locator('[data-testid="run-note-rendered"]');
    await note.waitFor();
    assert.equal(await note.locator('strong').innerText(), 'churn');
    assert.equal(await note.locator('li').count(), 2);
    await go('#/');
    const about = page.locator('tr[data-experiment="ui-notes"] td[data-col=about]');
    assert.equal(await about.locator('strong').innerText(), 'churn');
    assert.match(await about.innerText(), /team: growth/);
    assert.match(await about.innerText(), /owner: ana/);
    assert.equal(await page.evaluate(() => window.__xss), undefined);
    await shot('experiments');
  });

  await step('editing: an experiment description and tag edited; the REST API sees them', async () => {
    await go(`#/experiments/${ed.empty_experiment_id}`);
    await page.getByRole('button', { name: 'Add description' }).click();
    await page.getByLabel('Description').fill('Nothing **yet**.');
    await page.getByRole('button', { name: 'Save description' }).click();
    await page.locator('[data-testid="experiment-description-rendered"] strong', { hasText: 'yet' }).waitFor();
    const exp = async () => Object.fromEntries(((await rest(`${API}/experiments/get?experiment_id=${ed.empty_experiment_id}`)).experiment.tags || []).map((t) => [t.key, t.value]));
    assert.equal((await exp())['mlflow.note.content'], 'Nothing **yet**.');
    await page.locator('#experiment-tags-box summary').click();
    await page.getByLabel('Add tag').fill('purpose');
    await page.getByLabel('Tag value').fill('demo');
    await page.getByRole('button', { name: 'Add tag', exact: true }).click();
    await page.locator('#experiment-tags tr[data-tag="purpose"]').waitFor();
    assert.equal((await exp()).purpose, 'demo');
    accept();
    await page.getByRole('button', { name: 'Delete tag purpose' }).click();
    await page.locator('#experiment-tags tr[data-tag="purpose"]').waitFor({ state: 'detached' });
    assert.equal((await exp()).purpose, undefined);
    await go(`#/experiments/${ed.notes_experiment_id}`);
    await page.locator('#experiment-tags-box summary').click();
    await page.locator('#experiment-tags tr[data-tag="team"]').waitFor();
    await shot('experiment-about');
  });

  await step('datasets: the run page lists its logged inputs with digest, source, profile, schema', async () => {
    const { run } = await rest(`${API}/runs/get?run_id=${ed.data_run_id}`);
    const logged = run.inputs.dataset_inputs[0].dataset;
    assert.equal(logged.digest, ed.dataset.digest);
    await go(`#/runs/${ed.data_run_id}`);
    const row = page.locator(`#datasets tr[data-dataset="${ed.dataset.name}"]`);
    await row.waitFor();
    const text = await row.innerText();
    for (const want of [ed.dataset.name, ed.dataset.context, ed.dataset.digest, ed.dataset.source]) assert.ok(text.includes(want), `${want} in ${text}`);
    assert.match(await row.locator('td[data-col=profile]').innerText(), /num rows 4/);
    await row.locator('summary').click();
    assert.deepEqual(await row.locator('details tbody td:first-child').allInnerTexts(), ed.dataset.columns);
    await shot('run-editing');
    // A run without inputs says so in a sentence.
    await go(`#/runs/${ed.scratch_run_id}`);
    assert.match(await page.locator('#datasets').innerText(), /No datasets logged for this run — log one with mlflow\.log_input/);
  });

  await step('links: run → model version → logged model → run', async () => {
    await go(`#/runs/${runs.baseline.run_id}`);
    const versionLink = page.locator(`#run-model-versions a[data-model-version="${model.name}/1"]`);
    await versionLink.waitFor();
    // The baseline run's logged model has its own page (MLflow's address for it).
    const loggedLink = page.locator('a[data-logged-model]');
    const modelId = await loggedLink.getAttribute('data-logged-model');
    assert.equal(await loggedLink.getAttribute('href'), `#/experiments/${seed.experiment_id}/models/${modelId}`);
    await versionLink.click();
    await page.locator('h1', { hasText: `${model.name} version 1` }).waitFor();
    const source = page.locator('#source-logged-model');
    await source.waitFor();
    await source.click();
    await page.locator('h1', { hasText: 'model' }).waitFor();
    assert.match(await page.locator('#logged-model-versions').innerText(), new RegExp(`${model.name} version 1`));
    await page.locator('[data-artifact="MLmodel"]').click();
    await page.locator('#logged-model-preview pre', { hasText: 'sklearn' }).waitFor();
    await shot('logged-model');
    await page.locator('#logged-model-run').click();
    await page.locator('h1 [data-testid=name]', { hasText: /^baseline$/ }).waitFor();
    // The address MLflow's UI and client print for a logged model opens it, not "Not found".
    await go(`#/experiments/${seed.experiment_id}/models/${modelId}`);
    await page.locator('#logged-model-run').waitFor();
  });

  await step('model version page: description (markdown) and tags edited; the REST API sees them', async () => {
    await go(`#/models/${model.name}/versions/2`);
    await page.getByRole('button', { name: 'Add description' }).click();
    await page.getByLabel('Description').fill('Retrained on **March** data.');
    await page.getByRole('button', { name: 'Save description' }).click();
    await page.locator('[data-testid="version-description-rendered"] strong', { hasText: 'March' }).waitFor();
    const mv = async () => (await rest(`${API}/model-versions/get?name=${model.name}&version=2`)).model_version;
    assert.equal((await mv()).description, 'Retrained on **March** data.');
    await page.getByLabel('Add tag').fill('validated');
    await page.getByLabel('Tag value').fill('yes');
    await page.getByRole('button', { name: 'Add tag', exact: true }).click();
    await page.locator('#version-tags tr[data-tag="validated"]').waitFor();
    assert.deepEqual((await mv()).tags, [{ key: 'validated', value: 'yes' }]);
    await shot('version-editing');
    accept();
    await page.getByRole('button', { name: 'Delete tag validated' }).click();
    await page.locator('#version-tags tr[data-tag="validated"]').waitFor({ state: 'detached' });
    assert.equal(((await mv()).tags || []).length, 0);
    // Read back after a reload: the page shows what the server keeps.
    await go(`#/models/${model.name}/versions/2`);
    assert.equal(await page.locator('[data-testid="version-description-rendered"] strong').innerText(), 'March');
  });

  await step('editing: an experiment deleted from its own page after a confirm, then restored there', async () => {
    const { experiment_id: id } = await rest(`${API}/experiments/create`, { method: 'POST', body: JSON.stringify({ name: 'ui-trash-page' }) });
    const stage = async () => (await rest(`${API}/experiments/get?experiment_id=${id}`)).experiment.lifecycle_stage;
    await go(`#/experiments/${id}`);
    // Dismissing the confirm deletes nothing.
    page.once('dialog', (d) => d.dismiss());
    await page.getByRole('button', { name: 'Delete experiment' }).click();
    assert.equal(await stage(), 'active');
    accept();
    await navigate(() => page.getByRole('button', { name: 'Delete experiment' }).click());
    await page.locator('#experiment-deleted').waitFor();
    assert.equal(await stage(), 'deleted');
    await navigate(() => page.getByRole('button', { name: 'Restore experiment' }).click());
    await page.getByRole('button', { name: 'Delete experiment' }).waitFor();
    assert.equal(await page.locator('#experiment-deleted').count(), 0);
    assert.equal(await stage(), 'active');
    await rest(`${API}/experiments/delete`, { method: 'POST', body: JSON.stringify({ experiment_id: id }) });
  });

  await step('registry: the models list shows each model\'s tags and leaves prompts out', async () => {
    const post = (path, body) => rest(`${API}/${path}`, { method: 'POST', body: JSON.stringify(body) });
    await post('registered-models/set-tag', { name: model.name, key: 'task', value: 'classification' });
    // A prompt is a registered model with MLflow's prompt tag; the registry's list is for models.
    await post('registered-models/create', { name: 'ui-hidden-prompt', tags: [{ key: 'mlflow.prompt.is_prompt', value: 'true' }] });
    try {
      await go('#/models');
      const tags = page.locator(`tr[data-model="${model.name}"] td[data-col=tags]`);
      assert.equal(await tags.innerText(), 'task: classification');
      assert.equal(await page.locator('tr[data-model="ui-hidden-prompt"]').count(), 0, 'no prompt in the models list');
      assert.ok(await page.locator('tr[data-model]').count() >= 2);
    } finally {
      await rest(`${API}/registered-models/delete`, { method: 'DELETE', body: JSON.stringify({ name: 'ui-hidden-prompt' }) });
      await rest(`${API}/registered-models/delete-tag?name=${model.name}&key=task`, { method: 'DELETE' });
    }
  });

  await step('empty states read as sentences; a missing description shows nothing', async () => {
    await rest(`${API}/experiments/set-experiment-tag`, { method: 'POST', body: JSON.stringify({ experiment_id: ed.empty_experiment_id, key: 'mlflow.note.content', value: '' }) });
    await go(`#/experiments/${ed.empty_experiment_id}`);
    const empty = page.locator('#no-runs');
    assert.equal(await empty.innerText(), 'No runs yet — log one with mlflow.set_experiment("ui-empty"); mlflow.start_run()');
    assert.equal(await page.locator('[data-testid=page-info]').count(), 0, 'no "runs 0–0" pager');
    assert.equal(await page.locator('#experiment-description .markdown').count(), 0, 'no description shown');
    assert.doesNotMatch(await page.locator('main').innerText(), /\bnull\b|undefined/);
    await shot('empty-runs');
    await go(`#/experiments/${ed.empty_experiment_id}?filter=${encodeURIComponent("params.x = 'y'")}`);
    assert.equal(await page.locator('#no-runs').innerText(), 'No runs match the filter.');
    await go(`#/models/${ed.no_versions_model}`);
    assert.match(await page.locator('#no-versions').innerText(), /^No versions yet — register one with mlflow\.register_model/);
    assert.equal(await page.locator('#alias-version').count(), 0, 'no empty version select');
    assert.doesNotMatch(await page.locator('main').innerText(), /\bnull\b|undefined/);
    await go('#/models?q=no-such-model');
    assert.equal(await page.locator('#no-models').innerText(), 'No registered model\'s name contains "no-such-model".');
    await go('#/?q=no-such-experiment');
    assert.equal(await page.locator('#no-experiments').innerText(), 'No experiment\'s name contains "no-such-experiment".');
  });

  await step('serving: the paths the page documents are the ones the server answers', async () => {
    const { model: name, version } = seed.served;
    await rest(`${API}/registered-models/alias`, { method: 'POST', body: JSON.stringify({ name, alias: 'champion', version }) });
    await go('#/serving');
    const help = await page.locator('#serving-help').innerText();
    assert.match(help, /\/serving\/models\/<name>\/<version \| @alias \| stage \| latest>\/invocations/);
    assert.match(help, /\/serving\/models\/<name>@<alias>\/invocations/);
    const inputs = [[0.0, 1.0], [1.0, 0.0]];
    for (const ref of [version, '@champion', 'champion', 'latest']) {
      const res = await fetch(`${base}/serving/models/${name}/${ref}/invocations`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ inputs }) });
      assert.equal(res.status, 200, `${ref}: ${await res.text()}`);
    }
    const res = await fetch(`${base}/serving/models/${name}@champion/invocations`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ inputs }) });
    assert.equal(res.status, 200, await res.text());
  });

  await step('editing controls in dark mode', async () => {
    await page.emulateMedia({ colorScheme: 'dark' });
    try {
      await go(`#/runs/${ed.data_run_id}`);
      await page.locator('#datasets tr').nth(1).waitFor();
      const fg = await page.evaluate(() => getComputedStyle(document.querySelector('#run-note .markdown')).color);
      assert.equal(fg, 'rgb(228, 232, 236)', 'the description uses the dark foreground');
      await shot('run-editing-dark');
    } finally {
      await page.emulateMedia({ colorScheme: 'light' });
    }
  });
}
