import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Key derivation (SHA-512 x 100,000) and emulator start-up are slow on a shared 2-core box;
    // these are ceilings against hangs, not performance assertions.
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
  },
});
