// End-to-end check of the passkey pages and templates/static/passkey.js in headless Chromium,
// with Chromium's virtual authenticator: enrol a passkey from « Mon compte », sign in with it
// without a password, then use it as the second factor after the password.
// Run: SESAME_BIN=target/debug/sesame node tests/browser/passkeys.mjs   (see README.md)
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { chromium } from "playwright-core";

const BIN = resolve(process.env.SESAME_BIN || "target/debug/sesame");
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const USER = "demo";
const PASSWORD = "Demo#2026!";
const NAME = /Camille/;
const STEP_TIMEOUT = 15_000;
// To try a passkey.js without rebuilding: PASSKEY_JS=templates/static/passkey.js serves that file
// in place of the one embedded in the binary.
const PASSKEY_JS = process.env.PASSKEY_JS && resolve(process.env.PASSKEY_JS);

const freePort = () =>
  new Promise((ok, ko) => {
    const srv = createServer().once("error", ko);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => ok(port));
    });
  });

const started = Date.now();
let step = 0;
const problems = []; // console errors, page errors, HTTP errors, CSP violations
let demo; // the running `sesame demo`, killed at the end whatever happens
const log = (msg) => console.log(`[${((Date.now() - started) / 1000).toFixed(1)}s] ${msg}`);
const check = (cond, what) => {
  if (!cond) throw new Error(`check failed: ${what}`);
};

