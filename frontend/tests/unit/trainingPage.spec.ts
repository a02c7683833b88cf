import type { InternalAxiosRequestConfig } from 'axios'
import { flushPromises, mount, type VueWrapper } from '@vue/test-utils'
import { createPinia, setActivePinia } from 'pinia'
import { afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest'
import { defineComponent, h } from 'vue'
import { createMemoryHistory, createRouter, type Router } from 'vue-router'

import type { EngineInfo, JobEvent, TrainingJob } from '@/api/training'
import { i18n, loadPageMessages } from '@/locales'
import { useAuthStore } from '@/store'
import { api } from '@/utils/api'
import { clearSession, setSession } from '@/utils/tokenManager'
import ModelTraining from '@/views/ModelTraining.vue'
import { JOB_POLL_MS } from '@/views/model-training/data'

import { makeSession, reply, scriptedAdapter, type SeenRequest } from './helpers'
import { makeDataset, makeJobDetail, makeTrainingJob, point } from './trainingFixtures'

const { messageError, messageSuccess, confirm, alert } = vi.hoisted(() => ({
  messageError: vi.fn(),
  messageSuccess: vi.fn(),
  confirm: vi.fn(),
  alert: vi.fn(),
}))
vi.mock('element-plus', async (importOriginal) => ({
  ...(await importOriginal<typeof import('element-plus')>()),
  ElMessage: { error: messageError, success: messageSuccess },
  ElMessageBox: { confirm, alert },
}))
/** Stands in for the ECharts chart (no canvas in jsdom): shows what it was given. */
vi.mock('@/components/MetricsChart.vue', async () => {
  const { defineComponent: define, h: render } = await import('vue')
  return {
    default: define({
      props: {
        points: { type: Array, required: true },
        metrics: { type: Array, default: () => [] },
      },
      setup: (props) => () =>
        render('div', {
          'data-testid': 'chart-stub',
          'data-steps': (props.points as { step: number }[]).map((p) => p.step).join(','),
        }),
    }),
  }
})

const originalAdapter = api.defaults.adapter

const ENGINE: EngineInfo = {
  available: true,
  version: '0.9.5',
  version_supported: true,
  missing: null,
  install_hint: 'make train-env',
  gpus: [],
  quantization: false,
  templates: ['default'],
  cpu_threads: 1,
}

let requests: SeenRequest[] = []
let engine: EngineInfo = ENGINE
let jobs: TrainingJob[] = []
let listParams: unknown[] = []
let onDelete: (config: InternalAxiosRequestConfig) => ReturnType<typeof reply>

beforeAll(async () => {
  await loadPageMessages('training')
})

beforeEach(() => {
  setActivePinia(createPinia())
  useAuthStore()
  setSession(makeSession('token-1'))
  engine = ENGINE
  jobs = [makeTrainingJob()]
  onDelete = (config) => reply(config, 204, null)
  listParams = []
  const scripted = scriptedAdapter((config) => {
    const url = config.url ?? ''
    const method = config.method ?? 'get'
    if (url === '/training/engine') return reply(config, 200, engine)
    if (url === '/training' && method === 'get') {
      listParams.push(config.params)
      return reply(config, 200, { items: jobs, total: jobs.length, page: 1, size: 20 })
    }
    if (url === '/training/7' && method === 'get') return reply(config, 200, makeJobDetail())
    if (url === '/training/7/cancel') {
      return reply(config, 200, makeJobDetail({ status: 'cancelled', progress: null }))
    }
    if (url === '/training/datasets/') {
      return reply(config, 200, { items: [makeDataset()], total: 1, page: 1, size: 20 })
    }
    if (url === '/training/datasets/3' && method === 'delete') return onDelete(config)
    return reply(config, 404, { detail: 'not here', code: 'not_found' })
  })
  requests = scripted.requests
  api.defaults.adapter = scripted.adapter
  confirm.mockResolvedValue('confirm')
  alert.mockResolvedValue('confirm')
})

afterEach(() => {
  api.defaults.adapter = originalAdapter
  vi.useRealTimers()
  vi.unstubAllGlobals()
  clearSession()
  document.body.innerHTML = ''
})

function makeRouter(): Router {
  return createRouter({
    history: createMemoryHistory(),
    routes: [{ path: '/training', name: 'model-training', component: ModelTraining }],
  })
}

async function settle(): Promise<void> {
  for (let i = 0; i < 6; i++) await flushPromises()
}

async function mountPage(path: string): Promise<{ wrapper: VueWrapper; router: Router }> {
  const router = makeRouter()
  await router.push(path)
  const wrapper = mount(defineComponent({ render: () => h('div', [h(ModelTraining)]) }), {
    attachTo: document.body,
    global: {
      plugins: [i18n, router],
      stubs: { transition: false, 'transition-group': false },
    },
  })
  await settle()
  return { wrapper, router }
}

function find(testId: string): HTMLElement | null {
  return document.querySelector<HTMLElement>(`[data-testid="${testId}"]`)
}

function byId(testId: string): HTMLElement {
  const found = find(testId)
  if (!found) throw new Error(`no element ${testId}`)
  return found
}

const listCalls = () => requests.filter((r) => r.method === 'GET' && r.url === '/training')

describe('the jobs tab', () => {
  let wrapper: VueWrapper | undefined
  afterEach(() => wrapper?.unmount())

  it('shows an engine banner with what is missing and the install hint, and blocks creating', async () => {
    engine = { ...ENGINE, available: false, missing: 'llamafactory' }
    jobs = []
    wrapper = (await mountPage('/training?tab=jobs')).wrapper
    const banner = byId('engine-banner')
    expect(banner.textContent).toContain('llamafactory')
    expect(banner.textContent).toContain('make train-env')
    expect((byId('job-new') as HTMLButtonElement).disabled).toBe(true)
  })

  it('says when training runs on the CPU, with the threads a job gets, and not with a GPU', async () => {
    wrapper = (await mountPage('/training?tab=jobs')).wrapper
    const note = byId('engine-cpu-note')
    expect(note.textContent).toContain(i18n.global.t('training.engine.cpuOnlyThreads', { n: 1 }))
    wrapper.unmount()
    engine = { ...ENGINE, gpus: ['NVIDIA H200'], cpu_threads: null }
    wrapper = (await mountPage('/training?tab=jobs')).wrapper
    expect(find('engine-cpu-note')).toBeNull()
  })

  it('lists a running job with its status, progress, steps, loss and ETA', async () => {
    wrapper = (await mountPage('/training?tab=jobs')).wrapper
    expect(find('engine-banner')).toBeNull()
    expect(byId('job-status-7').textContent).toContain(i18n.global.t('training.status.running'))
    expect(byId('job-progress-7').getAttribute('aria-valuenow')).toBe('20')
    const row = byId('job-row-7').closest('tr')!
    expect(row.textContent).toContain('2 / 10')
    expect(row.textContent).toContain('0:12') // remaining 12 s
    expect(byId('job-loss-7').textContent).toBe('2.5')
  })

  it('shows the queue position of a queued job', async () => {
    jobs = [makeTrainingJob({ status: 'queued', queue_position: 2, progress: null })]
    wrapper = (await mountPage('/training?tab=jobs')).wrapper
    expect(byId('job-queue-7').textContent).toContain('2')
  })

  it('refreshes the list while a job runs, and stops once none is active', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] })
    wrapper = (await mountPage('/training?tab=jobs')).wrapper
    await vi.advanceTimersByTimeAsync(0)
    expect(listCalls()).toHaveLength(1)
    expect(find('job-autorefresh')).not.toBeNull()

    jobs = [makeTrainingJob({ status: 'succeeded' })]
    await vi.advanceTimersByTimeAsync(JOB_POLL_MS)
    await settle()
    expect(listCalls()).toHaveLength(2)
    expect(byId('job-status-7').textContent).toContain(i18n.global.t('training.status.succeeded'))

    await vi.advanceTimersByTimeAsync(JOB_POLL_MS * 3)
    expect(listCalls()).toHaveLength(2)
    expect(find('job-autorefresh')).toBeNull()
  })

  it('takes the status filter from the address (the dashboard links there)', async () => {
    wrapper = (await mountPage('/training?status=failed')).wrapper
    expect(find('job-table')).not.toBeNull()
    expect(listParams[0]).toMatchObject({ status: 'failed' })
  })
})

