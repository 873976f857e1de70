// Every page of the demo plant, at desktop (1400 px) and phone (390 px) width, checked by axe-core (npm) in the
// real browser: no serious or critical accessibility violation, no console error, and a visible focus ring on
// whatever the keyboard reaches first.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { api, hydrated, launchBrowser, openPage, signIn, startGantry } from "./support.js";

const axeSource = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");

let gantry;
let browser;
let pages;

before(async () => {
  gantry = await startGantry({ demo: true });
  browser = await launchBrowser();
  const { page } = await openPage(browser.context);
  await signIn(page, gantry);
  // One of each kind of detail page, from the demo plant.
  const assets = await api(page, "GET", "/api/v1/assets");
  // The demo back-fills its day of readings (and so its alarms) just after start.
  let alarms;
  for (let tries = 0; tries < 60; tries++) {
    alarms = await api(page, "GET", "/api/v1/alarms?state=all");
    if (alarms.body.alarms.length > 0) break;
    await page.waitForTimeout(500);
  }
  const dashboards = await api(page, "GET", "/api/v1/dashboards");
  const reports = await api(page, "GET", "/api/v1/reports");
  assert.ok(assets.body.assets.length > 0, "the demo plant has assets");
  assert.ok(alarms.body.alarms.length > 0, "the demo plant has alarms");
  assert.ok(dashboards.body.dashboards.length > 0, "the demo plant has dashboards");
  assert.ok(reports.body.reports.length > 0, "the demo plant has a report");
  pages = [
    "/",
    "/assets",
    `/assets/${assets.body.assets.at(-1).id}`,
    "/templates",
    "/devices",
    "/alarms",
    `/alarms/${alarms.body.alarms[0].id}`,
    "/trends",
    "/dashboards",
    `/dashboards/${dashboards.body.dashboards[0].id}`,
    "/search",
    "/reports",
    `/reports/${reports.body.reports[0].id}`,
    "/admin",
    "/admin/audit",
    "/account",
  ];
  await page.close();
});

after(async () => {
  await browser?.close();
  await gantry?.stop();
});

/// Runs axe-core on the page (evaluated through the DevTools protocol, so the page's CSP does not apply) and returns
/// the serious and critical violations, one line each.
async function seriousViolations(page) {
  await page.evaluate(axeSource);
  const violations = await page.evaluate(async () => {
    const result = await window.axe.run(document, {
      runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"] },
    });
    return result.violations.map((v) => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      targets: v.nodes.slice(0, 3).map((n) => n.target.join(" ")),
    }));
  });
  return violations
    .filter((v) => v.impact === "serious" || v.impact === "critical")
    .map((v) => `${v.impact} ${v.id}: ${v.help} (${v.targets.join(", ")})`);
}

/// Tabs to the first focusable element and describes its focus indicator: an outline or a box shadow.
async function focusRing(page) {
  await page.locator("body").focus();
  await page.keyboard.press("Tab");
  return page.evaluate(() => {
    const element = document.activeElement;
    if (!element || element === document.body) return { element: null };
    const style = getComputedStyle(element);
    const outline = style.outlineStyle !== "none" && parseFloat(style.outlineWidth) > 0;
    const shadow = style.boxShadow !== "none";
    return { element: element.outerHTML.slice(0, 80), visible: outline || shadow };
  });
}

for (const width of [1400, 390]) {
  test(`every page passes axe-core at ${width} px, logs no errors and shows a focus ring`, async () => {
    const failures = [];
    for (const path of pages) {
      const { page, errors } = await openPage(browser.context);
      await page.setViewportSize({ width, height: 900 });
      await page.goto(`${gantry.url}${path}`);
      await hydrated(page);
      await page.locator("main h1").first().waitFor();
      // Let the page's own requests (cards, charts, lists) settle before checking what is on screen.
      await page.waitForLoadState("networkidle", { timeout: 3_000 }).catch(() => {});
      for (const violation of await seriousViolations(page)) failures.push(`${path}: ${violation}`);
      const ring = await focusRing(page);
      if (!ring.element) failures.push(`${path}: Tab focuses nothing`);
      else if (!ring.visible) failures.push(`${path}: no visible focus ring on ${ring.element}`);
      for (const error of errors) failures.push(`${path}: console error: ${error}`);
      await page.close();
    }
    assert.deepEqual(failures, [], failures.join("\n"));
  });
}
