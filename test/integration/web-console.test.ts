/// <reference lib="dom" />
// Browser test of the web console (src/http/public), served by a real service; Debian's chromium via playwright-core.
import { mkdir, readdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireTool } from '../helpers/system-tools.js';
import { FIXTURES, ROOT, publishDocs, startTestService, waitFor, type TestService } from '../helpers/harness.js';
import { tmpdir } from 'node:os';

/** Screenshots go to docs/ only when asked (UPDATE_SCREENSHOTS=1), so a test run leaves the tree clean. */
const SHOTS = process.env.UPDATE_SCREENSHOTS === '1' ? join(ROOT, 'docs') : tmpdir();


const QUESTION = 'Who invented the lens that made lighthouse beams visible far away?';

let svc: TestService;
let locked: TestService | undefined;
let browser: Browser;
let page: Page;
const pageErrors: string[] = [];

async function openConsole(viewport: { width: number; height: number }, url = svc.url): Promise<Page> {
  const context = await browser.newContext({ viewport, colorScheme: 'light', reducedMotion: 'reduce' });
  const p = await context.newPage();
  p.on('pageerror', (err) => pageErrors.push(String(err)));
  p.on('console', (msg) => {
    // Chromium logs every non-2xx fetch ("Failed to load resource"); the tests cause some on purpose.
    if (msg.type() === 'error' && !msg.text().startsWith('Failed to load resource')) pageErrors.push(msg.text());
  });
  const res = await p.goto(`${url}/`);
  expect(res?.status()).toBe(200);
  return p;
}

async function askQuestion(p: Page, question: string): Promise<void> {
  const box = p.getByLabel('Question', { exact: true });
  await box.fill(question);
  await box.press('Enter'); // Enter submits
  await p.locator('#answer[data-state="done"]').waitFor({ timeout: 20_000 });
}

