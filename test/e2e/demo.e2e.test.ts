import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { cacheDir, PACKAGE_ROOT } from '../../src/paths.js';
import { tempDir } from '../helpers/fixtures.js';
import { ensurePageBuilt } from '../helpers/web-build.js';
import { HAS_CHROMIUM, launchChromium } from '../helpers/browser.js';

// `lookalike demo` as a new user runs it: a child process, the catalog shipped in demo/catalog,
// no dev catalog beside the project (LOOKALIKE_DATASET names a missing folder), a home cache of
// its own, then the page in a real browser (Debian's chromium, driven by playwright-core).
// Only the converted models are shared with this machine's cache (LOOKALIKE_CACHE), so the
// run costs no model conversion.
const TSX = pathToFileURL(path.join(PACKAGE_ROOT, 'node_modules', 'tsx', 'dist', 'loader.mjs')).href;
const DEMO_CATALOG = path.join(PACKAGE_ROOT, 'demo', 'catalog');
const ARTIFACTS = path.join(PACKAGE_ROOT, 'test-artifacts', 'demo-e2e');

/** Every file under a folder with its size and time: the demo must not write into its own catalog. */
function snapshot(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile())
    .map((e) => { const p = path.join(e.parentPath, e.name); const s = statSync(p); return `${path.relative(dir, p)} ${s.size} ${s.mtimeMs}`; }).sort();
}

let home: string;
let staleIndex: string;
let cwd: string;
let child: ChildProcess;
let output = '';
let base: string;
let browser: Browser;
let page: Page;
const before = snapshot(DEMO_CATALOG);

async function waitFor(pattern: RegExp, ms: number): Promise<RegExpExecArray> {
  const end = Date.now() + ms;
  for (;;) {
    const m = pattern.exec(output);
    if (m) return m;
    if (child.exitCode !== null) throw new Error(`lookalike demo exited (${child.exitCode}):\n${output}`);
    if (Date.now() > end) throw new Error(`no ${pattern} within ${ms} ms:\n${output}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe.skipIf(!HAS_CHROMIUM)('lookalike demo, with nothing but the repository', () => {
  beforeAll(async () => {
    rmSync(ARTIFACTS, { recursive: true, force: true });
    mkdirSync(ARTIFACTS, { recursive: true });
    await ensurePageBuilt();
    home = tempDir('lookalike-demo-home-');
    cwd = tempDir('lookalike-demo-cwd-');
    // A demo index the demo cannot use (here: damaged, as a full disk leaves it) is the demo's
    // own cache: made again, not an error.
    staleIndex = path.join(home, '.cache', 'lookalike', `demo-${(JSON.parse(readFileSync(path.join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string }).version}`);
    mkdirSync(staleIndex, { recursive: true });
    writeFileSync(path.join(staleIndex, 'index.sqlite'), 'not a database, half written\n');
    child = spawn(process.execPath, ['--import', TSX, path.join(PACKAGE_ROOT, 'src/cli/main.ts'), 'demo', '--port', '0'], {
      cwd,
      env: { ...process.env, HOME: home, XDG_CACHE_HOME: '', LOOKALIKE_CACHE: cacheDir(), LOOKALIKE_DATASET: path.join(home, 'no-such-dataset'), LOOKALIKE_INDEX: '', LOOKALIKE_STORE: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout!.on('data', (d: Buffer) => { output += d.toString(); });
    child.stderr!.on('data', (d: Buffer) => { output += d.toString(); });
    base = (await waitFor(/Listening on (http:\/\/\S+)/, 400_000))[1];
    await waitFor(/Model ready/, 120_000);
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  }, 600_000);

  afterAll(async () => {
    await browser?.close();
    if (child && child.exitCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
    for (const dir of [home, cwd]) if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('indexes the shipped catalog into the user\'s cache folder (a damaged one made again), not the package or the working folder', () => {
    expect(output, output).toMatch(/Demo index: .*(damaged|not a SQLite).*Making it again/);
    expect(output).toMatch(/index: .*300 items \(\+300 new, -0 removed\)/);
    expect(existsSync(path.join(staleIndex, 'index.sqlite'))).toBe(true);
    expect(readdirSync(cwd)).toEqual([]);
    expect(snapshot(DEMO_CATALOG)).toEqual(before);
  });

  it('opens a page where a catalog photo finds lookalikes, with their photos', async () => {
    await page.goto(base);
    await expect.poll(() => page.locator('#example-list button').count(), { timeout: 30_000 }).toBeGreaterThan(0);
    await page.locator('#example-list button').first().click();
    await expect.poll(() => page.locator('#results a.card').count(), { timeout: 60_000 }).toBeGreaterThanOrEqual(5);
    // The result photos are served from the shipped catalog and decode in the browser.
    await expect.poll(() => page.locator('#results a.card img').evaluateAll((imgs) => imgs.filter((i) => (i as HTMLImageElement).naturalWidth > 0).length), { timeout: 30_000 }).toBeGreaterThanOrEqual(5);
    await page.screenshot({ path: path.join(ARTIFACTS, 'demo-results.png'), fullPage: true });
  });

  it('a second run serves the index it made without embedding again', async () => {
    const again = spawn(process.execPath, ['--import', TSX, path.join(PACKAGE_ROOT, 'src/cli/main.ts'), 'demo', '--port', '0'], {
      cwd, env: { ...process.env, HOME: home, XDG_CACHE_HOME: '', LOOKALIKE_CACHE: cacheDir(), LOOKALIKE_DATASET: path.join(home, 'no-such-dataset') }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    let text = '';
    again.stdout!.on('data', (d: Buffer) => { text += d.toString(); });
    again.stderr!.on('data', (d: Buffer) => { text += d.toString(); });
    try {
      const end = Date.now() + 120_000;
      while (!/Listening on/.test(text) && again.exitCode === null && Date.now() < end) await new Promise((r) => setTimeout(r, 200));
      expect(text).toMatch(/Listening on/);
      expect(text).toMatch(/300 items \(\+0 new, -0 removed\)/);
    } finally {
      const exited = new Promise((r) => again.once('exit', r));
      again.kill('SIGTERM');
      await exited;
    }
  });
});
