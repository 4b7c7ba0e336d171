// Drives Debian's Chromium for the pytest browser tests (tests/e2e/browser.py): one JSON command per stdin line,
// one JSON answer per stdout line. playwright-core (web/package.json) talks to the browser; it downloads none.
// Usage: node driver.mjs CHROMIUM_PATH USER_DATA_DIR
import { createRequire } from 'node:module';
import { createInterface } from 'node:readline';

const require = createRequire(new URL('../../web/package.json', import.meta.url));
const { chromium } = require('playwright-core');

const [executablePath, userDataDir] = process.argv.slice(2);
// A fresh profile (userDataDir, made by the caller) and nothing that reaches outside the machine.
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath,
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
         '--disable-component-update', '--disable-sync'],
});

let page = null;
let problems = null;

async function open({ url, width = 1280, height = 800 }) {
  if (page) await page.close();
  problems = { console_errors: [], page_errors: [], failed_requests: [], bad_responses: [] };
  page = await context.newPage();
  await page.setViewportSize({ width, height });
  page.on('console', (m) => { if (m.type() === 'error') problems.console_errors.push(m.text()); });
  page.on('pageerror', (e) => problems.page_errors.push(String(e)));
  page.on('requestfailed', (r) => problems.failed_requests.push(`${r.method()} ${r.url()}: ${r.failure()?.errorText}`));
  page.on('response', (r) => { if (r.status() >= 400) problems.bad_responses.push(`${r.request().method()} ${r.url()}: ${r.status()}`); });
  const response = await page.goto(url, { waitUntil: 'load' });
  return { status: response.status() };
}

const ops = {
  open,
  eval: async ({ js }) => page.evaluate(js),
  wait: async ({ js, timeout_ms }) => {
    await page.waitForFunction(js, null, { timeout: timeout_ms, polling: 50 });
    return true;
  },
  click: async ({ selector }) => page.click(selector),
  fill: async ({ selector, value }) => page.fill(selector, value),
  screenshot: async ({ path, full_page = true }) => {
    await page.screenshot({ path, fullPage: full_page });
    return path;
  },
  problems: async () => problems,
  quit: async () => {
    await context.close();
    process.exit(0);
  },
};

for await (const text of createInterface({ input: process.stdin })) {
  const command = JSON.parse(text);
  let answer;
  try {
    answer = { ok: true, value: (await ops[command.op](command)) ?? null };
  } catch (e) {
    answer = { ok: false, error: String(e && e.stack ? e.stack : e) };
  }
  process.stdout.write(`${JSON.stringify(answer)}\n`);
}
await context.close();
