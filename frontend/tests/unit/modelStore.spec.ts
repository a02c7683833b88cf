import type { InternalAxiosRequestConfig } from 'axios'
import { createPinia, setActivePinia } from 'pinia'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'

import type { ModelConfig, ProviderInfo } from '@/api/modelConfig'
import { i18n } from '@/locales'
import { useAuthStore } from '@/store'
import { groupByProvider, modelCacheKey, modelListKey, useModelStore } from '@/store/modules/model'
import { api } from '@/utils/api'
import { clearSession, setSession } from '@/utils/tokenManager'
import { filterConfigs, missingForEnable, paramEntries } from '@/views/model-config/data'

import { deferred, flush, makeSession, reply, scriptedAdapter } from './helpers'

const { messageError } = vi.hoisted(() => ({ messageError: vi.fn() }))
vi.mock('element-plus', () => ({ ElMessage: { error: messageError } }))

const originalAdapter = api.defaults.adapter
const USER_ID = 7

function provider(key: string, overrides: Partial<ProviderInfo> = {}): ProviderInfo {
  return {
    key,
    display_name: key.toUpperCase(),
    protocol: key === 'ollama' ? 'ollama' : 'openai',
    default_endpoint: `http://${key}.example/v1`,
    requires_api_key: ['openai', 'deepseek', 'siliconcloud'].includes(key),
    supports_top_k: !['openai', 'deepseek'].includes(key),
    icon: key,
    ...overrides,
  }
}

/** The registry's order: groups must follow it, whatever order the configs come in. */
const PROVIDERS = ['openai', 'deepseek', 'siliconcloud', 'ollama', 'vllm', 'custom'].map((key) =>
  provider(key),
)

let nextId = 100

function makeConfig(overrides: Partial<ModelConfig> = {}): ModelConfig {
  const id = overrides.id ?? nextId++
  return {
    id,
    name: `config ${id}`,
    provider: 'custom',
    endpoint: 'http://127.0.0.1:9000/v1',
    model: 'plain',
    params: { temperature: null, max_tokens: null, top_p: null, top_k: null },
    capabilities: { vision: false, reasoning: false },
    status: 0,
    description: null,
    owner: { id: USER_ID, nickname: 'alice' },
    has_api_key: false,
    api_key_masked: null,
    template_key: null,
    can_edit: true,
    created_at: '2025-01-01T00:00:00Z',
    updated_at: '2025-01-01T00:00:00Z',
    ...overrides,
  }
}

/**
 * An in-memory /api/model-config behind the axios adapter. `gate`, when set, holds list
 * answers until it resolves, so a test can look at the store while a request is in flight.
 */
