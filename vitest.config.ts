import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Key derivation (SHA-512 x 100,000) and emulator start-up are slow on a shared 2-core box;
    // these are ceilings against hangs, not performance assertions.
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // The SDK's notice that its 2027 releases need Node 22 (we run Node 20, as the machines do)
    // printed once per test file buried the results in CI's log. `npm start` still shows it once.
    env: { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
  },
});
