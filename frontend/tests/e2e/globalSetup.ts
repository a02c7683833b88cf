/**
 * Starts the real backend on a free port with a fresh SQLite database, serving frontend/dist,
 * and the mock OpenAI-compatible upstream (backend/tests/upstream.py) on another free port.
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
    /** The mock upstream's root (its API is under /v1); '' when it could not be started. */
    upstreamURL: string
    /** A tiny Qwen2 model folder for the training specs; '' without the training engine. */
    tinyModel: string
    /** Why the training specs skip ('' when they run). */
    trainSkipReason: string
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

/** Poll `url` until it answers with `accept`, failing early if `child` exits. */
async function waitFor(
  url: string,
  child: ChildProcess,
  what: string,
  log: () => string,
  accept: (response: Response) => boolean = (response) => response.ok,
): Promise<void> {
  const deadline = Date.now() + 60_000
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`${what} exited early:\n${log()}`)
    try {
      if (accept(await fetch(url))) return
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 250))
  }
  throw new Error(`${what} did not come up:\n${log()}`)
}

interface Server {
  child: ChildProcess
  log: () => string
}

function start(command: string, args: string[], cwd: string, env: NodeJS.ProcessEnv): Server {
  let output = ''
  const child = spawn(command, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] })
  const collect = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-20_000)
  }
  child.stdout?.on('data', collect)
  child.stderr?.on('data', collect)
  return { child, log: () => output }
}

async function stop(server: Server | undefined): Promise<void> {
  if (!server || server.child.exitCode !== null) return
  server.child.kill('SIGTERM')
  await new Promise((r) => setTimeout(r, 500))
  if (server.child.exitCode === null) server.child.kill('SIGKILL')
}

/**
 * The mock upstream the model config specs point configs at. Missing (it lives with the
 * backend's tests): those specs skip, unless E2E_REQUIRED=1, which fails the run.
 */
async function startUpstream(python: string): Promise<{ server?: Server; url: string }> {
  if (!existsSync(join(ROOT, 'backend', 'tests', 'upstream.py'))) {
    const message = 'backend/tests/upstream.py is missing: the model config specs cannot run'
    if (process.env.E2E_REQUIRED === '1') throw new Error(`${message}; E2E_REQUIRED=1`)
    console.warn(`\n!! ${message}\n`)
    return { url: '' }
  }
  const port = await freePort()
  const url = `http://127.0.0.1:${port}`
  const server = start(
    python,
    ['-m', 'tests.upstream', '--port', String(port)],
    join(ROOT, 'backend'),
    { ...process.env, PYTHONUNBUFFERED: '1' },
  )
  try {
    // Any HTTP answer means it is listening (the model list may want a key).
    await waitFor(`${url}/v1/models`, server.child, 'mock upstream', server.log, () => true)
  } catch (error) {
    await stop(server)
    throw error
  }
  return { server, url }
}

/**
 * The tiny model the training specs train and serve, built offline with the training venv's
 * python (`make train-env`). Without that venv they skip, unless TRAIN_ENGINE_REQUIRED=1 (CI).
 */
async function buildTinyModel(workdir: string): Promise<{ path: string; skip: string }> {
  const python = join(ROOT, '.venv-train', 'bin', 'python')
  if (!existsSync(python)) {
    const message = 'the training engine (.venv-train) is missing: run `make train-env`'
    if (process.env.TRAIN_ENGINE_REQUIRED === '1') {
      throw new Error(`${message}; TRAIN_ENGINE_REQUIRED=1`)
    }
    console.warn(`\n!! TRAINING E2E SKIPPED: ${message}\n`)
    return { path: '', skip: message }
  }
  const out = join(workdir, 'tiny-model')
  const builder = start(python, [join(ROOT, 'scripts', 'make_tiny_model.py'), out], ROOT, {
    ...process.env,
  })
  const code = await new Promise<number | null>((resolveCode) => {
    if (builder.child.exitCode !== null) resolveCode(builder.child.exitCode)
    else builder.child.once('exit', (exitCode) => resolveCode(exitCode))
  })
  if (code !== 0) throw new Error(`building the tiny model failed:\n${builder.log()}`)
  return { path: out, skip: '' }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  if (!existsSync(CHROMIUM)) {
    const message = `Chromium not found at ${CHROMIUM}: install it (apt-get install chromium)`
    if (process.env.E2E_REQUIRED === '1') throw new Error(`${message}; E2E_REQUIRED=1`)
    console.warn(`\n${'!'.repeat(78)}\n!! E2E SUITE SKIPPED: ${message}\n${'!'.repeat(78)}\n`)
    project.provide('skipReason', message)
    project.provide('baseURL', '')
    project.provide('upstreamURL', '')
    project.provide('tinyModel', '')
    project.provide('trainSkipReason', message)
    return async () => undefined
  }
  const dist = join(ROOT, 'frontend', 'dist', 'index.html')
  if (!existsSync(dist)) throw new Error('frontend/dist is missing: run `npm run build` first')
  const uvicorn = join(ROOT, '.venv', 'bin', 'uvicorn')
  if (!existsSync(uvicorn)) throw new Error('.venv is missing: run `make setup` first')

  const python = join(ROOT, '.venv', 'bin', 'python')

  const workdir = mkdtempSync(join(tmpdir(), 'modeltrain-e2e-'))
  const port = await freePort()
  const baseURL = `http://127.0.0.1:${port}`
  const backend = start(
    uvicorn,
    ['main:app', '--host', '127.0.0.1', '--port', String(port)],
    join(ROOT, 'backend'),
    {
      ...process.env,
      MODELTRAIN_ENV_FILE: '',
      DATABASE_URL: `sqlite:///${join(workdir, 'e2e.db')}`,
      DATA_DIR: join(workdir, 'data'),
      UPLOAD_DIR: join(workdir, 'uploads'),
      TRAINING_OUTPUT_DIR: join(workdir, 'training'),
      SERVING_DIR: join(workdir, 'serving'),
      FRONTEND_DIST: join(ROOT, 'frontend', 'dist'),
      PUBLIC_URL: baseURL,
      LOG_LEVEL: 'WARNING',
    },
  )
  let upstream: Server | undefined
  try {
    await waitFor(`${baseURL}/health`, backend.child, 'backend', backend.log)
    const started = await startUpstream(python)
    upstream = started.server
    project.provide('upstreamURL', started.url)
    const tiny = await buildTinyModel(workdir)
    project.provide('tinyModel', tiny.path)
    project.provide('trainSkipReason', tiny.skip)
  } catch (error) {
    await Promise.all([stop(backend), stop(upstream)])
    rmSync(workdir, { recursive: true, force: true })
    throw error
  }
  project.provide('baseURL', baseURL)
  project.provide('skipReason', '')

  return async () => {
    await Promise.all([stop(backend), stop(upstream)])
    rmSync(workdir, { recursive: true, force: true })
  }
}