function fakeServer(initial: ModelConfig[]) {
  const state = {
    configs: [...initial],
    gate: null as Promise<void> | null,
    models: [{ model_id: 'plain', owned_by: 'mock', fetched_at: '2025-01-02T00:00:00Z' }],
  }
  const { adapter, requests } = scriptedAdapter(async (config: InternalAxiosRequestConfig) => {
    const method = (config.method ?? 'get').toUpperCase()
    const url = config.url ?? ''
    const body = typeof config.data === 'string' ? JSON.parse(config.data) : config.data
    const idMatch = /^\/model-config\/(\d+)(\/.*)?$/.exec(url)
    const id = idMatch ? Number(idMatch[1]) : null
    const found = id === null ? undefined : state.configs.find((c) => c.id === id)
    const notFound = () =>
      reply(config, 404, { detail: 'Model config not found', code: 'model_config_not_found' })

    if (method === 'GET' && url === '/model-config/') {
      if (state.gate) await state.gate
      return reply(config, 200, [...state.configs])
    }
    if (method === 'GET' && url === '/model-config/providers') return reply(config, 200, PROVIDERS)
    if (method === 'POST' && url === '/model-config/') {
      const created = makeConfig({
        ...body,
        api_key: undefined,
        has_api_key: Boolean(body.api_key),
      })
      state.configs.push(created)
      return reply(config, 201, created)
    }
    if (method === 'POST' && url === '/model-config/refresh-models') {
      return reply(config, 200, {
        provider: body.provider,
        endpoint: body.endpoint,
        models: state.models,
      })
    }
    if (method === 'GET' && url === '/model-config/provider-models') {
      return reply(config, 200, { ...config.params, models: state.models })
    }
    if (id !== null && !found) return notFound()
    if (found && method === 'PATCH' && !idMatch?.[2]) {
      if (body.status === 1 && !body.endpoint) {
        return reply(config, 422, {
          detail: [{ type: 'value_error', loc: ['body', 'endpoint'], msg: 'Field required' }],
        })
      }
      const updated = { ...found, ...body, updated_at: '2025-02-01T00:00:00Z' }
      delete updated.api_key
      state.configs = state.configs.map((c) => (c.id === id ? updated : c))
      return reply(config, 200, updated)
    }
    if (found && method === 'DELETE') {
      state.configs = state.configs.filter((c) => c.id !== id)
      return reply(config, 204, null)
    }
    if (found && method === 'POST' && idMatch?.[2] === '/refresh-models') {
      return reply(config, 200, {
        provider: found.provider,
        endpoint: found.endpoint,
        models: state.models,
      })
    }
    if (found && method === 'POST' && idMatch?.[2] === '/test') {
      return found.model === 'plain'
        ? reply(config, 200, { ok: true, latency_ms: 12.4, model: 'plain', error: null })
        : reply(config, 200, { ok: false, latency_ms: null, model: found.model, error: 'HTTP 401' })
    }
    return reply(config, 500, { detail: `unexpected ${method} ${url}`, code: 'internal_error' })
  })
  api.defaults.adapter = adapter
  return { state, requests }
}

function seedCache(
  configs: ModelConfig[],
  providers: ProviderInfo[] = PROVIDERS,
  userId = USER_ID,
) {
  localStorage.setItem(
    modelCacheKey(userId),
    JSON.stringify({ configs, providers, savedAt: '2025-01-01T00:00:00Z' }),
  )
}

function cached(userId = USER_ID): { configs: ModelConfig[]; providers: ProviderInfo[] } | null {
  const raw = localStorage.getItem(modelCacheKey(userId))
  return raw ? JSON.parse(raw) : null
}

const ids = (configs: readonly ModelConfig[]) => configs.map((c) => c.id)

beforeEach(() => {
  clearSession()
  localStorage.clear()
  messageError.mockClear()
  setActivePinia(createPinia())
  // The auth store must exist before the session arrives to follow it.
  useAuthStore()
  setSession(makeSession('live-token', { user: { id: USER_ID } }))
  i18n.global.locale.value = 'en'
})

afterEach(() => {
  api.defaults.adapter = originalAdapter
  clearSession()
  i18n.global.locale.value = 'zh-CN'
})

