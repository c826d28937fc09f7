// The web console in real headless Chromium against the real binary: sign in,
// live figures, an incident opened on one page raising the red banner on
// another open page without a reload, CSRF and role refusals, hostile text
// shown as text, Japanese, and no browser console errors anywhere.

import test from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { apiKeysToml, startPlexus, launchBrowser, newPage, assertNoConsoleErrors, screenshot } from './lib.mjs';

const key = (who) => 'pk_' + createHash('sha256').update(`console ${who}`).digest('hex').slice(0, 32);
const KEYS = { alice: key('alice'), carol: key('carol') };
const HOSTILE = `<script>alert(1)</script><img src=x onerror=alert(2)>"'& 障害`;

async function config(dir) {
  const file = path.join(dir, 'plexus.toml');
  await writeFile(
    file,
    `
[modules]
enabled = ["system", "ops"]

${apiKeysToml([
    { name: 'alice', key: KEYS.alice, tenant: 'default', roles: ['admin'] },
    { name: 'carol', key: KEYS.carol, tenant: 'default', roles: ['viewer'] },
  ])}
[roles.viewer]
tools = ["list_incidents"]
`,
  );
  return file;
}

async function signIn(page, url, apiKey) {
  await page.goto(`${url}/console/overview`);
  assert.match(new URL(page.url()).pathname, /^\/console\/login$/, 'no session: the sign-in page');
  await page.fill('#key', apiKey);
  await Promise.all([page.waitForURL('**/console/overview'), page.click('form[action="/console/login"] button')]);
}

