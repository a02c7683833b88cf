import { fileURLToPath, URL } from 'node:url'

import { defineConfig } from 'vitest/config'

// Browser tests: a real backend (started by globalSetup) serving the built SPA, driven through
// Debian's Chromium with playwright-core. One file at a time: they share one server.
export default defineConfig({
  resolve: {
    alias: { '@': fileURLToPath(new URL('./src', import.meta.url)) },
  },
  test: {
    environment: 'node',
    include: ['tests/e2e/**/*.e2e.ts'],
    globalSetup: ['tests/e2e/globalSetup.ts'],
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 120_000,
  },
})
