// Dashboards in a real browser: make a shared dashboard, add a trend, a current value, a subtree's active alarms and
// a table of latest values in the edit mode, move a panel, save; after a reload the panels are where they were put
// and show live data (the trend's canvas drawn from readings, the value coloured by its limit band, the alarm).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { api, deviceFor, hydrated, launchBrowser, openPage, screenshotPath, postReadings, signIn, startGantry } from "./support.js";

let gantry;
let browser;

before(async () => {
  gantry = await startGantry();
  browser = await launchBrowser();
  gantry.importModel(
    `schema_version: 1
templates:
- name: Boiler
  attributes:
  - name: pressure
    value_type: float
    unit: bar
    limits: { lo: 1.0, hi: 8.0, hihi: 10.0 }
    alarms:
    - name: High
      condition: { type: limit, level: hi }
      severity: high
      message: "{asset} pressure high ({value} {unit})"
  - name: temperature
    value_type: float
    unit: °C
assets:
- path: /Plant
- path: /Plant/Boiler 1
  template: Boiler
`,
  );
});

after(async () => {
  await browser?.close();
  await gantry?.stop();
});

/// Half an hour of pressure readings ending over Hi (which raises the High alarm), and a temperature.
async function feedBoiler(page) {
  const { secret } = await deviceFor(page, "/Plant/Boiler 1", "boiler-1");
  const now = Date.now();
  const readings = Array.from({ length: 180 }, (_, i) => ({ field: "pressure", value: 5 + Math.sin(i / 15), ts: now - 1_800_000 + i * 10_000 }));
  readings.push({ field: "pressure", value: 8.75, ts: now - 1000 }, { field: "temperature", value: 181.5, ts: now - 1000 });
  await postReadings(gantry, secret, readings);
}

async function addPanel(page, kind, title, what) {
  const form = page.locator("#add-panel");
  await form.getByLabel("Panel").selectOption(kind);
  await form.getByLabel("Title").fill(title);
  await form.getByLabel("Series").fill(what);
  await form.getByRole("button", { name: "Add panel" }).click();
  await page.locator(`#dashboard-grid section[aria-label="${title}"]`).waitFor();
}

test("make a shared dashboard, add and arrange panels, save, and see them live after a reload", async () => {
  const { page, errors } = await openPage(browser.context);
  await signIn(page, gantry);
  await hydrated(page);
  await feedBoiler(page);

  await page.goto(`${gantry.url}/dashboards`);
  await hydrated(page);
  await page.locator("p.empty").waitFor();
  const create = page.locator("#new-dashboard");
  await create.getByLabel("Name").fill("Boiler house");
  await create.getByLabel("Shared with everyone").check();
  await create.getByRole("button", { name: "Create" }).click();
  await page.getByRole("heading", { name: "Boiler house" }).waitFor();
  const id = Number(new URL(page.url()).pathname.split("/").pop());
  assert.ok(id > 0, page.url());

  await page.locator("#edit-dashboard").click();
  await addPanel(page, "trend", "Pressure trend", "/Plant/Boiler 1|pressure");
  await addPanel(page, "value", "Pressure now", "/Plant/Boiler 1|pressure");
  await addPanel(page, "alarms", "Plant alarms", "/Plant");
  await addPanel(page, "table", "Boiler readings", "/Plant/Boiler 1|pressure\n/Plant/Boiler 1|temperature");
  // A bad reference is refused with the reason beside the series, which is marked invalid, and adds nothing.
  const form = page.locator("#add-panel");
  await form.getByLabel("Series").fill("no bar here");
  await form.getByRole("button", { name: "Add panel" }).click();
  assert.match(await form.locator("#add-panel-content-error").innerText(), /asset path\|attribute/);
  assert.equal(await form.getByLabel("Series").getAttribute("aria-invalid"), "true");
  assert.equal(await form.getByLabel("Title").getAttribute("aria-invalid"), null);
  assert.equal(await page.locator("#dashboard-grid section[data-panel]").count(), 4);
  // So is a title too long, beside the title.
  await form.getByLabel("Series").fill("/Plant/Boiler 1|pressure");
  await form.getByLabel("Title").fill("x".repeat(101));
  await form.getByRole("button", { name: "Add panel" }).click();
  assert.match(await form.locator("#add-panel-title-error").innerText(), /at most 100 characters/);
  assert.equal(await form.getByLabel("Title").getAttribute("aria-invalid"), "true");
  assert.equal(await form.getByLabel("Series").getAttribute("aria-invalid"), null, "the series are fine now");
  assert.equal(await page.locator("#dashboard-grid section[data-panel]").count(), 4);
  await form.getByLabel("Title").fill("");
  await form.getByLabel("Series").fill("");

  // Move the value panel two columns right and make it wider.
  const value = page.locator('#dashboard-grid section[aria-label="Pressure now"]');
  await value.getByRole("button", { name: "Move right" }).click();
  await page.locator('#dashboard-grid section[aria-label="Pressure now"]').getByRole("button", { name: "Move right" }).click();
  await page.locator('#dashboard-grid section[aria-label="Pressure now"]').getByRole("button", { name: "Wider" }).click();
  assert.match(await value.getAttribute("class"), /\bcol-3 span-4\b/);
  await page.locator("#save-dashboard").click();
  await page.locator("#edit-dashboard:not(.hidden)").waitFor();

  const saved = await api(page, "GET", `/api/v1/dashboards/${id}`);
  assert.equal(saved.status, 200);
  assert.equal(saved.body.shared, true);
  assert.deepEqual(
    saved.body.panels.map((p) => [p.title, p.content.kind, p.x, p.w]),
    [["Pressure trend", "trend", 0, 12], ["Pressure now", "value", 2, 4], ["Plant alarms", "alarms", 0, 6], ["Boiler readings", "table", 0, 6]],
  );

  // After a reload: the same grid, with data in every panel.
  await page.reload();
  await hydrated(page);
  assert.equal(await page.locator("#dashboard-grid section[data-panel]").count(), 4);
  assert.match(await page.locator('section[aria-label="Pressure now"]').getAttribute("class"), /\bcol-3 span-4 row-5 rows-1\b/);
  await page.waitForFunction(() => Number(document.querySelector(".trend-canvas")?.dataset.points) >= 181);
  const now = page.locator('section[aria-label="Pressure now"] .panel-value');
  await now.waitFor();
  assert.equal(await now.innerText(), "8.75 bar");
  assert.match(await now.getAttribute("class"), /\bhi\b/, "over Hi: coloured as such");
  await page.locator('section[aria-label="Plant alarms"] li').filter({ hasText: "pressure high" }).waitFor();
  const table = await page.locator('section[aria-label="Boiler readings"] table').innerText();
  assert.match(table, /\/Plant\/Boiler 1\|temperature\s+181\.50 °C/);
  await page.screenshot({ path: screenshotPath("dashboard.png"), fullPage: true });

  // Listed with its owner and panel count; removing a panel and saving keeps the change.
  await page.locator("#edit-dashboard").click();
  await page.locator('section[aria-label="Boiler readings"]').getByRole("button", { name: "Remove panel" }).click();
  await page.locator("#save-dashboard").click();
  await page.locator("#edit-dashboard:not(.hidden)").waitFor();
  await page.goto(`${gantry.url}/dashboards`);
  await hydrated(page);
  const row = page.locator("#dashboards tr").filter({ hasText: "Boiler house" });
  assert.match(await row.innerText(), /shared\s+3/);
  assert.deepEqual(errors, []);
});