describe('the job drawer', () => {
  let wrapper: VueWrapper | undefined
  afterEach(() => wrapper?.unmount())

  const encoder = new TextEncoder()

  function stream() {
    let controller!: ReadableStreamDefaultController<Uint8Array>
    let cancelled = false
    const body = new ReadableStream<Uint8Array>({
      start: (c) => void (controller = c),
      cancel: () => void (cancelled = true),
    })
    return {
      response: new Response(body),
      send: (...events: (JobEvent | '[DONE]')[]) =>
        events.forEach((event) =>
          controller.enqueue(
            encoder.encode(
              `data: ${typeof event === 'string' ? event : JSON.stringify(event)}\n\n`,
            ),
          ),
        ),
      wasCancelled: () => cancelled,
    }
  }

  it('streams curves and logs, cancels with a confirmation, and closes the stream with the drawer', async () => {
    const sse = stream()
    const fetchMock = vi.fn<typeof fetch>().mockResolvedValue(sse.response)
    vi.stubGlobal('fetch', fetchMock)
    const mounted = await mountPage('/training?tab=jobs&job=7')
    wrapper = mounted.wrapper
    expect(byId('job-drawer')).toBeTruthy()
    expect(String(fetchMock.mock.calls[0]![0])).toBe('/api/training/7/events')

    sse.send(
      { type: 'job', job: makeTrainingJob() },
      { type: 'metrics', points: [point(1), point(2)] },
      { type: 'log', lines: ['{"current_steps": 1}', '{"current_steps": 2}'], next_offset: 44 },
    )
    await settle()
    await vi.waitFor(() => expect(find('chart-stub')?.dataset.steps).toBe('1,2'))
    expect(byId('job-logs').textContent).toContain('{"current_steps": 2}')
    expect(byId('job-stream-state').textContent).toContain(
      i18n.global.t('training.drawer.stream.live'),
    )

    byId('job-action-cancel').click()
    await settle()
    expect(confirm).toHaveBeenCalledOnce()
    expect(requests.some((r) => r.method === 'POST' && r.url === '/training/7/cancel')).toBe(true)
    await vi.waitFor(() => expect(byId('job-drawer-status').dataset.status).toBe('cancelled'))

    // Closing the drawer closes the stream and takes the job out of the address.
    ;(document.querySelector('.el-drawer__close-btn') as HTMLElement).click()
    await settle()
    await vi.waitFor(() => expect(mounted.router.currentRoute.value.query.job).toBeUndefined())
    expect(sse.wasCancelled()).toBe(true)
  })

  it('a cancelled confirmation sends nothing', async () => {
    confirm.mockRejectedValue('cancel')
    vi.stubGlobal('fetch', vi.fn<typeof fetch>().mockResolvedValue(stream().response))
    wrapper = (await mountPage('/training?tab=jobs&job=7')).wrapper
    byId('job-action-cancel').click()
    await settle()
    expect(requests.some((r) => r.url === '/training/7/cancel')).toBe(false)
  })
})

