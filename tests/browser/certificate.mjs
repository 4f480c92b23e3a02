// End-to-end check of certificate login (« Authentification par certificat client ») in headless
// Chromium, with the demo's own test card (data/demo-pki/card.p12, bound to `demo`): from the
// portal through the mTLS listener and back, then the same link without a card, which must give
// Sésame's error page rather than a TLS failure.
// Run: SESAME_BIN=target/debug/sesame node tests/browser/certificate.mjs   (see README.md)
import { existsSync } from "node:fs";
import { join } from "node:path";
import { check, expectPortalSignedIn, log, main, newContext, openSignIn, step } from "./demo.mjs";

const CARD_PASSWORD = "demo";
const LINK = "Authentification par certificat client";

/** On the sign-in page: the certificate link, checked to lead to the mTLS listener for this request. */
async function certificateLink(page, demo) {
  const link = page.getByRole("link", { name: LINK });
  const href = await link.getAttribute("href");
  const uid = new URL(page.url()).pathname.split("/").pop();
  check(href === `${demo.mtls}/certificate/${uid}`, `« ${LINK} » points to ${demo.mtls}/certificate/${uid} (got ${href})`);
  return link;
}

/** Clicks the link and returns the mTLS listener's response to it; a TLS failure fails at once. */
async function followLink(page, link, demo) {
  const ours = (r) => r.url().startsWith(`${demo.mtls}/certificate/`);
  const [response] = await Promise.all([
    Promise.race([
      page.waitForResponse(ours),
      page.waitForEvent("requestfailed", ours).then((r) => {
        throw new Error(`no answer from the mTLS listener: ${r.failure()?.errorText} for ${r.url()}`);
      }),
    ]),
    link.click(),
  ]);
  return response;
}

async function run(demo, browser, problems) {
  step("the demo's test PKI");
  const pki = join(demo.dir, "data", "demo-pki");
  for (const f of ["ca.pem", "card.p12", "card.pem", "card.key"])
    check(existsSync(join(pki, f)), `data/demo-pki/${f} written by sesame demo`);

  step("sign-in with the card from the portal");
  // Playwright presents the card itself on the TLS connections to that origin; the listener's
  // own certificate comes from the demo CA, which this browser does not trust.
  const context = await newContext(browser, problems, {
    clientCertificates: [{ origin: demo.mtls, pfxPath: join(pki, "card.p12"), passphrase: CARD_PASSWORD }],
    ignoreHTTPSErrors: true,
  });
  const page = await context.newPage();
  await openSignIn(page, demo);
  const link = await certificateLink(page, demo);
  const response = await followLink(page, link, demo);
  check(response.status() === 303, `the mTLS listener accepts the card and redirects (got HTTP ${response.status()})`);
  const back = response.headers().location ?? "";
  check(back.startsWith(`${demo.issuer}/interaction/`), `back to the issuer (${back})`);
  const claims = await expectPortalSignedIn(page, demo);
  check(claims.acr === "urn:sesame:loa:2", `acr is urn:sesame:loa:2 (got ${claims.acr})`);
  check(claims.amr?.includes("sc") && !claims.amr.includes("pwd"), `amr has sc, not pwd (got ${JSON.stringify(claims.amr)})`);
  await context.close();

  step("the same link without a card");
  const refused = []; // this context's problems: the expected 403 and nothing else
  const bare = await newContext(browser, refused, { ignoreHTTPSErrors: true });
  const page2 = await bare.newPage();
  await openSignIn(page2, demo);
  const response2 = await followLink(page2, await certificateLink(page2, demo), demo);
  check(response2.status() === 403, `no card: HTTP 403 from the mTLS listener (got ${response2.status()})`);
  // Until the stylesheet request is over too, so that what it logs is all in.
  await page2.waitForLoadState("networkidle");
  const text = await page2.locator("body").innerText();
  check(text.includes("Aucun certificat"), `no card: Sésame's error page (got: ${text.slice(0, 300)})`);
  log(`   error page: ${text.split("\n").find((l) => l.includes("Aucun certificat"))}`);
  // The refusal itself is an HTTP error, which Chromium also logs (with the reason phrase of
  // HTTP/1.1, the only protocol of that listener); anything else counts.
  const seen = `HTTP 403 for GET ${response2.url()}`;
  const logged = (p) =>
    p.startsWith("console error: Failed to load resource: the server responded with a status of 403 (") &&
    p.endsWith(`(${response2.url()})`);
  check(refused.includes(seen), "the 403 is seen by the problem watch");
  problems.push(...refused.filter((p) => p !== seen && !logged(p)));
  await bare.close();

  step("no CSP violation, console error or page error");
  check(problems.length === 0, `no problems in the browser:\n  ${problems.join("\n  ")}`);
}

await main("certificate", run);
