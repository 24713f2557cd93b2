// Lint for the whole tree (src, test, web, bin): ESLint's and typescript-eslint's
// recommended rules, without type information so that it stays fast. `npm test` runs it.
// TypeScript checks names itself (no-undef is off for .ts); the few plain .js files name
// the Node globals they use.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'web/dist/', 'coverage/', 'test-artifacts/', '.cache/', '.lookalike/'] },
  js.configs.recommended,
  tseslint.configs.recommended,
  {
    // A leading underscore marks a parameter or variable that is unused on purpose.
    rules: { '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }] },
  },
  {
    files: ['**/*.js', '**/*.mjs'],
    languageOptions: { globals: { console: 'readonly', process: 'readonly', URL: 'readonly', fetch: 'readonly', FormData: 'readonly', Blob: 'readonly' } },
  },
);
