// Alarms in a real browser: with the alarm page open, a device reports a pressure over the template's limits; the
// alarms appear live (server-sent events, no reload), the bell counts them, a toast announces the critical one,
// and the operator acknowledges it from the list. Then a rule is added in the template editor.
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
    limits: { hi: 8.0, hihi: 10.0 }
    alarms:
    - name: High
      condition: { type: limit, level: hi }
      severity: high
    - name: Very high
      condition: { type: limit, level: hihi }
      severity: critical
      message: "{asset}: pressure {value} {unit} over {limit}"
  - name: temperature
    value_type: float
    unit: °C
    limits: { hi: 90.0 }
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

test("a new alarm appears live, rings the bell, toasts when critical, and is acknowledged from the list", async () => {
  const { page, errors } = await openPage(browser.context);
  await signIn(page, gantry);
  // A device on the boiler, with a token.
  await page.goto(`${gantry.url}/alarms`);
  await hydrated(page);
  const { assetId, secret } = await deviceFor(page, "/Plant/Boiler 1", "boiler-1");

  await page.getByText("No alarms match").waitFor();
  await page.locator("#alarm-bell .count", { hasText: "0" }).waitFor();
  // The page stays open; the reading arrives from elsewhere.
  await postReadings(gantry, secret, [{ field: "pressure", value: 12.5 }]);

  const rows = page.locator("#alarms tr.alarm");
  await page.waitForFunction(() => document.querySelectorAll("#alarms tr.alarm").length === 2, null, {
    timeout: 10_000,
  });
  // Most severe first.
  const critical = rows.first();
  assert.match(await critical.innerText(), /critical[\s\S]*Active, unacknowledged[\s\S]*\/Plant\/Boiler 1: pressure 12\.5 bar over 10/);
  await page.locator("#alarm-bell .count", { hasText: "2" }).waitFor();
  assert.ok(await page.locator("#alarm-bell.ringing").isVisible(), "the bell rings while alarms await acknowledgement");
  const toast = page.locator(".toast.critical");
  await toast.waitFor();
  assert.match(await toast.innerText(), /Critical: \/Plant\/Boiler 1: pressure 12\.5 bar/);
  await page.screenshot({ path: screenshotPath("alarms-live.png") });

  // The plant overview counts them, lists the newest with links, and counts the device that reported.
  const overview = await browser.context.newPage();
  await overview.goto(`${gantry.url}/`);
  const alarmsCard = overview.locator("#overview-alarms");
  assert.match(await alarmsCard.innerText(), /2 active, 2 unacknowledged/);
  assert.equal(await alarmsCard.locator(".newest-alarms li a").count(), 2);
  assert.match(await overview.locator("#overview-devices").innerText(), /1 online/);
  // The day's load against ISA-18.2's rates: these two, in one ten-minute period.
  assert.match(await overview.locator("#overview-load figcaption").innerText(), /^2 alarms; 0\.01 per 10 minutes on average; peak 2/);
  assert.doesNotMatch(await overview.locator("main").innerText(), /will (appear|summarise)/, "no placeholder text");
  await overview.screenshot({ path: screenshotPath("overview.png") });
  await overview.close();

  await critical.getByRole("button", { name: "Acknowledge" }).click();
  await page.waitForFunction(
    () => document.querySelector("#alarms tr.alarm.critical .state")?.innerText.includes("Active, acknowledged"),
    null,
    { timeout: 10_000 },
  );
  // The other one still waits; the bulk button takes it.
  assert.match(await page.locator("#alarms tr.alarm.high .state").innerText(), /Active, unacknowledged/);
  await page.locator("#ack-all").click();
  await page.waitForFunction(
    () => document.querySelector("#alarms tr.alarm.high .state")?.innerText.includes("Active, acknowledged"),
  );
  await page.waitForFunction(() => !document.querySelector("#alarm-bell.ringing"));

  // The alarm's page: who acknowledged, the reading, a comment.
  await page.locator("#alarms tr.alarm.critical a", { hasText: "Details" }).click();
  await page.locator("#alarm-detail").waitFor();
  assert.match(await page.locator("#alarm-detail").innerText(), /Acknowledged\s+\S+ \S+ UTC by e2e-admin/);
  assert.match(await page.locator("#alarm-readings").innerText(), /12\.5 bar/);
  await hydrated(page);
  await page.locator("#comment-alarm").getByLabel("Comment").fill("relief valve checked");
  await page.locator("#comment-alarm").getByRole("button", { name: "Add comment" }).click();
  await page.locator("#alarm-comments", { hasText: "relief valve checked" }).waitFor();

  // The asset page rolls the alarms up.
  await page.goto(`${gantry.url}/assets/${assetId}`);
  await page.locator("#asset-alarms .sev.critical", { hasText: "1" }).waitFor();
  assert.deepEqual(errors, []);
});

