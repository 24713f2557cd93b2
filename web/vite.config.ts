// The web page: plain TypeScript modules bundled by Vite into web/dist, which
// `lookalike serve` serves beside the API. Nothing is loaded from outside the app (no CDN,
// no web fonts), so it works offline. `npm run build` builds it.
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  base: '/',
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    // Small assets stay files: the page's Content-Security-Policy is strict about sources.
    assetsInlineLimit: 0,
  },
  server: {
    // `npx vite --config web/vite.config.ts` for page work, with `lookalike serve` on :3000.
    proxy: { '/api': 'http://127.0.0.1:3000', '/images': 'http://127.0.0.1:3000' },
  },
});
