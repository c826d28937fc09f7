// Hostile text from every place the console shows outside input (config
// documents written by other teams' systems, tool names and resource URIs
// made up by MCP clients) is shown as text; the config registry's pages
// follow changes live; a platform administrator searches every tenant's
// audit records while a tenant's auditor sees only its own.

import test from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { apiKeysToml, assertNoConsoleErrors, launchBrowser, newPage, screenshot, signIn, startPlexus } from './lib.mjs';

const key = (who) => 'pk_' + createHash('sha256').update(`hostile ${who}`).digest('hex').slice(0, 32);
const KEYS = { root: key('root'), nurse: key('nurse') };
// HTTP header values (Mcp-Name) are ASCII: the made-up names stay ASCII.
const HOSTILE_TOOL = `<img src=x onerror=alert('tool')>`;
const HOSTILE_URI = `x:"><script>alert('uri')</script>`;
const HOSTILE_TEXT = `</pre><script>alert('doc')</script><img src=x onerror=alert('doc2')>"'& 設定`;

/** One stateless (2026-07-28) JSON-RPC request with an API key. */
async function mcp(url, apiKey, method, params, name) {
  const r = await fetch(`${url}/mcp`, {
    method: 'POST',
    headers: {
      'Content-Type': 'application/json',
      Accept: 'application/json, text/event-stream',
      'MCP-Protocol-Version': '2026-07-28',
      'Mcp-Method': method,
      'Mcp-Name': name,
      'X-API-Key': apiKey,
    },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method,
      params: {
        ...params,
        _meta: { 'io.modelcontextprotocol/protocolVersion': '2026-07-28', 'io.modelcontextprotocol/clientCapabilities': {} },
      },
    }),
  });
  return { status: r.status, body: await r.json() };
}

const callTool = (url, apiKey, tool, args) => mcp(url, apiKey, 'tools/call', { name: tool, arguments: args }, tool);

