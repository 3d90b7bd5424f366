// Drives the mdfeed chart page in headless Chromium (playwright-core) for
// tests/e2e/test_chart_page.py, which runs the datafeed and publishes the live bar.
//
// usage: node chart_page.mjs <base url> <expected history bars> <live bar close> <chat text>
//        node chart_page.mjs <base url> --without-library
// Prints one JSON line with what it saw; exits 1 with the reason on stderr on failure.
// --without-library: the datafeed has no chart library; the page must say what to run and
// still show the chat.
// SCREENSHOT=<path> also saves a screenshot of the page at the end.

import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

// playwright-core lives in web/node_modules, not next to this script.
const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, "..", "..", "web", "package.json"));
const { chromium } = require("playwright-core");

const [base, expectedBars, liveClose, chatText] = process.argv.slice(2);
const withoutLibrary = expectedBars === "--without-library";
if (!chatText && !withoutLibrary) {
  console.error("usage: node chart_page.mjs <base url> <history bars> <live close> <chat text>");
  process.exit(2);
}
const STEP_MS = 15_000;

const pageErrors = [];

// The datafeed has no chart library: the page says what to run, and chat still works.
async function checkWithoutLibrary(page) {
  await page.waitForFunction(() => window.mdfeed && window.mdfeed.chatMessages.length > 0, null, { timeout: STEP_MS });
  const notice = await page.$eval("#notice", (el) => (el.hidden ? "" : el.textContent));
  const error = await page.evaluate(() => window.mdfeed.error);
  // The library's own 404 is expected; anything else is not.
  const other = pageErrors.filter((e) => !e.endsWith("/static/lightweight-charts.js"));
  if (other.length) throw new Error(`page errors: ${other.join("; ")}`);
  return { notice, error };
}

// History drawn, a live bar arriving, chat history and a post coming back.
async function checkAll(page) {
  // History: the chart draws on canvases once the library created it.
  await page.waitForSelector("#chart canvas", { timeout: STEP_MS });
  await page.waitForFunction(() => window.mdfeed && window.mdfeed.ready, null, { timeout: STEP_MS });
  const loaded = await page.evaluate(() => window.mdfeed.barsLoaded);
  if (loaded !== Number(expectedBars)) {
    throw new Error(`history: the page loaded ${loaded} bars, expected ${expectedBars}`);
  }
  const symbol = await page.$eval("#symbol", (el) => el.value);
  const options = await page.$$eval("#symbol option", (els) => els.map((e) => e.value));

  // Live: the test publishes one bar once the page's stream is subscribed.
  await page.waitForFunction(
    (close) => window.mdfeed.liveBars > 0 && window.mdfeed.lastBar.close === close,
    Number(liveClose),
    { timeout: STEP_MS },
  );
  const lastShown = await page.$eval("#last", (el) => el.textContent);

  // Chat: history from the stream, then a post from the page coming back in the panel.
  await page.waitForFunction(() => window.mdfeed.chatMessages.length > 0, null, { timeout: STEP_MS });
  await page.fill("#author", "e2e-user");
  await page.fill("#text", chatText);
  await page.click("#chat-form button");
  await page.waitForFunction(
    (text) => [...document.querySelectorAll("#messages li .body")].some((el) => el.textContent === text),
    chatText,
    { timeout: STEP_MS },
  );
  const chat = await page.$$eval("#messages li", (els) =>
    els.map((li) => ({
      seq: Number(li.dataset.seq),
      author: li.querySelector(".who").textContent,
      text: li.querySelector(".body").textContent,
    })),
  );
  const notice = await page.$eval("#notice", (el) => (el.hidden ? "" : el.textContent));
  if (process.env.SCREENSHOT) await page.screenshot({ path: process.env.SCREENSHOT });
  if (pageErrors.length) throw new Error(`page errors: ${pageErrors.join("; ")}`);
  return { loaded, symbol, options, lastShown, chat, notice };
}

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 720 } });
  page.on("pageerror", (err) => pageErrors.push(String(err)));
  page.on("response", (response) => {
    if (response.status() >= 400) pageErrors.push(`HTTP ${response.status()} for ${response.url()}`);
  });
  page.on("console", (msg) => {
    // Failed loads are reported with their URL by the response handler above.
    if (msg.type() === "error" && !msg.text().startsWith("Failed to load resource")) {
      pageErrors.push(`console: ${msg.text()}`);
    }
  });
  await page.goto(base, { timeout: STEP_MS });
  console.log(JSON.stringify(withoutLibrary ? await checkWithoutLibrary(page) : await checkAll(page)));
} catch (err) {
  console.error(`chart page: ${err.message}`);
  if (pageErrors.length) console.error(`page errors: ${pageErrors.join("; ")}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
