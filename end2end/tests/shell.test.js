// The UI shell in a real browser: the page loads, hydrates (client-side interactions change the page without a
// reload), navigates client-side, folds its navigation at phone width, and logs no console errors.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { hydrated, launchBrowser, openPage, screenshotPath, signIn, startGantry } from "./support.js";

let gantry;
let browser;

before(async () => {
  gantry = await startGantry();
  browser = await launchBrowser();
  // The browser context keeps the session cookie for every test in this file.
  const { page } = await openPage(browser.context);
  await signIn(page, gantry);
  await page.close();
});

after(async () => {
  await browser?.close();
  await gantry?.stop();
});

test("the landing page hydrates and refreshes its status without a reload", async () => {
  const { page, errors } = await openPage(browser.context);
  await page.goto(gantry.url);
  await page.getByRole("heading", { name: "Plant overview" }).waitFor();
  // The status card was rendered on the server.
  const status = page.locator("dl.status");
  const firstCheck = await status.getAttribute("data-checked-at");
  assert.ok(firstCheck, "the server-rendered status has a timestamp");
  assert.match(await page.locator("dl.status").innerText(), /sqlite \(reachable\)/);
  // Icons are inline SVG: a machine without an emoji font would draw a glyph as an empty box.
  await page.locator("#alarm-bell svg").waitFor();
  assert.equal(await page.locator("header.site-header .brand svg").count(), 1, "the brand mark is an SVG");
  assert.doesNotMatch(
    await page.locator("header.site-header").innerText(),
    /[\u{1F300}-\u{1FAFF}\u{2580}-\u{259F}\u{2600}-\u{27BF}]/u,
    "no emoji or symbol glyphs stand in for icons",
  );

  // A marker on window survives only if the page is never reloaded.
  await page.evaluate(() => {
    window.__gantryMarker = "still here";
  });
  await hydrated(page);
  // Timestamps are milliseconds: make sure the next one differs.
  await page.waitForTimeout(5);
  await page.getByRole("button", { name: "Refresh status" }).click();
  await page.waitForFunction(
    (before) => {
      const value = document.querySelector("dl.status")?.getAttribute("data-checked-at");
      return value && value !== before;
    },
    firstCheck,
    { timeout: 10_000 },
  );
  const refreshed = await status.getAttribute("data-checked-at");
  assert.ok(refreshed && refreshed !== firstCheck, "clicking Refresh status fetched a new status");
  assert.equal(await page.evaluate(() => window.__gantryMarker), "still here", "the page was reloaded");

  await page.screenshot({ path: screenshotPath("home.png"), fullPage: true });
  assert.deepEqual(errors, [], "the console has errors");
  await page.close();
});

test("navigation between sections happens in the browser", async () => {
  const { page, errors } = await openPage(browser.context);
  await page.goto(gantry.url);
  await page.getByRole("heading", { name: "Plant overview" }).waitFor();
  await page.evaluate(() => {
    window.__gantryMarker = "no reload";
  });
  await hydrated(page);
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Alarms" }).click();
  await page.getByRole("heading", { name: "Alarms", exact: true }).waitFor();
  assert.equal(await page.evaluate(() => window.__gantryMarker), "no reload", "navigation reloaded the page");
  assert.equal(new URL(page.url()).pathname, "/alarms");
  assert.equal(
    await page.getByRole("link", { name: "Alarms", exact: true }).getAttribute("aria-current"),
    "page",
  );
  assert.match(await page.title(), /Alarms · Gantry/);
  assert.deepEqual(errors, [], "the console has errors");
  await page.close();
});

test("at phone width the navigation folds behind a menu button", async () => {
  const { page, errors } = await openPage(browser.context);
  await page.setViewportSize({ width: 390, height: 800 });
  await page.goto(gantry.url);
  const menu = page.getByRole("button", { name: "Menu" });
  const nav = page.locator("#site-nav");
  await menu.waitFor();
  assert.equal(await nav.isVisible(), false, "the navigation starts folded");
  await hydrated(page);
  await menu.click();
  assert.equal(await menu.getAttribute("aria-expanded"), "true", "the menu button did not open the navigation");
  assert.equal(await nav.isVisible(), true);
  await page.screenshot({ path: screenshotPath("phone-menu.png") });
  // Following a link folds the navigation again.
  await nav.getByRole("link", { name: "Trends" }).click();
  await page.getByRole("heading", { name: "Trends" }).waitFor();
  assert.equal(await menu.getAttribute("aria-expanded"), "false");
  assert.equal(await nav.isVisible(), false);
  assert.deepEqual(errors, [], "the console has errors");
  await page.close();
});