beforeAll(async () => {
  const executablePath = requireTool('chromium'); // installed by set-up, never here
  svc = await startTestService({ env: { WATCH: 'true' } });
  browser = await chromium.launch({
    executablePath,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  page = await openConsole({ width: 1200, height: 900 });
}, 900_000);

afterAll(async () => {
  await browser?.close().catch(() => undefined);
  await locked?.stop();
  await svc?.stop();
});

describe('web console', () => {
  it('serves the console at / (index.html, its script and its style)', async () => {
    const res = await fetch(`${svc.url}/`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/text\/html/);
    expect(await res.text()).toContain('<title>RAG console</title>');
    // app.js and every ES module it imports (a module script served with another type does not run).
    const modules = (await readdir(join(ROOT, 'src', 'http', 'public'))).filter((f) => f.endsWith('.js'));
    expect(modules).toContain('app.js');
    for (const [path, type] of [...modules.map((f) => [`/${f}`, /javascript/] as const), ['/style.css', /text\/css/] as const]) {
      const r = await fetch(`${svc.url}${path}`);
      expect(r.status).toBe(200);
      expect(r.headers.get('content-type')).toMatch(type);
    }
    // The API keeps its JSON 404s.
    const missing = await fetch(`${svc.url}/v1/nope`);
    expect(missing.status).toBe(404);
    expect(((await missing.json()) as { error: { code: string } }).error.code).toBe('RAG_HTTP_NOT_FOUND');
  });

  it('shows the active generation and the timeline on load', async () => {
    const status = (await (await fetch(`${svc.url}/admin/status`)).json()) as { active: { store: { version: string; count: number } } };
    await expect.poll(() => page.locator('[data-field="store-version"]').textContent()).toBe(status.active.store.version);
    await expect.poll(() => page.locator('[data-field="chunk-count"]').textContent()).toBe(String(status.active.store.count));
    await expect.poll(() => page.locator('#events-state').textContent()).toBe('live');
    await expect.poll(() => page.locator('#timeline li[data-type="reload.accepted"]').count()).toBeGreaterThan(0);
    // No admin key is configured, so /admin/status answers without one: the controls are shown.
    expect(await page.getByRole('button', { name: 'Reload' }).isVisible()).toBe(true);
    expect(await page.getByRole('button', { name: 'Roll back' }).isVisible()).toBe(true);
  });

  it('streams an answer with numbered citations linking to source cards', async () => {
    await askQuestion(page, QUESTION);
    const answer = (await page.locator('#answer').textContent()) ?? '';
    expect(answer).toContain('Fresnel');
    const docs = await page.locator('#sources li.source').evaluateAll((lis) => lis.map((li) => li.getAttribute('data-doc')));
    expect(docs).toContain('lighthouses.md');
    // Cards show the score with three decimals.
    const score = (await page.locator('#sources li.source .score').first().textContent()) ?? '';
    expect(score).toMatch(/\d\.\d{3}$/);
    await page.screenshot({ path: join(SHOTS, 'console.png') });
    // Citations [n] are links to the cards; following one focuses the card.
    const cite = page.locator('#answer .cite a').first();
    expect(await cite.count()).toBe(1);
    const href = (await cite.getAttribute('href')) ?? '';
    expect(href).toMatch(/^#source-\d+$/);
    await cite.click();
    expect(await page.evaluate(() => document.activeElement?.id)).toBe(href.slice(1));
    await expect.poll(() => page.locator('#answer-meta').textContent()).toMatch(/store v\S+ · model glove-sif-100d/);

    const phone = await openConsole({ width: 390, height: 844 });
    await askQuestion(phone, QUESTION);
    // Single column: the side panels sit below the answer, not beside it.
    const [ask, side] = await Promise.all([phone.locator('.ask').boundingBox(), phone.locator('.side').boundingBox()]);
    expect(side!.y).toBeGreaterThan(ask!.y + ask!.height - 1);
    expect(await phone.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
    await phone.screenshot({ path: join(SHOTS, 'console-mobile.png') });
    await phone.context().close();
  });

  it('shows a validation error from the API in plain words', async () => {
    await page.getByRole('spinbutton', { name: 'Sources (k)' }).fill('999');
    await page.getByLabel('Question', { exact: true }).fill('lighthouse');
    await page.getByRole('button', { name: 'Ask' }).click();
    const alert = page.getByRole('alert');
    await expect.poll(() => alert.textContent()).toMatch(/not accepted.*k/i);
    expect(await alert.textContent()).toContain('RAG_HTTP_VALIDATION');
    await page.getByRole('spinbutton', { name: 'Sources (k)' }).fill('4');
  });

  it('follows a newly published store version without reloading the page', async () => {
    await page.evaluate(() => ((window as unknown as { __sameDocument: boolean }).__sameDocument = true));
    await publishDocs(svc.dirs.store, join(FIXTURES, 'docs-b'), { version: 'v-console-2' });
    await waitFor(async () => (await page.locator('[data-field="store-version"]').textContent()) === 'v-console-2', 30_000, 'the page to show v-console-2');
    expect(await page.locator('#timeline li[data-type="reload.accepted"]').first().textContent()).toContain('v-console-2');
    expect(await page.locator('#service-state').textContent()).toContain('v-console-2');
    expect(await page.evaluate(() => (window as unknown as { __sameDocument?: boolean }).__sameDocument)).toBe(true);
  });

  it('shows why an update was rejected, and keeps showing the serving version', async () => {
    const bad = join(svc.dirs.store, 'v-bad');
    await mkdir(bad, { recursive: true });
    await writeFile(join(bad, 'chroma.sqlite3'), '');
    await writeFile(join(svc.dirs.store, 'CURRENT.tmp'), 'v-bad\n');
    await rename(join(svc.dirs.store, 'CURRENT.tmp'), join(svc.dirs.store, 'CURRENT'));
    const rejected = page.locator('#timeline li[data-type="reload.rejected"]').first();
    await waitFor(async () => ((await rejected.count()) > 0 ? rejected.textContent() : ''), 30_000, 'a rejected attempt in the timeline');
    const text = (await rejected.textContent()) ?? '';
    expect(text).toContain('RAG_STORE_SQLITE_CORRUPT');
    expect(text).toMatch(/chroma\.sqlite3/);
    expect(await page.locator('[data-field="store-version"]').textContent()).toBe('v-console-2');

    // The Reload button forces a rebuild of the same bad files: rejected again, and said so.
    await page.getByRole('button', { name: 'Reload' }).click();
    await expect.poll(() => page.locator('#admin-message').textContent(), { timeout: 20_000 }).toContain('RAG_STORE_SQLITE_CORRUPT');
    expect(await page.locator('[data-field="store-version"]').textContent()).toBe('v-console-2');
    expect(pageErrors).toEqual([]);
  });
});

describe('web console with keys (API_KEYS and ADMIN_API_KEY set)', () => {
  it('explains a 401, hides the admin controls without the admin key, and uses keys once given', async () => {
    locked = await startTestService({ env: { API_KEYS: 'user-key', ADMIN_API_KEY: 'admin-key' } });
    const p = await openConsole({ width: 1200, height: 900 }, locked.url);
    // /admin/status needs the admin key: the panel falls back to /readyz, the timeline says why it is empty.
    await expect.poll(() => p.locator('#events-state').textContent()).toBe('admin key needed');
    await expect.poll(() => p.locator('[data-field="store-version"]').textContent()).toMatch(/^v\S+/);
    expect(await p.getByRole('button', { name: 'Reload' }).isVisible()).toBe(false);

    await askNoWait(p, 'lighthouse lens');
    await expect.poll(() => p.getByRole('alert').textContent()).toMatch(/Not authorised \(401\).*API key/);
    expect(await p.getByRole('alert').textContent()).toContain('RAG_HTTP_UNAUTHORIZED');

    await p.getByLabel('API key').fill('user-key');
    await p.getByLabel('Admin key').fill('admin-key');
    await p.getByRole('button', { name: 'Save keys' }).click();
    await expect.poll(() => p.locator('#events-state').textContent()).toBe('live');
    expect(await p.getByRole('button', { name: 'Reload' }).isVisible()).toBe(true);
    expect(await p.evaluate(() => sessionStorage.getItem('rag-console.adminKey'))).toBe('admin-key');
    await askQuestion(p, QUESTION);
    expect(await p.locator('#answer').textContent()).toContain('Fresnel');
    await p.context().close();
  });
});

async function askNoWait(p: Page, question: string): Promise<void> {
  const box = p.getByLabel('Question', { exact: true });
  await box.fill(question);
  await box.press('Enter');
}
