// Regenerates the README's screenshot (docs/screenshot.png) from the real product: a release Gantry with the demo
// plant, signed in, on the demo's first dashboard once its trends are drawn. Run by scripts/screenshot.
import { api, hydrated, launchBrowser, openPage, signIn, startGantry } from "./tests/support.js";

const output = new URL("../docs/screenshot.png", import.meta.url).pathname;
const gantry = await startGantry({ demo: true });
const browser = await launchBrowser();
try {
  const { page, errors } = await openPage(browser.context);
  await page.setViewportSize({ width: 1400, height: 900 });
  await signIn(page, gantry);
  const dashboards = await api(page, "GET", "/api/v1/dashboards");
  const dashboard = dashboards.body.dashboards[0];
  if (!dashboard) throw new Error("the demo plant has no dashboard");
  await page.goto(`${gantry.url}/dashboards/${dashboard.id}`);
  await hydrated(page);
  // Every trend on the dashboard has drawn the demo's back-filled readings.
  await page.waitForFunction(
    () => {
      const canvases = [...document.querySelectorAll(".trend-canvas")];
      return canvases.length > 0 && canvases.every((c) => Number(c.dataset.points) > 0);
    },
    null,
    { timeout: 30_000 },
  );
  await page.screenshot({ path: output });
  if (errors.length > 0) throw new Error(`the page logged errors: ${errors.join("\n")}`);
  console.log(`screenshot of "${dashboard.name}" written to ${output}`);
} finally {
  await browser.close();
  await gantry.stop();
}
