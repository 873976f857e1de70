// Devices in a real browser: add one to an asset, issue a token (shown once), see it come online when a reading
// arrives through the ingest endpoint, on the devices page and on the asset's page.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { hydrated, launchBrowser, openPage, screenshotPath, signIn, startGantry } from "./support.js";

let gantry;
let browser;

before(async () => {
  gantry = await startGantry();
  browser = await launchBrowser();
  // The model comes from a file, as an engineer would bring it.
  const model = join(gantry.dataDir, "model.yaml");
  writeFileSync(
    model,
    "schema_version: 1\ntemplates:\n- name: Pump\n  attributes:\n  - name: flow\n    value_type: float\n    unit: m³/h\n" +
      "assets:\n- path: /Site\n- path: /Site/Pump 7\n  template: Pump\n",
  );
  const imported = spawnSync(gantry.bin, ["model", "import", model, "--data-dir", gantry.dataDir], { encoding: "utf8" });
  assert.equal(imported.status, 0, imported.stderr);
});

after(async () => {
  await browser?.close();
  await gantry?.stop();
});

test("add a device, issue a token, see it come online, edit its field map, revoke the token", async () => {
  const { page, errors } = await openPage(browser.context);
  await signIn(page, gantry);
  await page.goto(`${gantry.url}/devices`);
  await hydrated(page);
  const form = page.locator("#new-device");
  await form.getByLabel("Name").fill("pump-7");
  // A path to nothing is refused beside the path, which is marked invalid; the name is fine.
  await form.getByLabel("Asset path").fill("/Site/Pump 77");
  await form.getByRole("button", { name: "Add device" }).click();
  await form.locator("#new-device-path-error").waitFor();
  assert.equal(await form.getByLabel("Asset path").getAttribute("aria-invalid"), "true");
  assert.equal(await form.getByLabel("Name").getAttribute("aria-invalid"), null);
  errors.length = 0; // the browser logs the refused request
  await form.getByLabel("Asset path").fill("/Site/Pump 7");
  await form.getByRole("button", { name: "Add device" }).click();
  const row = page.locator('#devices tr[data-device="pump-7"]');
  await row.waitFor();
  assert.match(await row.innerText(), /\/Site\/Pump 7[\s\S]*never seen/);

  await row.getByRole("button", { name: "New token" }).click();
  const secret = (await page.locator("#new-device-token code").innerText()).trim();
  assert.match(secret, /^gdev_[0-9a-f]{64}$/);

  const sent = await fetch(`${gantry.url}/api/v1/ingest`, {
    method: "POST",
    headers: { authorization: `Bearer ${secret}`, "content-type": "application/json" },
    body: JSON.stringify({ readings: [{ field: "flow", value: 42.5 }] }),
  });
  assert.equal(sent.status, 200, await sent.text());

  await page.goto(`${gantry.url}/devices`);
  await hydrated(page);
  await page.locator('#devices tr[data-device="pump-7"] .badge.online').waitFor();
  await page.locator("#devices a", { hasText: "/Site/Pump 7" }).click();
  await page.locator("#asset-devices .badge.online").waitFor();
  assert.match(await page.locator("#asset-devices").innerText(), /pump-7\s+online/);
  await page.screenshot({ path: screenshotPath("devices.png") });

  // Edit the field map in the page: a malformed one is refused beside the field map, in the device's row.
  await page.goto(`${gantry.url}/devices`);
  await hydrated(page);
  const edited = page.locator('#devices tr[data-device="pump-7"]');
  await edited.locator("summary", { hasText: "Edit" }).click();
  await edited.getByLabel("Field map").fill("q");
  await edited.getByRole("button", { name: "Save" }).click();
  await edited.locator(".field-error").waitFor();
  assert.match(await edited.locator(".field-error").innerText(), /field/);
  assert.equal(await edited.getByLabel("Field map").getAttribute("aria-invalid"), "true");
  assert.equal(await edited.getByLabel("Asset path").getAttribute("aria-invalid"), null);
  errors.length = 0; // the browser logs the refused request
  // Then field `q` goes to `flow`.
  await edited.getByLabel("Field map").fill("q=flow");
  await edited.getByRole("button", { name: "Save" }).click();
  await page.waitForFunction(
    () => document.querySelector('#devices tr[data-device="pump-7"] input[name="field_map"]')?.value === "q=flow",
  );
  const ingest = (field) =>
    fetch(`${gantry.url}/api/v1/ingest`, {
      method: "POST",
      headers: { authorization: `Bearer ${secret}`, "content-type": "application/json" },
      body: JSON.stringify({ readings: [{ field, value: 1.5 }] }),
    });
  assert.equal((await ingest("q")).status, 200, "the mapped field is accepted");

  // Revoke the token in the page: the device's next requests are refused.
  if ((await edited.locator("details").getAttribute("open")) === null) {
    await edited.locator("summary", { hasText: "Edit" }).click();
  }
  await edited.getByRole("button", { name: "Revoke" }).click();
  await edited.locator(".device-tokens .badge", { hasText: "revoked" }).waitFor();
  // Revocation reaches the ingest path within the token cache's lifetime (5 s).
  let status = 200;
  for (let i = 0; i < 40 && status !== 401; i++) {
    status = (await ingest("q")).status;
    if (status !== 401) await new Promise((resolve) => setTimeout(resolve, 250));
  }
  assert.equal(status, 401, "a revoked token no longer writes");
  assert.deepEqual(errors, [], "the console stayed clean");
});