test("the asset explorer walks the tree and shows inherited attributes", async () => {
  const { page, errors } = await openPage(browser.context);
  await page.goto(`${gantry.url}/assets`);
  await hydrated(page);
  // Build a small model through the REST API from the signed-in page, as Gantry's own scripts would.
  const api = (method, path, body) =>
    page.evaluate(
      async ([method, path, body]) => {
        const response = await fetch(path, {
          method,
          headers: { "content-type": "application/json", "x-gantry-csrf": "1" },
          body: JSON.stringify(body),
        });
        return [response.status, await response.json()];
      },
      [method, path, body],
    );
  let [status] = await api("POST", "/api/v1/templates", {
    name: "Machine",
    attributes: [{ name: "speed", value_type: "float", unit: "rpm", limits: { hi: 3000 } }],
  });
  assert.equal(status, 201);
  [status] = await api("POST", "/api/v1/templates", {
    name: "Pump",
    base: "Machine",
    attributes: [{ name: "flow", value_type: "float", unit: "m³/h" }],
  });
  assert.equal(status, 201);
  const [, site] = await api("POST", "/api/v1/assets", { name: "Site A" });
  [status] = await api("POST", "/api/v1/assets", { name: "Pump 1", parent_id: site.asset.id, template: "Pump" });
  assert.equal(status, 201);

  await page.reload();
  await hydrated(page);
  // The tree by keyboard: → expands Site A (loading its children then), ↓ moves into it, ← goes back to the
  // parent and then collapses it, Enter opens the asset.
  const tree = page.getByRole("tree", { name: "Assets" });
  const siteItem = tree.getByRole("treeitem", { name: /Site A/ });
  await siteItem.focus();
  await page.keyboard.press("ArrowRight");
  const pump = tree.getByRole("treeitem", { name: /Pump 1/ });
  await pump.waitFor();
  assert.equal(await siteItem.getAttribute("aria-expanded"), "true");
  const focused = () => page.evaluate(() => document.activeElement.querySelector(":scope > .node > a")?.textContent);
  await page.keyboard.press("ArrowDown");
  assert.equal(await focused(), "Pump 1");
  await page.keyboard.press("ArrowLeft");
  assert.equal(await focused(), "Site A");
  await page.keyboard.press("ArrowLeft");
  assert.equal(await siteItem.getAttribute("aria-expanded"), "false");
  assert.equal(await pump.count(), 0, "a collapsed branch leaves the page");
  await page.keyboard.press("ArrowRight");
  await pump.waitFor();
  await page.keyboard.press("ArrowDown");
  await page.keyboard.press("Enter");
  await page.getByRole("heading", { name: "Pump 1" }).waitFor();
  await page.goto(`${gantry.url}/assets`);
  await hydrated(page);
  await page.getByRole("link", { name: "Site A" }).click();
  await page.getByRole("heading", { name: "Site A" }).waitFor();
  await page.getByRole("link", { name: "Pump 1" }).click();
  await page.getByRole("heading", { name: "Pump 1" }).waitFor();
  const attributes = page.locator("#attributes");
  assert.match(await attributes.innerText(), /speed\s+rpm/);
  assert.match(await attributes.innerText(), /Machine/, "the inherited attribute names its template");
  assert.match(await attributes.innerText(), /flow\s+m³\/h/);
  await page.screenshot({ path: screenshotPath("asset.png") });
  await page.getByRole("navigation", { name: "Breadcrumbs" }).getByRole("link", { name: "Site A" }).click();
  await page.getByRole("heading", { name: "Site A" }).waitFor();
  assert.deepEqual(errors, [], "the console has errors");
  await page.close();
});