describe('useModelStore: the localStorage cache', () => {
  it('shows the cached configs at once, then the API answer, and saves that', async () => {
    const old = makeConfig({ id: 1, name: 'from the cache' })
    seedCache([old])
    const server = fakeServer([makeConfig({ id: 2 }), makeConfig({ id: 3, status: 1 })])
    const gate = deferred()
    server.state.gate = gate.promise

    const store = useModelStore()
    // Before any request: the cached copy, including the registry for grouping.
    expect(ids(store.configs)).toEqual([1])
    expect(store.providers.map((p) => p.key)).toEqual(PROVIDERS.map((p) => p.key))
    expect(store.fresh).toBe(false)

    const loading = store.load()
    await flush()
    expect(store.loading).toBe(true)
    expect(ids(store.configs)).toEqual([1])
    expect(cached()?.configs.map((c) => c.id)).toEqual([1])

    gate.resolve()
    await loading
    expect(store.loading).toBe(false)
    expect(store.fresh).toBe(true)
    expect(ids(store.configs)).toEqual([2, 3])
    expect(cached()?.configs.map((c) => c.id)).toEqual([2, 3])
    expect(cached()?.providers).toEqual(PROVIDERS)

    // A reload of the page: the new store starts from what the last answer saved.
    setActivePinia(createPinia())
    useAuthStore()
    setSession(makeSession('live-token', { user: { id: USER_ID } }))
    expect(ids(useModelStore().configs)).toEqual([2, 3])
  })

  it('starts empty without a cache, and from nothing when the cache is unreadable', () => {
    expect(useModelStore().configs).toEqual([])
    localStorage.setItem(modelCacheKey(USER_ID), '{not json')
    setActivePinia(createPinia())
    useAuthStore()
    setSession(makeSession('live-token', { user: { id: USER_ID } }))
    const store = useModelStore()
    expect(store.configs).toEqual([])
    expect(store.providers).toEqual([])
  })

  it('keeps the cached list when the API fails, and says so once', async () => {
    seedCache([makeConfig({ id: 1 })])
    api.defaults.adapter = scriptedAdapter((config) =>
      reply(config, 500, { detail: 'boom', code: 'internal_error' }),
    ).adapter
    const store = useModelStore()
    await expect(store.load()).resolves.toBeUndefined()
    expect(ids(store.configs)).toEqual([1])
    expect(store.loadError).toBeTruthy()
    expect(store.fresh).toBe(false)
    expect(cached()?.configs.map((c) => c.id)).toEqual([1])
    expect(messageError).toHaveBeenCalled()
  })

  it('keeps each account its own cache', async () => {
    seedCache([makeConfig({ id: 1 })])
    seedCache([makeConfig({ id: 9, can_edit: false })], PROVIDERS, 8)
    const store = useModelStore()
    expect(ids(store.configs)).toEqual([1])

    setSession(makeSession('other-token', { user: { id: 8 } }))
    await flush()
    expect(ids(store.configs)).toEqual([9])

    clearSession()
    await flush()
    expect(store.configs).toEqual([])
  })

  it('shares one request between concurrent loads', async () => {
    const server = fakeServer([makeConfig({ id: 1 })])
    const store = useModelStore()
    await Promise.all([store.load(), store.load(), store.ensureLoaded()])
    const lists = server.requests.filter((r) => r.url === '/model-config/')
    expect(lists).toHaveLength(1)
    // The registry is static: a later refresh only asks for the list.
    await store.load()
    await store.ensureLoaded()
    expect(server.requests.filter((r) => r.url === '/model-config/providers')).toHaveLength(1)
    expect(server.requests.filter((r) => r.url === '/model-config/')).toHaveLength(2)
  })

  it('loads again when a change lands while the list is on its way', async () => {
    const server = fakeServer([makeConfig({ id: 1 })])
    const gate = deferred()
    server.state.gate = gate.promise
    const store = useModelStore()
    const loading = store.load()
    await flush()
    // The list answer below was computed before this create.
    const created = await store.create({ name: 'new', provider: 'custom', model: 'plain' })
    server.state.gate = null
    gate.resolve()
    await loading
    expect(ids(store.configs)).toEqual([1, created.id])
    const lists = server.requests.filter((r) => r.method === 'GET' && r.url === '/model-config/')
    expect(lists).toHaveLength(2)
  })
})

