/// <reference lib="dom" />
// Browser test of documents from the browser (src/http/public/documents.js): a real service with an
// admin key, Debian's chromium through playwright-core (launched as in web-console.test.ts).
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { tmpdir } from 'node:os';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FIXTURES, publishDocs, startTestService, tempDir, type TestService } from '../helpers/harness.js';
import { startOnReadOnlyStore, stopRealServiceAndClean, type RealService } from '../helpers/real-service.js';

/** Screenshots go to docs/ only when asked (UPDATE_SCREENSHOTS=1), so a test run leaves the tree clean. */
const SHOTS = process.env.UPDATE_SCREENSHOTS === '1' ? join(import.meta.dirname, '..', '..', 'docs') : tmpdir();
const run = promisify(execFile);
const CHROMIUM = '/usr/bin/chromium';
const KEY = 'console-docs-key';
const QUESTION = 'What colour does the quokka lantern glow at the harbour?';
const DOC = '# Quokka lanterns\n\nThe quokka lantern at the harbour glows teal whenever the night ferry is late.\n';

let svc: TestService;
let browser: Browser;
const pageErrors: string[] = [];

async function ensureChromium(): Promise<void> {
  if (existsSync(CHROMIUM)) return;
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const install = () => run('apt-get', ['install', '-y', '--no-install-recommends', 'chromium'], { env, maxBuffer: 64 * 1024 * 1024 });
  try {
    await install();
  } catch {
    await run('apt-get', ['update'], { env, maxBuffer: 64 * 1024 * 1024 });
    await install();
  }
  if (!existsSync(CHROMIUM)) throw new Error(`apt-get install chromium did not provide ${CHROMIUM}`);
}

/** The console with the admin key entered (as a person would: the Access keys form). */
async function openWithKey(url: string): Promise<Page> {
  const context = await browser.newContext({ viewport: { width: 1200, height: 1000 }, colorScheme: 'light', reducedMotion: 'reduce' });
  const p = await context.newPage();
  p.on('pageerror', (err) => pageErrors.push(String(err)));
  p.on('console', (msg) => {
    if (msg.type() === 'error' && !msg.text().startsWith('Failed to load resource')) pageErrors.push(msg.text());
  });
  expect((await p.goto(`${url}/`))?.status()).toBe(200);
  await p.getByLabel('Admin key').fill(KEY);
  await p.getByRole('button', { name: 'Save keys' }).click();
  await p.locator('#docs-panel').waitFor({ state: 'visible', timeout: 20_000 });
  return p;
}

async function ask(p: Page): Promise<{ answer: string; docs: string[] }> {
  const box = p.getByLabel('Question', { exact: true });
  await box.fill(QUESTION);
  await box.press('Enter');
  await p.locator('#answer[data-state="done"]').waitFor({ timeout: 30_000 });
  const answer = (await p.locator('#answer').textContent()) ?? '';
  const docs = await p.locator('#sources li.source').evaluateAll((lis) => lis.map((li) => li.getAttribute('data-doc') ?? ''));
  return { answer, docs };
}

const listed = (p: Page) => p.locator('#docs-list li.doc').evaluateAll((lis) => lis.map((li) => li.getAttribute('data-source')));

beforeAll(async () => {
  await ensureChromium();
  svc = await startTestService({ env: { ADMIN_API_KEY: KEY, WATCH: 'true' } });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}, 900_000);

afterAll(async () => {
  await browser?.close().catch(() => undefined);
  await svc?.stop();
});