describe('the datasets tab', () => {
  let wrapper: VueWrapper | undefined
  afterEach(() => wrapper?.unmount())

  it('lists datasets with their format, status and counts', async () => {
    wrapper = (await mountPage('/training')).wrapper
    const row = byId('dataset-row-3').closest('tr')!
    expect(row.textContent).toContain('alpaca-mini')
    expect(row.textContent).toContain('Alpaca')
    expect(byId('dataset-status-3').textContent).toContain(
      i18n.global.t('training.datasets.status.ready'),
    )
  })

  it('says clearly that a dataset in use cannot be deleted', async () => {
    onDelete = (config) =>
      reply(config, 409, {
        detail: '1 running training job(s) use this dataset; stop them first',
        code: 'dataset_in_use',
      })
    wrapper = (await mountPage('/training')).wrapper
    byId('dataset-delete-3').click()
    await settle()
    expect(confirm).toHaveBeenCalledOnce()
    expect(alert).toHaveBeenCalledOnce()
    const [message, title] = alert.mock.calls[0]!
    expect(message).toContain(i18n.global.t('errors.dataset_in_use'))
    expect(message).toContain('1 running training job(s)')
    expect(title).toBe(i18n.global.t('training.datasets.delete.inUseTitle'))
    expect(find('dataset-row-3')).not.toBeNull()
  })
})
