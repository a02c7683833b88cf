/**
 * The product's loop in a real browser, with the real training engine on the CPU and the tiny
 * model globalSetup built: upload a dataset on the training page (validation report), create and start a LoRA SFT job through the form, watch it run in the job drawer
 * (status, progress, loss curve, logs) until it succeeds, then "部署并对比": the fine-tuned
 * model and its base model are served and ModelTest opens with both preselected; a comparison
 * runs side by side. Skips without the training venv, unless TRAIN_ENGINE_REQUIRED=1 (CI).
 */
import type { Browser, BrowserContext, Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest'

import { ApiClient, register, suffix, uniqueUser } from './api'
import {
  byId,
  input,
  launch,
  screenshotOnFailure,
  shot,
  signedInPage,
  skipReason,
  textarea,
} from './browser'

const USER = uniqueUser('trainer', 'Train-Loop-Pass-2026')
const api = new ApiClient(USER)
const reason = skipReason() || inject('trainSkipReason')
const skip = Boolean(reason)
const JOB_NAME = `e2e-lora-${suffix}`

const ROWS = Array.from({ length: 16 }, (_, i) => ({
  instruction: `Tell me about topic ${i}.`,
  input: '',
  output: `Here is what I know about topic ${i}.`,
}))

interface Job {
  id: number
  name: string
  status: string
  progress: { step: number; total: number; percentage: number } | null
}

async function jobByName(name: string): Promise<Job | undefined> {
  const page = await api.json<{ items: Job[] }>('GET', '/api/training?size=100')
  return page.items.find((job) => job.name === name)
}

describe.skipIf(skip)('training loop in the browser', () => {
  let browser: Browser
  let context: BrowserContext | undefined
  let page: Page
  let jobId = 0
  let datasetId = 0

  beforeAll(async () => {
    await register(USER)
    browser = await launch()
    page = await signedInPage(browser, USER)
    context = page.context()
  })

  afterAll(async () => {
    await browser?.close()
  })

  it('uploads a dataset and shows its validation report', async () => {
    screenshotOnFailure(() => context, 'training-upload')
    await page.goto('/training')
    await page.waitForSelector(byId('training-page'))
    await page.click(byId('dataset-upload'))
    await page.waitForSelector(byId('dataset-upload-dialog'))
    await page.setInputFiles(`${byId('dataset-upload-file')} input[type=file]`, {
      name: 'tiny.jsonl',
      mimeType: 'application/json',
      buffer: Buffer.from(ROWS.map((row) => JSON.stringify(row)).join('\n') + '\n'),
    })
    await page.fill(input('dataset-upload-name'), `tiny ${suffix}`)
    await page.click(byId('dataset-upload-submit'))
    await page.waitForSelector(byId('dataset-upload-done'), { timeout: 30_000 })
    expect(await page.innerText(byId('dataset-report-format'))).toContain('Alpaca')
    expect(await page.innerText(byId('dataset-report-rows'))).toContain('16')
    await shot(page, '70-training-dataset-report')
    await page.click(byId('dataset-upload-close'))
    const listed = await api.json<{ items: { id: number; status: string }[] }>(
      'GET',
      '/api/training/datasets/?size=100',
    )
    expect(listed.items).toHaveLength(1)
    expect(listed.items[0].status).toBe('ready')
    datasetId = listed.items[0].id
    await page.waitForSelector(byId(`dataset-row-${datasetId}`))
  })

  it('creates and starts a LoRA job through the form and watches it succeed', async () => {
    screenshotOnFailure(() => context, 'training-job')
    await page.goto('/training?tab=jobs')
    // No GPU here: the page says that training runs on the CPU, with the server's thread count.
    const engine = await api.json<{ gpus: string[]; cpu_threads: number | null }>(
      'GET',
      '/api/training/engine',
    )
    if (engine.gpus.length === 0) {
      const note = await page.innerText(byId('engine-cpu-note'))
      if (engine.cpu_threads !== null) expect(note).toContain(String(engine.cpu_threads))
    }
    await page.click(byId('job-new'))
    await page.waitForSelector(byId('job-create-dialog'))
    await page.click(byId('job-preset-loraSft'))
    await page.fill(input('job-name'), JOB_NAME)
    await page.click(byId('job-datasets'))
    await page.click(byId(`job-dataset-option-${datasetId}`))
    await page.keyboard.press('Escape')
    await page.fill(input('job-base-model'), inject('tinyModel'))
    await page.click(byId('job-duration-steps'))
    await page.fill(input('job-max-steps'), '10')
    // "Start now" is on by default.
    expect(await page.isChecked(`${byId('job-start-now')} input`)).toBe(true)
    await shot(page, '71-training-create-form')
    await page.click(byId('job-create-submit'))
    await expect.poll(async () => (await jobByName(JOB_NAME))?.id ?? 0).toBeGreaterThan(0)
    jobId = (await jobByName(JOB_NAME))!.id

    // The new job opens in the drawer, which follows it live.
    await page.waitForSelector(byId('job-drawer'))
    await page.waitForURL((url) => url.searchParams.get('job') === String(jobId))
    await expect
      .poll(() => page.getAttribute(byId('job-drawer-status'), 'data-status'), {
        timeout: 240_000,
        interval: 500,
      })
      .toBe('succeeded')
    const job = await api.json<Job>('GET', `/api/training/${jobId}`)
    expect(job.progress).toMatchObject({ step: 10, total: 10, percentage: 100 })
    await page.waitForSelector(`${byId('job-drawer')} ${byId('metrics-chart')} canvas`)
    expect(await page.innerText(byId('job-drawer-progress'))).toContain('100%')
    const logs = await page.innerText(byId('job-logs'))
    expect(logs).toContain('[modeltrain]')
    const artifacts = await api.json<{ name: string }[]>('GET', `/api/training/${jobId}/artifacts`)
    expect(artifacts.map((artifact) => artifact.name)).toContain('adapter')
    await shot(page, '72-training-job-succeeded')

    // The list shows the finished bar as well.
    await page.keyboard.press('Escape')
    await page.waitForSelector(byId(`job-progress-${jobId}`))
    expect(await page.getAttribute(byId(`job-progress-${jobId}`), 'aria-valuenow')).toBe('100')
    const metrics = await api.json<{ points: { step: number; loss: number }[] }>(
      'GET',
      `/api/training/${jobId}/metrics`,
    )
    expect(metrics.points.map((point) => point.step)).toEqual([5, 10])
  })

  it('deploys the fine-tuned and the base model and compares them side by side', async () => {
    screenshotOnFailure(() => context, 'training-deploy')
    await page.goto(`/training?tab=jobs&job=${jobId}`)
    await page.waitForSelector(byId('job-drawer'))
    await page.click(byId('deploy-compare'))
    await page.waitForURL((url) => url.pathname === '/model-test', { timeout: 240_000 })
    const tags = page.locator(`${byId('compare-configs')} .el-select__selected-item .el-tag`)
    await expect.poll(() => tags.count(), { timeout: 30_000 }).toBe(2)
    await shot(page, '73-deploy-compare-preselected')

    await page.fill(textarea('compare-prompt'), 'Tell me about topic 3.')
    await page.click(byId('compare-run'))
    const status = (index: number) =>
      page.getAttribute(byId(`compare-column-${index}`), 'data-status')
    await expect.poll(() => status(0), { timeout: 60_000 }).toBe('done')
    await expect.poll(() => status(1), { timeout: 60_000 }).toBe('done')
    await shot(page, '74-deploy-compare-answers')

    // Both are listed as ready on the runtime page; unloading one frees it.
    const runtimes = await api.json<{ id: number; status: string; job_id: number | null }[]>(
      'GET',
      '/api/model',
    )
    expect(runtimes.filter((r) => r.status === 'ready')).toHaveLength(2)
    for (const runtime of runtimes) {
      const stopped = await api.json<{ status: string }>('POST', `/api/model/${runtime.id}/unload`)
      expect(stopped.status).toBe('stopped')
    }
  })
})