test('the console: sign in, live figures, incidents and the red banner across pages', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'plexus-console-'));
  // The teams' shared flags, as an operator would have written them.
  await mkdir(path.join(dir, 'data', 'shared', 'config'), { recursive: true });
  await writeFile(
    path.join(dir, 'data', 'shared', 'config', 'feature-flags.json'),
    JSON.stringify({
      ai_assistant: { enabled: true, rollout: 100, teams: ['medical'], description: 'AI 面談アシスタント' },
      new_dashboard: { enabled: false },
    }, null, 2),
  );
  const server = await startPlexus({ config: await config(dir), dataDir: path.join(dir, 'data') });
  const browser = await launchBrowser();
  const pages = [];
  const dialogs = [];
  const open = async (opts) => {
    const p = await newPage(browser, opts);
    p.on('dialog', (d) => {
      dialogs.push(d.message());
      d.dismiss().catch(() => {});
    });
    pages.push(p);
    return p;
  };
  t.after(async () => {
    await browser.close();
    await server.stop();
  });
  const url = server.url;

  // Sign-in: a wrong key is refused on the page, the right one opens the overview.
  const a = await open({ lang: 'en' });
  await a.goto(`${url}/console/login`);
  await a.fill('#key', 'pk_not_a_key');
  await a.click('form[action="/console/login"] button');
  await a.getByTestId('login-error').waitFor();
  assert.equal(await a.getByTestId('login-error').textContent(), 'This API key was not accepted.');
  await screenshot(a, '01-sign-in-refused');
  await signIn(a, url, KEYS.alice);
  assert.match(await a.getByTestId('who').textContent(), /alice @ default \(admin\)/);

  // Live figures: the overview's own calls show up, and the figures refresh in place.
  const calls = Number(await a.getByTestId('calls-hour').textContent());
  assert.ok(calls > 0, `calls in the last hour: ${calls}`);
  assert.match(await a.getByTestId('uptime').textContent(), /^\d+ (s|min)/);
  await a.getByTestId('latency-chart').first().waitFor();
  assert.ok((await a.getByTestId('tool-table').locator('tbody tr').count()) >= 2, 'a row per tool');
  await a.evaluate(() => { window.__notReloaded = true; });
  await a.waitForFunction((before) => Number(document.querySelector('[data-testid="calls-hour"]').textContent) > before, calls, { timeout: 15000 });
  assert.equal(await a.evaluate(() => window.__notReloaded), true, 'the figures changed without a reload');
  await screenshot(a, '02-overview');

  // Another browser, signed in on its own, live (its event stream connected), with no banner yet.
  const b = await open({ lang: 'en' });
  await signIn(b, url, KEYS.alice);
  await b.locator('#live').waitFor({ state: 'visible' });
  assert.equal(await b.getByTestId('incident-banner').count(), 0);
  await b.evaluate(() => { window.__notReloaded = true; });

  // Open a SEV1 incident with a hostile title on page A.
  await a.goto(`${url}/console/incidents`);
  await a.selectOption('#severity', 'sev1');
  await a.fill('#title', HOSTILE);
  await a.fill('#teams', 'sre, 医療');
  await a.fill('#note', 'checkout fails for 5% of users');
  await Promise.all([a.waitForURL('**/console/incidents'), a.click('[data-testid="new-incident"] button')]);
  const incident = a.getByTestId('incident').first();
  assert.equal(await incident.getAttribute('data-id'), 'INC-0001');
  assert.equal(await incident.locator('.incident-title').textContent(), HOSTILE, 'shown as text, not markup');
  assert.equal(await a.locator('main img').count(), 0, 'no element came out of the title');

  // Page B shows the red banner without reloading.
  const banner = b.getByTestId('incident-banner');
  await banner.waitFor({ timeout: 10000 });
  assert.match(await banner.textContent(), /SEV1 INC-0001/);
  assert.equal(await banner.locator('.incident-title').textContent(), HOSTILE);
  assert.equal(await b.evaluate(() => window.__notReloaded), true, 'the banner arrived without a reload');
  await screenshot(b, '03-banner-on-another-page');
  await screenshot(a, '04-incidents');

  // Forged posts: no CSRF token, a wrong one, another site's origin: refused, nothing changes.
  const csrf = await a.locator('input[name="csrf"]').first().getAttribute('value');
  const forged = [
    { form: { severity: 'sev2', title: 'forged', teams: 'x' } },
    { form: { csrf: 'f'.repeat(64), severity: 'sev2', title: 'forged', teams: 'x' } },
    { form: { csrf, severity: 'sev2', title: 'forged', teams: 'x' }, headers: { Origin: 'http://evil.example', 'Sec-Fetch-Site': 'cross-site' } },
  ];
  for (const f of forged) {
    const r = await a.request.post(`${url}/console/incidents`, { ...f, maxRedirects: 0 });
    assert.equal(r.status(), 403, JSON.stringify(f));
  }
  await a.reload();
  assert.equal(await a.getByTestId('incident').count(), 1, 'the forged posts created nothing');

  // A bad form is explained and keeps what was typed.
  await a.fill('#title', 'no team');
  await a.fill('#teams', ' , ');
  await a.click('[data-testid="new-incident"] button');
  await a.getByTestId('form-error').waitFor();
  assert.match(await a.getByTestId('form-error').textContent(), /needs at least one team/);
  assert.equal(await a.inputValue('#title'), 'no team');

  // Resolving it clears page B's banner, again without a reload.
  await a.goto(`${url}/console/incidents`);
  const row = a.locator('[data-testid="incident"][data-id="INC-0001"]');
  await row.locator('select[name="status"]').selectOption('resolved');
  await row.locator('input[name="note"]').fill('rolled back');
  await Promise.all([a.waitForURL('**/console/incidents'), row.locator('button').click()]);
  assert.equal(await row.getByTestId('incident-status').textContent(), 'resolved');
  await banner.waitFor({ state: 'detached', timeout: 10000 });
  assert.equal(await b.evaluate(() => window.__notReloaded), true);

  // A viewer sees incidents but gets no form, no server figures, and a forged create is refused.
  const c = await open({ lang: 'en' });
  await signIn(c, url, KEYS.carol);
  assert.equal(await c.getByTestId('figures').count(), 0, 'server figures are for operators');
  await c.goto(`${url}/console/incidents`);
  assert.equal(await c.getByTestId('new-incident').count(), 0);
  assert.equal(await c.getByTestId('incident').count(), 1);
  const viewerCsrf = await c.locator('input[name="csrf"]').first().getAttribute('value');
  const r = await c.request.post(`${url}/console/incidents`, { form: { csrf: viewerCsrf, severity: 'sev1', title: 'x', teams: 'y' }, maxRedirects: 0 });
  assert.equal(r.status(), 403);
  assert.match(await r.text(), /Your role does not include this/);
  await screenshot(c, '05-viewer-incidents');

  // Flags: toggling asks for confirmation; the change reaches another open page live.
  await b.goto(`${url}/console/flags`);
  await b.evaluate(() => { window.__notReloaded = true; });
  await a.goto(`${url}/console/flags`);
  const flagRow = (p, name) => p.locator(`tr[data-flag="${name}"]`);
  assert.equal(await flagRow(a, 'ai_assistant').getByTestId('flag-state').textContent(), 'on');
  await flagRow(a, 'ai_assistant').getByTestId('flag-toggle').click();
  await a.getByTestId('confirm').waitFor();
  assert.match(await a.getByTestId('confirm').textContent(), /ai_assistant: Turn this flag off for everyone\?/);
  await Promise.all([a.waitForURL('**/console/flags'), a.getByTestId('confirm-button').click()]);
  assert.equal(await flagRow(a, 'ai_assistant').getByTestId('flag-state').textContent(), 'off');
  await b.waitForFunction(() => document.querySelector('tr[data-flag="ai_assistant"] [data-testid="flag-state"]')?.textContent === 'off', null, { timeout: 10000 });
  assert.equal(await b.evaluate(() => window.__notReloaded), true, 'the flag change arrived without a reload');
  // The evaluation tester: off for everyone now.
  await a.selectOption('#t-flag', 'ai_assistant');
  await a.fill('#t-team', 'medical');
  await a.click('[data-testid="flag-tester"] button');
  await a.getByTestId('flag-result').waitFor();
  assert.equal(await a.getByTestId('flag-value').textContent(), 'false');
  assert.equal(await a.getByTestId('flag-reason').textContent(), 'DISABLED');
  // Rollout: a bad value is explained, a good one saved.
  await flagRow(a, 'new_dashboard').locator('input[name="rollout"]').evaluate((el) => { el.removeAttribute('max'); el.value = '250'; });
  await flagRow(a, 'new_dashboard').locator('form:has(input[name="rollout"]) button').click();
  await a.getByTestId('form-error').waitFor();
  assert.match(await a.getByTestId('form-error').textContent(), /0 to 100/);
  await flagRow(a, 'new_dashboard').locator('input[name="rollout"]').fill('25');
  await Promise.all([a.waitForURL('**/console/flags'), flagRow(a, 'new_dashboard').locator('form:has(input[name="rollout"]) button').click()]);
  assert.equal(await flagRow(a, 'new_dashboard').locator('input[name="rollout"]').inputValue(), '25');
  await screenshot(a, '07-flags');

  // Config registry: the flags document has three versions; roll back to the first.
  await a.goto(`${url}/console/config`);
  await a.getByRole('link', { name: 'config/feature-flags.json' }).click();
  await a.getByTestId('content').waitFor();
  assert.equal(await a.getByTestId('live-version').textContent(), '3');
  assert.match(await a.locator('[data-testid="version"][data-version="2"] pre.diff').textContent(), /"enabled": false/);
  await screenshot(a, '08-config-history');
  await Promise.all([a.waitForURL('**/console/config/view?name=config%2Ffeature-flags.json'), a.locator('[data-testid="version"][data-version="1"] [data-testid="rollback"]').click()]);
  assert.equal(await a.getByTestId('live-version').textContent(), '4');
  const restored = JSON.parse(await a.getByTestId('content').textContent());
  assert.deepEqual(restored.ai_assistant, { enabled: true, rollout: 100, teams: ['medical'], description: 'AI 面談アシスタント' });
  const onDisk = JSON.parse(await readFile(path.join(dir, 'data', 'shared', 'config', 'feature-flags.json'), 'utf8'));
  assert.equal(onDisk.ai_assistant.enabled, true, 'the rollback is live on disk too');
  await b.waitForFunction(() => document.querySelector('tr[data-flag="ai_assistant"] [data-testid="flag-state"]')?.textContent === 'on', null, { timeout: 10000 });

  // Audit: search by tool, then export the day's records as CSV.
  await a.goto(`${url}/console/audit?target=create_incident`);
  const auditRows = a.getByTestId('audit-records').locator('tbody tr');
  assert.ok((await auditRows.count()) >= 1);
  for (const text of await auditRows.allTextContents()) assert.match(text, /create_incident/);
  await screenshot(a, '09-audit');
  const [download] = await Promise.all([a.waitForEvent('download'), a.click('[data-testid="audit-export"] button')]);
  const exported = await readFile(await download.path(), 'utf8');
  assert.match(download.suggestedFilename(), /\.csv$/);
  assert.match(exported.split('\n')[0], /principal/);
  assert.ok(exported.includes('rollback_shared_config') && exported.includes('update_shared_config'), exported.slice(0, 1500));

  // The audit chain verifies intact, from the page.
  await a.goto(`${url}/console/audit`);
  await Promise.all([a.waitForURL('**/console/audit/verify'), a.click('[data-testid="audit-verify"] button')]);
  assert.match(await a.getByTestId('chain-result').textContent(), /^Intact/);
  assert.ok(Number(await a.getByTestId('chain-records').first().textContent()) > 20);

  // Tenants: the admin sees each tenant's tier, limits and use; a viewer is not permitted.
  await a.goto(`${url}/console/tenants`);
  const tenantRow = a.locator('tr[data-tenant="default"]');
  assert.ok(Number(await tenantRow.getByTestId('tenant-calls').textContent()) > 20);
  await screenshot(a, '10-tenants');
  await c.goto(`${url}/console/tenants`);
  assert.match(await c.getByTestId('form-error').textContent(), /Your role does not include this/);

  // Japanese.
  const j = await open({ lang: 'ja' });
  await j.goto(`${url}/console/login`);
  assert.equal(await j.locator('h1').textContent(), 'サインイン');
  await signIn(j, url, KEYS.alice);
  assert.equal(await j.locator('nav a[aria-current="page"]').textContent(), '概要');
  await screenshot(j, '06-overview-ja');

  // Signing out ends the session for every page of that browser.
  await c.click('nav form button');
  await c.waitForURL('**/console/login');
  await c.goto(`${url}/console/incidents`);
  assert.match(new URL(c.url()).pathname, /^\/console\/login$/);

  for (const p of pages) assertNoConsoleErrors(p);
  assert.deepEqual(dialogs, [], 'no script ran from hostile text');

  // Every change made in the console is in the audit log under the user who made it.
  await server.stop();
  const csv = execFileSync(process.env.PLEXUS_BIN, ['audit', 'export', '--data-dir', path.join(dir, 'data'), '--format', 'csv',
    '--from', '2000-01-01T00:00:00Z', '--to', '2100-01-01T00:00:00Z'], { encoding: 'utf8' });
  const lines = csv.split('\n');
  assert.ok(lines.some((l) => l.includes('alice') && l.includes('create_incident') && l.includes(',ok')), csv.slice(0, 2000));
  assert.ok(lines.some((l) => l.includes('alice') && l.includes('update_incident')), 'the resolution is audited');
  assert.ok(lines.some((l) => l.includes('carol') && l.includes('create_incident') && !l.includes(',ok')), 'the refusal is audited');

  // Alter one record on disk: the page reports the chain broken.
  const auditFile = path.join(dir, 'data', 'audit', 'audit.jsonl');
  const records = (await readFile(auditFile, 'utf8')).split('\n');
  const altered = JSON.parse(records[3]);
  assert.equal(altered.seq, 3);
  altered.principal = 'mallory';
  records[3] = JSON.stringify(altered);
  await writeFile(auditFile, records.join('\n'));
  const again = await startPlexus({ config: path.join(dir, 'plexus.toml'), dataDir: path.join(dir, 'data') });
  try {
    const v = await open({ lang: 'en' });
    await signIn(v, again.url, KEYS.alice);
    await v.goto(`${again.url}/console/audit`);
    await Promise.all([v.waitForURL('**/console/audit/verify'), v.click('[data-testid="audit-verify"] button')]);
    assert.match(await v.getByTestId('chain-result').textContent(), /^BROKEN/);
    assert.match(await v.locator('main table').textContent(), /record 3 \(position 3\) was altered/);
    await screenshot(v, '11-audit-broken');
    assertNoConsoleErrors(v);
  } finally {
    await again.stop();
  }
});