test("the template editor adds, changes and removes attributes and rules", async () => {
  const { page, errors } = await openPage(browser.context);
  await signIn(page, gantry);
  await page.goto(`${gantry.url}/templates`);
  await hydrated(page);
  // An attribute added, then changed: the row shows it once, with the new unit.
  const attribute = page.locator("#set-attribute");
  await attribute.getByLabel("Template").fill("Boiler");
  await attribute.getByLabel("Attribute").fill("steam flow");
  await attribute.getByLabel("Unit").fill("t/h");
  await attribute.getByLabel("Hi", { exact: true }).fill("12");
  await attribute.getByRole("button", { name: "Save attribute" }).click();
  const boiler = page.locator("#templates tr", { hasText: "Boiler" });
  await boiler.getByText("steam flow t/h").waitFor();
  await attribute.getByLabel("Unit").fill("kg/s");
  await attribute.getByRole("button", { name: "Save attribute" }).click();
  await boiler.getByText("steam flow kg/s").waitFor();
  assert.equal(await boiler.getByText("steam flow t/h").count(), 0);
  const saved = await api(page, "GET", "/api/v1/templates/1");
  const steam = saved.body.template.attributes.find((a) => a.name === "steam flow");
  assert.deepEqual([steam.unit, steam.limits.hi], ["kg/s", 12], JSON.stringify(saved.body));
  await boiler.getByRole("button", { name: "Remove attribute steam flow" }).click();
  // The list is refetched (and briefly replaced) after the change: wait for it back, without the attribute.
  await page.waitForFunction(() => {
    const list = document.querySelector("#templates");
    return list !== null && !list.innerText.includes("steam flow");
  });

  const form = page.locator("#new-rule");
  await form.getByLabel("Template").fill("Boiler");
  await form.getByLabel("Attribute").fill("temperature");
  await form.getByLabel("Rule name").fill("Hot");
  await form.getByLabel("Kind").selectOption("hi");
  await form.getByLabel("Value").fill("1.5");
  await form.getByLabel("Severity").selectOption("medium");
  // A typing slip is shown beside the field it is about (once), and the field is marked invalid.
  const onDelay = form.getByLabel("On-delay (s)");
  await onDelay.fill("soon");
  await form.getByRole("button", { name: "Add rule" }).click();
  await form.locator("#rule-on-delay-error", { hasText: "whole number of seconds" }).waitFor();
  assert.equal(await onDelay.getAttribute("aria-invalid"), "true");
  assert.equal(await onDelay.getAttribute("aria-describedby"), "rule-on-delay-error");
  assert.equal(await page.getByRole("alert").filter({ hasText: "whole number of seconds" }).count(), 1);
  await onDelay.fill("");
  await form.getByRole("button", { name: "Add rule" }).click();
  await page.locator("#templates td.rules", { hasText: "temperature: Hot (medium)" }).waitFor();
  assert.equal(await onDelay.getAttribute("aria-invalid"), null, "the field is valid again");
  // A second rule by the same name is refused with the reason.
  await form.getByRole("button", { name: "Add rule" }).click();
  await page.getByRole("alert").filter({ hasText: "already has a rule named" }).waitFor();
  const rules = await api(page, "GET", "/api/v1/templates/1/rules");
  assert.equal(rules.status, 200);
  assert.ok(
    rules.body.rules.some((r) => r.attribute === "temperature" && r.rule.name === "Hot" && r.rule.condition.deadband === 1.5),
    JSON.stringify(rules.body),
  );
  // The refused slip and the refused duplicate (a conflict with the rule of that name) are the failed requests the
  // browser logs.
  assert.deepEqual(errors, [
    "Failed to load resource: the server responded with a status of 400 (Bad Request)",
    "Failed to load resource: the server responded with a status of 409 (Conflict)",
  ]);
});