describe('useModelStore: grouping and the available filter', () => {
  it('groups by provider in registry order, unknown providers last, empty groups left out', async () => {
    fakeServer([
      makeConfig({ id: 1, provider: 'custom' }),
      makeConfig({ id: 2, provider: 'mystery' }),
      makeConfig({ id: 3, provider: 'openai' }),
      makeConfig({ id: 4, provider: 'ollama' }),
      makeConfig({ id: 5, provider: 'openai' }),
      makeConfig({ id: 6, provider: 'deepseek' }),
    ])
    const store = useModelStore()
    await store.load()
    expect([...store.grouped.keys()]).toEqual(['openai', 'deepseek', 'ollama', 'custom', 'mystery'])
    expect(ids(store.grouped.get('openai')!)).toEqual([3, 5])
    expect(store.grouped.has('vllm')).toBe(false)
    // A provider the registry does not know still gets a usable entry.
    expect(store.providerInfo('mystery')).toMatchObject({ key: 'mystery', display_name: 'mystery' })
    // The same grouping for a filtered subset.
    expect([...store.groupBy(store.configs.filter((c) => c.id > 3)).keys()]).toEqual([
      'openai',
      'deepseek',
      'ollama',
    ])
  })

  it('groupByProvider keeps the order inside a group', () => {
    const groups = groupByProvider(
      [makeConfig({ id: 3, provider: 'vllm' }), makeConfig({ id: 1, provider: 'vllm' })],
      PROVIDERS,
    )
    expect([...groups.keys()]).toEqual(['vllm'])
    expect(ids(groups.get('vllm')!)).toEqual([3, 1])
  })

  it('lists only enabled configs as available, following changes', async () => {
    const server = fakeServer([
      makeConfig({ id: 1, status: 1 }),
      makeConfig({ id: 2, status: 0 }),
      makeConfig({ id: 3, status: 1, provider: 'openai' }),
    ])
    const store = useModelStore()
    await store.load()
    expect(ids(store.available)).toEqual([1, 3])
    await store.update(2, { status: 1, endpoint: 'http://127.0.0.1:9000/v1' })
    expect(ids(store.available)).toEqual([1, 2, 3])
    await store.update(1, { status: 0 })
    expect(ids(store.available)).toEqual([2, 3])
    expect(server.state.configs.filter((c) => c.status === 1).map((c) => c.id)).toEqual([2, 3])
  })
})

describe('useModelStore: changes keep the cache consistent', () => {
  it('create adds the config to the list and to localStorage', async () => {
    const server = fakeServer([makeConfig({ id: 1 })])
    const store = useModelStore()
    await store.load()
    const created = await store.create({
      name: 'mock',
      provider: 'custom',
      endpoint: 'http://127.0.0.1:9000/v1',
      api_key: 'sk-test-key',
      model: 'plain',
      status: 1,
    })
    expect(created.has_api_key).toBe(true)
    expect(ids(store.configs)).toEqual([1, created.id])
    expect(cached()?.configs.map((c) => c.id)).toEqual([1, created.id])
    // The key went to the server once and is nowhere in the cache.
    const post = server.requests.find((r) => r.method === 'POST' && r.url === '/model-config/')
    expect(post?.data).toMatchObject({ api_key: 'sk-test-key', status: 1 })
    expect(localStorage.getItem(modelCacheKey(USER_ID))).not.toContain('sk-test-key')
  })

  it('update replaces the config in place and forgets its old test result', async () => {
    fakeServer([makeConfig({ id: 1 }), makeConfig({ id: 2, name: 'before' })])
    const store = useModelStore()
    await store.load()
    await store.test(2)
    expect(store.testResults[2]).toMatchObject({ status: 'done', ok: true })

    const updated = await store.update(2, { name: 'after' })
    expect(updated.name).toBe('after')
    expect(store.configs.map((c) => c.name)).toEqual(['config 1', 'after'])
    expect(cached()?.configs.map((c) => c.name)).toEqual(['config 1', 'after'])
    expect(store.testResults[2]).toBeUndefined()
  })

  it('a refused update maps 422 field errors onto the form and changes nothing', async () => {
    fakeServer([makeConfig({ id: 1, endpoint: null })])
    const store = useModelStore()
    await store.load()
    const before = JSON.stringify(store.configs)
    const form = { setFieldErrors: vi.fn() }
    await expect(store.update(1, { status: 1 }, { form })).rejects.toMatchObject({
      response: { status: 422 },
    })
    expect(form.setFieldErrors).toHaveBeenCalledWith({ endpoint: 'This field is required' })
    expect(JSON.stringify(store.configs)).toBe(before)
    expect(JSON.stringify(cached()?.configs)).toBe(before)
  })

  it('remove drops the config from the list and the cache', async () => {
    const server = fakeServer([makeConfig({ id: 1 }), makeConfig({ id: 2 })])
    const store = useModelStore()
    await store.load()
    await store.remove(1)
    expect(ids(store.configs)).toEqual([2])
    expect(cached()?.configs.map((c) => c.id)).toEqual([2])
    expect(server.requests.at(-1)).toMatchObject({ method: 'DELETE', url: '/model-config/1' })
  })

  it('a config deleted elsewhere disappears when an update or delete meets 404', async () => {
    const server = fakeServer([makeConfig({ id: 1 }), makeConfig({ id: 2 })])
    const store = useModelStore()
    await store.load()
    server.state.configs = []
    await expect(store.update(1, { name: 'x' })).rejects.toMatchObject({
      response: { status: 404 },
    })
    await expect(store.remove(2)).rejects.toMatchObject({ response: { status: 404 } })
    expect(store.configs).toEqual([])
    expect(cached()?.configs).toEqual([])
  })
})

