import { fileURLToPath, URL } from 'node:url'

import vue from '@vitejs/plugin-vue'
import AutoImport from 'unplugin-auto-import/vite'
import { ElementPlusResolver } from 'unplugin-vue-components/resolvers'
import Components from 'unplugin-vue-components/vite'
import { defineConfig, type Plugin } from 'vite'

// The backend that `npm run dev` proxies to (make run serves it on 8000).
const backend = process.env.VITE_BACKEND ?? 'http://127.0.0.1:8000'

// MT_FULL_ELEMENT=1 builds a comparison bundle with all of Element Plus registered globally
// (what the size benchmark compares the on-demand build against); never used for the app.
const fullElement = process.env.MT_FULL_ELEMENT === '1'

function registerAllOfElementPlus(): Plugin {
  return {
    name: 'modeltrain-full-element-plus',
    transform(code, id) {
      if (!id.endsWith('/src/main.ts')) return null
      return (
        "import ElementPlus from 'element-plus'\nimport 'element-plus/dist/index.css'\n" +
        code.replace('app.mount(', 'app.use(ElementPlus)\napp.mount(')
      )
    },
  }
}

export default defineConfig({
  plugins: [
    vue(),
    ...(fullElement
      ? [registerAllOfElementPlus()]
      : [
          // Element Plus on demand: only the components (and CSS) a page uses are bundled.
          // The type files come from a build; a Vitest run sees only the components its tests
          // mount and would overwrite them with a partial list that vue-tsc then rejects.
          AutoImport({
            resolvers: [ElementPlusResolver()],
            dts: process.env.VITEST ? false : 'src/auto-imports.d.ts',
          }),
          Components({
            resolvers: [ElementPlusResolver()],
            dts: process.env.VITEST ? false : 'src/components.d.ts',
          }),
        ]),
  ],
  resolve: {
    alias: { '@': fileURLToPath(new URL('./src', import.meta.url)) },
  },
  server: {
    host: '127.0.0.1',
    port: 5173,
    proxy: {
      '/api': { target: backend, changeOrigin: false },
      '/health': backend,
      '/docs': backend,
      '/openapi.json': backend,
    },
  },
  build: {
    target: 'es2020',
    sourcemap: false,
    manifest: true,
    outDir: fullElement ? 'dist-full-element' : 'dist',
    // The ECharts chunk (~520 kB, ~180 kB gzip) loads only when a training chart is shown.
    chunkSizeWarningLimit: 600,
  },
})
