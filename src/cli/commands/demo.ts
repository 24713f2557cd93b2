/** `lookalike demo`: the shipped demo catalog, indexed on first use, then served. */
import { mkdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { QUEUE_CONCURRENCY, QUEUE_MAX_WAITING, SERVICE_DEFAULTS } from '../../defaults.js';
import { LookalikeError } from '../../errors.js';
import { demoCatalogDir, demoIndexDir } from '../../paths.js';
import { DEFAULT_MAX_UPLOAD_BYTES } from '../../server/app.js';
import { action, intArg, print, type Command } from '../shared.js';
import { indexFirst, serveIndex } from './serve.js';

export function registerDemoCommand(program: Command): void {
  program.command('demo')
    .description('Serve a demo: the 300 product photos shipped with Lookalike (demo/catalog), indexed on first use into your cache folder, then the web page. Needs nothing but the package.')
    .option('-p, --port <n>', 'TCP port (0 picks a free one)', intArg('port', 0, 65535), 3000)
    .option('--host <address>', 'address to listen on (0.0.0.0 for every interface)', '127.0.0.1')
    .option('--folder <dir>', 'where the demo index is kept (default: lookalike/demo-VERSION in your cache folder, $XDG_CACHE_HOME or ~/.cache)')
    .addHelpText('after', '\nNext step, your own catalog (styles.csv + images/, or any folder of photos):\n  lookalike index ../shared/datasets/fashion-small --sample 1500 && lookalike serve')
    .action(action(async (flags: { port: number; host: string; folder?: string }) => {
      const indexDir = flags.folder ?? writableDemoIndexDir();
      print(`Demo catalog: ${demoCatalogDir()} (index: ${indexDir})`);
      try {
        await indexFirst(demoCatalogDir(), indexDir);
      } catch (err) {
        // The default folder is the demo's own cache: one it cannot bring up to date (made by
        // another model or arithmetic, or damaged) is made again; a folder the user named is not touched.
        if (flags.folder !== undefined || !(err instanceof LookalikeError)) throw err;
        print(`Demo index: ${err.message} Making it again.`);
        rmSync(indexDir, { recursive: true, force: true });
        await indexFirst(demoCatalogDir(), indexDir);
      }
      await serveIndex({
        index: indexDir, port: flags.port, host: flags.host, concurrency: QUEUE_CONCURRENCY, queue: QUEUE_MAX_WAITING, maxUploadMb: DEFAULT_MAX_UPLOAD_BYTES / 1024 / 1024,
        logFormat: 'auto', logLevel: 'info', maxStaleness: SERVICE_DEFAULTS.maxStalenessSeconds, drainSeconds: 0, shutdownSeconds: SERVICE_DEFAULTS.shutdownSeconds,
      });
    }));
}

/**
 * The per-user demo folder, or one under the temporary folder when that cannot be created
 * (a read-only home in a container).
 */
function writableDemoIndexDir(): string {
  const preferred = demoIndexDir();
  try {
    mkdirSync(preferred, { recursive: true });
    return preferred;
  } catch {
    return path.join(os.tmpdir(), `${path.basename(preferred)}-${os.userInfo().username}`);
  }
}