describe('useModelStore: remote model lists and connection tests', () => {
  it('refreshModels stores the list under provider and endpoint', async () => {
    const server = fakeServer([makeConfig({ id: 1, provider: 'openai', endpoint: 'https://x/v1' })])
    const store = useModelStore()
    const result = await store.refreshModels({
      provider: 'custom',
      endpoint: 'http://127.0.0.1:9000/v1',
      api_key: 'sk-test-key',
    })
    expect(result.models.map((m) => m.model_id)).toEqual(['plain'])
    expect(store.modelsFor('custom', 'http://127.0.0.1:9000/v1/').map((m) => m.model_id)).toEqual([
      'plain',
    ])
    expect(store.modelsFor('custom', 'http://elsewhere/v1')).toEqual([])
    expect(server.requests.at(-1)).toMatchObject({
      method: 'POST',
      url: '/model-config/refresh-models',
      data: { provider: 'custom', endpoint: 'http://127.0.0.1:9000/v1', api_key: 'sk-test-key' },
    })

    // From a saved config: the server uses the key it keeps.
    server.state.models = [
      { model_id: 'gpt-4o', owned_by: 'openai', fetched_at: '2025-01-03T00:00:00Z' },
    ]
    await store.refreshModels({ id: 1 })
    expect(server.requests.at(-1)).toMatchObject({
      method: 'POST',
      url: '/model-config/1/refresh-models',
    })
    expect(store.modelLists[modelListKey('openai', 'https://x/v1')]?.[0]?.model_id).toBe('gpt-4o')
  })

  it('a failing provider rejects with its code and stores nothing', async () => {
    api.defaults.adapter = scriptedAdapter((config) =>
      reply(config, 502, { detail: 'connection refused', code: 'provider_unreachable' }),
    ).adapter
    const store = useModelStore()
    const source = { provider: 'custom', endpoint: 'http://127.0.0.1:1/v1' }
    await expect(store.refreshModels(source, { silent: true })).rejects.toMatchObject({
      response: { status: 502, data: { code: 'provider_unreachable' } },
    })
    expect(store.modelLists).toEqual({})
    expect(messageError).not.toHaveBeenCalled()
  })

  it('knownModels reads the stored list without asking the provider, [] on failure', async () => {
    const server = fakeServer([])
    const store = useModelStore()
    const models = await store.knownModels('custom', 'http://127.0.0.1:9000/v1')
    expect(models.map((m) => m.model_id)).toEqual(['plain'])
    expect(server.requests.at(-1)).toMatchObject({
      method: 'GET',
      url: '/model-config/provider-models',
    })
    expect(store.modelsFor('custom', 'http://127.0.0.1:9000/v1')).toHaveLength(1)

    api.defaults.adapter = scriptedAdapter((config) =>
      reply(config, 500, { detail: 'x', code: 'internal_error' }),
    ).adapter
    await expect(store.knownModels('custom', 'http://other/v1')).resolves.toEqual([])
    expect(messageError).not.toHaveBeenCalled()
  })

  it('test() records running, then the outcome, for success and failure', async () => {
    fakeServer([makeConfig({ id: 1, model: 'plain' }), makeConfig({ id: 2, model: 'wrong' })])
    const store = useModelStore()
    await store.load()
    const running = store.test(1)
    expect(store.testResults[1]).toEqual({ status: 'running' })
    await expect(running).resolves.toMatchObject({ ok: true, latency_ms: 12.4 })
    expect(store.testResults[1]).toMatchObject({ status: 'done', ok: true, latency_ms: 12.4 })

    await store.test(2)
    expect(store.testResults[2]).toMatchObject({ status: 'done', ok: false, error: 'HTTP 401' })
  })

  it('test() turns a refused request into a failed result without a popup', async () => {
    fakeServer([makeConfig({ id: 1 })])
    const store = useModelStore()
    await store.load()
    api.defaults.adapter = scriptedAdapter((config) =>
      reply(config, 504, { detail: 'timed out', code: 'provider_timeout' }),
    ).adapter
    const result = await store.test(1)
    expect(result).toEqual({
      ok: false,
      latency_ms: null,
      model: null,
      error: 'The provider did not answer in time',
    })
    expect(store.testResults[1]).toMatchObject({ status: 'done', ok: false })
    expect(messageError).not.toHaveBeenCalled()
  })
})

