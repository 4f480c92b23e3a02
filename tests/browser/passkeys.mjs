// End-to-end check of the passkey pages and templates/static/passkey.js in headless Chromium,
// with Chromium's virtual authenticator: enrol a passkey from « Mon compte », sign in with it
// without a password, then use it as the second factor after the password.
// Run: SESAME_BIN=target/debug/sesame node tests/browser/passkeys.mjs   (see README.md)
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { check, expectPortalSignedIn, log, main, newContext, openSignIn, PASSWORD, step, USER } from "./demo.mjs";

// To try a passkey.js without rebuilding: PASSKEY_JS=templates/static/passkey.js serves that file
// in place of the one embedded in the binary.
const PASSKEY_JS = process.env.PASSKEY_JS && resolve(process.env.PASSKEY_JS);

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

async function run(demo, browser, problems) {
  const context = await newContext(browser, problems);
  const page = await context.newPage();

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

  step("password sign-in from the portal");
  await openSignIn(page, demo);
  await page.fill("#username", USER);
  await page.fill("#password", PASSWORD);
  await page.locator('form:has(#password) button[type="submit"]').click();
  const first = await expectPortalSignedIn(page, demo);
  check(first.amr?.includes("pwd") && !first.amr.includes("hwk"), "password sign-in: amr has pwd, not hwk");

  step("enrol a passkey from « Mon compte »");
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

  step("passwordless sign-in with the passkey (cookies cleared)");
  await context.clearCookies();
  await openSignIn(page, demo);
  await page.getByRole("link", { name: "Authentification forte" }).click();
  await page.waitForURL(/\/passkey$/);
  check((await page.getByRole("button", { name: /UTILISER MA CLÉ D'ACCÈS/i }).count()) === 1, "« Utiliser ma clé d'accès » button");
  await passkeyCeremony(page, "get");
  const passwordless = await expectPortalSignedIn(page, demo);
  check(passwordless.amr?.includes("hwk") && !passwordless.amr.includes("pwd"), "passwordless: amr has hwk, not pwd");

  step("password then the passkey as second factor (cookies cleared)");
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

  step("no CSP violation, console error or page error");
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

await main("passkey", run);
