// Trend charts in a real browser: an asset page draws its trend on the canvas from real readings (checked by its
// pixels: the series' colour and the Hi zone's shade), dragging zooms into a shorter range, a reading posted while
// the page is open appears without a reload, and the Trends page keeps its series and range in the address.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { deviceFor, hydrated, launchBrowser, openPage, screenshotPath, postReadings, signIn, startGantry } from "./support.js";

let gantry;
let browser;

// As app/src/charts/draw.rs draws them: the first series' colour, and the Hi zone (amber at 14 % over white).
const SERIES = [0x1f, 0x77, 0xb4];
const HI_ZONE = [0xf5, 0x9e, 0x0b].map((c) => Math.round(c * 0.14 + 255 * 0.86));

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

/// Pixels of the drawn canvas near each colour (the canvas is same-origin, so it can be read).
async function canvasColours(page, colours) {
  return page.evaluate((colours) => {
    const canvas = document.querySelector(".trend-canvas");
    const { data } = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height);
    const counts = colours.map(() => 0);
    for (let i = 0; i < data.length; i += 4) {
      colours.forEach(([r, g, b], k) => {
        if (Math.abs(data[i] - r) <= 12 && Math.abs(data[i + 1] - g) <= 12 && Math.abs(data[i + 2] - b) <= 12) counts[k]++;
      });
    }
    return counts;
  }, colours);
}

async function drawnRange(page) {
  const canvas = page.locator(".trend-canvas");
  return {
    from: Number(await canvas.getAttribute("data-from")),
    to: Number(await canvas.getAttribute("data-to")),
    points: Number(await canvas.getAttribute("data-points")),
  };
}

test("an asset page draws its trend, zooms by dragging, follows live readings and shades the limits", async () => {
  const { page, errors } = await openPage(browser.context);
  await signIn(page, gantry);
  await hydrated(page);
  const { assetId, secret } = await deviceFor(page, "/Plant/Boiler 1");
  // The last 50 minutes, a reading every 10 s: a wave between 4 and 6 bar.
  const now = Date.now();
  await postReadings(
    gantry,
    secret,
    Array.from({ length: 300 }, (_, i) => ({ field: "pressure", value: 5 + Math.sin(i / 20), ts: now - 3_000_000 + i * 10_000 })),
  );

  await page.goto(`${gantry.url}/assets/${assetId}`);
  // Before the bundle runs, the server's picture of the same chart is there.
  const firstPaint = page.locator(".trend-first-paint");
  assert.match(await firstPaint.getAttribute("src"), /^\/api\/v1\/charts\/trend\.svg\?s=%2FPlant%2FBoiler%201%7Cpressure&range=1h/);
  await hydrated(page);
  await page.locator(".trend-canvas:not(.hidden)").waitFor();
  await page.waitForFunction(() => Number(document.querySelector(".trend-canvas")?.dataset.points) >= 300);
  assert.ok(await firstPaint.isHidden(), "the canvas replaces the first paint");
  const [seriesPixels, zonePixels] = await canvasColours(page, [SERIES, HI_ZONE]);
  assert.ok(seriesPixels > 400, `the series is drawn (${seriesPixels} pixels in its colour)`);
  assert.ok(zonePixels > 2000, `the Hi zone is shaded (${zonePixels} pixels)`);
  assert.match(await page.locator(".trend-status").innerText(), /Live · raw readings/);
  await page.screenshot({ path: screenshotPath("trend-asset.png") });

  // A reading posted while the page is open appears without a reload (and without refetching the range).
  await page.evaluate(() => (window.__samePage = true));
  const before = await drawnRange(page);
  await postReadings(gantry, secret, [{ field: "pressure", value: 9.5 }]);
  await page.waitForFunction(
    (points) => Number(document.querySelector(".trend-canvas").dataset.points) === points + 1,
    before.points,
    { timeout: 10_000 },
  );
  assert.equal(await page.evaluate(() => window.__samePage), true);

  // Hovering reads out the time and the value.
  const box = await page.locator(".trend-canvas").boundingBox();
  await page.mouse.move(box.x + box.width * 0.5, box.y + box.height * 0.5);
  assert.match(await page.locator(".trend-readout").innerText(), /\d{4}-\d\d-\d\d \d\d:\d\d:\d\d · Boiler 1 · pressure: \d+\.\d+ bar/);

  // Dragging across the middle fifth zooms into about a fifth of the hour; live mode ends.
  const full = await drawnRange(page);
  await page.mouse.move(box.x + box.width * 0.4, box.y + box.height * 0.5);
  await page.mouse.down();
  await page.mouse.move(box.x + box.width * 0.5, box.y + box.height * 0.5, { steps: 5 });
  await page.mouse.move(box.x + box.width * 0.6, box.y + box.height * 0.5, { steps: 5 });
  await page.mouse.up();
  await page.waitForFunction(
    (span) => {
      const c = document.querySelector(".trend-canvas").dataset;
      return Number(c.to) - Number(c.from) < span / 3;
    },
    full.to - full.from,
  );
  const zoomed = await drawnRange(page);
  assert.ok(zoomed.from > full.from && zoomed.to < full.to, JSON.stringify({ full, zoomed }));
  assert.equal(await page.locator('.trend-toolbar [data-range="1h"]').getAttribute("aria-pressed"), "false");
  assert.doesNotMatch(await page.locator(".trend-status").innerText(), /Live/);
  // Reset returns to the last hour, live.
  await page.locator(".trend-toolbar [data-reset]").click();
  await page.locator('.trend-toolbar [data-range="1h"][aria-pressed="true"]').waitFor();
  await page.waitForFunction((span) => {
    const c = document.querySelector(".trend-canvas").dataset;
    return Number(c.to) - Number(c.from) >= span;
  }, 3_600_000);
  assert.deepEqual(errors, []);
});

