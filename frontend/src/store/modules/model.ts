/**
 * The model config center's state, the one place views read configs from: a cache of every
 * config (shown at once from localStorage, then refreshed from the API), the provider
 * registry, configs grouped by provider, the usable ones, fetched model lists and test results.
 */
import { AxiosError } from 'axios'
import { defineStore } from 'pinia'
import { computed, ref, shallowRef, watch } from 'vue'

import * as modelApi from '@/api/modelConfig'
import type {
  CallOptions,
  ConnectionTest,
  ModelConfig,
  ModelConfigCreate,
  ModelConfigUpdate,
  ModelListSource,
  ProviderInfo,
  ProviderModels,
  RemoteModel,
} from '@/api/modelConfig'
import { useAuthStore } from '@/store'
import { errorMessage } from '@/utils/api'

export const MODEL_CACHE_PREFIX = 'modeltrain.modelConfig.v1'

/** One cache per signed-in user: `can_edit` differs between users sharing a browser. */
export function modelCacheKey(userId: number | null | undefined): string {
  return `${MODEL_CACHE_PREFIX}:${userId ?? 'anonymous'}`
}

interface CacheShape {
  configs: ModelConfig[]
  providers: ProviderInfo[]
  savedAt: string
}

function readCache(key: string): CacheShape | null {
  try {
    const raw = localStorage.getItem(key)
    if (!raw) return null
    const parsed = JSON.parse(raw) as Partial<CacheShape>
    if (!Array.isArray(parsed.configs) || !Array.isArray(parsed.providers)) return null
    return { configs: parsed.configs, providers: parsed.providers, savedAt: parsed.savedAt ?? '' }
  } catch {
    return null // unreadable or from an older shape: start empty, the API fills it
  }
}

function writeCache(key: string, value: CacheShape): void {
  try {
    localStorage.setItem(key, JSON.stringify(value))
  } catch {
    // Storage full or disabled: the cache is only a head start, the page still works.
  }
}

/** A registry entry for a provider key the registry does not (or not yet) know. */
export function fallbackProvider(key: string): ProviderInfo {
  return {
    key,
    display_name: key,
    protocol: 'openai',
    default_endpoint: '',
    requires_api_key: false,
    supports_top_k: false,
    icon: key,
  }
}

/**
 * Configs grouped by provider in registry order (unknown providers after, in the order met);
 * only providers with at least one config get an entry. Order inside a group is kept.
 */
export function groupByProvider(
  configs: readonly ModelConfig[],
  providers: readonly ProviderInfo[],
): Map<string, ModelConfig[]> {
  const groups = new Map<string, ModelConfig[]>()
  for (const provider of providers) groups.set(provider.key, [])
  for (const config of configs) {
    const group = groups.get(config.provider)
    if (group) group.push(config)
    else groups.set(config.provider, [config])
  }
  for (const [key, group] of groups) if (group.length === 0) groups.delete(key)
  return groups
}

/** Model lists are kept per provider and endpoint; an endpoint with or without `/` is the same. */
export function modelListKey(provider: string, endpoint: string): string {
  return `${provider} ${endpoint.trim().replace(/\/+$/, '')}`
}

export type TestState = { status: 'running' } | ({ status: 'done'; at: number } & ConnectionTest)

function isNotFound(error: unknown): boolean {
  return error instanceof AxiosError && error.response?.status === 404
}