describe('web console: documents from the browser', { timeout: 240_000 }, () => {
  it('uploads a document and the answer changes; deletes it and the answer goes back; the timeline shows each reload', async () => {
    const page = await openWithKey(svc.url);
    await expect.poll(() => listed(page), { timeout: 20_000 }).toEqual(['bread.txt', 'lighthouses.md', 'volcanoes.html']);
    const before = await ask(page);
    expect(before.answer).not.toMatch(/teal/);
    expect(before.docs).not.toContain('quokka-lanterns.md');

    await page.locator('#upload-file').setInputFiles({ name: 'quokka-lanterns.md', mimeType: 'text/markdown', buffer: Buffer.from(DOC) });
    await page.getByRole('button', { name: 'Upload' }).click();
    await expect.poll(() => page.locator('#docs-message').textContent(), { timeout: 60_000 }).toMatch(/Uploading quokka-lanterns\.md: done\..*1 embedded.*reload accepted/);
    await expect.poll(() => listed(page)).toContain('quokka-lanterns.md');
    // The reload lands in the timeline: an accepted entry for the version the upload published.
    const version = /Store (v\S+):/.exec((await page.locator('#docs-message').textContent()) ?? '')?.[1];
    expect(version).toBeDefined();
    await expect.poll(() => page.locator(`#timeline li[data-type="reload.accepted"]:has(code:text-is("${version}"))`).count(), { timeout: 20_000 }).toBeGreaterThan(0);
    await expect.poll(() => page.locator('[data-field="store-version"]').textContent()).toBe(version);
    const after = await ask(page);
    expect(after.answer).toMatch(/teal/);
    expect(after.docs).toContain('quokka-lanterns.md');
    await page.screenshot({ path: join(SHOTS, 'console-documents.png'), fullPage: true });

    page.once('dialog', (d) => void d.accept());
    await page.getByRole('button', { name: 'Delete quokka-lanterns.md' }).click();
    await expect.poll(() => page.locator('#docs-message').textContent(), { timeout: 60_000 }).toMatch(/Deleting quokka-lanterns\.md: done\..*0 embedded.*reload accepted/);
    await expect.poll(() => listed(page)).toEqual(['bread.txt', 'lighthouses.md', 'volcanoes.html']);
    const gone = await ask(page);
    expect(gone.answer).not.toMatch(/teal/);
    expect(gone.docs).not.toContain('quokka-lanterns.md');
    await page.context().close();
  });

  it('follows a version published elsewhere (npm run ingest): the list changes without a click', async () => {
    const page = await openWithKey(svc.url);
    await expect.poll(() => listed(page), { timeout: 20_000 }).toEqual(['bread.txt', 'lighthouses.md', 'volcanoes.html']);
    await publishDocs(svc.dirs.store, join(FIXTURES, 'docs-b'));
    await expect.poll(() => listed(page), { timeout: 30_000 }).toEqual(['orbits.md', 'tea.md']);
    await publishDocs(svc.dirs.store, join(FIXTURES, 'docs-a'));
    await expect.poll(() => listed(page), { timeout: 30_000 }).toEqual(['bread.txt', 'lighthouses.md', 'volcanoes.html']);
    await page.context().close();
  });

  it('a refused upload is explained in the page (type checked by content)', async () => {
    const page = await openWithKey(svc.url);
    await expect.poll(() => listed(page), { timeout: 20_000 }).toHaveLength(3);
    await page.locator('#upload-file').setInputFiles({ name: 'photo.txt', mimeType: 'text/plain', buffer: Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]) });
    await page.getByRole('button', { name: 'Upload' }).click();
    await expect.poll(() => page.locator('#docs-message').textContent(), { timeout: 20_000 }).toMatch(/not accepted.*content is PNG.*RAG_DOCS_TYPE_MISMATCH/);
    expect(await listed(page)).toHaveLength(3);
    await page.context().close();
  });

  it('says so when the store folder is read-only, and offers no upload or delete', async () => {
    const tmp = await tempDir('rag-t-console-ro-');
    let real: RealService | undefined;
    try {
      real = await startOnReadOnlyStore(tmp.dir, { ADMIN_API_KEY: KEY });
      const page = await openWithKey(real.url);
      await expect.poll(() => listed(page), { timeout: 20_000 }).toHaveLength(3);
      const note = page.locator('#docs-note');
      await note.waitFor({ state: 'visible' });
      expect(await note.textContent()).toMatch(/Read-only:.*Mount VECTORSTORE_DIR read-write.*RAG_DOCS_READ_ONLY/);
      expect(await page.getByRole('button', { name: 'Upload' }).isDisabled()).toBe(true);
      expect(await page.getByRole('button', { name: 'Delete bread.txt' }).isDisabled()).toBe(true);
      await page.context().close();
    } finally {
      await stopRealServiceAndClean(real, tmp);
    }
  });

  it('logged no page errors', () => {
    expect(pageErrors).toEqual([]);
  });
});
