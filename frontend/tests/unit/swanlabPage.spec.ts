import type { InternalAxiosRequestConfig } from 'axios'
import { flushPromises, mount, type VueWrapper } from '@vue/test-utils'
import { createPinia, setActivePinia } from 'pinia'
import { afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest'
import { defineComponent, h } from 'vue'
import { createMemoryHistory, createRouter, type Router } from 'vue-router'

import type {
  SwanlabConfig,
  SwanlabProjects,
  SwanlabStatus,
  SwanlabTestResult,
} from '@/api/swanlab'
import type { MetricPoint, TrainingJob } from '@/api/training'
import { i18n, loadPageMessages } from '@/locales'
import { useAuthStore } from '@/store'
import { api } from '@/utils/api'
import { clearSession, setSession } from '@/utils/tokenManager'
import SwanLabViz from '@/views/SwanLabViz.vue'

import { makeSession, reply, scriptedAdapter, type SeenRequest } from './helpers'
import { makeConfig, makeJob, makePoint, makeStatus } from './swanlabFixtures'

const { messageError, messageSuccess } = vi.hoisted(() => ({
  messageError: vi.fn(),
  messageSuccess: vi.fn(),
}))
vi.mock('element-plus', async (importOriginal) => ({
  ...(await importOriginal<typeof import('element-plus')>()),
  ElMessage: { error: messageError, success: messageSuccess },
}))

const originalAdapter = api.defaults.adapter
/** The routes the page links to, rendering nothing. */
const Blank = { render: () => null }
/** Stands in for the ECharts chart (no canvas in jsdom): shows what it was given. */
const ChartStub = defineComponent({
  props: { points: { type: Array, required: true }, metrics: { type: Array, default: () => [] } },
  setup: (props) => () =>
    h('div', {
      'data-testid': 'chart-stub',
      'data-steps': (props.points as MetricPoint[]).map((p) => p.step).join(','),
      'data-metrics': (props.metrics as string[]).join(','),
    }),
})

/** What the fake server holds; each test changes what it needs. */
interface Server {
  config: SwanlabConfig
  status: SwanlabStatus
  projects: SwanlabProjects
  jobs: TrainingJob[]
  points: Record<number, MetricPoint[]>
  test: SwanlabTestResult
  /** Per "METHOD url": a status and body that replace the normal answer. */
  fail: Record<string, [number, unknown]>
}

let server: Server
let requests: SeenRequest[]
/** `after_step` of each metrics request, in order. */
let metricsAfter: (number | undefined)[]

function answer(config: InternalAxiosRequestConfig) {
  const method = (config.method ?? 'get').toUpperCase()
  const url = config.url ?? ''
  const failure = server.fail[`${method} ${url}`]
  if (failure) return reply(config, failure[0], failure[1])
  const body = typeof config.data === 'string' ? JSON.parse(config.data) : {}
  switch (`${method} ${url}`) {
    case 'GET /training/swanlab/config':
      return reply(config, 200, server.config)
    case 'PUT /training/swanlab/config': {
      const { api_key: key, ...rest } = body as Record<string, unknown>
      server.config = {
        ...server.config,
        ...(rest as Partial<SwanlabConfig>),
        logdir_is_default: !rest.logdir,
        logdir: (rest.logdir as string | null) ?? server.config.logdir,
      }
      if (key === '') server.config = { ...server.config, has_api_key: false, api_key_masked: null }
      else if (typeof key === 'string') {
        server.config = { ...server.config, has_api_key: true, api_key_masked: `…${key.slice(-4)}` }
      }
      return reply(config, 200, server.config)
    }
    case 'GET /training/swanlab/status':
      return reply(config, 200, server.status)
    case 'POST /training/swanlab/start':
      server.status = makeStatus({
        running: true,
        healthy: true,
        pid: 4242,
        port: 5092,
        url: 'http://127.0.0.1:5092',
        started_at: '2025-01-02T03:04:05Z',
      })
      return reply(config, 200, server.status)
    case 'POST /training/swanlab/stop':
      server.status = makeStatus()
      return reply(config, 200, server.status)
    case 'POST /training/swanlab/test':
      return reply(config, 200, server.test)
    case 'GET /training/swanlab/projects':
      return reply(config, 200, server.projects)
    case 'GET /training':
      return reply(config, 200, {
        items: server.jobs,
        total: server.jobs.length,
        page: 1,
        size: 100,
      })
  }
  const detail = /^\/training\/(\d+)$/.exec(url)
  if (method === 'GET' && detail) {
    const job = server.jobs.find((item) => item.id === Number(detail[1]))
    return job
      ? reply(config, 200, { ...job, artifacts: [], exports: [] })
      : reply(config, 404, { detail: 'Not found', code: 'job_not_found' })
  }
  const metrics = /^\/training\/(\d+)\/metrics$/.exec(url)
  if (method === 'GET' && metrics) {
    const afterStep = (config.params as { after_step?: number } | undefined)?.after_step
    metricsAfter.push(afterStep)
    const after = afterStep ?? -1
    const points = (server.points[Number(metrics[1])] ?? []).filter((p) => p.step > after)
    return reply(config, 200, { progress: null, points })
  }
  return reply(config, 404, { detail: `no route ${method} ${url}`, code: 'not_found' })
}

function makeRouter(): Router {
  return createRouter({
    history: createMemoryHistory(),
    routes: [
      { path: '/swanlab', name: 'swanlab', component: Blank },
      { path: '/training', name: 'training', component: Blank },
    ],
  })
}

async function mountPage(
  role: 'user' | 'admin',
  path = '/swanlab',
): Promise<{ wrapper: VueWrapper; router: Router }> {
  // The auth store follows sessions set after it exists.
  const auth = useAuthStore()
  setSession(makeSession('token', { user: { role } }))
  expect(auth.isAdmin).toBe(role === 'admin')
  const router = makeRouter()
  await router.push(path)
  const wrapper = mount(SwanLabViz, {
    attachTo: document.body,
    global: {
      plugins: [i18n, router],
      stubs: { MetricsChart: ChartStub, transition: false, 'transition-group': false },
    },
  })
  await settle()
  return { wrapper, router }
}

async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await flushPromises()
}