export const useModelStore = defineStore('model', () => {
  const auth = useAuthStore()

  const configs = ref<ModelConfig[]>([])
  const providers = ref<ProviderInfo[]>([])
  /** A request to the list is in flight. */
  const loading = ref(false)
  /** The API has answered the list at least once since the page loaded (else: cache or nothing). */
  const fresh = ref(false)
  const loadError = shallowRef<unknown>(null)
  const modelLists = ref<Record<string, RemoteModel[]>>({})
  const testResults = ref<Record<number, TestState>>({})

  let cacheKey = modelCacheKey(auth.user?.id)
  let inflight: Promise<void> | null = null
  /** A create/update/remove happened while the list was loading: its answer may predate it. */
  let changedDuringLoad = false

  function persist(): void {
    writeCache(cacheKey, {
      configs: configs.value,
      providers: providers.value,
      savedAt: new Date().toISOString(),
    })
  }

  function hydrate(): void {
    const cached = readCache(cacheKey)
    configs.value = cached?.configs ?? []
    providers.value = cached?.providers ?? []
    fresh.value = false
    loadError.value = null
    modelLists.value = {}
    testResults.value = {}
  }

  hydrate()
  // Another account signed in (or the session ended): show that account's cache, not this one's.
  watch(
    () => auth.user?.id,
    (id) => {
      cacheKey = modelCacheKey(id)
      hydrate()
    },
  )

  const providerMap = computed(() => new Map(providers.value.map((p) => [p.key, p])))
  const grouped = computed(() => groupByProvider(configs.value, providers.value))
  /** What the playground may use: complete, switched-on configs. */
  const available = computed(() => configs.value.filter((config) => config.status === 1))

  function providerInfo(key: string): ProviderInfo {
    return providerMap.value.get(key) ?? fallbackProvider(key)
  }

  function byId(id: number): ModelConfig | undefined {
    return configs.value.find((config) => config.id === id)
  }

  function groupBy(list: readonly ModelConfig[]): Map<string, ModelConfig[]> {
    return groupByProvider(list, providers.value)
  }

  async function fetchAll(): Promise<void> {
    loading.value = true
    changedDuringLoad = false
    const key = cacheKey
    try {
      // The registry is static for a server's lifetime: once per page load is enough.
      const [list, registry] = await Promise.all([
        modelApi.listConfigs(),
        fresh.value ? Promise.resolve(providers.value) : modelApi.listProviders(),
      ])
      if (key !== cacheKey) return // signed out or switched account meanwhile
      configs.value = list
      providers.value = registry
      fresh.value = true
      loadError.value = null
      persist()
    } catch (error) {
      loadError.value = error // api.ts has shown it; the cached list stays
    } finally {
      loading.value = false
    }
  }

  /** Refresh everything from the API. Concurrent calls share one request. */
  function load(): Promise<void> {
    inflight ??= (async () => {
      try {
        await fetchAll()
        // A change landed while the list was on its way: ask once more so neither is lost.
        if (changedDuringLoad) await fetchAll()
      } finally {
        inflight = null
      }
    })()
    return inflight
  }

  /** Load only when the API has not answered yet in this page (views call this on mount). */
  function ensureLoaded(): Promise<void> {
    return fresh.value ? Promise.resolve() : load()
  }

  function upsert(config: ModelConfig): void {
    const index = configs.value.findIndex((c) => c.id === config.id)
    if (index === -1) configs.value = [...configs.value, config]
    else configs.value = configs.value.map((c, i) => (i === index ? config : c))
    if (inflight) changedDuringLoad = true
    persist()
  }

  function drop(id: number): void {
    configs.value = configs.value.filter((config) => config.id !== id)
    delete testResults.value[id]
    if (inflight) changedDuringLoad = true
    persist()
  }

  async function create(payload: ModelConfigCreate, options?: CallOptions): Promise<ModelConfig> {
    const created = await modelApi.createConfig(payload, options)
    upsert(created)
    return created
  }

  async function update(
    id: number,
    changes: ModelConfigUpdate,
    options?: CallOptions,
  ): Promise<ModelConfig> {
    try {
      const updated = await modelApi.updateConfig(id, changes, options)
      upsert(updated)
      // The old result was for the old settings.
      delete testResults.value[id]
      return updated
    } catch (error) {
      if (isNotFound(error)) drop(id) // deleted elsewhere: stop showing it
      throw error
    }
  }

  async function remove(id: number, options?: CallOptions): Promise<void> {
    try {
      await modelApi.deleteConfig(id, options)
    } catch (error) {
      if (isNotFound(error)) drop(id)
      throw error
    }
    drop(id)
  }

  function modelsFor(provider: string, endpoint: string): RemoteModel[] {
    return modelLists.value[modelListKey(provider, endpoint)] ?? []
  }

  function remember(result: ProviderModels): void {
    modelLists.value = {
      ...modelLists.value,
      [modelListKey(result.provider, result.endpoint)]: result.models,
    }
  }

  /** Ask the provider for its model list now. Failures reject (502/504 with the provider's code). */
  async function refreshModels(
    source: ModelListSource,
    options?: CallOptions,
  ): Promise<ProviderModels> {
    const result = await modelApi.refreshModels(source, options)
    remember(result)
    return result
  }

  /** The list the server fetched last time, without asking the provider; [] when none. */
  async function knownModels(provider: string, endpoint: string): Promise<RemoteModel[]> {
    try {
      const result = await modelApi.providerModels(provider, endpoint, { silent: true })
      if (result.models.length > 0) remember(result)
      return result.models
    } catch {
      return []
    }
  }

  /** Send a one-token completion through a saved config; the outcome lands in testResults. */
  async function test(id: number): Promise<ConnectionTest> {
    testResults.value = { ...testResults.value, [id]: { status: 'running' } }
    let result: ConnectionTest
    try {
      result = await modelApi.testConfig(id, { silent: true })
    } catch (error) {
      if (isNotFound(error)) drop(id)
      result = { ok: false, latency_ms: null, model: null, error: errorMessage(error) }
    }
    if (byId(id)) {
      testResults.value = {
        ...testResults.value,
        [id]: { status: 'done', at: Date.now(), ...result },
      }
    }
    return result
  }

  return {
    configs,
    providers,
    loading,
    fresh,
    loadError,
    modelLists,
    testResults,
    grouped,
    available,
    providerInfo,
    byId,
    groupBy,
    load,
    ensureLoaded,
    create,
    update,
    remove,
    modelsFor,
    refreshModels,
    knownModels,
    test,
  }
})
