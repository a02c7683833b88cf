/**
 * Starts the real backend on a free port with a fresh SQLite database, serving frontend/dist.
 * Skips the suite loudly when Chromium is missing, unless E2E_REQUIRED=1 (CI), which fails it.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

import type { TestProject } from 'vitest/node'

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
const ROOT = fileURLToPath(new URL('../../..', import.meta.url))

declare module 'vitest' {
  export interface ProvidedContext {
    baseURL: string
    skipReason: string
  }
}

function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      const port = typeof address === 'object' && address ? address.port : 0
      server.close(() => resolvePort(port))
    })
  })
}

async function waitForHealth(url: string, child: ChildProcess, log: () => string): Promise<void> {
  const deadline = Date.now() + 60_000
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`backend exited early:\n${log()}`)
    try {
      const response = await fetch(`${url}/health`)
      if (response.ok) return
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 250))
  }
  throw new Error(`backend did not become healthy:\n${log()}`)
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  if (!existsSync(CHROMIUM)) {
    const message = `Chromium not found at ${CHROMIUM}: install it (apt-get install chromium)`
    if (process.env.E2E_REQUIRED === '1') throw new Error(`${message}; E2E_REQUIRED=1`)
    console.warn(`\n${'!'.repeat(78)}\n!! E2E SUITE SKIPPED: ${message}\n${'!'.repeat(78)}\n`)
    project.provide('skipReason', message)
    project.provide('baseURL', '')
    return async () => undefined
  }
  const dist = join(ROOT, 'frontend', 'dist', 'index.html')
  if (!existsSync(dist)) throw new Error('frontend/dist is missing: run `npm run build` first')
  const uvicorn = join(ROOT, '.venv', 'bin', 'uvicorn')
  if (!existsSync(uvicorn)) throw new Error('.venv is missing: run `make setup` first')

  const workdir = mkdtempSync(join(tmpdir(), 'modeltrain-e2e-'))
  const port = await freePort()
  const baseURL = `http://127.0.0.1:${port}`
  let output = ''
  const child = spawn(uvicorn, ['main:app', '--host', '127.0.0.1', '--port', String(port)], {
    cwd: join(ROOT, 'backend'),
    env: {
      ...process.env,
      MODELTRAIN_ENV_FILE: '',
      DATABASE_URL: `sqlite:///${join(workdir, 'e2e.db')}`,
      DATA_DIR: join(workdir, 'data'),
      FRONTEND_DIST: join(ROOT, 'frontend', 'dist'),
      PUBLIC_URL: baseURL,
      LOG_LEVEL: 'WARNING',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const collect = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-20_000)
  }
  child.stdout?.on('data', collect)
  child.stderr?.on('data', collect)
  await waitForHealth(baseURL, child, () => output)
  project.provide('baseURL', baseURL)
  project.provide('skipReason', '')

  return async () => {
    child.kill('SIGTERM')
    await new Promise((r) => setTimeout(r, 500))
    if (child.exitCode === null) child.kill('SIGKILL')
    rmSync(workdir, { recursive: true, force: true })
  }
}
