#!/usr/bin/env node
// SPA size budget (a benchmark, not a test): gzip size of the JS needed to show the login page
// and of the whole app, for the real on-demand build and for a build with all of Element Plus.
// Target: login route <= 250 KB gzip and <= 0.4x the full-import build's login route.
import { execFileSync } from 'node:child_process'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { gzipSync } from 'node:zlib'

const FRONTEND = join(dirname(fileURLToPath(import.meta.url)), '..')
const OUT = join(FRONTEND, '..', 'bench', 'results', 'spa_size.json')
const LOGIN_SOURCE = 'src/views/Login.vue'

function build(outDir, env) {
  execFileSync('npx', ['vite', 'build', '--logLevel', 'warn'], {
    cwd: FRONTEND,
    env: { ...process.env, ...env },
    stdio: 'inherit',
  })
  return JSON.parse(readFileSync(join(FRONTEND, outDir, '.vite', 'manifest.json'), 'utf8'))
}

const gzipKB = (outDir, file) =>
  gzipSync(readFileSync(join(FRONTEND, outDir, file)), { level: 9 }).length / 1024

// Static closure of manifest entries: what the browser must load before the chunk runs.
function staticClosure(manifest, keys) {
  const seen = new Set()
  const visit = (key) => {
    if (seen.has(key)) return
    seen.add(key)
    for (const dep of manifest[key]?.imports ?? []) visit(dep)
  }
  keys.forEach(visit)
  return [...seen].map((key) => manifest[key].file).filter((file) => file.endsWith('.js'))
}

function measure(outDir, manifest) {
  const entry = Object.keys(manifest).find((key) => manifest[key].isEntry)
  const login = Object.keys(manifest).find((key) => key.endsWith(LOGIN_SOURCE))
  if (!entry || !login) throw new Error(`entry or ${LOGIN_SOURCE} missing from the manifest`)
  const loginFiles = staticClosure(manifest, [entry, login])
  const allFiles = [...new Set(Object.values(manifest).map((chunk) => chunk.file))].filter((f) =>
    f.endsWith('.js'),
  )
  const sum = (files) => files.reduce((total, file) => total + gzipKB(outDir, file), 0)
  return { loginKB: sum(loginFiles), loginFiles: loginFiles.length, totalKB: sum(allFiles) }
}

const onDemand = measure('dist', build('dist', {}))
const full = measure('dist-full-element', build('dist-full-element', { MT_FULL_ELEMENT: '1' }))
const ratio = onDemand.loginKB / full.loginKB
const pass = onDemand.loginKB <= 250 && ratio <= 0.4

const row = (name, m) =>
  `${name.padEnd(26)} ${m.loginKB.toFixed(1).padStart(12)} ${String(m.loginFiles).padStart(6)} ${m.totalKB.toFixed(1).padStart(12)}`
console.log(`\n${'build'.padEnd(26)} ${'login KB gz'.padStart(12)} ${'files'.padStart(6)} ${'all JS KB gz'.padStart(12)}`)
console.log(row('on-demand (the app)', onDemand))
console.log(row('Element Plus fully imported', full))
console.log(
  `login route ratio ${ratio.toFixed(2)} (target <= 0.40), login ${onDemand.loginKB.toFixed(1)} KB (target <= 250): ${pass ? 'PASS' : 'FAIL'}`,
)

mkdirSync(dirname(OUT), { recursive: true })
writeFileSync(
  OUT,
  JSON.stringify(
    { date: new Date().toISOString(), onDemand, fullElementPlus: full, ratio, pass },
    null,
    2,
  ),
)
console.log(`written ${OUT}`)