function byId(wrapper: VueWrapper, testId: string) {
  return wrapper.find(`[data-testid="${testId}"]`)
}

function sent(method: string, url: string): SeenRequest[] {
  return requests.filter((r) => r.method === method && r.url === url)
}

beforeAll(async () => {
  await loadPageMessages('swanlab')
  i18n.global.locale.value = 'en'
})

beforeEach(() => {
  setActivePinia(createPinia())
  server = {
    config: makeConfig(),
    status: makeStatus(),
    projects: { logdir: '/srv/data/swanlog', projects: [] },
    jobs: [],
    points: {},
    test: { ok: true, mode: 'local', message: 'OK', checks: [] },
    fail: {},
  }
  const scripted = scriptedAdapter(answer)
  requests = scripted.requests
  metricsAfter = []
  api.defaults.adapter = scripted.adapter
})

afterEach(() => {
  api.defaults.adapter = originalAdapter
  clearSession()
  document.body.innerHTML = ''
})

describe('SwanLab page: status card', () => {
  it('shows a running dashboard to an admin with stop and a new-tab link', async () => {
    server.status = makeStatus({
      running: true,
      healthy: true,
      pid: 777,
      port: 5092,
      url: 'http://127.0.0.1:5092',
      started_at: '2025-01-02T03:04:05Z',
    })
    const { wrapper } = await mountPage('admin')
    expect(byId(wrapper, 'swanlab-status-state').attributes('data-state')).toBe('running')
    expect(byId(wrapper, 'swanlab-status-pid').text()).toBe('777')
    expect(byId(wrapper, 'swanlab-status-url').text()).toBe('http://127.0.0.1:5092')
    expect(byId(wrapper, 'swanlab-status-healthy').attributes('data-value')).toBe('true')
    expect(byId(wrapper, 'swanlab-status-mode').text()).toBe('Local')
    const open = byId(wrapper, 'swanlab-open')
    expect(open.attributes('href')).toBe('http://127.0.0.1:5092')
    expect(open.attributes('target')).toBe('_blank')
    expect(byId(wrapper, 'swanlab-start').exists()).toBe(false)

    await byId(wrapper, 'swanlab-stop').trigger('click')
    await settle()
    expect(sent('POST', '/training/swanlab/stop')).toHaveLength(1)
    expect(byId(wrapper, 'swanlab-status-state').attributes('data-state')).toBe('stopped')
    expect(byId(wrapper, 'swanlab-open').exists()).toBe(false)
    expect(byId(wrapper, 'swanlab-start').exists()).toBe(true)
    wrapper.unmount()
  })

  it('starts the dashboard for an admin and reloads the runs', async () => {
    const { wrapper } = await mountPage('admin')
    expect(byId(wrapper, 'swanlab-status-state').attributes('data-state')).toBe('stopped')
    const before = sent('GET', '/training/swanlab/projects').length
    await byId(wrapper, 'swanlab-start').trigger('click')
    await settle()
    expect(sent('POST', '/training/swanlab/start')).toHaveLength(1)
    expect(byId(wrapper, 'swanlab-status-state').attributes('data-state')).toBe('running')
    expect(byId(wrapper, 'swanlab-status-pid').text()).toBe('4242')
    expect(byId(wrapper, 'swanlab-open').attributes('href')).toBe('http://127.0.0.1:5092')
    expect(sent('GET', '/training/swanlab/projects').length).toBe(before + 1)
    wrapper.unmount()
  })

  it('shows why a start failed, with the server detail, in the card', async () => {
    server.fail['POST /training/swanlab/start'] = [
      409,
      { detail: 'The SwanLab dashboard exited at once: boom', code: 'dashboard_failed' },
    ]
    server.status = makeStatus({ log_tail: ['Traceback', 'boom'] })
    const { wrapper } = await mountPage('admin')
    await byId(wrapper, 'swanlab-start').trigger('click')
    await settle()
    const alert = byId(wrapper, 'swanlab-action-error').text()
    expect(alert).toContain(i18n.global.t('errors.dashboard_failed'))
    expect(alert).toContain('exited at once: boom')
    expect(byId(wrapper, 'swanlab-status-log').text()).toContain('boom')
    // Shown in the card, not popped up as well.
    expect(messageError).not.toHaveBeenCalled()
    wrapper.unmount()
  })

  it('gives users no start or stop, and says why', async () => {
    server.status = makeStatus({ running: true, healthy: true, url: 'http://127.0.0.1:5092' })
    const { wrapper } = await mountPage('user')
    expect(byId(wrapper, 'swanlab-start').exists()).toBe(false)
    expect(byId(wrapper, 'swanlab-stop').exists()).toBe(false)
    expect(byId(wrapper, 'swanlab-status-admin-only').exists()).toBe(true)
    expect(byId(wrapper, 'swanlab-open').exists()).toBe(true)
    wrapper.unmount()
  })

  it('says when the engine is missing and how to install it', async () => {
    server.status = makeStatus({ engine_available: false, install_hint: 'make train-env' })
    const { wrapper } = await mountPage('admin')
    expect(byId(wrapper, 'swanlab-status-state').attributes('data-state')).toBe('unavailable')
    expect(byId(wrapper, 'swanlab-status-unavailable').text()).toContain('make train-env')
    expect(byId(wrapper, 'swanlab-start').attributes('disabled')).toBeDefined()
    wrapper.unmount()
  })
})

