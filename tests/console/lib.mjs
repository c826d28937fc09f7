// Helpers for the browser tests of the web console: start a Plexus server on
// a free port, drive Debian's headless Chromium through playwright-core, record
// the page's console errors, and save screenshots.
//
// Only node built-ins and playwright-core. Playwright's own browser download is
// not used: the browser is the system Chromium (/usr/bin/chromium, or
// $CHROMIUM_PATH).

import { createHash } from 'node:crypto';
import { spawn } from 'node:child_process';
import { mkdir, readdir, readFile, readlink } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

/** The repository root (two levels above this file). */
export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Chromium flags that work as root on a machine without outside network. */
export const CHROMIUM_ARGS = Object.freeze([
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
]);

const STARTUP_TIMEOUT_MS = 60_000;
const STOP_GRACE_MS = 10_000;
const LOG_KEEP_LINES = 5_000;

// ------------------------------------------------------------------ Plexus

/** Every server started and not yet exited: killed if the test process exits first. */
const live = new Set();
process.on('exit', () => {
  for (const proc of live) {
    try {
      proc.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
});

/**
 * Start `<bin> serve --http 127.0.0.1:0 --config <config> --data-dir <dataDir> ...args`
 * and wait until `GET /healthz` answers 200.
 *
 * The port is the one the server reports in its
 * "serving MCP over Streamable HTTP at /mcp addr=…" log line (text or JSON
 * log format); if that line is hidden (a log level above info), the listening
 * socket is found through /proc instead. Nothing is written to disk here: the
 * server's stdout and stderr are kept in memory (`log()`).
 *
 * @param {object} opts
 * @param {string} [opts.bin] the plexus executable (default $PLEXUS_BIN)
 * @param {string} [opts.config] configuration file (omitted from argv if not given)
 * @param {string} [opts.dataDir] data directory (omitted from argv if not given)
 * @param {string} [opts.http] the address to listen on (default 127.0.0.1:0, a free port)
 * @param {string[]} [opts.args] more arguments after the above
 * @param {Record<string, string>} [opts.env] extra environment (on top of process.env)
 * @param {number} [opts.timeoutMs] startup timeout (default 60 s)
 * @returns {Promise<{url: string, port: number, proc: import('node:child_process').ChildProcess,
 *   stop: () => Promise<{code: number|null, signal: string|null}>, log: () => string}>}
 */
export async function startPlexus({
  bin = process.env.PLEXUS_BIN,
  config,
  dataDir,
  http = '127.0.0.1:0',
  args = [],
  env = {},
  timeoutMs = STARTUP_TIMEOUT_MS,
} = {}) {
  if (!bin) throw new Error('startPlexus: no binary (pass {bin} or set PLEXUS_BIN, e.g. $PWD/target/debug/plexus)');
  const argv = ['serve', '--http', http];
  if (config) argv.push('--config', config);
  if (dataDir) argv.push('--data-dir', dataDir);
  argv.push(...args);

  const proc = spawn(bin, argv, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  live.add(proc);

  const lines = [];
  const partial = { stdout: '', stderr: '' };
  let reported = null; // "host:port" from the log line
  const onData = (stream) => (chunk) => {
    const text = partial[stream] + chunk.toString('utf8');
    const parts = text.split('\n');
    partial[stream] = parts.pop();
    for (const line of parts) addLine(line);
  };
  const addLine = (raw) => {
    const line = raw.replace(/\x1b\[[0-9;]*m/g, ''); // in case ANSI colours slip through
    lines.push(line);
    if (lines.length > LOG_KEEP_LINES) lines.splice(0, lines.length - LOG_KEEP_LINES);
    if (!reported && line.includes('serving MCP over Streamable HTTP')) {
      // text: `addr=127.0.0.1:40033`   JSON: `"addr":"127.0.0.1:40033"`
      const m = /\baddr"?[=:]"?((?:\[[0-9a-fA-F:]+\]|[0-9.]+)):(\d+)/.exec(line);
      if (m) reported = { host: m[1], port: Number(m[2]) };
    }
  };
  proc.stdout.on('data', onData('stdout'));
  proc.stderr.on('data', onData('stderr'));
  const log = () => [...lines, partial.stdout, partial.stderr].filter(Boolean).join('\n');
  const tail = (n = 60) => log().split('\n').slice(-n).join('\n');

  let exitInfo = null;
  let spawnError = null;
  const exited = new Promise((resolve) => {
    proc.once('exit', (code, signal) => {
      exitInfo = { code, signal };
      live.delete(proc);
      resolve(exitInfo);
    });
    proc.once('error', (err) => {
      // spawn failure (ENOENT, EACCES): no 'exit' follows
      spawnError = err;
      live.delete(proc);
      resolve({ code: null, signal: null });
    });
  });

  const stop = async () => {
    if (exitInfo || spawnError) return exitInfo ?? { code: null, signal: null };
    proc.kill('SIGTERM');
    const timer = setTimeout(() => proc.kill('SIGKILL'), STOP_GRACE_MS);
    try {
      return await exited;
    } finally {
      clearTimeout(timer);
    }
  };

  const deadline = Date.now() + timeoutMs;
  let port = null;
  let host = '127.0.0.1';
  for (;;) {
    if (spawnError) throw new Error(`plexus did not start (${bin}): ${spawnError.message}`);
    if (exitInfo) {
      throw new Error(
        `plexus exited during startup (code ${exitInfo.code}, signal ${exitInfo.signal}); log tail:\n${tail()}`,
      );
    }
    if (port === null && reported) ({ host, port } = reported);
    if (port === null && proc.pid) {
      const ports = await listeningPorts(proc.pid);
      for (const p of ports) {
        if (await healthOk(`http://127.0.0.1:${p}/healthz`)) {
          port = p;
          break;
        }
      }
    }
    if (port !== null && (await healthOk(`http://${host}:${port}/healthz`))) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(
        `plexus did not answer GET /healthz with 200 within ${timeoutMs} ms` +
          `${port === null ? ' (bound port not found)' : ` on port ${port}`}; log tail:\n${tail()}`,
      );
    }
    await sleep(50);
  }
  return { url: `http://${host}:${port}`, port, proc, stop, log };
}

async function healthOk(url) {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(1_000) });
    await res.arrayBuffer();
    return res.status === 200;
  } catch {
    return false;
  }
}

