// Accounts in a real browser: sign in, navigate, sign out; signed-out visitors land on the sign-in page; names
// typed by users are shown as text, never run as markup.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { api, hydrated, launchBrowser, openPage, screenshotPath, signIn, startGantry } from "./support.js";

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

test("sign in, navigate, sign out", async () => {
  const { page, errors } = await openPage(browser.context);
  // Signed out, any page leads to the sign-in page and remembers where it was going.
  await page.goto(`${gantry.url}/alarms`);
  assert.equal(new URL(page.url()).pathname, "/login");
  assert.equal(new URL(page.url()).searchParams.get("next"), "/alarms");
  await page.screenshot({ path: screenshotPath("login.png") });

  // A wrong password says so and stays on the page.
  await hydrated(page);
  await page.getByLabel("Username").fill(gantry.admin.username);
  await page.getByLabel("Password").fill("not the password");
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("alert").filter({ hasText: "incorrect" }).waitFor();
  errors.length = 0; // the browser logs the 401 of that attempt

  await page.getByLabel("Password").fill(gantry.admin.password);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { name: "Alarms" }).waitFor();
  assert.equal(new URL(page.url()).pathname, "/alarms", "sign-in returns to the page asked for");
  assert.match(await page.locator(".user-menu").innerText(), /e2e-admin/);

  await hydrated(page);
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Admin" }).click();
  await page.getByRole("heading", { name: "Users" }).waitFor();
  assert.ok(await page.locator("#users tr[data-username='e2e-admin']").count(), "the user list shows the admin");

  await page.getByRole("button", { name: "Sign out" }).click();
  await page.waitForURL((url) => url.pathname === "/login");
  await page.goto(`${gantry.url}/`);
  assert.equal(new URL(page.url()).pathname, "/login", "signed out, the landing page is closed");
  assert.deepEqual(errors, [], "the console has errors");
  await page.close();
});

test("a stored script in a display name is shown as text and never runs", async () => {
  const { page, errors } = await openPage(browser.context);
  await signIn(page, gantry);
  const payload = `<img src=x onerror="window.__xss=1">`;
  await page.goto(`${gantry.url}/admin`);
  await hydrated(page);
  const form = page.locator("form").filter({ has: page.getByRole("button", { name: "Create user" }) });
  await form.getByLabel("Username").fill("mallory");
  await form.getByLabel("Display name").fill(payload);
  await form.getByLabel("Password").fill("a long enough password");
  await form.getByRole("button", { name: "Create user" }).click();
  const row = page.locator("#users tr[data-username='mallory']");
  await row.waitFor();
  assert.equal(await row.locator("td").nth(1).innerText(), payload, "the name is shown literally");
  assert.equal(await page.locator("#users img").count(), 0, "the name became markup");

  // Grants and role are edited in place and stick.
  const saved = () => page.waitForResponse((r) => r.url().includes("/_fn/auth/update_user") && r.ok());
  let done = saved();
  assert.equal(await row.getByLabel("Asset grants").inputValue(), "all", "a new user without grants sees the whole plant");
  await row.getByLabel("Asset grants").fill("4, 9");
  await row.getByLabel("Asset grants").press("Tab");
  await done;
  done = saved();
  await row.getByLabel("Role").selectOption("operator");
  await done;
  await page.reload();
  await hydrated(page);
  assert.equal(await row.getByLabel("Asset grants").inputValue(), "4, 9");
  assert.equal(await row.getByLabel("Role").inputValue(), "operator");

  await page.goto(`${gantry.url}/admin/audit`);
  await page.locator("#audit").waitFor();
  assert.match(await page.locator("#audit").innerText(), /user\.create/);
  assert.equal(await page.locator("#audit img").count(), 0, "the audit log rendered markup");
  assert.equal(await page.evaluate(() => window.__xss), undefined, "the payload ran");
  await page.screenshot({ path: screenshotPath("audit.png"), fullPage: true });
  assert.deepEqual(errors, [], "the console has errors");
  await page.close();
});

