// Drives the server's /docs page in headless Chromium (Debian's) as a person would: waits for the page to
// render the document, authorizes with a token, opens two operations, fills a path parameter, sends them
// and reads the answers shown; takes a screenshot. Prints what it saw as one JSON line.
//   node docs_check.js URL TOKEN SCREENSHOT      (PEERS_DIR: where tests/peers/install.sh put playwright-core)
"use strict";
const { chromium } = require(require("path").join(process.env.PEERS_DIR, "node_modules", "playwright-core"));

async function call(page, id, fill = {}) {
  await page.click(`#${id} > summary`);
  for (const [name, value] of Object.entries(fill)) await page.fill(`#${id} input[name="${name}"]`, value);
  await page.click(`#${id} button[type=submit]`);
  await page.waitForSelector(`#${id} pre.response`, { timeout: 10000 });
  return { status: await page.textContent(`#${id} .status`), response: await page.textContent(`#${id} pre.response`) };
}

(async () => {
  const [url, token, screenshot] = process.argv.slice(2);
  const browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
    const errors = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    page.on("requestfailed", (r) => errors.push("request failed: " + r.url()));
    await page.goto(url);
    await page.waitForSelector("body[data-operations]", { timeout: 10000 });
    const operations = Number(await page.getAttribute("body", "data-operations"));
    await page.fill("#token", token);
    await page.click("#authorize");
    await page.waitForFunction(() => document.getElementById("who").textContent.includes("tenant"), null, { timeout: 10000 });
    const who = await page.textContent("#who");
    const me = await call(page, "op-getAuthMe");
    const plugin = await call(page, "op-getPluginsPlugin", { plugin: "core" });
    await page.screenshot({ path: screenshot });
    console.log(JSON.stringify({ operations, who, me, plugin, errors }));
  } finally {
    await browser.close();
  }
})().catch((e) => {
  console.error(String(e));
  process.exit(1);
});
