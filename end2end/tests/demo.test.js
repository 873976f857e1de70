// The demo as a new operator walks it: sign in, read the plant overview, follow the standing alarm from the
// overview to its trend, acknowledge it, open the shared dashboard, and find the devices reporting.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { api, hydrated, launchBrowser, openPage, signIn, startGantry } from "./support.js";

let gantry;
let browser;

before(async () => {
  gantry = await startGantry({ demo: true });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await gantry?.stop();
});

test("a new operator walks the demo plant: overview, an alarm and its trend, acknowledge, dashboard, devices", async () => {
  const { page, errors } = await openPage(browser.context);
  await page.setViewportSize({ width: 1400, height: 900 });
  await signIn(page, gantry);
  await hydrated(page);

  // The overview: a calm plant with one standing alarm waiting, the day's load within ISA-18.2's rates.
  const alarmsCard = page.locator("#overview-alarms");
  const newest = alarmsCard.locator(".newest-alarms li a");
  await newest.first().waitFor({ timeout: 30_000 });
  assert.match(await alarmsCard.innerText(), /\d+ active, \d+ unacknowledged/);
  const load = await page.locator("#overview-load figcaption").innerText();
  const average = Number(load.match(/([\d.]+) per 10 minutes on average/)[1]);
  assert.ok(average <= 2, `the demo's day averages ${average} alarms per 10 minutes, over ISA-18.2's manageable 2`);
  assert.match(await page.locator("#overview-devices").innerText(), /[1-9]\d* online/);

  // From the overview to the standing alarm: above its high limit since the day began (the oldest active alarm),
  // unacknowledged.
  const active = await api(page, "GET", "/api/v1/alarms?state=active");
  const oldest = active.body.alarms.reduce((a, b) => (a.started_at <= b.started_at ? a : b));
  assert.ok(Date.now() - oldest.started_at > 23 * 3600_000, "the standing alarm has stood since the day began");
  assert.match(oldest.message, /above High limit/);
  await alarmsCard.locator(`a[href="/alarms/${oldest.id}"]`).click();
  await page.locator("#alarm-detail").waitFor();
  assert.match(await page.locator("#alarm-detail .state").innerText(), /Active, unacknowledged/);
  const alarmUrl = page.url();

  // Its trend: the same series over the alarm's window, drawn from the stored readings.
  await page.locator("#alarm-trend").click();
  await page.getByRole("heading", { name: "Trends" }).waitFor();
  await page.waitForFunction(() => Number(document.querySelector(".trend-canvas")?.dataset.points) > 0, null, {
    timeout: 20_000,
  });
  assert.match(decodeURIComponent(new URL(page.url()).search), /s=\/[^&]+\|/);

  // Back on the alarm, acknowledge it.
  await page.goto(alarmUrl);
  await hydrated(page);
  await page.locator("#ack-alarm").click();
  await page.waitForFunction(
    () => document.querySelector("#alarm-detail .state")?.innerText.includes("Active, acknowledged"),
    null,
    { timeout: 10_000 },
  );
  assert.match(await page.locator("#alarm-detail").innerText(), /Acknowledged\s+.+ by e2e-admin/);

  // The shared dashboard from the navigation, with its trends drawn.
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Dashboards" }).click();
  await page.getByRole("heading", { name: "Dashboards", exact: true }).waitFor();
  await page.locator("main a[href^='/dashboards/']").first().click();
  await page.locator("#dashboard-grid").waitFor();
  await page.waitForFunction(() => Number(document.querySelector(".trend-canvas")?.dataset.points) > 0, null, {
    timeout: 20_000,
  });

  // The devices: the simulated equipment, reporting.
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Devices" }).click();
  await page.getByRole("heading", { name: "Devices", exact: true }).waitFor();
  await page.locator("main", { hasText: "online" }).waitFor();
  assert.deepEqual(errors, [], "the console has errors");
  await page.close();
});