describe('SwanLab page: config form', () => {
  async function setInput(wrapper: VueWrapper, testId: string, value: string): Promise<void> {
    const input = wrapper.find(`input[data-testid="${testId}"]`)
    await input.setValue(value)
    await input.trigger('blur')
  }

  /** Element Plus shows a field's error after a 100 ms debounce. */
  async function fieldError(wrapper: VueWrapper, testId: string): Promise<string> {
    await new Promise((resolve) => setTimeout(resolve, 150))
    await flushPromises()
    const item = wrapper.find(`input[data-testid="${testId}"]`).element.closest('.el-form-item')
    return item?.querySelector('.el-form-item__error')?.textContent?.trim() ?? ''
  }

  async function save(wrapper: VueWrapper): Promise<void> {
    await byId(wrapper, 'swanlab-config-form').trigger('submit')
    await settle()
  }

  it('saves the form and keeps the stored key when the key field is empty', async () => {
    server.config = makeConfig({ mode: 'cloud', has_api_key: true, api_key_masked: '…a1b2' })
    const { wrapper } = await mountPage('admin')
    expect(byId(wrapper, 'swanlab-key-state').text()).toContain('…a1b2')
    expect(
      wrapper.find('input[data-testid="swanlab-api-key"]').attributes('placeholder'),
    ).toContain('…a1b2')
    expect(byId(wrapper, 'swanlab-save').attributes('disabled')).toBeDefined()
    await setInput(wrapper, 'swanlab-project', 'demo')
    await setInput(wrapper, 'swanlab-workspace', 'team')
    await save(wrapper)
    const [put] = sent('PUT', '/training/swanlab/config')
    expect(put?.data).toEqual({
      mode: 'cloud',
      project: 'demo',
      workspace: 'team',
      logdir: null,
      host: null,
      port: 5092,
    })
    expect(messageSuccess).toHaveBeenCalled()
    expect(byId(wrapper, 'swanlab-save').attributes('disabled')).toBeDefined()
    wrapper.unmount()
  })

  it('replaces the key with a typed one, and removes it with the box', async () => {
    server.config = makeConfig({ has_api_key: true, api_key_masked: '…a1b2' })
    const { wrapper } = await mountPage('admin')
    await setInput(wrapper, 'swanlab-api-key', 'sk-new-key-9876')
    await save(wrapper)
    expect(sent('PUT', '/training/swanlab/config')[0]?.data).toMatchObject({
      api_key: 'sk-new-key-9876',
    })
    expect(byId(wrapper, 'swanlab-key-state').text()).toContain('…9876')
    // The typed key is not kept in the form once saved.
    expect(
      (wrapper.find('input[data-testid="swanlab-api-key"]').element as HTMLInputElement).value,
    ).toBe('')

    await byId(wrapper, 'swanlab-remove-key').find('input').setValue(true)
    await save(wrapper)
    expect(sent('PUT', '/training/swanlab/config')[1]?.data).toMatchObject({ api_key: '' })
    expect(byId(wrapper, 'swanlab-key-state').exists()).toBe(false)
    wrapper.unmount()
  })

  it('refuses a bad form before sending it', async () => {
    const { wrapper } = await mountPage('admin')
    await setInput(wrapper, 'swanlab-logdir', 'relative/dir')
    await save(wrapper)
    expect(sent('PUT', '/training/swanlab/config')).toHaveLength(0)
    expect(await fieldError(wrapper, 'swanlab-logdir')).toBe(
      i18n.global.t('swanlab.rules.logdirAbsolute'),
    )
    wrapper.unmount()
  })

  it("maps the server's 422 onto the field", async () => {
    server.fail['PUT /training/swanlab/config'] = [
      422,
      {
        detail: [
          {
            type: 'value_error',
            loc: ['body', 'logdir'],
            msg: 'Value error, Log folder must not contain ..',
          },
        ],
        code: 'validation_error',
      },
    ]
    const { wrapper } = await mountPage('admin')
    await setInput(wrapper, 'swanlab-logdir', '/data/runs')
    await save(wrapper)
    expect(sent('PUT', '/training/swanlab/config')).toHaveLength(1)
    expect(await fieldError(wrapper, 'swanlab-logdir')).toBe('Log folder must not contain ..')
    wrapper.unmount()
  })

  it('is read-only for users, who may still run the connection test', async () => {
    server.test = {
      ok: false,
      mode: 'local',
      message: 'swanlab is not installed in the training venv; run `make train-env`',
      checks: [
        { name: 'package', ok: false, message: 'swanlab is not installed' },
        { name: 'logdir', ok: true, message: '/srv/data/swanlog is writable' },
      ],
    }
    const { wrapper } = await mountPage('user')
    expect(byId(wrapper, 'swanlab-save').exists()).toBe(false)
    expect(
      wrapper.find('input[data-testid="swanlab-project"]').attributes('disabled'),
    ).toBeDefined()
    expect(
      wrapper.find('input[data-testid="swanlab-api-key"]').attributes('disabled'),
    ).toBeDefined()
    await byId(wrapper, 'swanlab-test').trigger('click')
    await settle()
    expect(sent('POST', '/training/swanlab/test')).toHaveLength(1)
    const result = byId(wrapper, 'swanlab-test-result')
    expect(result.attributes('data-ok')).toBe('false')
    expect(result.text()).toContain(i18n.global.t('swanlab.test.failed'))
    expect(result.text()).toContain('run `make train-env`')
    expect(byId(wrapper, 'swanlab-check-package').attributes('data-ok')).toBe('false')
    expect(byId(wrapper, 'swanlab-check-logdir').attributes('data-ok')).toBe('true')
    expect(byId(wrapper, 'swanlab-check-logdir').text()).toContain('is writable')
    wrapper.unmount()
  })

  it('shows a passed test plainly', async () => {
    const { wrapper } = await mountPage('admin')
    await byId(wrapper, 'swanlab-test').trigger('click')
    await settle()
    const result = byId(wrapper, 'swanlab-test-result')
    expect(result.attributes('data-ok')).toBe('true')
    expect(result.text()).toContain(i18n.global.t('swanlab.test.ok'))
    wrapper.unmount()
  })
})

