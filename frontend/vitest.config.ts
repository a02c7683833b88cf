import { defineConfig, mergeConfig } from 'vitest/config'

import viteConfig from './vite.config'

export default mergeConfig(
  viteConfig,
  defineConfig({
    test: {
      environment: 'jsdom',
      include: ['tests/unit/**/*.spec.ts'],
      restoreMocks: true,
      // Element Plus's style-only modules import CSS, which Node cannot load: let Vite handle them.
      server: { deps: { inline: ['element-plus'] } },
    },
  }),
)