/** TCP ports a process listens on, from /proc (Linux); [] where /proc is unavailable. */
async function listeningPorts(pid) {
  try {
    const inodes = new Set();
    for (const fd of await readdir(`/proc/${pid}/fd`)) {
      const target = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => '');
      const m = /^socket:\[(\d+)\]$/.exec(target);
      if (m) inodes.add(m[1]);
    }
    const ports = new Set();
    for (const table of ['tcp', 'tcp6']) {
      const text = await readFile(`/proc/${pid}/net/${table}`, 'utf8').catch(() => '');
      for (const row of text.split('\n').slice(1)) {
        const f = row.trim().split(/\s+/);
        // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
        if (f.length > 9 && f[3] === '0A' && inodes.has(f[9])) {
          ports.add(parseInt(f[1].split(':').pop(), 16));
        }
      }
    }
    return [...ports];
  } catch {
    return [];
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ------------------------------------------------------------------ browser

/**
 * Launch headless Chromium (system binary; $CHROMIUM_PATH or /usr/bin/chromium)
 * with a fresh temporary profile. Close it with `browser.close()`.
 *
 * @param {object} [opts]
 * @param {string} [opts.executablePath]
 * @param {string[]} [opts.args] extra Chromium flags (after CHROMIUM_ARGS)
 * @returns {Promise<import('playwright-core').Browser>}
 */
export async function launchBrowser({ executablePath = process.env.CHROMIUM_PATH || '/usr/bin/chromium', args = [] } = {}) {
  return chromium.launch({
    executablePath,
    headless: true,
    args: [...CHROMIUM_ARGS, ...args],
    timeout: 60_000,
  });
}

const LOCALES = { en: 'en-US', ja: 'ja-JP' };

/**
 * A page in a new browser context with locale `en-US` (lang 'en', default) or
 * `ja-JP` (lang 'ja'); any other value is used as the locale itself. Every
 * console message of type error and every uncaught page error is recorded in
 * `page.consoleErrors` as `{kind: 'console'|'pageerror', text, location?}`.
 * Close with `page.context().close()` (or close the browser).
 *
 * @param {import('playwright-core').Browser} browser
 * @param {object} [opts]
 * @param {string} [opts.lang] 'en' | 'ja' | a locale such as 'en-GB'
 * @param {object} [opts.contextOptions] more `browser.newContext` options
 * @returns {Promise<import('playwright-core').Page & {consoleErrors: Array<{kind: string, text: string, location?: object}>}>}
 */
export async function newPage(browser, { lang = 'en', ...contextOptions } = {}) {
  const locale = LOCALES[lang] ?? lang;
  const context = await browser.newContext({ locale, ...contextOptions });
  const page = await context.newPage();
  const errors = [];
  page.consoleErrors = errors;
  page.on('console', (msg) => {
    if (msg.type() === 'error') errors.push({ kind: 'console', text: msg.text(), location: msg.location() });
  });
  page.on('pageerror', (err) => {
    errors.push({ kind: 'pageerror', text: String(err?.stack || err?.message || err) });
  });
  return page;
}

/**
 * Throw (an AssertionError-like Error) if the page recorded any console error
 * or page error. `ignore`: patterns (RegExp or substring) for known noise.
 */
export function assertNoConsoleErrors(page, { ignore = [] } = {}) {
  const matches = (text, p) => (p instanceof RegExp ? p.test(text) : text.includes(p));
  const errors = (page.consoleErrors ?? []).filter((e) => !ignore.some((p) => matches(e.text, p)));
  if (errors.length) {
    const list = errors
      .map((e) => {
        const where = e.location?.url ? ` (${e.location.url}:${e.location.lineNumber})` : '';
        return `  [${e.kind}] ${e.text}${where}`;
      })
      .join('\n');
    const err = new Error(`${errors.length} console error(s) on ${page.url()}:\n${list}`);
    err.name = 'AssertionError';
    throw err;
  }
}

// ------------------------------------------------------------------ artifacts

/** Where screenshots go: $CONSOLE_ARTIFACTS, else <repo>/target/console-screenshots. */
export function artifactsDir() {
  return process.env.CONSOLE_ARTIFACTS || path.join(repoRoot, 'target', 'console-screenshots');
}

/** Save a full-page PNG as `<artifactsDir>/<name>.png`; returns its path. */
export async function screenshot(page, name) {
  const dir = artifactsDir();
  await mkdir(dir, { recursive: true });
  const file = path.join(dir, `${String(name).replace(/[^\w.-]+/g, '_')}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

// ------------------------------------------------------------------ waits

/**
 * Wait until some element of `locator` contains `text` (a substring,
 * case-insensitive and whitespace-normalised as Playwright's `hasText`; or a
 * RegExp) and is visible. On timeout the error shows what the locator held.
 */
export async function expectText(locator, text, timeoutMs = 10_000) {
  try {
    await locator.filter({ hasText: text }).first().waitFor({ state: 'visible', timeout: timeoutMs });
  } catch (err) {
    const seen = await locator.allInnerTexts().catch(() => []);
    throw new Error(
      `expected ${locator} to contain ${text} within ${timeoutMs} ms; it held ${JSON.stringify(seen)}\n${err.message}`,
    );
  }
}

/**
 * `[[auth.api_keys]]` entries (only each key's SHA-256 is written).
 * @param {{name: string, key: string, tenant: string, roles: string[]}[]} keys
 */
export function apiKeysToml(keys) {
  return keys
    .map(({ name, key, tenant, roles }) => `[[auth.api_keys]]
name = "${name}"
sha256 = "${createHash('sha256').update(key).digest('hex')}"
tenant = "${tenant}"
roles = ${JSON.stringify(roles)}
`)
    .join('\n');
}

/** Sign in on the console's page with an API key; ends on the overview. */
export async function signIn(page, url, apiKey) {
  await page.goto(`${url}/console/login`);
  await page.fill('#key', apiKey);
  await Promise.all([page.waitForURL('**/console/overview'), page.click('form[action="/console/login"] button')]);
}
