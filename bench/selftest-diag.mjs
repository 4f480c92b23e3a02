#!/usr/bin/env node
// When driver.mjs selftest fails at its last check ("wrong password must be rejected"),
// bench/run.sh runs this to record what Sésame served and answered at that step:
// the login form's action attribute as served, and the answer to a wrong password
// posted (1) to that attribute taken verbatim, as the selftest does, (2) to the decoded
// path without the form's hidden fields, as the selftest also does, (3) to the decoded
// path with the hidden fields, as a browser would.
//   node selftest-diag.mjs ISSUER   (env: CLIENT_ID, REDIRECT_URI)
import * as crypto from 'node:crypto';

const issuer = process.argv[2];
const clientId = process.env.CLIENT_ID || 'bench-client';
const redirectUri = process.env.REDIRECT_URI || 'https://client.bench.test/cb';
const cookies = new Map();
const keep = (res) => {
  for (const c of res.headers.getSetCookie()) {
    const [pair] = c.split(';');
    const i = pair.indexOf('=');
    cookies.set(pair.slice(0, i).trim(), pair.slice(i + 1).trim());
  }
  return res;
};
const cookie = () => [...cookies].map(([k, v]) => `${k}=${v}`).join('; ');
const get = async (p) => keep(await fetch(new URL(p, issuer), { redirect: 'manual', headers: { cookie: cookie() } }));
const post = async (p, form) => keep(await fetch(new URL(p, issuer), {
  method: 'POST', redirect: 'manual', body: new URLSearchParams(form).toString(),
  headers: { cookie: cookie(), 'content-type': 'application/x-www-form-urlencoded' },
}));
const decode = (v) => v.replace(/&#x([0-9a-f]+);/gi, (_, n) => String.fromCharCode(parseInt(n, 16)))
  .replace(/&#(\d+);/g, (_, n) => String.fromCharCode(n)).replace(/&quot;/g, '"').replace(/&amp;/g, '&');
const b64u = (b) => b.toString('base64url');

const disco = await (await fetch(new URL('/.well-known/openid-configuration', issuer))).json();
const verifier = b64u(crypto.randomBytes(32));
const az = new URL(disco.authorization_endpoint);
az.search = new URLSearchParams({
  client_id: clientId, response_type: 'code', redirect_uri: redirectUri, scope: 'openid email profile',
  state: b64u(crypto.randomBytes(12)), nonce: b64u(crypto.randomBytes(12)),
  code_challenge: b64u(crypto.createHash('sha256').update(verifier).digest()), code_challenge_method: 'S256',
}).toString();
let res = await get(az.pathname + az.search);
const interaction = new URL(res.headers.get('location'), issuer).pathname;
const html = await (await get(interaction)).text();
const rawAction = /action="([^"]+)"/.exec(html)?.[1] ?? '';
const action = decode(rawAction);
const hidden = {};
const form = html.split(/<form/i).slice(1).find((f) => /name="password"/.test(f)) ?? '';
for (const tag of form.match(/<input[^>]*>/gi) ?? []) {
  const name = /name="([^"]*)"/.exec(tag)?.[1];
  if (name && /type="hidden"/i.test(tag)) hidden[decode(name)] = decode(/value="([^"]*)"/.exec(tag)?.[1] ?? '');
}
const out = [`login form action attribute as served: ${rawAction}`];
// (1) verbatim: fetch would resolve it as a relative URL, so send the raw request target with node:http
const http = await import('node:http');
const u = new URL(issuer);
const body = 'username=alice&password=wrong';
const r1 = await new Promise((resolve, reject) => {
  const req = http.request({ host: u.hostname, port: u.port, method: 'POST', path: rawAction,
    headers: { cookie: cookie(), 'content-type': 'application/x-www-form-urlencoded', 'content-length': body.length } }, (r) => {
    let b = ''; r.on('data', (d) => { b += d; }).on('end', () => resolve({ status: r.statusCode, len: b.length }));
  });
  req.on('error', reject); req.end(body);
});
out.push(`POST to the attribute verbatim, username+password only (what selftest does): ${r1.status}, ${r1.len}-byte body`);
res = await post(action, { username: 'alice', password: 'wrong' });
out.push(`POST ${action.replace(/[^/]+\/login$/, '<uid>/login')}, username+password only: ${res.status}`);
res = await post(action, { ...hidden, username: 'alice', password: 'wrong' });
out.push(`POST ${action.replace(/[^/]+\/login$/, '<uid>/login')} with the form's hidden fields (${Object.keys(hidden).join(', ') || 'none'}) + username+password: ${res.status}`);
console.log(out.join('\n'));
