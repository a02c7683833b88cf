/** The model config center (`/api/model-config`): typed calls and the shapes they carry. */
import type { FormErrorTarget } from '@/utils/api'
import { api } from '@/utils/api'

export type ProviderProtocol = 'openai' | 'ollama'

/** One entry of the backend's provider registry. */
export interface ProviderInfo {
  key: string
  display_name: string
  protocol: ProviderProtocol
  default_endpoint: string
  requires_api_key: boolean
  supports_top_k: boolean
  icon: string
}

/** Sampling defaults of a config; null leaves the provider's own default. */
export interface ModelParams {
  temperature: number | null
  max_tokens: number | null
  top_p: number | null
  top_k: number | null
}

export interface ModelCapabilities {
  vision: boolean
  reasoning: boolean
}

/** 1: complete and usable (the playground lists it); 0: a draft or switched off. */
export type ConfigStatus = 0 | 1

export interface ModelConfig {
  id: number
  name: string
  provider: string
  endpoint: string | null
  model: string | null
  params: ModelParams
  capabilities: ModelCapabilities
  status: ConfigStatus
  description: string | null
  owner: { id: number; nickname: string }
  has_api_key: boolean
  /** e.g. `sk-…a1b2`; the key itself never leaves the server. */
  api_key_masked: string | null
  /** Set on the seeded default templates. */
  template_key: string | null
  can_edit: boolean
  created_at: string
  updated_at: string
}

export interface ModelConfigCreate {
  name: string
  provider: string
  endpoint?: string | null
  /** Write-only. */
  api_key?: string | null
  model: string
  params?: Partial<ModelParams>
  capabilities?: Partial<ModelCapabilities>
  status?: ConfigStatus
  description?: string | null
}

/**
 * A partial change. `api_key`: absent or null keeps the stored key, '' removes it,
 * any other string replaces it.
 */
export type ModelConfigUpdate = Partial<ModelConfigCreate>

export interface ConfigQuery {
  status?: ConfigStatus
  provider?: string
}

export interface RemoteModel {
  model_id: string
  owned_by: string | null
  fetched_at: string
}

export interface ProviderModels {
  provider: string
  endpoint: string
  models: RemoteModel[]
}

/** Where to fetch a model list from: a saved config (its stored key), or typed-in settings. */
export type ModelListSource =
  { id: number } | { provider: string; endpoint: string; api_key?: string }

export interface ConnectionTest {
  ok: boolean
  latency_ms: number | null
  model: string | null
  error: string | null
}

/** Per-call options: `form` receives 422 field errors, `silent` leaves showing errors to the caller. */
export interface CallOptions {
  form?: FormErrorTarget
  silent?: boolean
}

const BASE = '/model-config'

export async function listConfigs(query: ConfigQuery = {}): Promise<ModelConfig[]> {
  const params = Object.fromEntries(Object.entries(query).filter(([, v]) => v !== undefined))
  const { data } = await api.get<ModelConfig[]>(`${BASE}/`, { params })
  return data
}

export async function getConfig(id: number): Promise<ModelConfig> {
  const { data } = await api.get<ModelConfig>(`${BASE}/${id}`)
  return data
}

export async function createConfig(
  payload: ModelConfigCreate,
  options: CallOptions = {},
): Promise<ModelConfig> {
  const { data } = await api.post<ModelConfig>(`${BASE}/`, payload, options)
  return data
}

export async function updateConfig(
  id: number,
  changes: ModelConfigUpdate,
  options: CallOptions = {},
): Promise<ModelConfig> {
  const { data } = await api.patch<ModelConfig>(`${BASE}/${id}`, changes, options)
  return data
}

export async function deleteConfig(id: number, options: CallOptions = {}): Promise<void> {
  await api.delete(`${BASE}/${id}`, options)
}

export async function listProviders(): Promise<ProviderInfo[]> {
  const { data } = await api.get<ProviderInfo[]>(`${BASE}/providers`)
  return data
}

/** Ask the provider for its models now (and remember them server-side). */
export async function refreshModels(
  source: ModelListSource,
  options: CallOptions = {},
): Promise<ProviderModels> {
  const { data } =
    'id' in source
      ? await api.post<ProviderModels>(`${BASE}/${source.id}/refresh-models`, null, options)
      : await api.post<ProviderModels>(`${BASE}/refresh-models`, source, options)
  return data
}

/** The list fetched last time for this provider and endpoint (no call to the provider). */
export async function providerModels(
  provider: string,
  endpoint: string,
  options: CallOptions = {},
): Promise<ProviderModels> {
  const { data } = await api.get<ProviderModels>(`${BASE}/provider-models`, {
    params: { provider, endpoint },
    ...options,
  })
  return data
}

/** A one-token completion through the saved config. */
export async function testConfig(id: number, options: CallOptions = {}): Promise<ConnectionTest> {
  // The server gives a silent provider up to connect (10 s) + idle (120 s) timeouts: wait longer.
  const { data } = await api.post<ConnectionTest>(`${BASE}/${id}/test`, null, {
    timeout: 135_000,
    ...options,
  })
  return data
}
