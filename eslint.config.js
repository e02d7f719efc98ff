// Lint: ESLint's and typescript-eslint's recommended rules (no type-aware rules: fast, and the
// type check itself runs separately with tsc).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'coverage/**', '.drydock/**', 'bench/results/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { process: 'readonly', console: 'readonly', URL: 'readonly', Buffer: 'readonly', setTimeout: 'readonly', clearTimeout: 'readonly', setInterval: 'readonly', clearInterval: 'readonly', fetch: 'readonly', AbortController: 'readonly', AbortSignal: 'readonly', performance: 'readonly', TextEncoder: 'readonly', TextDecoder: 'readonly' } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-explicit-any': 'error',
    },
  },
  ...domainPurity(),
);

/**
 * src/domain is the functional core (DESIGN.md §3): no I/O, no clock, no randomness, and nothing
 * from the rest of the project (src/sim: nothing but src/domain). Pure libraries (zod, semver) are allowed. One block per folder
 * depth, because "outside src/domain" is `../` from src/domain/x.ts and `../../` one level down.
 */
function domainPurity() {
  const io = [
    { regex: '^node:|^(fs|path|os|child_process|net|http|https|crypto|worker_threads)$', message: 'src/domain is pure: pass the data in instead of doing I/O here' },
    { regex: '^(pg|pino|fastify|@fastify/.*|@electric-sql/.*|tar|commander|yaml)$', message: 'src/domain is pure: this library does I/O or parsing of files; use it from src/store, src/operator, src/agent or src/cli' },
  ];
  const outside = (depth) => ({ regex: `^(\\.\\./){${depth},}`, message: 'src/domain imports nothing outside src/domain' });
  const rules = (depth) => ({
    'no-restricted-imports': ['error', { patterns: [...io, outside(depth)] }],
    'no-restricted-properties': [
      'error',
      { object: 'Date', property: 'now', message: 'src/domain takes the time as an argument' },
      { object: 'Math', property: 'random', message: 'src/domain takes a seed or the random values as arguments' },
    ],
    'no-restricted-globals': ['error', { name: 'process', message: 'src/domain does not read the environment or the process' }],
    'no-restricted-syntax': ['error', { selector: "NewExpression[callee.name='Date'][arguments.length=0]", message: 'src/domain takes the time as an argument' }],
  });
  // src/sim (the virtual-time simulator, DESIGN.md §3) is pure the same way and may import
  // src/domain besides itself: `../domain/…` and nothing else above src/sim.
  const simOutside = { regex: '^\\.\\./(?!domain/)|^(\\.\\./){2,}', message: 'src/sim imports only src/domain and itself' };
  const simRules = { ...rules(1), 'no-restricted-imports': ['error', { patterns: [...io, simOutside] }] };
  return [
    { files: ['src/domain/*.ts'], rules: rules(1) },
    { files: ['src/domain/*/*.ts'], rules: rules(2) },
    { files: ['src/sim/*.ts'], rules: simRules },
  ];
}
