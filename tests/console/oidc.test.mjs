// Console sign-in with OpenID Connect, against a local provider that behaves
// as the specifications say (discovery, authorization code with PKCE S256,
// RFC 8707 resource, RS256 access tokens with a JWKS), in real Chromium:
// a good sign-in, a refusal at the provider, a callback replayed or forged
// from another browser, and a token this server does not accept.

import test from 'node:test';
import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import { createServer } from 'node:http';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { startPlexus, launchBrowser, newPage, assertNoConsoleErrors, screenshot } from './lib.mjs';

const b64url = (buf) => Buffer.from(buf).toString('base64url');

/** A small OpenID provider. `mode`: 'ok', 'deny' (the user refuses) or 'wrong-audience'. */
async function provider() {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = { ...publicKey.export({ format: 'jwk' }), kid: 'k1', alg: 'RS256', use: 'sig' };
  const codes = new Map();
  const seen = { authorize: [], token: [] };
  const idp = { mode: 'ok', seen, issuer: '' };
  const jwt = (claims) => {
    const head = b64url(JSON.stringify({ alg: 'RS256', kid: 'k1', typ: 'JWT' }));
    const body = b64url(JSON.stringify(claims));
    return `${head}.${body}.${b64url(sign('RSA-SHA256', Buffer.from(`${head}.${body}`), privateKey))}`;
  };
  const server = createServer(async (req, res) => {
    const url = new URL(req.url, idp.issuer);
    const json = (status, v) => { res.writeHead(status, { 'content-type': 'application/json' }); res.end(JSON.stringify(v)); };
    if (url.pathname === '/.well-known/openid-configuration') {
      return json(200, { issuer: idp.issuer, authorization_endpoint: `${idp.issuer}/authorize`, token_endpoint: `${idp.issuer}/token`, jwks_uri: `${idp.issuer}/jwks` });
    }
    if (url.pathname === '/jwks') return json(200, { keys: [jwk] });
    if (url.pathname === '/authorize') {
      const q = Object.fromEntries(url.searchParams);
      seen.authorize.push(q);
      const back = new URL(q.redirect_uri);
      back.searchParams.set('state', q.state);
      if (idp.mode === 'deny') {
        back.searchParams.set('error', 'access_denied');
        back.searchParams.set('error_description', 'The user declined');
      } else {
        const code = b64url(randomBytes(16));
        codes.set(code, q);
        back.searchParams.set('code', code);
      }
      res.writeHead(302, { location: back.toString() });
      return res.end();
    }
    if (url.pathname === '/token' && req.method === 'POST') {
      let body = '';
      for await (const chunk of req) body += chunk;
      const f = Object.fromEntries(new URLSearchParams(body));
      seen.token.push({ ...f, authorization: req.headers.authorization });
      const granted = codes.get(f.code);
      codes.delete(f.code); // a code is redeemed once
      if (!granted) return json(400, { error: 'invalid_grant', error_description: 'unknown or used code' });
      if (b64url(createHash('sha256').update(f.code_verifier ?? '').digest()) !== granted.code_challenge) {
        return json(400, { error: 'invalid_grant', error_description: 'PKCE verification failed' });
      }
      if (f.redirect_uri !== granted.redirect_uri || f.client_id !== granted.client_id) {
        return json(400, { error: 'invalid_grant', error_description: 'redirect_uri or client_id mismatch' });
      }
      const now = Math.floor(Date.now() / 1000);
      const aud = idp.mode === 'wrong-audience' ? 'https://someone-else.example/mcp' : granted.resource;
      return json(200, {
        token_type: 'Bearer',
        expires_in: 300,
        access_token: jwt({ iss: idp.issuer, aud, sub: 'hanako', iat: now, exp: now + 300, tenant: 'default', roles: ['admin'], scope: 'openid mcp' }),
      });
    }
    res.writeHead(404);
    res.end();
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  idp.issuer = `http://127.0.0.1:${server.address().port}`;
  idp.close = () => new Promise((r) => server.close(r));
  return idp;
}

async function freePort() {
  const s = createServer();
  await new Promise((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address();
  await new Promise((r) => s.close(r));
  return port;
}

test('console sign-in with OpenID Connect: code flow with PKCE, refusals explained', async (t) => {
  const idp = await provider();
  const dir = await mkdtemp(path.join(tmpdir(), 'plexus-oidc-'));
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const config = path.join(dir, 'plexus.toml');
  await writeFile(config, `
[modules]
enabled = ["system", "ops"]

[auth.jwt]
issuer = "${idp.issuer}"
audience = "${base}/mcp"
jwks_url = "${idp.issuer}/jwks"

[console.oidc]
issuer = "${idp.issuer}"
client_id = "plexus-console"
client_secret_env = "TEST_OIDC_SECRET"
redirect_url = "${base}/console/oidc/callback"
scopes = ["openid", "mcp"]
label = "Example ID"
`);
  const server = await startPlexus({ config, dataDir: path.join(dir, 'data'), http: `127.0.0.1:${port}`, env: { TEST_OIDC_SECRET: 's3cret' } });
  const browser = await launchBrowser();
  t.after(async () => {
    await browser.close();
    await server.stop();
    await idp.close();
  });

  // A good sign-in: the provider is asked with PKCE and the resource, the code redeemed once.
  const p = await newPage(browser, { lang: 'en' });
  await p.goto(`${base}/console/incidents`);
  await p.getByTestId('oidc-sign-in').waitFor();
  assert.equal(await p.getByTestId('oidc-sign-in').textContent(), 'Sign in with Example ID');
  await Promise.all([p.waitForURL(`${base}/console/incidents`), p.getByTestId('oidc-sign-in').click()]);
  assert.match(await p.getByTestId('who').textContent(), /hanako @ default \(admin\)/);
  const asked = idp.seen.authorize.at(-1);
  assert.equal(asked.code_challenge_method, 'S256');
  assert.equal(asked.resource, `${base}/mcp`);
  assert.equal(asked.scope, 'openid mcp');
  assert.equal(asked.client_id, 'plexus-console');
  const redeemed = idp.seen.token.at(-1);
  assert.equal(redeemed.grant_type, 'authorization_code');
  assert.equal(redeemed.authorization, `Basic ${Buffer.from('plexus-console:s3cret').toString('base64')}`);
  await screenshot(p, '20-oidc-signed-in');
  // The session works like any other: an incident opened with the token's identity.
  await p.selectOption('#severity', 'sev3');
  await p.fill('#title', 'OIDC で起票');
  await p.fill('#teams', 'sre');
  await Promise.all([p.waitForURL('**/console/incidents'), p.click('[data-testid="new-incident"] button')]);
  assert.match(await p.locator('[data-testid="incident"] .timeline').first().textContent(), /hanako/);

  // The same callback again (a replay): refused, no session.
  const callback = `${base}/console/oidc/callback?code=x&state=${asked.state}`;
  const replay = await newPage(browser, { lang: 'en' });
  await replay.goto(callback);
  assert.match(await replay.getByTestId('login-error').textContent(), /not started in this browser/);

  // The user refuses at the provider: said so on the sign-in page.
  idp.mode = 'deny';
  const d = await newPage(browser, { lang: 'en' });
  await d.goto(`${base}/console/login`);
  await d.getByTestId('oidc-sign-in').click();
  await d.getByTestId('login-error').waitFor();
  assert.match(await d.getByTestId('login-error').textContent(), /refused \(access_denied: The user declined\)/);

  // A token for another audience: this server does not accept it, and says so.
  idp.mode = 'wrong-audience';
  const w = await newPage(browser, { lang: 'en' });
  await w.goto(`${base}/console/login`);
  await w.getByTestId('oidc-sign-in').click();
  await w.getByTestId('login-error').waitFor();
  assert.match(await w.getByTestId('login-error').textContent(), /does not accept the provider's access token/);
  assert.equal(await w.getByTestId('who').count(), 0);
  await screenshot(w, '21-oidc-refused');

  for (const page of [p, replay, d, w]) assertNoConsoleErrors(page);
});
