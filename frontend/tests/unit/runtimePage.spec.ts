import type { InternalAxiosRequestConfig } from 'axios'
import { flushPromises, mount, type VueWrapper } from '@vue/test-utils'
import { createPinia, setActivePinia } from 'pinia'
import { afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest'
import { defineComponent, h } from 'vue'
import { createMemoryHistory, createRouter, type Router } from 'vue-router'

import type { Runtime, ServingEngineInfo } from '@/api/runtime'
import { i18n, loadPageMessages } from '@/locales'
import { useAuthStore } from '@/store'
import { api } from '@/utils/api'
import { clearSession, setSession } from '@/utils/tokenManager'
import ModelRuntime from '@/views/ModelRuntime.vue'
import { POLL_BUSY_MS, POLL_IDLE_MS } from '@/views/model-runtime/data'

import { makeSession, reply, scriptedAdapter, type SeenRequest } from './helpers'
import { failedRuntime, loadingRuntime, makeRuntime, readyRuntime } from './runtimeFixtures'

const { messageError, messageSuccess, confirm } = vi.hoisted(() => ({
  messageError: vi.fn(),
  messageSuccess: vi.fn(),
  confirm: vi.fn(),
}))
vi.mock('element-plus', async (importOriginal) => ({
  ...(await importOriginal<typeof import('element-plus')>()),
  ElMessage: { error: messageError, success: messageSuccess },
  ElMessageBox: { confirm },
}))

const originalAdapter = api.defaults.adapter

const ENGINES: ServingEngineInfo[] = [
  { engine: 'llamafactory', available: true, missing: null, install_hint: 'make train-env' },
  {
    engine: 'vllm',
    available: false,
    missing: 'no NVIDIA GPU',
    install_hint: 'install vLLM on a GPU host',
  },
]

let requests: SeenRequest[] = []
let runtimes: Runtime[] = []
let onPost: (config: InternalAxiosRequestConfig) => ReturnType<typeof reply>

beforeAll(async () => {
  await loadPageMessages('runtime')
})

beforeEach(() => {
  setActivePinia(createPinia())
  useAuthStore()
  setSession(makeSession('token-1'))
  runtimes = []
  onPost = (config) => reply(config, 404, { detail: 'not here', code: 'not_found' })
  const scripted = scriptedAdapter((config) => {
    const url = config.url ?? ''
    const method = config.method ?? 'get'
    if (url === '/model/engines') return reply(config, 200, ENGINES)
    if (url === '/model' && method === 'get') return reply(config, 200, runtimes)
    if (url === '/training/engine') {
      return reply(config, 200, { templates: ['default', 'qwen'] })
    }
    if (url.startsWith('/model-config')) return reply(config, 200, [])
    if (method !== 'get') return onPost(config)
    return reply(config, 404, { detail: 'not here', code: 'not_found' })
  })
  requests = scripted.requests
  api.defaults.adapter = scripted.adapter
  confirm.mockResolvedValue('confirm')
})

afterEach(() => {
  api.defaults.adapter = originalAdapter
  vi.useRealTimers()
  clearSession()
  document.body.innerHTML = ''
})

async function settle(): Promise<void> {
  for (let i = 0; i < 6; i++) await flushPromises()
}

async function mountPage(): Promise<{ wrapper: VueWrapper; router: Router }> {
  const page = { render: () => h('div') }
  const router = createRouter({
    history: createMemoryHistory(),
    routes: [
      { path: '/runtimes', component: ModelRuntime },
      { path: '/chat', component: page },
      { path: '/model-test', component: page },
    ],
  })
  await router.push('/runtimes')
  const wrapper = mount(defineComponent({ render: () => h('div', [h(ModelRuntime)]) }), {
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

const listCalls = () => requests.filter((r) => r.method === 'GET' && r.url === '/model')

describe('the runtime list', () => {
  let wrapper: VueWrapper | undefined
  afterEach(() => wrapper?.unmount())

  it('shows each state: ready with endpoint and uptime, loading with its time, failed with why', async () => {
    runtimes = [
      readyRuntime({ id: 1, name: 'ready-one', uptime_s: 3_725 }, 21),
      loadingRuntime({ id: 2, name: 'loading-one' }),
      failedRuntime({ id: 3, name: 'failed-one' }),
    ]
    wrapper = (await mountPage()).wrapper
    expect(byId('runtime-status-1').dataset.status).toBe('ready')
    expect(byId('runtime-endpoint-1').textContent).toContain('http://127.0.0.1:8123/v1')
    expect(byId('runtime-uptime-1').textContent).toContain('1:02:0')
    expect(byId('runtime-status-2').textContent).toContain(i18n.global.t('runtime.status.loading'))
    expect(byId('runtime-elapsed-2').textContent).toMatch(/0:4\d/)
    // The failure's reason is open at once, as pre-formatted text.
    const reason = byId('runtime-reason-3')
    expect(reason.tagName).toBe('PRE')
    expect(reason.textContent).toContain('Traceback (most recent call last):\n  OSError')
    expect(byId('runtime-summary').textContent).toContain('3')
  })

  it('offers managing only to managers, chat and compare on ready models to everyone', async () => {
    runtimes = [
      readyRuntime({ id: 1, can_manage: false, owner: { id: 2, nickname: 'bob' } }, 21),
      makeRuntime({ id: 2 }),
    ]
    wrapper = (await mountPage()).wrapper
    expect(find('runtime-chat-1')).not.toBeNull()
    expect(find('runtime-compare-1')).not.toBeNull()
    for (const action of ['unload', 'logs', 'more', 'load']) {
      expect(find(`runtime-${action}-1`)).toBeNull()
    }
    expect(find('runtime-load-2')).not.toBeNull()
    expect(find('runtime-logs-2')).not.toBeNull()
    expect(find('runtime-chat-2')).toBeNull()
  })

  it('goes to chat and to the comparison with the model config', async () => {
    runtimes = [readyRuntime({ id: 1 }, 21)]
    const mounted = await mountPage()
    wrapper = mounted.wrapper
    byId('runtime-chat-1').click()
    await settle()
    expect(mounted.router.currentRoute.value.path).toBe('/chat')
    expect(mounted.router.currentRoute.value.query.model_config_id).toBe('21')
  })

  it('polls every 1.5 s while loading, every 10 s otherwise, and stops when the page goes', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval'] })
    runtimes = [loadingRuntime({ id: 2 })]
    wrapper = (await mountPage()).wrapper
    await vi.advanceTimersByTimeAsync(0)
    expect(listCalls()).toHaveLength(1)
    await vi.advanceTimersByTimeAsync(POLL_BUSY_MS)
    expect(listCalls()).toHaveLength(2)

    runtimes = [readyRuntime({ id: 2 }, 21)]
    await vi.advanceTimersByTimeAsync(POLL_BUSY_MS)
    expect(listCalls()).toHaveLength(3)
    await settle()
    expect(byId('runtime-status-2').dataset.status).toBe('ready')
    // Nothing moves now: the next refresh waits the long interval.
    await vi.advanceTimersByTimeAsync(POLL_IDLE_MS - 100)
    expect(listCalls()).toHaveLength(3)
    await vi.advanceTimersByTimeAsync(100)
    expect(listCalls()).toHaveLength(4)

    wrapper.unmount()
    wrapper = undefined
    await vi.advanceTimersByTimeAsync(POLL_IDLE_MS * 3)
    expect(listCalls()).toHaveLength(4)
  })

  it('loads a model and shows it loading; unloads only after a confirmation', async () => {
    runtimes = [makeRuntime({ id: 2 }), readyRuntime({ id: 4, name: 'up' }, 21)]
    onPost = (config) => {
      if (config.url === '/model/2/load') return reply(config, 200, loadingRuntime({ id: 2 }))
      if (config.url === '/model/4/unload') return reply(config, 200, makeRuntime({ id: 4 }))
      return reply(config, 404, {})
    }
    wrapper = (await mountPage()).wrapper
    byId('runtime-load-2').click()
    await settle()
    expect(byId('runtime-status-2').dataset.status).toBe('loading')

    confirm.mockRejectedValueOnce('cancel')
    byId('runtime-unload-4').click()
    await settle()
    expect(requests.some((r) => r.url === '/model/4/unload')).toBe(false)

    byId('runtime-unload-4').click()
    await settle()
    expect(confirm).toHaveBeenCalledTimes(2)
    expect(requests.some((r) => r.method === 'POST' && r.url === '/model/4/unload')).toBe(true)
    expect(byId('runtime-status-4').dataset.status).toBe('stopped')
  })

  it('says clearly why a load was refused', async () => {
    runtimes = [makeRuntime({ id: 2, engine: 'vllm' })]
    onPost = (config) =>
      reply(config, 409, { detail: 'vllm is not installed', code: 'engine_unavailable' })
    wrapper = (await mountPage()).wrapper
    byId('runtime-load-2').click()
    await settle()
    expect(messageError).toHaveBeenCalledWith(
      expect.objectContaining({
        message: i18n.global.t('runtime.errors.engine_unavailable', {
          detail: 'vllm is not installed',
        }),
      }),
    )
  })

  it('shows the log tail, following it while the model loads', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval'] })
    runtimes = [loadingRuntime({ id: 2 })]
    let size = 20
    const previous = api.defaults.adapter as (c: InternalAxiosRequestConfig) => unknown
    const logged = scriptedAdapter((config) => {
      if (config.url === '/model/2/logs') {
        const offset = (config.params as { offset?: number }).offset
        if (offset === undefined) {
          return reply(config, 200, {
            offset: 0,
            next_offset: 20,
            size: 20,
            lines: ['starting'],
            truncated: false,
          })
        }
        return reply(config, 200, {
          offset,
          next_offset: size,
          size,
          lines: size > offset ? ['loading weights'] : [],
          truncated: false,
        })
      }
      return previous(config) as ReturnType<typeof reply>
    })
    api.defaults.adapter = logged.adapter
    wrapper = (await mountPage()).wrapper
    byId('runtime-logs-2').click()
    await settle()
    expect(byId('runtime-logs-text').textContent).toBe('starting')
    expect(find('runtime-logs-live')).not.toBeNull()

    size = 40
    await vi.advanceTimersByTimeAsync(1500)
    await settle()
    expect(byId('runtime-logs-text').textContent).toBe('starting\nloading weights')
    const asked = logged.requests.filter((r) => r.url === '/model/2/logs').length
    expect(asked).toBeGreaterThanOrEqual(2)
  })
})

describe('the create dialog', () => {
  let wrapper: VueWrapper | undefined
  afterEach(() => wrapper?.unmount())

  async function openDialog(): Promise<void> {
    wrapper = (await mountPage()).wrapper
    byId('runtime-new').click()
    await settle()
  }

  /** The error text Element Plus shows under the form item holding `testId`. */
  function itemError(testId: string): string {
    const item = byId(testId).closest('.el-form-item')
    return item?.querySelector('.el-form-item__error')?.textContent?.trim() ?? ''
  }

  /** Element Plus puts the test id on the <input> itself. */
  function inputOf(testId: string): HTMLInputElement {
    const element = byId(testId)
    return element instanceof HTMLInputElement ? element : element.querySelector('input')!
  }

  async function type(testId: string, value: string): Promise<void> {
    const input = inputOf(testId)
    input.value = value
    input.dispatchEvent(new Event('input'))
    input.dispatchEvent(new FocusEvent('blur'))
    await settle()
  }

  it('disables vLLM with the reason it cannot run here', async () => {
    await openDialog()
    const vllm = byId('runtime-engine-vllm').querySelector('input') as HTMLInputElement
    expect(vllm.disabled).toBe(true)
    expect(byId('runtime-engine-unavailable-vllm').textContent).toContain('no NVIDIA GPU')
    // LLaMA-Factory (HuggingFace) shows its own arguments only.
    expect(find('runtime-arg-dtype')).not.toBeNull()
    expect(find('runtime-arg-trust_remote_code')).not.toBeNull()
    expect(find('runtime-arg-gpu_memory_utilization')).toBeNull()
  })

  it('creates and loads from a local path, suggesting the name', async () => {
    const created = loadingRuntime({ id: 8, name: 'Qwen2.5-0.5B' })
    onPost = (config) => reply(config, 201, created)
    await openDialog()
    await type('runtime-source', '/models/Qwen2.5-0.5B')
    expect(inputOf('runtime-name').value).toBe('Qwen2.5-0.5B')
    byId('runtime-create-load').click()
    await settle()
    const post = requests.find((r) => r.method === 'POST' && r.url === '/model')
    expect(post?.data).toEqual({
      name: 'Qwen2.5-0.5B',
      source_kind: 'path',
      source: '/models/Qwen2.5-0.5B',
      engine: 'llamafactory',
      backend: 'huggingface',
      engine_args: {},
      port: null,
      load: true,
    })
    expect(byId('runtime-status-8').dataset.status).toBe('loading')
  })

  it('offers the succeeded training jobs when the source is a job', async () => {
    const listed: unknown[] = []
    const previous = api.defaults.adapter as (c: InternalAxiosRequestConfig) => unknown
    api.defaults.adapter = scriptedAdapter((config) => {
      if (config.url === '/training' && config.method === 'get') {
        listed.push(config.params)
        return reply(config, 200, { items: [], total: 0, page: 1, size: 100 })
      }
      return previous(config) as ReturnType<typeof reply>
    }).adapter
    await openDialog()
    expect(listed).toHaveLength(0) // only when asked for
    byId('runtime-source-kind-job').querySelector('input')!.click()
    await settle()
    expect(listed).toEqual([{ page: 1, size: 100, status: 'succeeded' }])
    expect(find('runtime-job')).not.toBeNull()
    expect(find('runtime-artifact')).not.toBeNull()
    expect(find('runtime-source')).toBeNull()
  })

  it('refuses a relative path before asking the server', async () => {
    await openDialog()
    await type('runtime-source', 'models/x')
    await type('runtime-name', 'x')
    byId('runtime-create-load').click()
    await settle()
    expect(requests.some((r) => r.method === 'POST')).toBe(false)
    await vi.waitFor(() =>
      expect(itemError('runtime-source')).toBe(i18n.global.t('runtime.rules.pathAbsolute')),
    )
  })

  it('shows 422 field errors and a taken name under their fields', async () => {
    let answer = 422
    onPost = (config) =>
      answer === 422
        ? reply(config, 422, {
            code: 'invalid_runtime',
            detail: [
              { type: 'x', loc: ['body', 'source'], msg: '/models/x is not a model folder' },
              { type: 'x', loc: ['body', 'engine_args', 'dtype'], msg: 'must be one of auto' },
            ],
          })
        : reply(config, 409, { detail: "A runtime named 'x' exists", code: 'name_taken' })
    await openDialog()
    await type('runtime-source', '/models/x')
    byId('runtime-create').click()
    await settle()
    // Validation and the error's render settle over a few ticks.
    await vi.waitFor(() => {
      expect(itemError('runtime-source')).toBe('/models/x is not a model folder')
      expect(itemError('runtime-arg-dtype')).toBe('must be one of auto')
    })
    expect(messageError).toHaveBeenCalledWith(
      expect.objectContaining({ message: i18n.global.t('runtime.errors.invalid_runtime') }),
    )

    answer = 409
    byId('runtime-create').click()
    await settle()
    await vi.waitFor(() => {
      expect(itemError('runtime-name')).toBe(i18n.global.t('runtime.errors.name_taken'))
      expect(itemError('runtime-source')).toBe('')
    })
    const post = requests.filter((r) => r.method === 'POST' && r.url === '/model').pop()
    expect((post?.data as { load: boolean }).load).toBe(false)
  })
})