/** Starts `sesame demo` in a fresh directory (as `demo`) and waits for its banner. */
async function startDemo() {
  const dir = mkdtempSync(join(tmpdir(), "sesame-browser-"));
  const [idp, portal, mtls] = [await freePort(), await freePort(), await freePort()];
  // Sésame reads every SESAME_* variable as a setting (SESAME_BIN included): pass only ours.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("SESAME_")));
  Object.assign(env, { SESAME_LISTEN: `127.0.0.1:${idp}`, SESAME_ISSUER: `http://localhost:${idp}` });
  const args = ["demo", "--portal-listen", `127.0.0.1:${portal}`, "--mtls-listen", `127.0.0.1:${mtls}`];
  const child = spawn(BIN, args, { cwd: dir, env, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stderr.on("data", (d) => (output += d));
  const ready = new Promise((ok, ko) => {
    const timer = setTimeout(() => ko(new Error(`no banner from sesame demo within 30 s:\n${output}`)), 30_000);
    child.once("error", (e) => (clearTimeout(timer), ko(e)));
    child.once("exit", (code) => (clearTimeout(timer), ko(new Error(`sesame demo exited (${code}):\n${output}`))));
    child.stdout.on("data", (d) => {
      output += d;
      if (output.includes("Ctrl-C")) (clearTimeout(timer), ok());
    });
  });
  demo = { child, dir, issuer: `http://localhost:${idp}`, portal: `http://127.0.0.1:${portal}`, output: () => output };
  try {
    await ready;
  } catch (e) {
    await stopDemo(demo);
    throw e;
  }
  child.removeAllListeners("exit");
}

async function stopDemo(demo) {
  if (!demo) return;
  const { child } = demo;
  if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
    const exited = new Promise((ok) => child.once("exit", ok));
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
    await exited;
    clearTimeout(timer);
  }
  rmSync(demo.dir, { recursive: true, force: true });
}

/** From the portal to Sésame's sign-in page. */
async function openSignIn(page, demo) {
  await page.goto(demo.portal + "/");
  await page.getByRole("link", { name: /Se connecter avec Sésame/ }).click();
  await page.waitForURL(/\/interaction\/[^/]+$/);
  check(page.url().startsWith(demo.issuer), `sign-in page on the issuer (${page.url()})`);
}

/** Clicks the button of the passkey form and waits until the page leaves it (or shows its error). */
async function passkeyCeremony(page, mode) {
  const form = page.locator(`form[data-passkey="${mode}"]`);
  await form.waitFor();
  const before = page.url();
  await form.locator('button[type="submit"]').click();
  const error = form.locator(".passkey-error, .passkey-unsupported");
  await Promise.race([
    page.waitForURL((u) => u.href !== before, { waitUntil: "load" }),
    error.first().waitFor({ state: "visible" }).then(async () => {
      throw new Error(`passkey.js showed: ${await error.first().textContent()}`);
    }),
    page.waitForEvent("pageerror").then((e) => {
      throw new Error(`script error during the ceremony: ${e.message}`);
    }),
  ]);
}

/** The first .eml in data/outbox matching `re`; the mail worker delivers every few seconds. */
async function waitForMail(demo, re, timeout = 10_000) {
  const outbox = join(demo.dir, "data", "outbox");
  for (const end = Date.now() + timeout; Date.now() < end; await new Promise((ok) => setTimeout(ok, 250))) {
    const files = existsSync(outbox) ? readdirSync(outbox).filter((f) => f.endsWith(".eml")) : [];
    const mail = files.map((f) => readFileSync(join(outbox, f), "latin1")).find((m) => re.test(m));
    if (mail) return mail;
  }
  throw new Error(`no mail matching ${re} in data/outbox within ${timeout / 1000} s`);
}

/** A mail's Subject, unfolded, its RFC 2047 encoded words decoded. */
const subject = (mail) => {
  const raw = (mail.split(/\r?\n\r?\n/)[0].replace(/\r?\n[ \t]+/g, " ").match(/^Subject: (.*)$/m)?.[1] ?? "")
    .replace(/\?=\s+=\?/g, "?==?")
    .replace(/=\?utf-8\?b\?([^?]*)\?=/gi, (_, b) => Buffer.from(b, "base64").toString("latin1"));
  return Buffer.from(raw, "latin1").toString("utf8");
};

/** Waits for the portal's « vous êtes connecté » page; returns the ID token's claims it shows. */
async function expectPortalSignedIn(page, demo) {
  await page.waitForURL((u) => u.href.startsWith(demo.portal), { waitUntil: "load" });
  const text = await page.locator("body").innerText();
  check(NAME.test(text) && text.includes("vous êtes connecté"), `the portal shows the signed-in name (got: ${text.slice(0, 300)})`);
  const claims = JSON.parse(await page.locator("pre").first().innerText());
  log(`   signed in: acr ${claims.acr}, amr ${JSON.stringify(claims.amr)}`);
  return claims;
}

async function run(demo, browser) {
  const context = await browser.newContext({ locale: "fr-FR" });
  context.setDefaultTimeout(STEP_TIMEOUT);
  context.setDefaultNavigationTimeout(STEP_TIMEOUT);
  const page = await context.newPage();
  page.on("console", (m) => {
    // Neither Sésame nor the portal has a favicon; Chromium asks for one anyway.
    if (m.location().url?.endsWith("/favicon.ico")) return;
    if (m.type() === "error") problems.push(`console ${m.type()}: ${m.text()} (${m.location().url || page.url()})`);
  });
  page.on("pageerror", (e) => problems.push(`page error: ${e.message} (${page.url()})`));
  page.on("response", (r) => {
    if (r.status() >= 400) problems.push(`HTTP ${r.status()} for ${r.request().method()} ${r.url()}`);
  });
  // CSP violations, whether or not Chromium also logs them to the console.
  await context.exposeBinding("__cspViolation", (_src, v) => problems.push(`CSP violation: ${v}`));
  await context.addInitScript(() =>
    document.addEventListener("securitypolicyviolation", (e) =>
      window.__cspViolation(`${e.violatedDirective} blocked ${e.blockedURI || "inline"} on ${location.href}`),
    ),
  );

  if (PASSKEY_JS) {
    log(`serving ${PASSKEY_JS} as /static/passkey.js`);
    await context.route(`${demo.issuer}/static/passkey.js`, (route) =>
      route.fulfill({ path: PASSKEY_JS, contentType: "text/javascript; charset=utf-8" }),
    );
  }

  const cdp = await context.newCDPSession(page);
  await cdp.send("WebAuthn.enable");
  const { authenticatorId } = await cdp.send("WebAuthn.addVirtualAuthenticator", {
    options: {
      protocol: "ctap2", transport: "internal", hasResidentKey: true,
      hasUserVerification: true, isUserVerified: true, automaticPresenceSimulation: true,
    },
  });

  log(`${++step}. password sign-in from the portal`);
  await openSignIn(page, demo);
  await page.fill("#username", USER);
  await page.fill("#password", PASSWORD);
  await page.locator('form:has(#password) button[type="submit"]').click();
  const first = await expectPortalSignedIn(page, demo);
  check(first.amr?.includes("pwd") && !first.amr.includes("hwk"), "password sign-in: amr has pwd, not hwk");

  log(`${++step}. enrol a passkey from « Mon compte »`);
  await page.goto(demo.issuer + "/account");
  check((await page.locator("h2", { hasText: "Clés d'accès (passkeys)" }).count()) === 1, "passkeys section");
  await page.fill("#passkey-name", "Cabinet");
  await page.fill("#passkey-password", PASSWORD);
  await page.locator('form[action="/account/passkeys"] button[type="submit"]').click();
  await page.waitForURL(/\/account\/passkeys$/, { waitUntil: "load" });
  await passkeyCeremony(page, "create");
  const added = await page.locator("body").innerText();
  check(added.includes("La clé d'accès a été ajoutée"), `confirmation page (got: ${added.slice(0, 300)})`);
  const { credentials } = await cdp.send("WebAuthn.getCredentials", { authenticatorId });
  check(credentials.length === 1 && credentials[0].isResidentCredential, "one resident credential on the authenticator");
  await page.goto(demo.issuer + "/account");
  check((await page.locator("ul.passkeys li", { hasText: "Cabinet" }).count()) === 1, "« Cabinet » listed on the account");
  const mail = await waitForMail(demo, /Cabinet/);
  log(`   mail: ${subject(mail)}`);

  log(`${++step}. passwordless sign-in with the passkey (cookies cleared)`);
  await context.clearCookies();
  await openSignIn(page, demo);
  await page.getByRole("link", { name: "Authentification forte" }).click();
  await page.waitForURL(/\/passkey$/);
  check((await page.getByRole("button", { name: /UTILISER MA CLÉ D'ACCÈS/i }).count()) === 1, "« Utiliser ma clé d'accès » button");
  await passkeyCeremony(page, "get");
  const passwordless = await expectPortalSignedIn(page, demo);
  check(passwordless.amr?.includes("hwk") && !passwordless.amr.includes("pwd"), "passwordless: amr has hwk, not pwd");

  log(`${++step}. password then the passkey as second factor (cookies cleared)`);
  await context.clearCookies();
  await openSignIn(page, demo);
  await page.fill("#username", USER);
  await page.fill("#password", PASSWORD);
  await page.locator('form:has(#password) button[type="submit"]').click();
  await page.waitForURL(/\/interaction\/[^/]+\/totp$/, { waitUntil: "load" });
  await passkeyCeremony(page, "get");
  const twoFactor = await expectPortalSignedIn(page, demo);
  check(twoFactor.amr?.includes("pwd") && twoFactor.amr.includes("hwk"), "second factor: amr has pwd and hwk");
  const { credentials: after } = await cdp.send("WebAuthn.getCredentials", { authenticatorId });
  check(after[0].signCount >= 2, `the authenticator signed twice (signCount ${after[0].signCount})`);

  log(`${++step}. no CSP violation, console error or page error`);
  check(problems.length === 0, `no problems in the browser:\n  ${problems.join("\n  ")}`);
  // The detector itself: on a page that runs passkey.js, the CSP must still refuse inline script.
  await context.clearCookies();
  await openSignIn(page, demo);
  const [response] = await Promise.all([
    page.waitForResponse((r) => r.request().isNavigationRequest() && r.url().endsWith("/passkey")),
    page.getByRole("link", { name: "Authentification forte" }).click(),
  ]);
  const csp = response.headers()["content-security-policy"];
  check(/script-src 'self'(;|$)/.test(csp), "the passkey page allows scripts from 'self' only");
  log(`   CSP of the passkey page: ${csp}`);
  await page.evaluate(() => {
    const s = document.createElement("script");
    s.textContent = "window.__inlineRan = true";
    document.body.append(s);
  });
  await page.waitForTimeout(200);
  check(!(await page.evaluate(() => window.__inlineRan)), "the CSP blocks inline script");
  check(problems.some((p) => p.startsWith("CSP violation")), "CSP violations are detected");
  await context.close();
}

let browser, failed = false;
for (const signal of ["SIGINT", "SIGTERM"])
  process.once(signal, () => {
    demo?.child.kill("SIGKILL");
    if (demo) rmSync(demo.dir, { recursive: true, force: true });
    process.exit(1);
  });
try {
  log(`starting ${BIN} demo`);
  await startDemo();
  log(`issuer ${demo.issuer}, portal ${demo.portal}`);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"],
  });
  await run(demo, browser);
  log("all passkey checks passed");
} catch (e) {
  failed = true;
  console.error(`FAILED at step ${step}: ${e.stack || e}`);
  if (problems.length) console.error(`--- in the browser ---\n${problems.join("\n")}`);
  if (demo) console.error(`--- sesame demo output (tail) ---\n${demo.output().slice(-3000)}`);
} finally {
  await browser?.close().catch(() => {});
  await stopDemo(demo).catch(() => {});
}
process.exit(failed ? 1 : 0);
