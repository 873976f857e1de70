// The plant model in a real browser, as the "done when" asks: create a template (and one deriving from
// it), an asset from it, see the inherited attributes, move it, export it.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { hydrated, launchBrowser, openPage, screenshotPath, signIn, startGantry } from "./support.js";

let gantry;
let browser;

before(async () => {
  gantry = await startGantry();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await gantry?.stop();
});

async function createTemplate(page, { name, base = "", attribute, unit, hi = "" }) {
  const form = page.locator("#new-template");
  await form.getByLabel("Name").fill(name);
  await form.getByLabel("Base template").fill(base);
  await form.getByLabel("Attribute").fill(attribute);
  await form.getByLabel("Unit").fill(unit);
  await form.getByLabel("Hi").fill(hi);
  await form.getByRole("button", { name: "Create template" }).click();
  await page.locator("#templates tr").filter({ hasText: name }).first().waitFor();
}

test("create a template and an asset from it, see inherited attributes, move, export, rename and delete it", async () => {
  const { page, errors } = await openPage(browser.context);
  await signIn(page, gantry);
  await page.goto(`${gantry.url}/templates`);
  await hydrated(page);
  await createTemplate(page, { name: "Rotating machine", attribute: "speed", unit: "rpm", hi: "3000" });
  await createTemplate(page, { name: "Feed pump", base: "Rotating machine", attribute: "flow", unit: "m³/h" });
  const derived = page.locator("#templates tr").filter({ hasText: "Feed pump" });
  assert.equal(await derived.locator("em.attr").innerText(), "speed rpm", "the inherited attribute is marked");

  // Two sites, and a pump from the derived template under the first.
  await page.goto(`${gantry.url}/assets`);
  await hydrated(page);
  for (const site of ["Plant", "Second plant"]) {
    await page.goto(`${gantry.url}/assets`);
    await hydrated(page);
    await page.locator("#new-asset").getByLabel("Name").fill(site);
    await page.getByRole("button", { name: "Add at the top" }).click();
    await page.getByRole("heading", { name: site, exact: true }).waitFor();
  }
  await page.goto(`${gantry.url}/assets`);
  await hydrated(page);
  await page.getByRole("link", { name: "Plant", exact: true }).click();
  await page.getByRole("heading", { name: "Plant", exact: true }).waitFor();
  const form = page.locator("#new-asset");
  await form.getByLabel("Name").fill("Pump A");
  await form.getByLabel("Template").selectOption("Feed pump");
  await page.getByRole("button", { name: "Add below" }).click();
  await page.getByRole("heading", { name: "Pump A" }).waitFor();
  const attributes = await page.locator("#attributes").innerText();
  assert.match(attributes, /speed\s+rpm[\s\S]*Rotating machine/, "speed comes from the base template");
  assert.match(attributes, /flow\s+m³\/h[\s\S]*Feed pump/);

  // Move it to the second site; the page follows.
  await hydrated(page);
  await page.locator("#move-asset").getByLabel(/New parent/).fill("/Second plant");
  await page.getByRole("button", { name: "Move" }).click();
  await page.waitForFunction(() => document.body.innerText.includes("/Second plant/Pump A"));
  const crumbs = page.getByRole("navigation", { name: "Breadcrumbs" });
  assert.match(await crumbs.innerText(), /Second plant/);
  await page.screenshot({ path: screenshotPath("model.png"), fullPage: true });

  // Export the subtree through the page's link.
  const href = await page.getByRole("link", { name: "Export this subtree as a model file" }).getAttribute("href");
  const exported = await page.evaluate(async (href) => (await fetch(href)).text(), href);
  assert.match(exported, /^schema_version: 1\n/);
  assert.match(exported, /path: \/Second plant\/Pump A/);
  assert.match(exported, /name: Feed pump/);

  // Rename it, then delete it (after the browser's confirmation): the page goes back to its parent.
  await hydrated(page);
  await page.locator("#rename-asset").getByLabel("New name").fill("Pump B");
  await page.getByRole("button", { name: "Rename" }).click();
  await page.waitForFunction(() => document.body.innerText.includes("/Second plant/Pump B"));
  await page.getByRole("heading", { name: "Pump B" }).waitFor();
  await hydrated(page);
  page.once("dialog", (dialog) => dialog.accept());
  await page.getByRole("button", { name: "Delete asset" }).click();
  await page.getByRole("heading", { name: "Second plant", exact: true }).waitFor();
  assert.doesNotMatch(await page.locator("main").innerText(), /Pump B/);
  assert.deepEqual(errors, [], "the console has errors");
  await page.close();
});
