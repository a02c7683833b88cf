/**
 * Model runtimes (`/api/model`): models this server serves itself (LLaMA-Factory's API or vLLM),
 * their load / unload life cycle and logs, and deploying a finished training job beside its base
 * model. Shapes mirror backend/app/schemas/model_runtime.py.
 */
import { AxiosError } from 'axios'

import type { ApiErrorBody } from '@/api/types'
import { i18n } from '@/locales'
import { api, errorMessage, type FormErrorTarget } from '@/utils/api'

export type RuntimeStatus = 'stopped' | 'loading' | 'ready' | 'failed'
export type RuntimeEngine = 'llamafactory' | 'vllm'
/** LLaMA-Factory's inference backend; vLLM itself is always sent as 'huggingface'. */
export type RuntimeBackend = 'huggingface' | 'vllm'
export type SourceKind = 'path' | 'hub' | 'job'
export type JobArtifact = 'adapter' | 'merged' | 'model'
export type RuntimeDtype = 'auto' | 'float16' | 'bfloat16' | 'float32'

export const RUNTIME_STATUSES: readonly RuntimeStatus[] = ['stopped', 'loading', 'ready', 'failed']
export const RUNTIME_ENGINES: readonly RuntimeEngine[] = ['llamafactory', 'vllm']
export const RUNTIME_BACKENDS: readonly RuntimeBackend[] = ['huggingface', 'vllm']
export const SOURCE_KINDS: readonly SourceKind[] = ['path', 'hub', 'job']
export const JOB_ARTIFACTS: readonly JobArtifact[] = ['adapter', 'merged', 'model']
export const RUNTIME_DTYPES: readonly RuntimeDtype[] = ['auto', 'float16', 'bfloat16', 'float32']
/** models/model_runtime.py RUNTIME_NAME_MAX; the served model name clients send. */
export const RUNTIME_NAME_MAX = 64
export const RUNTIME_DESCRIPTION_MAX = 2000
export const RUNTIME_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/

/** How the engine is started; every key optional (absent: the engine's default). */
export interface EngineArgs {
  gpu_memory_utilization?: number
  max_model_len?: number
  tensor_parallel_size?: number
  dtype?: RuntimeDtype
  max_loras?: number
  trust_remote_code?: boolean
  enforce_eager?: boolean
}

export interface Runtime {
  id: number
  name: string
  description: string
  owner: { id: number; nickname: string }
  can_manage: boolean
  source_kind: SourceKind
  /** Human text: the path, the hub id, or "job 3: LoRA adapter on …". */
  source: string
  job_id: number | null
  base_model: string
  adapter_path: string | null
  template: string
  engine: RuntimeEngine
  backend: RuntimeBackend
  engine_args: EngineArgs
  requested_port: number | null
  status: RuntimeStatus
  unload_requested: boolean
  /** While loading / ready. */
  port: number | null
  endpoint: string | null
  /** A failure: exit code and the log's tail. */
  reason: string | null
  exit_code: number | null
  /** The model config registered on ready (enabled while ready, disabled after). */
  model_config_id: number | null
  /** Seconds since ready, while ready. */
  uptime_s: number | null
  load_requested_at: string | null
  started_at: string | null
  ready_at: string | null
  stopped_at: string | null
  created_at: string
  updated_at: string
}

export interface ServingEngineInfo {
  engine: RuntimeEngine
  available: boolean
  missing: string | null
  install_hint: string | null
}

export interface RuntimeCreate {
  name: string
  description?: string
  source_kind: SourceKind
  /** path / hub: the model. */
  source?: string
  /** job: the training job and which of its artifacts (absent: the server picks). */
  job_id?: number
  artifact?: JobArtifact
  /** Absent: `default` for a path / hub model, the job's template for a job. */
  template?: string
  engine: RuntimeEngine
  backend: RuntimeBackend
  engine_args: EngineArgs
  /** null: a free port when loading. */
  port: number | null
  load: boolean
}

/** Only the fields sent change; template, engine_args and port only while not loaded. */
export interface RuntimeUpdate {
  description?: string
  template?: string
  /** Replaces the stored arguments as a whole. */
  engine_args?: EngineArgs
  port?: number | null
}