test("the Trends page keeps its series and range in the address", async () => {
  const { page, errors } = await openPage(browser.context);
  await signIn(page, gantry);
  await page.goto(`${gantry.url}/trends`);
  await hydrated(page);
  const form = page.locator("#trend-add");
  await form.getByLabel("Asset path").fill("/Plant/Boiler 1");
  await form.getByLabel("Attribute").fill("pressure");
  await form.getByRole("button", { name: "Add to trend" }).click();
  await page.waitForURL(/\/trends\?s=%2FPlant%2FBoiler%201%7Cpressure&range=24h$/);
  await page.waitForFunction(() => Number(document.querySelector(".trend-canvas:not(.hidden)")?.dataset.points) > 0);
  await page.locator('.trend-toolbar [data-range="7d"]').click();
  await page.waitForURL(/range=7d$/);

  // The address alone brings the same trend back.
  await page.goto(page.url());
  await hydrated(page);
  await page.locator('.trend-toolbar [data-range="7d"][aria-pressed="true"]').waitFor();
  await page.getByRole("listitem").filter({ hasText: "/Plant/Boiler 1|pressure" }).waitFor();
  await page.waitForFunction(() => Number(document.querySelector(".trend-canvas:not(.hidden)")?.dataset.points) > 0);
  // A zoom writes its instants into the address.
  const box = await page.locator(".trend-canvas").boundingBox();
  await page.mouse.move(box.x + box.width * 0.7, box.y + box.height * 0.5);
  await page.mouse.down();
  await page.mouse.move(box.x + box.width * 0.9, box.y + box.height * 0.5, { steps: 5 });
  await page.mouse.up();
  await page.waitForURL(/&from=\d+&to=\d+$/);
  const url = new URL(page.url());
  assert.ok(Number(url.searchParams.get("to")) - Number(url.searchParams.get("from")) < 7 * 86_400_000 / 3);
  await page.screenshot({ path: screenshotPath("trends-page.png") });
  assert.deepEqual(errors, []);
});
