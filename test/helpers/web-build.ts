import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { PACKAGE_ROOT } from '../../src/paths.js';

const WEB = path.join(PACKAGE_ROOT, 'web');

/** Builds the page when web/dist is missing or older than its sources; returns web/dist. */
export async function ensurePageBuilt(): Promise<string> {
  const dist = path.join(WEB, 'dist');
  const built = path.join(dist, 'index.html');
  const newest = (dir: string): number => Math.max(...readdirSync(dir, { withFileTypes: true }).map((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? newest(p) : statSync(p).mtimeMs;
  }));
  const sources = Math.max(newest(path.join(WEB, 'src')), statSync(path.join(WEB, 'index.html')).mtimeMs);
  if (!existsSync(built) || statSync(built).mtimeMs < sources) {
    const { build } = await import('vite');
    await build({ configFile: path.join(WEB, 'vite.config.ts'), logLevel: 'warn' });
  }
  return dist;
}
