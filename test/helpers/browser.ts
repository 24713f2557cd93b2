/**
 * The chromium the browser tests drive (Debian's, through playwright-core), launched one way
 * for all of them. LOOKALIKE_CHROMIUM names another binary; without one the tests skip.
 */
import { existsSync } from 'node:fs';
import type { Browser } from 'playwright-core';

export const CHROMIUM = process.env.LOOKALIKE_CHROMIUM ?? '/usr/bin/chromium';
export const HAS_CHROMIUM = existsSync(CHROMIUM);

/**
 * Headless, no sandbox (CI runs as root), and nothing that reaches off the machine on its
 * own (QUIC, background networking, component updates, sync), so the tests see only the
 * requests the page makes.
 */
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

export async function launchChromium(): Promise<Browser> {
  const { chromium } = await import('playwright-core');
  return chromium.launch({ executablePath: CHROMIUM, args: FLAGS });
}
