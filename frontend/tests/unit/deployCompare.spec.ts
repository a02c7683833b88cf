import type { AxiosAdapter, InternalAxiosRequestConfig } from 'axios'
import { flushPromises, mount, type VueWrapper } from '@vue/test-utils'
import { createPinia, setActivePinia } from 'pinia'
import { afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest'
import { effectScope, h, type EffectScope } from 'vue'
import { createMemoryHistory, createRouter, type Router } from 'vue-router'

import type { Runtime } from '@/api/runtime'
import DeployCompareButton from '@/components/DeployCompareButton.vue'
import { DEPLOY_POLL_MS, useDeployAndCompare } from '@/composables/useDeployAndCompare'
import { i18n, loadPageMessages } from '@/locales'
import { useAuthStore } from '@/store'
import { useModelStore } from '@/store/modules/model'
import { api } from '@/utils/api'
import { clearSession, setSession } from '@/utils/tokenManager'

import { makeSession, reply, scriptedAdapter, type SeenRequest } from './helpers'
import { failedRuntime, loadingRuntime, readyRuntime } from './runtimeFixtures'

vi.mock('element-plus', async (importOriginal) => ({
  ...(await importOriginal<typeof import('element-plus')>()),
  ElMessage: { error: vi.fn(), success: vi.fn(), warning: vi.fn() },
}))

const originalAdapter = api.defaults.adapter

/** What GET /model/{id} answers next, per runtime: the last one repeats. */
let script: Record<number, Runtime[]> = {}
let deployReply: (config: InternalAxiosRequestConfig) => ReturnType<typeof reply>
let requests: SeenRequest[] = []

const TUNED = 11
const BASE = 12

function config(id: number, name: string) {
  return {
    id,
    name,
    provider: 'openai_compatible',
    endpoint: 'http://127.0.0.1:8123/v1',
    model: name,
    params: { temperature: null, max_tokens: null, top_p: null, top_k: null },
    capabilities: { vision: false, reasoning: false },
    status: 1,
    description: null,
    owner: { id: 1, nickname: 'alice' },
    has_api_key: true,
    api_key_masked: 'sk-…',
    template_key: null,
    can_edit: true,
    created_at: '2025-01-01T00:00:00Z',
    updated_at: '2025-01-01T00:00:00Z',
  }
}

beforeAll(async () => {
  await loadPageMessages('runtime')
})

beforeEach(() => {
  setActivePinia(createPinia())
  useAuthStore()
  setSession(makeSession('token-1'))
  script = {
    [TUNED]: [loadingRuntime({ id: TUNED, name: 'job-5' })],
    [BASE]: [loadingRuntime({ id: BASE, name: 'job-5-base' })],
  }
  deployReply = (cfg) =>
    reply(cfg, 201, {
      runtime: loadingRuntime({ id: TUNED, name: 'job-5', source_kind: 'job', job_id: 5 }),
      base_runtime: loadingRuntime({ id: BASE, name: 'job-5-base' }),
    })
  const scripted = scriptedAdapter((cfg) => {
    const url = cfg.url ?? ''
    if (url === '/training/5/deploy' && cfg.method === 'post') return deployReply(cfg)
    const match = /^\/model\/(\d+)$/.exec(url)
    if (match && cfg.method === 'get') {
      const queue = script[Number(match[1])]
      if (!queue) return reply(cfg, 404, { detail: 'gone', code: 'runtime_not_found' })
      const next = queue.length > 1 ? queue.shift()! : queue[0]!
      return reply(cfg, 200, next)
    }
    if (url === '/model-config/') {
      return reply(cfg, 200, [config(21, 'job-5-base'), config(22, 'job-5')])
    }
    if (url === '/model-config/providers') return reply(cfg, 200, [])
    return reply(cfg, 404, { detail: 'not here', code: 'not_found' })
  })
  requests = scripted.requests
  api.defaults.adapter = scripted.adapter
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval'] })
})

afterEach(() => {
  api.defaults.adapter = originalAdapter
  vi.useRealTimers()
  clearSession()
  document.body.innerHTML = ''
})

function makeRouter(): Router {
  const page = { render: () => h('div') }
  return createRouter({
    history: createMemoryHistory(),
    routes: [
      { path: '/', component: page },
      { path: '/model-test', component: page },
      { path: '/runtimes', component: page },
    ],
  })
}

const polls = (id: number) => requests.filter((r) => r.method === 'GET' && r.url === `/model/${id}`)

describe('useDeployAndCompare', () => {
  let scope: EffectScope
  let router: Router

  beforeEach(async () => {
    router = makeRouter()
    await router.push('/')
    scope = effectScope()
  })
  afterEach(() => scope.stop())

  function use() {
    return scope.run(() => useDeployAndCompare({ router }))!
  }

  it('deploys with the base model, polls until both are ready, refreshes configs and opens the comparison', async () => {
    const { deploy, state } = use()
    const done = deploy(5)
    expect(state.phase).toBe('deploying')
    await vi.advanceTimersByTimeAsync(0)

    const post = requests.find((r) => r.url === '/training/5/deploy')
    expect(post?.method).toBe('POST')
    expect(post?.data).toEqual({ with_base: true })
    expect(state.phase).toBe('loading')
    expect(state.tuned?.id).toBe(TUNED)
    expect(state.base?.id).toBe(BASE)
    expect(polls(TUNED)).toHaveLength(0)

    // The base model comes up first; it is not asked about again.
    script[BASE] = [readyRuntime({ id: BASE, name: 'job-5-base' }, 21)]
    await vi.advanceTimersByTimeAsync(DEPLOY_POLL_MS - 1)
    expect(polls(TUNED)).toHaveLength(0) // not before the interval
    await vi.advanceTimersByTimeAsync(1)
    expect(polls(TUNED)).toHaveLength(1)
    expect(polls(BASE)).toHaveLength(1)
    expect(state.phase).toBe('loading')
    expect(state.base?.status).toBe('ready')

    script[TUNED] = [readyRuntime({ id: TUNED, name: 'job-5' }, 22)]
    await vi.advanceTimersByTimeAsync(DEPLOY_POLL_MS)
    expect(polls(TUNED)).toHaveLength(2)
    expect(polls(BASE)).toHaveLength(1)

    expect(await done).toBe('ready')
    expect(state.phase).toBe('ready')
    expect(state.configIds).toEqual([21, 22])
    // The model-config cache was refreshed, so the comparison page knows both configs.
    expect(requests.some((r) => r.url === '/model-config/')).toBe(true)
    expect(useModelStore().byId(22)?.name).toBe('job-5')
    expect(router.currentRoute.value.path).toBe('/model-test')
    expect(router.currentRoute.value.query.configs).toBe('21,22')
  })

  it('ends failed with the runtime that failed and its reason, and stops polling', async () => {
    const { deploy, state } = use()
    const done = deploy(5)
    await vi.advanceTimersByTimeAsync(0)
    script[TUNED] = [
      failedRuntime({ id: TUNED, name: 'job-5', reason: 'exit code 1\nCUDA out of memory' }),
    ]
    await vi.advanceTimersByTimeAsync(DEPLOY_POLL_MS)
    expect(await done).toBe('failed')
    expect(state.phase).toBe('failed')
    expect(state.failedRole).toBe('tuned')
    expect(state.error).toContain('job-5')
    expect(state.error).toContain(i18n.global.t('runtime.deploy.tuned'))
    expect(state.reason).toBe('exit code 1\nCUDA out of memory')

    const seen = requests.length
    await vi.advanceTimersByTimeAsync(DEPLOY_POLL_MS * 5)
    expect(requests.length).toBe(seen)
    expect(router.currentRoute.value.path).toBe('/')
  })

  it('fails when a runtime is deleted meanwhile', async () => {
    const { deploy, state } = use()
    const done = deploy(5)
    await vi.advanceTimersByTimeAsync(0)
    delete script[BASE]
    await vi.advanceTimersByTimeAsync(DEPLOY_POLL_MS)
    expect(await done).toBe('failed')
    expect(state.failedRole).toBe('base')
    expect(state.error).toContain('job-5-base')
  })

  it('says why the deploy call itself was refused', async () => {
    deployReply = (cfg) =>
      reply(cfg, 409, {
        detail: 'vllm is not installed; no NVIDIA GPU',
        code: 'engine_unavailable',
      })
    const { deploy, state } = use()
    expect(await deploy(5)).toBe('failed')
    expect(state.failedRole).toBeNull()
    expect(state.error).toContain('vllm is not installed; no NVIDIA GPU')
    expect(state.tuned).toBeNull()

    deployReply = (cfg) =>
      reply(cfg, 409, { detail: 'Only a succeeded job can be deployed', code: 'invalid_state' })
    expect(await deploy(5)).toBe('failed')
    expect(state.error).toBe(i18n.global.t('runtime.deploy.notSucceeded'))
  })

  it('cancel stops polling (the runtimes keep loading on the server)', async () => {
    const { deploy, state, cancel } = use()
    const done = deploy(5)
    await vi.advanceTimersByTimeAsync(DEPLOY_POLL_MS)
    expect(polls(TUNED)).toHaveLength(1)
    cancel()
    expect(await done).toBe('cancelled')
    expect(state.phase).toBe('cancelled')
    await vi.advanceTimersByTimeAsync(DEPLOY_POLL_MS * 10)
    expect(polls(TUNED)).toHaveLength(1)
    expect(requests.some((r) => r.method !== 'GET' && r.url !== '/training/5/deploy')).toBe(false)
  })

  it('stops polling when its component goes away', async () => {
    const { deploy } = use()
    void deploy(5)
    await vi.advanceTimersByTimeAsync(DEPLOY_POLL_MS)
    expect(polls(TUNED)).toHaveLength(1)
    scope.stop()
    await vi.advanceTimersByTimeAsync(DEPLOY_POLL_MS * 10)
    expect(polls(TUNED)).toHaveLength(1)
  })

  it('keeps polling through a few network errors', async () => {
    const { deploy, state } = use()
    const done = deploy(5)
    await vi.advanceTimersByTimeAsync(0)
    const previous = api.defaults.adapter
    let failures = 2
    const wrapped = scriptedAdapter((cfg) => {
      if (cfg.url === `/model/${TUNED}` && failures > 0) {
        failures--
        return reply(cfg, 502, { detail: 'bad gateway', code: 'bad_gateway' })
      }
      return (previous as AxiosAdapter)(cfg)
    })
    api.defaults.adapter = wrapped.adapter
    await vi.advanceTimersByTimeAsync(DEPLOY_POLL_MS * 2)
    expect(state.phase).toBe('loading')
    script[TUNED] = [readyRuntime({ id: TUNED, name: 'job-5' }, 22)]
    script[BASE] = [readyRuntime({ id: BASE, name: 'job-5-base' }, 21)]
    await vi.advanceTimersByTimeAsync(DEPLOY_POLL_MS)
    expect(await done).toBe('ready')
  })
})

describe('DeployCompareButton', () => {
  let wrapper: VueWrapper | undefined
  afterEach(() => wrapper?.unmount())

  async function mountButton(props: { jobId: number; disabled?: boolean }) {
    const router = makeRouter()
    await router.push('/')
    wrapper = mount(DeployCompareButton, {
      props,
      attachTo: document.body,
      global: { plugins: [i18n, router], stubs: { transition: false } },
    })
    await flushPromises()
    return router
  }

  const find = (id: string) => document.querySelector<HTMLElement>(`[data-testid="${id}"]`)

  it('shows the progress dialog and opens the comparison when both are ready', async () => {
    const router = await mountButton({ jobId: 5 })
    const button = find('deploy-compare')!
    expect(button.textContent).toContain(i18n.global.t('runtime.deploy.button'))
    button.click()
    await vi.advanceTimersByTimeAsync(0)
    await flushPromises()
    expect(find('deploy-compare-dialog')).not.toBeNull()
    expect(find('deploy-compare-phase')?.dataset.phase).toBe('loading')
    expect(find('deploy-compare-tuned')?.textContent).toContain('job-5')
    expect(find('deploy-compare-base')?.textContent).toContain('job-5-base')

    script[TUNED] = [readyRuntime({ id: TUNED, name: 'job-5' }, 22)]
    script[BASE] = [readyRuntime({ id: BASE, name: 'job-5-base' }, 21)]
    await vi.advanceTimersByTimeAsync(DEPLOY_POLL_MS)
    await flushPromises()
    expect(router.currentRoute.value.fullPath).toContain('/model-test')
    expect(router.currentRoute.value.query.configs).toBe('21,22')
  })

  it('shows a failure with its reason, and retries', async () => {
    await mountButton({ jobId: 5 })
    find('deploy-compare')!.click()
    await vi.advanceTimersByTimeAsync(0)
    script[BASE] = [failedRuntime({ id: BASE, name: 'job-5-base', reason: 'exit code 2\nboom' })]
    await vi.advanceTimersByTimeAsync(DEPLOY_POLL_MS)
    await flushPromises()
    expect(find('deploy-compare-phase')?.dataset.phase).toBe('failed')
    expect(find('deploy-compare-reason')?.textContent).toBe('exit code 2\nboom')

    const deploys = () => requests.filter((r) => r.url === '/training/5/deploy').length
    expect(deploys()).toBe(1)
    find('deploy-compare-retry')!.click()
    await vi.advanceTimersByTimeAsync(0)
    expect(deploys()).toBe(2)
  })

  it('does nothing while disabled', async () => {
    await mountButton({ jobId: 5, disabled: true })
    const button = find('deploy-compare') as HTMLButtonElement
    expect(button.disabled).toBe(true)
    button.click()
    await vi.advanceTimersByTimeAsync(0)
    expect(requests).toHaveLength(0)
  })
})