describe('SwanLab page: runs and curves', () => {
  it('links a run to its job and draws that job from our metrics', async () => {
    server.jobs = [
      makeJob(7),
      makeJob(8, { swanlab: { enabled: false, project: null, run_name: null, mode: null } }),
    ]
    server.points[7] = [makePoint(1, 2.5), makePoint(2, 2.1), makePoint(3, 1.8)]
    server.projects = {
      logdir: '/srv/data/swanlog',
      projects: [
        {
          name: 'modeltrain',
          created_at: null,
          updated_at: null,
          runs: [
            {
              run_id: 'abc',
              name: 'run-7',
              status: 'finished',
              created_at: null,
              finished_at: null,
            },
            {
              run_id: 'def',
              name: 'manual',
              status: 'crashed',
              created_at: null,
              finished_at: null,
            },
          ],
        },
      ],
    }
    server.status = makeStatus({ running: true, healthy: true, url: 'http://127.0.0.1:5092' })
    const { wrapper, router } = await mountPage('user')
    expect(byId(wrapper, 'swanlab-run-abc').text()).toBe('run-7')
    expect(byId(wrapper, 'swanlab-run-def').exists()).toBe(true)
    expect(byId(wrapper, 'swanlab-curves-empty').exists()).toBe(true)
    // The job list asked for training jobs only.
    expect(sent('GET', '/training')).toHaveLength(1)

    await byId(wrapper, 'swanlab-run-abc-job-7').trigger('click')
    await settle()
    expect(router.currentRoute.value.query.job).toBe('7')
    expect(byId(wrapper, 'chart-stub').attributes('data-steps')).toBe('1,2,3')
    expect(byId(wrapper, 'chart-stub').attributes('data-metrics')).toBe('loss,lr')
    expect(byId(wrapper, 'swanlab-curves-count').attributes('data-value')).toBe('3')
    expect(byId(wrapper, 'swanlab-curves-status').attributes('data-status')).toBe('succeeded')
    expect(byId(wrapper, 'swanlab-curves-match-abc').text()).toContain('run-7')
    expect(byId(wrapper, 'swanlab-curves-open').attributes('href')).toBe('http://127.0.0.1:5092')
    expect(byId(wrapper, 'swanlab-curves-live').exists()).toBe(false)
    expect(byId(wrapper, 'swanlab-curves-job-link').attributes('href')).toBe(
      '/training?tab=jobs&job=7',
    )
    wrapper.unmount()
  })

  it('opens the job named in the address and says when it does not log to SwanLab', async () => {
    server.jobs = [
      makeJob(8, { swanlab: { enabled: false, project: null, run_name: null, mode: null } }),
    ]
    server.points[8] = [makePoint(5, 1.2)]
    const { wrapper } = await mountPage('user', '/swanlab?job=8')
    // The first fetch asks for every point (no after_step); a finished job is not polled.
    expect(metricsAfter).toEqual([undefined])
    expect(byId(wrapper, 'chart-stub').attributes('data-steps')).toBe('5')
    expect(byId(wrapper, 'swanlab-curves-note').text()).toBe(
      i18n.global.t('swanlab.curves.swanlabOff'),
    )
    wrapper.unmount()
  })

  it('says so when the log folder cannot be read', async () => {
    server.fail['GET /training/swanlab/projects'] = [
      400,
      { detail: 'Cannot read /x/runs.swanlab: locked', code: 'swanlab_logdir_unreadable' },
    ]
    const { wrapper } = await mountPage('admin')
    const alert = byId(wrapper, 'swanlab-projects-error').text()
    expect(alert).toContain(i18n.global.t('errors.swanlab_logdir_unreadable'))
    expect(alert).toContain('locked')
    wrapper.unmount()
  })
})
