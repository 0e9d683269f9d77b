// Drives the admin page in headless Chromium for test/e2e
// (TestAdminPageBrowser): logs in with the backend key, waits until the
// charts have points, reads every number the page shows for a metric,
// checks the portal's key and a wrong one, and takes a screenshot.
// Prints one JSON object on stdout. Run through go test only.
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const need = (n) => {
  const v = process.env[n];
  if (!v) throw new Error(`${n} is not set: run through go test ./test/e2e -run AdminPage`);
  return v;
};
const URL_ = need("PUSHPULL_ADMIN_URL");
const BACKEND_KEY = need("PUSHPULL_BACKEND_KEY");
const PORTAL_KEY = need("PUSHPULL_KEY");
const SHOT = need("PUSHPULL_SCREENSHOT");
const WAIT = 30_000;

const profile = mkdtempSync(join(tmpdir(), "pushpull-admin-chromium-"));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.PUSHPULL_CHROMIUM || "/usr/bin/chromium",
  headless: true,
  viewport: { width: 1280, height: 900 },
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const out = { console: [] };
try {
  const page = await context.newPage();
  page.on("console", (m) => { if (m.type() === "error") out.console.push(m.text()); });
  page.on("pageerror", (e) => out.console.push(String(e)));
  await page.goto(URL_);
  await page.fill("#login-key", "wrong-key");
  await page.click("#login-form button");
  await page.waitForFunction(() => document.getElementById("login-error").textContent !== "", null, { timeout: WAIT });
  out.wrongLogin = await page.textContent("#login-error");
  out.console = []; // the refused login's 401 is expected

  await page.fill("#login-key", BACKEND_KEY);
  await page.click("#login-form button");
  // Two samples make a line; the page redraws at each interval.
  await page.waitForSelector("#chart-rates polyline", { timeout: WAIT });
  const rendered = await page.getAttribute("body", "data-rendered");
  await page.waitForFunction((r) => document.body.dataset.rendered !== r, rendered, { timeout: WAIT });
  // Read one rendering whole: between two refreshes.
  out.page = await page.evaluate(() => {
    const m = {};
    for (const e of document.querySelectorAll("[data-metric]")) m[e.dataset.metric] = e.textContent;
    return {
      rendered: document.body.dataset.rendered,
      metrics: m,
      ready: document.getElementById("ready").textContent,
      processes: document.querySelectorAll("#processes tbody tr").length,
      channels: document.querySelectorAll("#channels tbody tr").length,
      errors: [...document.querySelectorAll("#errors tbody tr")].map((r) => r.textContent),
      points: document.querySelector("#chart-rates polyline").getAttribute("points").split(" ").length,
      legend: document.getElementById("legend-rates").textContent,
      storage: document.getElementById("storage").textContent,
    };
  });
  out.afterRead = Date.now();

  for (const [k, name] of [[PORTAL_KEY, "right"], ["not-" + PORTAL_KEY, "wrong"]]) {
    await page.evaluate(() => delete document.getElementById("keycheck-result").dataset.result);
    await page.fill("#keycheck-key", k);
    await page.click("#keycheck-form button");
    await page.waitForFunction(() => document.getElementById("keycheck-result").dataset.result, null, { timeout: WAIT });
    out[name] = {
      result: await page.getAttribute("#keycheck-result", "data-result"),
      text: await page.textContent("#keycheck-result"),
      input: await page.inputValue("#keycheck-key"),
    };
  }
  await page.screenshot({ path: SHOT, fullPage: true });
  out.scrollWidth = await page.evaluate(() => document.documentElement.scrollWidth);
  out.html = (await page.content()).length;
  out.pageHasKey = (await page.content()).includes(PORTAL_KEY);
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
process.stdout.write(JSON.stringify(out) + "\n");
