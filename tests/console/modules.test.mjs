// The module pages on a `plexus serve --demo` server (every module with its
// seeded demo data), in real Chromium: knowledge sources with their sync,
// the FHIR store's counts without patient data, the trading desk's books and
// positions, a learning cohort's mastery.

import test from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { startPlexus, launchBrowser, newPage, assertNoConsoleErrors, screenshot } from './lib.mjs';

test('module pages on the demo', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'plexus-console-demo-'));
  const server = await startPlexus({ dataDir: path.join(dir, 'data'), args: ['--demo'], timeoutMs: 180_000 });
  const browser = await launchBrowser();
  t.after(async () => {
    await browser.close();
    await server.stop();
  });
  const key = /Admin API key \(shown once\):\s+(pk_[0-9a-zA-Z_]+)/.exec(server.log())?.[1];
  assert.ok(key, `the demo prints its key:\n${server.log().slice(-3000)}`);
  const url = server.url;
  const p = await newPage(browser, { lang: 'en' });
  await p.goto(`${url}/console/login`);
  await p.fill('#key', key);
  await Promise.all([p.waitForURL('**/console/overview'), p.click('form[action="/console/login"] button')]);

  // Every module has its page in the navigation.
  for (const m of ['Knowledge', 'Health', 'Trading', 'Learning']) {
    assert.equal(await p.locator('nav a', { hasText: m }).count(), 1, m);
  }

  // Knowledge: the demo's sources; a sync from the page records its outcome.
  await p.goto(`${url}/console/modules/knowledge`);
  const sources = p.getByTestId('sources').locator('tbody tr');
  assert.ok((await sources.count()) >= 1);
  await Promise.all([p.waitForURL('**/console/modules/knowledge'), p.click('[data-testid="sync"] button')]);
  assert.match(await p.getByTestId('sync-outcome').first().textContent(), /indexed \d+, unchanged \d+/);
  await screenshot(p, '30-knowledge');

  // Health: counts per resource type, no patient data on the page.
  await p.goto(`${url}/console/modules/health`);
  assert.ok(Number(await p.getByTestId('fhir-total').textContent()) > 100);
  assert.ok(Number(await p.locator('tr[data-kind="Patient"] td').nth(1).textContent()) > 0);
  const healthText = await p.locator('main').textContent();
  assert.doesNotMatch(healthText, /\d{4}-\d{2}-\d{2}/, 'no dates (birth dates) on the page');
  await screenshot(p, '31-health');

  // Trading: an order book per listed symbol, and the positions of the demo's portfolios.
  await p.goto(`${url}/console/modules/trading`);
  assert.equal(await p.getByTestId('book').count(), 4);
  assert.ok((await p.getByTestId('positions').count()) >= 1);
  await screenshot(p, '32-trading');

  // Learning: the demo cohort's mastery per skill.
  await p.goto(`${url}/console/modules/learning`);
  assert.ok(Number(await p.getByTestId('learners').textContent()) > 0);
  assert.ok((await p.getByTestId('mastery').locator('tbody tr').count()) > 0);
  await screenshot(p, '33-learning');

  assertNoConsoleErrors(p);
});
