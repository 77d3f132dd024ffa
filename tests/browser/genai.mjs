// The browser suite's GenAI checks (imported by run.mjs): an experiment's Traces tab (rows,
// status, tokens, the filter grammar and its errors), a trace's page (span tree, a span's inputs,
// outputs and events, keyboard use, assessments) and the Prompts page (versions, alias, text and
// chat templates), with the Models page keeping prompts out. seed_genai.py logged everything with
// the official mlflow client; counts are read back through the REST API where it can say them.
import assert from 'node:assert/strict';

export async function genaiChecks({ page, step, go, navigate, rest, shot, seed, base }) {
  const g = seed.genai;
  const rows = page.locator('tr[data-trace]');
  const searchTraces = (filter) => fetch(`${base}/api/3.0/mlflow/traces/search`, {
    method: 'POST',
    body: JSON.stringify({ locations: [{ type: 'MLFLOW_EXPERIMENT', mlflow_experiment: { experiment_id: g.experiment_id } }], filter, max_results: 500 }),
  });

  await step('traces: the Traces tab lists the seeded traces with status, latency and tokens', async () => {
    await go(`#/experiments/${g.experiment_id}`);
    await navigate(() => page.getByRole('link', { name: 'Traces', exact: true }).click());
    await rows.first().waitFor();
    assert.equal(await rows.count(), g.traces);
    const statuses = await page.locator('tr[data-trace] td[data-col=status]').allInnerTexts();
    assert.equal(statuses.filter((s) => s === 'OK').length, g.ok_traces);
    assert.equal(statuses.filter((s) => s === 'ERROR').length, g.error_traces);
    // Newest first: the failing trace was logged last and used no tokens.
    assert.equal(statuses[0], 'ERROR');
    const tokens = await page.locator('tr[data-trace] td[data-col=tokens]').allInnerTexts();
    assert.deepEqual(tokens, ['', ...Array(g.ok_traces).fill('20')]);
    const seeded = page.locator(`tr[data-trace="${g.trace.trace_id}"]`);
    assert.match(await seeded.innerText(), new RegExp(g.trace.question.replace('?', '\\?')));
    assert.match(await seeded.innerText(), /topic: docs/);
    assert.match(await seeded.innerText(), /relevance: 0\.75/, 'the feedback as a chip');
    assert.equal(await page.locator('nav.tabs a[aria-current=page]').innerText(), 'Traces');
    await shot('traces');
  });

  await step('traces: the order flips with the Request time header', async () => {
    await go(`#/experiments/${g.experiment_id}/traces`);
    await rows.first().waitFor();
    await navigate(() => page.getByRole('button', { name: 'Request time' }).click());
    assert.equal(await page.locator('th[aria-sort=ascending]').innerText(), 'Request time ▲');
    assert.equal(await rows.first().getAttribute('data-trace'), g.trace.trace_id, 'the oldest trace first');
  });

  await step('traces: pages of two, forward and back', async () => {
    await go(`#/experiments/${g.experiment_id}/traces?size=2`);
    const info = page.locator('[data-testid=trace-page-info]');
    assert.equal(await info.innerText(), 'Page 1 · traces 1–2');
    const first = await rows.evaluateAll((els) => els.map((e) => e.dataset.trace));
    await navigate(() => page.getByRole('button', { name: 'Next →' }).click());
    assert.equal(await info.innerText(), 'Page 2 · traces 3–4');
    const second = await rows.evaluateAll((els) => els.map((e) => e.dataset.trace));
    assert.equal(new Set([...first, ...second]).size, g.traces, 'four different traces over two pages');
    await navigate(() => page.getByRole('button', { name: '← Previous' }).click());
    assert.deepEqual(await rows.evaluateAll((els) => els.map((e) => e.dataset.trace)), first);
  });

  await step('traces: a filter in the search box narrows the rows', async () => {
    await go(`#/experiments/${g.experiment_id}/traces`);
    await rows.first().waitFor();
    for (const [filter, expected] of [["tags.topic = 'docs'", g.topic_docs], ["trace.status = 'ERROR'", g.error_traces], ["span.name = 'generate'", g.ok_traces]]) {
      await page.getByLabel('Filter traces').fill(filter);
      await navigate(() => page.getByRole('button', { name: 'Search', exact: true }).click());
      const api = await (await searchTraces(filter)).json();
      assert.equal(api.traces.length, expected, `the API's answer to ${filter}`);
      assert.equal(await rows.count(), expected, filter);
    }
    await page.getByLabel('Filter traces').fill("tags.topic = 'nothing'");
    await navigate(() => page.getByRole('button', { name: 'Search', exact: true }).click());
    assert.equal(await page.locator('#no-traces').innerText(), 'No traces match the filter.');
  });

  await step('traces: a bad filter shows the server\'s error as a sentence', async () => {
    await go(`#/experiments/${g.experiment_id}/traces`);
    const bad = 'trace.status === OK';
    await page.getByLabel('Filter traces').fill(bad);
    await page.getByRole('button', { name: 'Search', exact: true }).click();
    const error = page.locator('#trace-filter-error [role=alert]');
    await error.waitFor();
    const res = await searchTraces(bad);
    assert.equal(res.status, 400);
    assert.equal(await error.innerText(), (await res.json()).message);
    assert.equal(await page.getByLabel('Filter traces').getAttribute('aria-invalid'), 'true');
  }, { expectFailed: ['400 /ajax-api/3.0/mlflow/traces/search'] });

  await step('traces: an experiment without traces says so', async () => {
    await go(`#/experiments/${seed.editing.empty_experiment_id}/traces`);
    assert.match(await page.locator('#no-traces').innerText(), /^No traces yet — trace a function with @mlflow\.trace/);
  });

  await step('trace page: the span tree, timing bars, a span\'s inputs, outputs and events', async () => {
    const api = (await rest(`/api/3.0/mlflow/traces/get?trace_id=${g.trace.trace_id}`)).trace;
    assert.equal(api.spans.length, g.trace.spans);
    await go(`#/experiments/${g.experiment_id}/traces`);
    await navigate(() => page.locator(`tr[data-trace="${g.trace.trace_id}"] a`).first().click());
    const items = page.locator('#span-tree [role=treeitem]');
    assert.equal(await items.count(), g.trace.spans);
    assert.equal(await page.locator('#trace-span-count').innerText(), String(g.trace.spans));
    assert.deepEqual(await items.evaluateAll((els) => els.map((e) => `${e.getAttribute('aria-level')}:${e.dataset.span}`)), ['1:answer', '2:retrieve', '2:generate']);
    // The root's bar spans the whole trace; a child's starts later and is narrower.
    const bars = await page.locator('#span-tree .span-bar').evaluateAll((els) => els.map((e) => [parseFloat(e.style.left), parseFloat(e.style.width)]));
    assert.deepEqual(bars[0], [0, 100]);
    assert.ok(bars[2][0] > 0 && bars[2][1] < 100, `generate's bar ${bars[2]}`);
    // The root is selected first: its inputs are the question.
    assert.match(await page.locator('#span-inputs').innerText(), new RegExp(`"question": "${g.trace.question.replace('?', '\\?')}"`));
    await page.locator('[role=treeitem][data-span="generate"]').click();
    await page.locator('#span-detail h2', { hasText: 'generate' }).waitFor();
    const inputs = JSON.parse(await page.locator('#span-inputs').innerText());
    assert.equal(inputs.question, g.trace.question);
    assert.equal(inputs.docs.length, 1);
    assert.match(JSON.parse(await page.locator('#span-outputs').innerText()).reply, /an answer from 1 document/);
    assert.equal(await page.locator('#span-detail tr[data-attribute="model"] td').innerText(), 'tiny-llm');
    await page.locator('#span-events li[data-event="first_token"]').waitFor();
    assert.equal(await page.locator('#trace-tokens').innerText(), '20 (12 input · 8 output)');
    await shot('trace');
  });

  await step('trace page: keyboard moves through the span tree and collapses it', async () => {
    await go(`#/experiments/${g.experiment_id}/traces/${g.trace.trace_id}`);
    const items = page.locator('#span-tree [role=treeitem]');
    await items.first().focus();
    await page.keyboard.press('ArrowDown');
    assert.equal(await page.evaluate(() => document.activeElement?.dataset.span), 'retrieve');
    await page.locator('#span-detail h2', { hasText: 'retrieve' }).waitFor();
    assert.match(await page.locator('#span-outputs').innerText(), /notes about MLflow/);
    await page.keyboard.press('ArrowLeft');
    assert.equal(await page.evaluate(() => document.activeElement?.dataset.span), 'answer', 'Left goes to the parent');
    await page.keyboard.press('ArrowLeft');
    assert.equal(await items.count(), 1, 'Left on an open parent collapses it');
    assert.equal(await items.first().getAttribute('aria-expanded'), 'false');
    await page.keyboard.press('ArrowRight');
    assert.equal(await items.count(), g.trace.spans);
    await page.keyboard.press('End');
    assert.equal(await page.evaluate(() => document.activeElement?.getAttribute('aria-selected')), 'true');
    assert.equal(await page.evaluate(() => document.activeElement?.dataset.span), 'generate');
  });

  await step('trace page: the feedback logged with mlflow.log_feedback and the expectation', async () => {
    await go(`#/experiments/${g.experiment_id}/traces/${g.trace.trace_id}`);
    const fb = page.locator('#assessments tr[data-assessment="relevance"]');
    await fb.waitFor();
    const f = g.feedback;
    assert.equal(await fb.locator('td[data-col=value]').innerText(), f.value);
    assert.equal(await fb.locator('td[data-col=source]').innerText(), `HUMAN: ${f.source}`);
    assert.equal(await fb.locator('td[data-col=rationale]').innerText(), f.rationale);
    assert.equal(await fb.locator('td').first().innerText(), 'Feedback');
    const ex = page.locator('#assessments tr[data-assessment="expected_answer"]');
    assert.equal(await ex.locator('td').first().innerText(), 'Expectation');
    assert.equal(await ex.locator('td[data-col=value]').innerText(), 'An open source MLOps platform.');
    assert.equal(await page.locator('#trace-tags tr[data-tag="topic"] td').first().innerText(), 'docs');
    await page.locator('#trace-metadata tr[data-metadata="mlflow.trace.tokenUsage"]').waitFor();
  });

  await step('trace page: an error span shows its status message and exception event', async () => {
    const failing = (await (await searchTraces("trace.status = 'ERROR'")).json()).traces[0];
    await go(`#/experiments/${g.experiment_id}/traces/${failing.trace_id}`);
    await page.locator('#span-tree [role=treeitem][data-span="failing"] .status.ERROR').waitFor();
    assert.match(await page.locator('#span-detail').innerText(), /ValueError: no answer for 'Why\?'/);
    await page.locator('#span-events li[data-event="exception"]').waitFor();
    assert.match(await page.locator('#assessments').innerText(), /No assessments yet/);
  });

  await step('trace page: the address MLflow\'s UI uses (?selectedTraceId=) opens the trace', async () => {
    await go(`#/experiments/${g.experiment_id}/traces?selectedTraceId=${g.trace.trace_id}`);
    assert.equal(await page.locator('#span-tree [role=treeitem]').count(), g.trace.spans);
  });

  await step('trace page: an assessment added, changed and deleted through its form', async () => {
    const e = g.editing;
    const assessments = async () => (await rest(`/api/3.0/mlflow/traces/${e.run_trace}`)).trace.trace_info.assessments || [];
    await go(`#/experiments/${e.experiment_id}/traces/${e.run_trace}`);
    await page.locator('#no-assessments').waitFor();
    await page.locator('#new-assessment-name').fill('helpful');
    await page.locator('#new-assessment-value').fill('true');
    await page.locator('#new-assessment-rationale').fill('clear answer');
    await page.locator('#new-assessment button[type=submit]').click();
    const row = page.locator('#assessments tr[data-assessment="helpful"]');
    await row.waitFor();
    assert.equal(await row.locator('td[data-col=value]').innerText(), 'true');
    let saved = await assessments();
    assert.equal(saved.length, 1);
    assert.equal(saved[0].feedback.value, true, 'the value is sent as JSON, not as the text "true"');
    assert.equal(saved[0].rationale, 'clear answer');
    assert.equal(saved[0].source.source_type, 'HUMAN');
    // An expectation with a JSON value.
    await page.locator('#new-assessment-name').fill('expected_facts');
    await page.locator('#new-assessment-kind').selectOption('expectation');
    await page.locator('#new-assessment-value').fill('["spans", "traces"]');
    await page.locator('#new-assessment button[type=submit]').click();
    await page.locator('#assessments tr[data-assessment="expected_facts"]').waitFor();
    saved = await assessments();
    assert.deepEqual(saved.find((a) => a.assessment_name === 'expected_facts').expectation.value, ['spans', 'traces']);
    // Change the feedback's value and rationale.
    await row.locator('button[data-action=edit]').click();
    const id = saved.find((a) => a.assessment_name === 'helpful').assessment_id;
    await page.locator(`#edit-${id}-value`).fill('false');
    await page.locator(`#edit-${id}-rationale`).fill('on second reading');
    await page.locator(`#edit-${id} button[type=submit]`).click();
    await page.locator('#assessments tr[data-assessment="helpful"] td[data-col=rationale]', { hasText: 'on second reading' }).waitFor();
    const changed = (await assessments()).find((a) => a.assessment_id === id);
    assert.equal(changed.feedback.value, false);
    assert.equal(changed.rationale, 'on second reading');
    await shot('trace-assessments-edit');
    // Delete it (after the confirm).
    page.once('dialog', (d) => d.accept());
    await page.locator('#assessments tr[data-assessment="helpful"] button[data-action=delete]').click();
    await page.locator('#assessments tr[data-assessment="helpful"]').waitFor({ state: 'detached' });
    assert.deepEqual((await assessments()).map((a) => a.assessment_name), ['expected_facts']);
  });

  await step('run page: the traces of the run link to their trace page', async () => {
    const e = g.editing;
    await go(`#/runs/${e.run_id}`);
    const linked = page.locator('#run-traces tr[data-trace]');
    await linked.first().waitFor();
    assert.deepEqual(await linked.evaluateAll((els) => els.map((el) => el.dataset.trace)), [e.run_trace]);
    await navigate(() => linked.first().locator('a').click());
    assert.equal(await page.locator('#span-tree [role=treeitem]').count(), 3);
  });

  await step('traces: selected traces are deleted after a confirm', async () => {
    const e = g.editing;
    await go(`#/experiments/${e.experiment_id}/traces`);
    await rows.first().waitFor();
    assert.equal(await rows.count(), e.traces);
    assert.equal(await page.locator('#delete-traces').isDisabled(), true, 'nothing selected, nothing to delete');
    const victims = await rows.evaluateAll((els) => els.slice(0, 2).map((el) => el.dataset.trace));
    for (const id of victims) await page.locator(`input[data-select-trace="${id}"]`).check();
    assert.equal(await page.locator('#delete-traces').innerText(), 'Delete selected (2)');
    // Dismissing the confirm deletes nothing.
    page.once('dialog', (d) => d.dismiss());
    await page.locator('#delete-traces').click();
    assert.equal(await rows.count(), e.traces);
    page.once('dialog', (d) => d.accept());
    await page.locator('#delete-traces').click();
    await page.waitForFunction((n) => document.querySelectorAll('tr[data-trace]').length === n, e.traces - 2);
    const left = await (await fetch(`${base}/api/3.0/mlflow/traces/search`, {
      method: 'POST',
      body: JSON.stringify({ locations: [{ type: 'MLFLOW_EXPERIMENT', mlflow_experiment: { experiment_id: e.experiment_id } }], max_results: 500 }),
    })).json();
    assert.equal(left.traces.length, e.traces - 2);
    assert.ok(!left.traces.some((t) => victims.includes(t.trace_id)), 'the selected traces are gone');
  });

  await step('prompts: the list shows the prompt registered with mlflow.genai.register_prompt', async () => {
    const p = g.prompt;
    await go('#/');
    await navigate(() => page.getByRole('link', { name: 'Prompts', exact: true }).click());
    const row = page.locator(`tr[data-prompt="${p.name}"]`);
    await row.waitFor();
    assert.equal(await page.locator('tr[data-prompt]').count(), 1, 'registered models are not prompts');
    const text = await row.innerText();
    assert.match(text, new RegExp(`@${p.alias} → v${p.alias_version}`));
    assert.match(text, /Version 2/);
    assert.match(text, /team: support/);
    assert.equal(await page.locator('nav a[aria-current=page]').first().innerText(), 'Prompts');
    await shot('prompts');
  });

  await step('prompts: a prompt\'s versions, alias and templates (text and chat)', async () => {
    const p = g.prompt;
    await go(`#/prompts/${p.name}`);
    assert.deepEqual(await page.locator('tr[data-version]').evaluateAll((els) => els.map((e) => e.dataset.version)), [...p.versions].reverse());
    // The newest version shows first: the chat template as messages.
    assert.equal(await page.locator('#prompt-version').getAttribute('data-version'), '2');
    assert.deepEqual(await page.locator('#prompt-messages li').evaluateAll((els) => els.map((e) => e.dataset.role)), ['system', 'user']);
    assert.equal(await page.locator('#prompt-messages li[data-role=user] pre').innerText(), p.chat_user);
    await navigate(() => page.locator(`li[data-alias="${p.alias}"] a`).click());
    assert.equal(await page.locator('#prompt-version').getAttribute('data-version'), p.alias_version);
    assert.equal(await page.locator('#prompt-template').innerText(), p.template);
    assert.equal(await page.locator('#prompt-commit').innerText(), p.commit_message);
    assert.match(await page.locator('#prompt-variables').innerText(), /\{\{name\}\}\s*\{\{place\}\}/);
    assert.match(await page.locator('#prompt-version').innerText(), new RegExp(`prompts:/${p.name}@${p.alias}`));
    assert.doesNotMatch(await page.locator('main').innerText(), /\bnull\b|undefined/);
    await shot('prompt');
  });

  await step('models page keeps prompts out', async () => {
    const all = await rest('/api/2.0/mlflow/registered-models/search?max_results=1000');
    assert.ok(!all.registered_models.some((m) => m.name === g.prompt.name), 'the registry search leaves prompts out');
    await go('#/models');
    await page.locator(`tr[data-model="${seed.model.name}"]`).waitFor();
    assert.equal(await page.locator(`tr[data-model="${g.prompt.name}"]`).count(), 0);
    assert.equal(await page.locator('tr[data-model]').count(), all.registered_models.length);
  });

  await step('trace page in dark mode', async () => {
    await page.emulateMedia({ colorScheme: 'dark' });
    try {
      await go(`#/experiments/${g.experiment_id}/traces/${g.trace.trace_id}`);
      await page.locator('[role=treeitem][data-span="generate"]').click();
      const bar = await page.locator('#span-tree .span-bar').first().evaluate((e) => getComputedStyle(e).backgroundColor);
      assert.equal(bar, 'rgb(110, 168, 255)', 'the bars take the dark accent');
      await shot('trace-dark');
    } finally {
      await page.emulateMedia({ colorScheme: 'light' });
    }
  });
}