test('hostile text stays text, the registry pages follow changes, audit search across tenants', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'plexus-console-hostile-'));
  const data = path.join(dir, 'data');
  const shared = path.join(data, 'shared', 'config');
  await mkdir(shared, { recursive: true });
  // A document another team's system wrote, hostile text in its values.
  await writeFile(path.join(shared, 'banner.json'), JSON.stringify({ message: HOSTILE_TEXT, level: 'warning' }, null, 2));
  const config = path.join(dir, 'plexus.toml');
  await writeFile(
    config,
    `
[modules]
enabled = ["system", "ops"]

${apiKeysToml([
    { name: 'root', key: KEYS.root, tenant: 'default', roles: ['admin'] },
    { name: 'nurse', key: KEYS.nurse, tenant: 'hospital-b', roles: ['auditor'] },
  ])}
[roles.auditor]
tools = ["echo", "query_audit_log"]
`,
  );
  const server = await startPlexus({ config, dataDir: data });
  const browser = await launchBrowser();
  const pages = [];
  const dialogs = [];
  const open = async () => {
    const p = await newPage(browser, { lang: 'en' });
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

  // MCP clients call made-up names; both tenants call echo.
  for (const apiKey of [KEYS.root, KEYS.nurse]) {
    const r = await callTool(url, apiKey, HOSTILE_TOOL, {});
    assert.match(JSON.stringify(r.body.error ?? r.body), /not found/, JSON.stringify(r.body));
    assert.equal((await callTool(url, apiKey, 'echo', { text: 'こんにちは' })).body.result.content[0].text, 'こんにちは');
  }
  const read = await mcp(url, KEYS.root, 'resources/read', { uri: HOSTILE_URI }, HOSTILE_URI);
  assert.ok(read.body.error, JSON.stringify(read.body));

  // The overview: made-up names are counted as refused calls, never shown as series of their own.
  const a = await open();
  await signIn(a, url, KEYS.root);
  const toolNames = await a.getByTestId('tool-table').locator('tbody tr td:first-child').allTextContents();
  assert.ok(toolNames.includes('(refused)'), JSON.stringify(toolNames));
  assert.ok(toolNames.includes('echo'), JSON.stringify(toolNames));
  assert.ok(!toolNames.some((n) => n.includes('onerror') || n.includes('script')), JSON.stringify(toolNames));

  // The audit page shows the hostile names as the clients sent them, as text.
  await a.goto(`${url}/console/audit?target=${encodeURIComponent(HOSTILE_TOOL)}`);
  const rows = a.getByTestId('audit-records').locator('tbody tr');
  assert.equal(await rows.count(), 2, 'one refused call per tenant');
  const targets = await rows.locator('td.mono:nth-of-type(6)').allTextContents();
  assert.deepEqual(targets, [HOSTILE_TOOL, HOSTILE_TOOL]);
  assert.equal(await a.inputValue('input[name="target"]'), HOSTILE_TOOL, 'the search field keeps the text');
  assert.deepEqual((await a.getByTestId('audit-tenant').allTextContents()).sort(), ['default', 'hospital-b']);
  await a.goto(`${url}/console/audit?target=${encodeURIComponent(HOSTILE_URI)}`);
  assert.deepEqual(await a.getByTestId('audit-records').locator('tbody tr td.mono:nth-of-type(6)').allTextContents(), [HOSTILE_URI]);
  assert.equal(await a.locator('main img, main script').count(), 0, 'no element came out of a name');
  await screenshot(a, '20-audit-hostile-names');

  // Across tenants, or one tenant by name.
  await a.goto(`${url}/console/audit`);
  await a.fill('input[name="tenant"]', 'hospital-b');
  await a.fill('input[name="target"]', 'echo');
  await Promise.all([a.waitForURL('**/console/audit?*'), a.click('[data-testid="audit-search"] button')]);
  assert.deepEqual(await a.getByTestId('audit-tenant').allTextContents(), ['hospital-b']);
  assert.match(await a.getByTestId('audit-records').textContent(), /nurse/);
  await screenshot(a, '21-audit-one-tenant');

  // A tenant's auditor: no tenant field, only its own tenant's records.
  const n = await open();
  await signIn(n, url, KEYS.nurse);
  await n.goto(`${url}/console/audit?target=echo&tenant=default`);
  assert.equal(await n.locator('input[name="tenant"]').count(), 0);
  assert.equal(await n.getByTestId('audit-tenant').count(), 0);
  const own = await n.getByTestId('audit-records').locator('tbody tr').allTextContents();
  assert.equal(own.length, 1, JSON.stringify(own));
  assert.match(own[0], /nurse/);
  assert.doesNotMatch(own[0], /root/);

  // The config registry: the hostile document is shown as text.
  const list = await open();
  await signIn(list, url, KEYS.root);
  await list.goto(`${url}/console/config`);
  const row = list.locator('tr[data-document="config/banner.json"]');
  assert.equal(await row.getByTestId('document-version').textContent(), '1');
  const view = await open();
  await signIn(view, url, KEYS.root);
  await view.goto(`${url}/console/config/view?name=${encodeURIComponent('config/banner.json')}`);
  assert.equal(JSON.parse(await view.getByTestId('content').textContent()).message, HOSTILE_TEXT);
  assert.equal(await view.getByTestId('live-version').textContent(), '1');
  for (const p of [list, view]) {
    await p.locator('#live').waitFor({ state: 'visible' });
    await p.evaluate(() => { window.__notReloaded = true; });
  }

  // A change through MCP: both pages follow without a reload, the diff shown as text.
  const changed = { message: `${HOSTILE_TEXT} (2)`, level: 'critical' };
  const update = await callTool(url, KEYS.root, 'update_shared_config', { name: 'config/banner.json', content: changed });
  assert.equal(update.body.result.isError, false, JSON.stringify(update.body));
  await view.waitForFunction(() => document.querySelector('[data-testid="live-version"]')?.textContent === '2', null, { timeout: 10000 });
  assert.deepEqual(JSON.parse(await view.getByTestId('content').textContent()), changed);
  const diff = await view.locator('[data-testid="version"][data-version="2"] pre.diff').textContent();
  assert.ok(diff.includes(`+  "level": "critical"`) && diff.includes(`-  "level": "warning"`), diff);
  assert.ok(diff.includes(`-  "message": ${JSON.stringify(HOSTILE_TEXT)}`), diff);
  await row.getByTestId('document-version').filter({ hasText: '2' }).waitFor({ timeout: 10000 });

  // A document another system drops into the directory appears on the open list.
  await writeFile(path.join(shared, 'maintenance.json'), JSON.stringify({ window: '02:00-04:00 JST', note: HOSTILE_TEXT }));
  await list.locator('tr[data-document="config/maintenance.json"]').waitFor({ timeout: 10000 });
  for (const p of [list, view]) assert.equal(await p.evaluate(() => window.__notReloaded), true, 'followed without a reload');
  assert.equal(await view.locator('main img, main script').count(), 0);
  await screenshot(view, '22-config-live-hostile');
  await screenshot(list, '23-config-list-live');

  for (const p of pages) assertNoConsoleErrors(p);
  assert.deepEqual(dialogs, [], 'no script ran from hostile text');
});