describe('model config page helpers', () => {
  const configs = [
    makeConfig({ id: 1, name: 'Team GPT', provider: 'openai', model: 'gpt-4o', status: 1 }),
    makeConfig({ id: 2, name: 'Local', provider: 'ollama', model: 'qwen2.5', status: 0 }),
    makeConfig({ id: 3, name: 'R1', provider: 'deepseek', model: 'deepseek-reasoner', status: 1 }),
  ]

  it('filters by provider, status and words in any searchable field', () => {
    const all = { q: '', provider: 'all', status: 'all' as const }
    expect(ids(filterConfigs(configs, all))).toEqual([1, 2, 3])
    expect(ids(filterConfigs(configs, { ...all, provider: 'ollama' }))).toEqual([2])
    expect(ids(filterConfigs(configs, { ...all, status: 'enabled' }))).toEqual([1, 3])
    expect(ids(filterConfigs(configs, { ...all, status: 'disabled' }))).toEqual([2])
    expect(ids(filterConfigs(configs, { ...all, q: '  QWEN ' }))).toEqual([2])
    expect(ids(filterConfigs(configs, { ...all, q: 'deepseek reasoner' }))).toEqual([3])
    expect(
      ids(
        filterConfigs(configs, { ...all, q: 'open ai' }, (key) =>
          key === 'openai' ? 'Open AI' : key,
        ),
      ),
    ).toEqual([1])
  })

  it('names what a config lacks before it can be enabled', () => {
    const openai = { requires_api_key: true }
    const ollama = { requires_api_key: false }
    const complete = { endpoint: 'https://api.openai.com/v1', model: 'gpt-4o', hasKey: true }
    expect(missingForEnable(complete, openai)).toEqual([])
    expect(missingForEnable({ ...complete, hasKey: false }, openai)).toEqual(['apiKey'])
    expect(missingForEnable({ ...complete, hasKey: false }, ollama)).toEqual([])
    expect(missingForEnable({ endpoint: 'not a url', model: ' ', hasKey: true }, ollama)).toEqual([
      'endpoint',
      'model',
    ])
  })

  it('lists only the params that are set', () => {
    expect(paramEntries({ temperature: 0, max_tokens: null, top_p: 0.9, top_k: null })).toEqual([
      ['temperature', 0],
      ['top_p', 0.9],
    ])
  })
})