test("my account: create and revoke an API token, change the password", async () => {
  const { page, errors } = await openPage(browser.context);
  await signIn(page, gantry);
  await page.goto(`${gantry.url}/account`);
  await hydrated(page);

  await page.getByLabel("Name", { exact: true }).fill("grafana");
  await page.getByRole("button", { name: "Create token" }).click();
  const secret = (await page.locator("#new-token").innerText()).trim();
  assert.match(secret, /^gantry_[0-9a-f]{64}$/);
  const row = page.locator("tr").filter({ hasText: "grafana" });
  await row.waitFor();
  assert.ok(!(await row.innerText()).includes(secret.slice(7)), "the list shows the whole secret");

  // The token works from a script until it is revoked.
  const me = () => fetch(`${gantry.url}/api/v1/auth/me`, { headers: { authorization: `Bearer ${secret}` } });
  assert.equal((await me()).status, 200);
  await row.getByRole("button", { name: "Revoke" }).click();
  await row.getByText("revoked").waitFor();
  assert.equal((await me()).status, 401);

  // Changing the password ends the session; the new password signs in.
  const newPassword = `${gantry.admin.password} changed`;
  await page.getByLabel("Current password").fill(gantry.admin.password);
  await page.getByLabel("New password").fill(newPassword);
  await page.getByRole("button", { name: "Change password" }).click();
  await page.waitForURL((url) => url.pathname === "/login");
  gantry.admin.password = newPassword;
  await signIn(page, gantry);
  assert.deepEqual(errors, [], "the console has errors");
  await page.close();
});

test("times show in the zone the user chose, with its daylight saving time", async () => {
  const { page, errors } = await openPage(browser.context);
  await signIn(page, gantry);
  const name = `zone-${Date.now()}`;
  const created = await api(page, "POST", "/api/v1/tokens", { name });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const at = new Date(created.body.token.created_at_ms);
  // What the clock on the wall reads in New York at that instant, as the page should write it.
  const newYork = (date) => {
    const parts = Object.fromEntries(
      new Intl.DateTimeFormat("en-US", {
        timeZone: "America/New_York", hourCycle: "h23", year: "numeric", month: "2-digit", day: "2-digit",
        hour: "2-digit", minute: "2-digit", second: "2-digit", timeZoneName: "short",
      }).formatToParts(date).map((part) => [part.type, part.value]),
    );
    return `${parts.year}-${parts.month}-${parts.day} ${parts.hour}:${parts.minute}:${parts.second} ${parts.timeZoneName}`;
  };

  await page.goto(`${gantry.url}/account`);
  await hydrated(page);
  await page.getByLabel("Time zone (IANA name, such as Europe/Berlin)").fill("Mars/Olympus_Mons");
  await page.getByRole("button", { name: "Save time zone" }).click();
  await page.getByRole("alert").filter({ hasText: "not a time zone" }).waitFor();
  // Beside the field, which names it as its description and is marked invalid.
  const zoneField = page.getByLabel("Time zone (IANA name, such as Europe/Berlin)");
  assert.equal(await zoneField.getAttribute("aria-invalid"), "true");
  assert.match(await page.locator(`#${await zoneField.getAttribute("aria-describedby")}`).innerText(), /not a time zone/);
  errors.length = 0; // the browser logs the 400 of that attempt

  await page.getByLabel("Time zone (IANA name, such as Europe/Berlin)").fill("america/new_york");
  await page.getByRole("button", { name: "Save time zone" }).click();
  await page.getByRole("status").filter({ hasText: "America/New_York" }).waitFor();
  await page.waitForFunction(
    ([selector, text]) => document.querySelector(selector)?.textContent === text,
    [`#my-tokens tr[data-token='${name}'] td:nth-child(3)`, newYork(at)],
  );

  // The setting is the account's: a fresh page shows the same (the server renders UTC, the browser switches).
  const rendered = await page.evaluate(() => fetch("/account").then((response) => response.text()));
  const utc = `${at.toISOString().slice(0, 19).replace("T", " ")} UTC`;
  assert.ok(rendered.includes(utc), `the server renders UTC (${utc})`);
  await page.goto(`${gantry.url}/account`);
  await hydrated(page);
  await page.waitForFunction(
    ([selector, text]) => document.querySelector(selector)?.textContent === text,
    [`#my-tokens tr[data-token='${name}'] td:nth-child(3)`, newYork(at)],
  );
  // Half a year later the same zone is on daylight saving time, and says so.
  assert.notEqual(newYork(at).slice(-3), newYork(new Date(at.getTime() + 182 * 86_400_000)).slice(-3));

  await page.getByLabel("Time zone (IANA name, such as Europe/Berlin)").fill("");
  await page.getByRole("button", { name: "Save time zone" }).click();
  await page.getByRole("status").filter({ hasText: "this browser's zone" }).waitFor();
  assert.deepEqual(errors, [], "the console has errors");
  await page.close();
});

