// What the browser checks share: `sesame demo` in a temporary directory on free loopback ports,
// headless Chromium, the portal's sign-in round trip, the watch for browser-side problems, and
// the harness that numbers the steps, reports a failure clearly and always stops the demo.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

// SESAME_BIN is taken from the current directory; the default, target/debug/sesame, from the
// project root, so that `npm run` in this folder finds it too.
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
export const BIN = process.env.SESAME_BIN ? resolve(process.env.SESAME_BIN) : join(ROOT, "target/debug/sesame");
export const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
export const USER = "demo";
export const PASSWORD = "Demo#2026!";
export const NAME = /Camille/;
export const STEP_TIMEOUT = 15_000;

export const freePort = () =>
  new Promise((ok, ko) => {
    const srv = createServer().once("error", ko);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => ok(port));
    });
  });

const started = Date.now();
let stepNo = 0;
export const log = (msg) => console.log(`[${((Date.now() - started) / 1000).toFixed(1)}s] ${msg}`);
/** Logs the next numbered step; a failure reports the number of the step it happened in. */
export const step = (title) => log(`${++stepNo}. ${title}`);
export const check = (cond, what) => {
  if (!cond) throw new Error(`check failed: ${what}`);
};

/**
 * Starts `sesame demo` in a fresh directory and waits for its banner. The demo object has the
 * issuer, portal and mTLS origins, the directory (its data/ inside) and output() for the log.
 */
export async function startDemo() {
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
  const demo = {
    child,
    dir,
    issuer: `http://localhost:${idp}`,
    portal: `http://127.0.0.1:${portal}`,
    mtls: `https://127.0.0.1:${mtls}`,
    output: () => output,
  };
  current = demo;
  try {
    await ready;
  } catch (e) {
    await stopDemo(demo);
    throw e;
  }
  child.removeAllListeners("exit");
  return demo;
}
let current; // the demo to kill if the script is interrupted

export async function stopDemo(demo) {
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

/**
 * A French browser context with the step timeouts, whose pages report into `problems` every
 * console error, page error, HTTP error and CSP violation. `options` go to newContext.
 */
export async function newContext(browser, problems, options = {}) {
  const context = await browser.newContext({ locale: "fr-FR", ...options });
  context.setDefaultTimeout(STEP_TIMEOUT);
  context.setDefaultNavigationTimeout(STEP_TIMEOUT);
  context.on("page", (page) => {
    page.on("console", (m) => {
      // Neither Sésame nor the portal has a favicon; Chromium asks for one anyway.
      if (m.location().url?.endsWith("/favicon.ico")) return;
      if (m.type() === "error") problems.push(`console ${m.type()}: ${m.text()} (${m.location().url || page.url()})`);
    });
    page.on("pageerror", (e) => problems.push(`page error: ${e.message} (${page.url()})`));
    page.on("response", (r) => {
      if (r.status() >= 400) problems.push(`HTTP ${r.status()} for ${r.request().method()} ${r.url()}`);
    });
  });
  // CSP violations, whether or not Chromium also logs them to the console.
  await context.exposeBinding("__cspViolation", (_src, v) => problems.push(`CSP violation: ${v}`));
  await context.addInitScript(() =>
    document.addEventListener("securitypolicyviolation", (e) =>
      window.__cspViolation(`${e.violatedDirective} blocked ${e.blockedURI || "inline"} on ${location.href}`),
    ),
  );
  return context;
}

/** From the portal to Sésame's sign-in page. */
export async function openSignIn(page, demo) {
  await page.goto(demo.portal + "/");
  await page.getByRole("link", { name: /Se connecter avec Sésame/ }).click();
  await page.waitForURL(/\/interaction\/[^/]+$/);
  check(page.url().startsWith(demo.issuer), `sign-in page on the issuer (${page.url()})`);
}

/** Waits for the portal's « vous êtes connecté » page; returns the ID token's claims it shows. */
export async function expectPortalSignedIn(page, demo) {
  await page.waitForURL((u) => u.href.startsWith(demo.portal), { waitUntil: "load" });
  const text = await page.locator("body").innerText();
  check(NAME.test(text) && text.includes("vous êtes connecté"), `the portal shows the signed-in name (got: ${text.slice(0, 300)})`);
  const claims = JSON.parse(await page.locator("pre").first().innerText());
  log(`   signed in: acr ${claims.acr}, amr ${JSON.stringify(claims.amr)}`);
  return claims;
}

/**
 * Runs a check: starts the demo and Chromium, calls `run(demo, browser, problems)`, and on any
 * failure prints the step, the browser's problems and the tail of the demo's output. The demo is
 * stopped and its directory removed whatever happens, Ctrl-C included; exits 0 only on success.
 */
export async function main(what, run) {
  let browser, failed = false;
  const problems = []; // console errors, page errors, HTTP errors, CSP violations
  for (const signal of ["SIGINT", "SIGTERM"])
    process.once(signal, () => {
      current?.child.kill("SIGKILL");
      if (current) rmSync(current.dir, { recursive: true, force: true });
      process.exit(1);
    });
  try {
    log(`starting ${BIN} demo`);
    const demo = await startDemo();
    log(`issuer ${demo.issuer}, portal ${demo.portal}, mTLS ${demo.mtls}`);
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"],
    });
    await run(demo, browser, problems);
    log(`all ${what} checks passed`);
  } catch (e) {
    failed = true;
    console.error(`FAILED at step ${stepNo}: ${e.stack || e}`);
    if (problems.length) console.error(`--- in the browser ---\n${problems.join("\n")}`);
    if (current) console.error(`--- sesame demo output (tail) ---\n${current.output().slice(-3000)}`);
  } finally {
    await browser?.close().catch(() => {});
    await stopDemo(current).catch(() => {});
  }
  process.exit(failed ? 1 : 0);
}