export interface RuntimeLogs {
  offset: number
  next_offset: number
  size: number
  lines: string[]
  truncated: boolean
}

export interface DeployRequest {
  name?: string
  /** null: vLLM where it can run, else LLaMA-Factory. */
  engine?: RuntimeEngine | null
  with_base: boolean
}

export interface DeployResult {
  runtime: Runtime
  base_runtime: Runtime | null
}

export interface CallOptions {
  form?: FormErrorTarget
  silent?: boolean
  signal?: AbortSignal
}

const BASE = '/model'
/** Unloading (and deleting, which unloads first) waits for the process to stop. */
const STOP_TIMEOUT_MS = 60_000

export async function listEngines(options: CallOptions = {}): Promise<ServingEngineInfo[]> {
  const { data } = await api.get<ServingEngineInfo[]>(`${BASE}/engines`, options)
  return data
}

export async function listRuntimes(
  status?: RuntimeStatus | '',
  options: CallOptions = {},
): Promise<Runtime[]> {
  const params = status ? { status } : {}
  const { data } = await api.get<Runtime[]>(BASE, { params, ...options })
  return data
}

export async function getRuntime(id: number, options: CallOptions = {}): Promise<Runtime> {
  const { data } = await api.get<Runtime>(`${BASE}/${id}`, options)
  return data
}

export async function createRuntime(
  body: RuntimeCreate,
  options: CallOptions = {},
): Promise<Runtime> {
  const { data } = await api.post<Runtime>(BASE, body, options)
  return data
}

export async function updateRuntime(
  id: number,
  changes: RuntimeUpdate,
  options: CallOptions = {},
): Promise<Runtime> {
  const { data } = await api.patch<Runtime>(`${BASE}/${id}`, changes, options)
  return data
}

export async function deleteRuntime(id: number, options: CallOptions = {}): Promise<void> {
  await api.delete(`${BASE}/${id}`, { timeout: STOP_TIMEOUT_MS, ...options })
}

export async function loadRuntime(id: number, options: CallOptions = {}): Promise<Runtime> {
  const { data } = await api.post<Runtime>(`${BASE}/${id}/load`, undefined, options)
  return data
}

export async function unloadRuntime(id: number, options: CallOptions = {}): Promise<Runtime> {
  const { data } = await api.post<Runtime>(`${BASE}/${id}/unload`, undefined, {
    timeout: STOP_TIMEOUT_MS,
    ...options,
  })
  return data
}

/** The engine's log from byte `offset`; without it, its last lines. */
export async function getRuntimeLogs(
  id: number,
  offset?: number,
  options: CallOptions = {},
): Promise<RuntimeLogs> {
  const params = offset === undefined ? {} : { offset }
  const { data } = await api.get<RuntimeLogs>(`${BASE}/${id}/logs`, { params, ...options })
  return data
}

/** Serve a succeeded training job (and, with `with_base`, its base model beside it). */
export async function deployJob(
  jobId: number,
  body: DeployRequest = { with_base: true },
  options: CallOptions = {},
): Promise<DeployResult> {
  const { data } = await api.post<DeployResult>(`/training/${jobId}/deploy`, body, options)
  return data
}

/** The error's code, when the server sent one. */
export function errorCode(error: unknown): string | null {
  if (!(error instanceof AxiosError)) return null
  const body = error.response?.data as Partial<ApiErrorBody> | undefined
  return typeof body?.code === 'string' ? body.code : null
}

/**
 * The text for a runtime call's error. The shared `errors.*` wording of some codes speaks of
 * training (engine_unavailable: "run make train-env", invalid_state: "the job"), so the runtime
 * texts come first; they carry the server's detail (what is missing, which name is taken).
 */
export function runtimeErrorMessage(error: unknown): string {
  const { t, te } = i18n.global
  const code = errorCode(error)
  if (code && error instanceof AxiosError && te(`runtime.errors.${code}`)) {
    const body = error.response?.data as Partial<ApiErrorBody> | undefined
    const detail = typeof body?.detail === 'string' ? body.detail : ''
    return t(`runtime.errors.${code}`, { detail })
  }
  return errorMessage(error)
}
