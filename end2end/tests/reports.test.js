// Reports in a real browser: define a daily report of the boilers (a table, a trend and the alarm summary; a bad
// time zone refused beside its field), preview it with yesterday's averages and trend, download it as PDF, CSV and
// XLSX, and run it in the background.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { deviceFor, hydrated, launchBrowser, openPage, postReadings, signIn, startGantry } from "./support.js";

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
assets:
- path: /Plant
- path: /Plant/Boiler 1
  template: Boiler
- path: /Plant/Boiler 2
  template: Boiler
`,
  );
});

after(async () => {
  await browser?.close();
  await gantry?.stop();
});

test("define a daily report, preview it and download it as PDF, CSV and XLSX", async () => {
  const { page, errors } = await openPage(browser.context);
  await signIn(page, gantry);
  await hydrated(page);
  // Yesterday (UTC), 06:00 to 07:00: Boiler 1 at 4 and 6 bar, Boiler 2 at 2 bar.
  const yesterday = (Math.floor(Date.now() / 86_400_000) - 1) * 86_400_000 + 6 * 3_600_000;
  for (const [path, values] of [["/Plant/Boiler 1", [4, 6]], ["/Plant/Boiler 2", [2]]]) {
    const { secret } = await deviceFor(page, path, `meter-${path.slice(-1)}`);
    await postReadings(gantry, secret, values.map((value, i) => ({ field: "pressure", value, ts: yesterday + i * 1_800_000 })));
  }

  await page.goto(`${gantry.url}/reports`);
  await hydrated(page);
  await page.getByText("No reports yet").waitFor();
  const form = page.locator("#new-report");
  await form.getByLabel("Name").fill("Boilers daily");
  await form.getByLabel("Assets under").fill("/Plant");
  await form.getByLabel("Only of template").fill("Boiler");
  await form.getByLabel("Attributes").fill("pressure");
  await form.getByLabel("Trend of").fill("/Plant/Boiler 1|pressure\n/Plant/Boiler 2|pressure");
  assert.equal(await form.getByLabel("The alarm summary").isChecked(), true);
  // A zone Gantry does not know is refused beside the zone, which is marked invalid.
  await form.getByLabel("Time zone").fill("Mars/Olympus");
  await form.getByRole("button", { name: "Create report" }).click();
  await form.locator("#report-zone-error").waitFor();
  assert.match(await form.locator("#report-zone-error").innerText(), /not a time zone/);
  assert.equal(await form.getByLabel("Time zone").getAttribute("aria-invalid"), "true");
  assert.equal(await form.getByLabel("Name").getAttribute("aria-invalid"), null);
  errors.length = 0; // the browser logs the refused request
  await form.getByLabel("Time zone").fill("UTC");
  await form.getByRole("button", { name: "Create report" }).click();
  const row = page.locator('#reports tr[data-report="Boilers daily"]');
  await row.waitFor();
  assert.match(await row.innerText(), /\/Plant \(Boiler\)\s+the last day\s+UTC/);

  // The preview: a row per boiler with yesterday's average, minimum and maximum.
  await row.getByRole("link", { name: "Boilers daily" }).click();
  const table = page.locator(".report-table table.report");
  await table.waitFor();
  assert.equal(await page.locator("h1").innerText(), "Boilers daily");
  const cells = await table.locator("tbody tr").evaluateAll((rows) =>
    rows.map((row) => [...row.querySelectorAll("td")].map((td) => td.innerText)),
  );
  assert.deepEqual(cells.map((c) => [c[0], ...c.slice(3)]), [
    ["/Plant/Boiler 1", "5.00", "4.00", "6.00"],
    ["/Plant/Boiler 2", "2.00", "2.00", "2.00"],
  ]);
  assert.match(await table.locator("thead").innerText(), /pressure average \(bar\)/);
  // The trend is drawn over the report's range with both boilers' readings; the alarm summary has its figures.
  await page.locator(".report-trend canvas[data-points]").waitFor();
  assert.equal(await page.locator(".report-trend canvas").getAttribute("data-points"), "3");
  assert.match(await page.locator("#alarms-raised").innerText(), /^0 \(0 critical, 0 high, 0 medium, 0 low\)$/);

  // The PDF download.
  const [pdf] = await Promise.all([
    page.waitForEvent("download"),
    page.getByRole("link", { name: "Download PDF" }).click(),
  ]);
  assert.equal(pdf.suggestedFilename(), "Boilers_daily.pdf");
  assert.equal((await readFile(await pdf.path())).subarray(0, 5).toString(), "%PDF-");

  // A run in the background: it shows in the history, done, with its files.
  await page.getByText("No runs yet").waitFor();
  await page.getByRole("button", { name: "Run in the background" }).click();
  const run = page.locator('#runs tr[data-status="done"]');
  await run.waitFor({ timeout: 20_000 });
  const [runPdf] = await Promise.all([
    page.waitForEvent("download"),
    run.getByRole("link", { name: "PDF" }).click(),
  ]);
  assert.equal(runPdf.suggestedFilename(), "Boilers_daily.pdf");
  assert.equal((await readFile(await runPdf.path())).subarray(0, 5).toString(), "%PDF-");

  // The CSV download: the same figures, times with their offset.
  const [download] = await Promise.all([
    page.waitForEvent("download"),
    page.getByRole("link", { name: "Download CSV" }).click(),
  ]);
  assert.equal(download.suggestedFilename(), "Boilers_daily.csv");
  const csv = await readFile(await download.path(), "utf8");
  const lines = csv.trim().split("\r\n");
  assert.equal(lines[0], "asset,from,to,pressure average (bar),pressure min (bar),pressure max (bar)");
  assert.match(lines[1], /^\/Plant\/Boiler 1,\d{4}-\d\d-\d\dT00:00:00\+00:00,\d{4}-\d\d-\d\dT00:00:00\+00:00,5,4,6$/);
  // And as a workbook (its contents are read back in the API tests).
  const [workbook] = await Promise.all([
    page.waitForEvent("download"),
    page.getByRole("link", { name: "Download XLSX" }).click(),
  ]);
  assert.equal(workbook.suggestedFilename(), "Boilers_daily.xlsx");
  const bytes = await readFile(await workbook.path());
  assert.equal(bytes.subarray(0, 2).toString(), "PK", "a zip archive, as XLSX files are");
  assert.deepEqual(errors, []);
});
