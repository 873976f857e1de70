// Search in a real browser: the header box finds a misspelt name and Enter opens it; on the Search page a facet
// narrows the query, an attribute condition returns only the assets over the limit, and a user with a narrow
// grant never sees (nor counts) assets outside it; a rename is found by its new name within a second.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { api, deviceFor, hydrated, launchBrowser, openPage, postReadings, screenshotPath, signIn, startGantry } from "./support.js";

let gantry;
let browser;

before(async () => {
  gantry = await startGantry();
  browser = await launchBrowser();
  gantry.importModel(
    "schema_version: 1\ntemplates:\n- name: Pump\n  categories: [utilities]\n  attributes:\n" +
      "  - name: outlet temperature\n    value_type: float\n    unit: °C\n" +
      "assets:\n- path: /North Plant\n- path: /North Plant/Line 2\n- path: /North Plant/Line 2/Pump 7\n  template: Pump\n" +
      "- path: /South Plant\n- path: /South Plant/Pump 9\n  template: Pump\n- path: /South Plant/Compressor 1\n",
  );
});

after(async () => {
  await browser?.close();
  await gantry?.stop();
});

/// Reloads `url` until `selector` shows `text` (the index takes new values within a second), for at most 5 s.
async function reloadUntil(page, url, selector, predicate) {
  const started = Date.now();
  for (;;) {
    await page.goto(url);
    await hydrated(page);
    const text = await page.locator(selector).innerText();
    if (predicate(text)) return text;
    if (Date.now() - started > 5_000) throw new Error(`${url}: ${selector} still shows ${text}`);
    await page.waitForTimeout(100);
  }
}

test("the header box suggests a misspelt name; Enter opens it; / focuses the box", async () => {
  const { page, errors } = await openPage(browser.context);
  await signIn(page, gantry);
  await page.locator("main h1").click();
  await page.keyboard.press("/");
  const box = page.getByRole("combobox", { name: "Search" });
  assert.ok(await box.evaluate((input) => document.activeElement === input), "/ did not focus the search box");
  await page.keyboard.type("compresor");
  const suggestion = page.locator("#search-suggestions [role=option]", { hasText: "Compressor 1" });
  await suggestion.waitFor();
  assert.equal(await suggestion.getAttribute("aria-selected"), "true", "the first suggestion is the one Enter opens");
  assert.equal(await suggestion.locator("mark").innerText(), "Compressor");
  await page.screenshot({ path: screenshotPath("search-suggestions.png") });
  await page.keyboard.press("Enter");
  await page.waitForURL(/\/assets\/\d+$/);
  await page.getByRole("heading", { name: "Compressor 1" }).waitFor();

  // Arrows move through the suggestions; the last one opens the Search page with the query.
  await box.fill("pump");
  await page.locator("#search-suggestions [role=option]", { hasText: "Pump 9" }).first().waitFor();
  const options = await page.locator("#search-suggestions [role=option]").count();
  for (let i = 0; i < options - 1; i++) await page.keyboard.press("ArrowDown");
  await page.keyboard.press("Enter");
  await page.waitForURL(/\/search\?q=pump$/);
  await page.locator("#search-total").waitFor();
  assert.deepEqual(errors, []);
});

test("the Search page: facets narrow, a condition finds what is over the limit, the query stays in the URL", async () => {
  const { page, errors } = await openPage(browser.context);
  await signIn(page, gantry);
  const seven = await deviceFor(page, "/North Plant/Line 2/Pump 7", "pump-7");
  const nine = await deviceFor(page, "/South Plant/Pump 9", "pump-9");
  await postReadings(gantry, seven.secret, [{ field: "outlet temperature", value: 104.5 }]);
  await postReadings(gantry, nine.secret, [{ field: "outlet temperature", value: 80 }]);

  await page.goto(`${gantry.url}/search`);
  await hydrated(page);
  await page.getByLabel("Search", { exact: true }).last().fill("pump");
  await page.locator("#search-form").getByRole("button", { name: "Search" }).click();
  await page.waitForURL(/\/search\?q=pump$/);
  await page.locator("#search-total").waitFor();
  const everything = await page.locator("#search-total").innerText();
  // Assets, their devices (by path) and the template: the kind facet narrows to assets.
  assert.ok(await page.locator('.search-results[data-kind="device"]').count(), "devices are results too");
  await page.locator('.facet[data-facet="kind"] a', { hasText: "asset" }).click();
  await page.waitForURL(/kind%3Aasset/);
  await page.locator('.search-results[data-kind="asset"]').waitFor();
  assert.equal(await page.locator('.search-results[data-kind="device"]').count(), 0, "the facet did not narrow");
  assert.notEqual(await page.locator("#search-total").innerText(), everything);
  assert.equal(await page.getByLabel("Search", { exact: true }).last().inputValue(), "pump kind:asset");
  assert.ok(await page.locator(".search-hit mark").count(), "the matched words are highlighted");

  const hot = `${gantry.url}/search?q=${encodeURIComponent('"outlet temperature" > 100 °C')}`;
  await reloadUntil(page, hot, "#search-total", (text) => text.startsWith("1 found"));
  const found = await page.locator(".search-hit a").allInnerTexts();
  assert.deepEqual(found, ["Pump 7"]);
  await page.screenshot({ path: screenshotPath("search.png") });
  assert.deepEqual(errors, []);
});

test("a user granted the south plant never sees nor counts the north; a rename is found within a second", async () => {
  const { page } = await openPage(browser.context);
  await signIn(page, gantry);
  const south = await api(page, "GET", `/api/v1/assets?path=${encodeURIComponent("/South Plant")}`);
  const viewer = { username: "south-viewer", password: `south viewer ${Date.now()} password` };
  const created = await api(page, "POST", "/api/v1/users", {
    ...viewer,
    display_name: "South viewer",
    role: "viewer",
    grants: [south.body.asset.id],
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));

  // The viewer signs in in a browser of their own.
  const second = await launchBrowser();
  after(() => second.close());
  const { page: narrow, errors } = await openPage(second.context);
  await signIn(narrow, gantry, viewer);
  await narrow.goto(`${gantry.url}/search?q=${encodeURIComponent("pump kind:asset")}`);
  await hydrated(narrow);
  assert.deepEqual(await narrow.locator(".search-hit a").allInnerTexts(), ["Pump 9"]);
  assert.match(await narrow.locator("#search-total").innerText(), /^1 found/);
  assert.equal(
    await narrow.locator('.facet[data-facet="template"] a', { hasText: "Pump" }).locator(".count").innerText(),
    "1",
  );

  // The engineer renames Pump 9; the viewer's header box finds it by its new name within a second.
  const pump9 = await api(page, "GET", `/api/v1/assets?path=${encodeURIComponent("/South Plant/Pump 9")}`);
  const renamed = await api(page, "PATCH", `/api/v1/assets/${pump9.body.asset.id}`, { name: "Booster 9" });
  assert.equal(renamed.status, 200, JSON.stringify(renamed.body));
  const started = Date.now();
  for (;;) {
    const found = await api(narrow, "GET", "/api/v1/search?q=booster%20kind%3Aasset");
    if (found.body.total === 1) break;
    assert.ok(Date.now() - started < 1_000, `the rename was not found within a second: ${JSON.stringify(found.body)}`);
    await narrow.waitForTimeout(25);
  }
  const box = narrow.getByRole("combobox", { name: "Search" });
  await box.fill("booster");
  await narrow.locator("#search-suggestions [role=option]", { hasText: "Booster 9" }).first().waitFor();
  assert.deepEqual(errors, []);
});
