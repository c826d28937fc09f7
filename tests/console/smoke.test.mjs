// Self-test of the harness, without Plexus: a local node:http server, the
// system Chromium, the console-error recorder and screenshots.

import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import { after, before } from 'node:test';
import test from 'node:test';
import { assertNoConsoleErrors, expectText, launchBrowser, newPage, screenshot } from './lib.mjs';

const PAGES = {
  '/': `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Harness smoke</title>
<link rel="icon" href="data:,"></head>
<body><h1 id="greeting">Hello, console</h1><p id="lang"></p>
<script>document.getElementById('lang').textContent = navigator.language;</script></body></html>`,
  '/error': `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Noisy</title>
<link rel="icon" href="data:,"></head>
<body><p>noisy</p>
<script>console.error('boom from the page'); setTimeout(() => { throw new Error('uncaught boom'); });</script>
</body></html>`,
};

let server;
let base;
let browser;

before(async () => {
  server = http.createServer((req, res) => {
    const body = PAGES[new URL(req.url, 'http://x').pathname];
    if (body === undefined) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' }).end(body);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${server.address().port}`;
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await new Promise((resolve) => (server ? server.close(resolve) : resolve()));
});

test('a quiet page: title, text, locale, screenshot, no console errors', async () => {
  const page = await newPage(browser, { lang: 'ja' });
  try {
    await page.goto(`${base}/`);
    assert.equal(await page.title(), 'Harness smoke');
    await expectText(page.locator('#greeting'), 'Hello, console');
    await expectText(page.locator('#lang'), 'ja-JP');
    const file = await screenshot(page, 'harness-smoke');
    const png = await readFile(file);
    assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    assertNoConsoleErrors(page);
  } finally {
    await page.context().close();
  }
});

test('console.error and an uncaught error are recorded', async () => {
  const page = await newPage(browser);
  try {
    await page.goto(`${base}/error`);
    await page.waitForFunction(() => document.readyState === 'complete');
    // the uncaught error is thrown from a timer: wait until both are in
    await waitUntil(() => page.consoleErrors.length >= 2, 5_000);
    assert.ok(
      page.consoleErrors.some((e) => e.kind === 'console' && e.text === 'boom from the page'),
      JSON.stringify(page.consoleErrors),
    );
    assert.ok(
      page.consoleErrors.some((e) => e.kind === 'pageerror' && e.text.includes('uncaught boom')),
      JSON.stringify(page.consoleErrors),
    );
    assert.throws(() => assertNoConsoleErrors(page), /boom from the page/);
    assertNoConsoleErrors(page, { ignore: ['boom from the page', /uncaught boom/] });
  } finally {
    await page.context().close();
  }
});

async function waitUntil(cond, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
