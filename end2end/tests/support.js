// Starts a real Gantry (the release build named by GANTRY_BIN) on a free port with a fresh data dir, and a
// headless Chromium from Debian, started with the flags this closed network needs.
import { spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { chromium } from "playwright-core";

export const ARTIFACTS = new URL("../artifacts/", import.meta.url).pathname;

/// `demo: true` starts it with the demo plant (`gantry serve --demo`).
export async function startGantry({ demo = false } = {}) {
  const bin = process.env.GANTRY_BIN;
  if (!bin) throw new Error("GANTRY_BIN must name the gantry binary (scripts/test sets it)");
  const dataDir = mkdtempSync(join(tmpdir(), "gantry-e2e-"));
  const env = { ...process.env, GANTRY__SERVER__SHUTDOWN_DRAIN_SECS: "0" };
  if (process.env.GANTRY_SITE_DIR) env.GANTRY__SERVER__SITE_DIR = process.env.GANTRY_SITE_DIR;
  // The administrator the tests sign in as, made the way an operator would: with the command line.
  const admin = { username: "e2e-admin", password: `e2e ${randomBytes(12).toString("hex")}` };
  const created = spawnSync(bin, ["user", "create", "--admin", admin.username, "--data-dir", dataDir], {
    env: { ...env, GANTRY_PASSWORD: admin.password },
    encoding: "utf8",
  });
  if (created.status !== 0) throw new Error(`gantry user create failed: ${created.stderr}`);
  const serve = ["serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir, ...(demo ? ["--demo"] : [])];
  const child = spawn(bin, serve, {
    env,
    stdio: ["ignore", "pipe", "inherit"],
  });
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("gantry did not start within 30 s")), 30_000);
    child.once("exit", (code) => reject(new Error(`gantry exited early with ${code}`)));
    createInterface({ input: child.stdout }).on("line", (line) => {
      const match = line.match(/http:\/\/\S+/);
      if (match) {
        clearTimeout(timer);
        resolve(match[0].replace(/\.$/, ""));
      }
    });
  });
  return {
    url,
    admin,
    bin,
    dataDir,
    /// Applies a model file with `gantry model import`, as an engineer moving a model in would.
    importModel(yaml) {
      const file = join(dataDir, "model.yaml");
      writeFileSync(file, yaml);
      const imported = spawnSync(bin, ["model", "import", file, "--data-dir", dataDir], { encoding: "utf8" });
      if (imported.status !== 0) throw new Error(`gantry model import failed: ${imported.stderr}`);
    },
    async stop() {
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.kill("SIGTERM");
      await exited;
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export async function launchBrowser() {
  const userDataDir = mkdtempSync(join(tmpdir(), "gantry-chromium-"));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
    viewport: { width: 1280, height: 800 },
  });
  return {
    context,
    async close() {
      await context.close();
      rmSync(userDataDir, { recursive: true, force: true });
    },
  };
}

/// Opens a page that records console errors and uncaught exceptions.
export async function openPage(context) {
  const page = await context.newPage();
  const errors = [];
  page.on("console", (message) => {
    if (message.type() === "error") errors.push(message.text());
  });
  page.on("pageerror", (error) => errors.push(String(error)));
  return { page, errors };
}

export function screenshotPath(name) {
  mkdirSync(ARTIFACTS, { recursive: true });
  return join(ARTIFACTS, name);
}

/// Waits until the page is hydrated (the WASM bundle marks <body>).
export async function hydrated(page) {
  await page.waitForSelector("body[data-hydrated]", { timeout: 20_000 });
}

/// Signs in through the sign-in page, as a person would, and waits for the landing page.
export async function signIn(page, gantry, { username, password } = gantry.admin) {
  await page.goto(`${gantry.url}/login`);
  await hydrated(page);
  await page.getByLabel("Username").fill(username);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { name: "Plant overview" }).waitFor();
}

/// A same-origin API call from the signed-in page, as the UI's own scripts would make it.
export async function api(page, method, path, body) {
  return page.evaluate(
    async ([method, path, body]) => {
      const response = await fetch(path, {
        method,
        headers: { "content-type": "application/json", "x-gantry-csrf": "1" },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      return { status: response.status, body: await response.json() };
    },
    [method, path, body],
  );
}

/// A new device on the asset at `path` and a token for it, made through the API from a signed-in page: the asset's
/// id and the token's secret.
export async function deviceFor(page, path, name = `device-${Date.now()}`) {
  const assets = await api(page, "GET", `/api/v1/assets?path=${encodeURIComponent(path)}`);
  if (assets.status !== 200) throw new Error(`no asset at ${path}: ${JSON.stringify(assets.body)}`);
  const assetId = assets.body.asset.id;
  const device = await api(page, "POST", "/api/v1/devices", { name, asset_id: assetId });
  if (device.status !== 201) throw new Error(JSON.stringify(device.body));
  const token = await api(page, "POST", `/api/v1/devices/${device.body.device.id}/tokens`, { name: "e2e" });
  if (token.status !== 201) throw new Error(JSON.stringify(token.body));
  return { assetId, secret: token.body.secret };
}

/// Posts readings as a device (`POST /api/v1/ingest`); throws unless all were stored.
export async function postReadings(gantry, secret, readings) {
  const sent = await fetch(`${gantry.url}/api/v1/ingest`, {
    method: "POST",
    headers: { authorization: `Bearer ${secret}`, "content-type": "application/json" },
    body: JSON.stringify({ readings }),
  });
  if (sent.status !== 200) throw new Error(`ingest answered ${sent.status}: ${await sent.text()}`);
}
