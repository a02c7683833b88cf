/**
 * Training jobs (`/api/training`): the engine's state, jobs (create, list, start, cancel,
 * resume, export, delete), their metrics, logs and artifacts, and the live event stream.
 * Shapes mirror backend/app/schemas/training.py.
 */
import { downloadFile, type DownloadedFile, type DownloadOptions } from '@/api/datasets'
import { refusal } from '@/api/stream'
import type { Page } from '@/api/types'
import { api, type FormErrorTarget } from '@/utils/api'
import { authenticatedFetch } from '@/utils/tokenManager'

export { StreamRequestError } from '@/api/stream'

export type JobStatus = 'created' | 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled'
export type JobKind = 'train' | 'export'
export type JobScope = 'all' | 'mine'
export type Stage = 'sft' | 'pt' | 'dpo' | 'kto'
export type FinetuningType = 'lora' | 'qlora' | 'full' | 'freeze'
export type Scheduler =
  | 'linear'
  | 'cosine'
  | 'cosine_with_restarts'
  | 'polynomial'
  | 'constant'
  | 'constant_with_warmup'
  | 'inverse_sqrt'
export type ExportDtype = 'auto' | 'float16' | 'bfloat16' | 'float32'
export type ArtifactKind = 'adapter' | 'model' | 'merged' | 'checkpoint'

export const JOB_STATUSES: readonly JobStatus[] = [
  'created',
  'queued',
  'running',
  'succeeded',
  'failed',
  'cancelled',
]
/** States a job leaves by itself: the list refreshes and the drawer streams while one is shown. */
export const ACTIVE_STATUSES: readonly JobStatus[] = ['queued', 'running']
/** States the event stream ends on. */
export const FINAL_STATUSES: readonly JobStatus[] = ['succeeded', 'failed', 'cancelled', 'created']
export const STAGES: readonly Stage[] = ['sft', 'pt', 'dpo', 'kto']
export const FINETUNING_TYPES: readonly FinetuningType[] = ['lora', 'qlora', 'full', 'freeze']
export const SCHEDULERS: readonly Scheduler[] = [
  'linear',
  'cosine',
  'cosine_with_restarts',
  'polynomial',
  'constant',
  'constant_with_warmup',
  'inverse_sqrt',
]
export const EXPORT_DTYPES: readonly ExportDtype[] = ['auto', 'float16', 'bfloat16', 'float32']
/** The backend's limits (models/training.py, schemas/training.py). */
export const JOB_NAME_MAX = 100
export const DATASETS_PER_JOB_MAX = 10
export const SWANLAB_NAME_MAX = 100
export const BASE_MODEL_MAX = 1000

export interface EngineInfo {
  available: boolean
  version: string | null
  version_supported: boolean
  missing: string | null
  install_hint: string
  gpus: string[]
  quantization: boolean
  templates: string[]
  /** torch threads each run gets (TRAIN_CPU_THREADS); null: the engine's default */
  cpu_threads: number | null
}

export interface JobProgress {
  step: number
  total: number
  percentage: number
  loss: number | null
  lr: number | null
  epoch: number | null
  elapsed_s: number | null
  remaining_s: number | null
}

/** The hyper-parameters (LLaMA-Factory's names). */
export interface TrainingParams {
  num_train_epochs: number | null
  max_steps: number | null
  learning_rate: number
  per_device_train_batch_size: number
  gradient_accumulation_steps: number
  cutoff_len: number
  max_samples: number | null
  lora_rank: number
  lora_alpha: number | null
  lora_dropout: number
  lora_target: string
  freeze_trainable_layers: number
  quantization_bit: number
  pref_beta: number
  warmup: number
  lr_scheduler_type: Scheduler
  save_steps: number
  save_total_limit: number | null
  logging_steps: number
  val_size: number
  eval_steps: number | null
  bf16: boolean
  fp16: boolean
  seed: number
}

export interface TrainingJob {
  id: number
  name: string
  description: string
  kind: JobKind
  source_job_id: number | null
  owner: { id: number; nickname: string }
  status: JobStatus
  cancel_requested: boolean
  reason: string | null
  exit_code: number | null
  resumable: boolean
  queue_position: number | null
  attempt: number
  base_model: string
  template: string
  stage: Stage
  finetuning_type: FinetuningType
  datasets: { id: number; name: string }[]
  /** As stored: the hyper-parameters, plus export settings on an export job. */
  params: Record<string, unknown>
  swanlab: {
    enabled: boolean
    project: string | null
    run_name: string | null
    mode: string | null
  }
  progress: JobProgress | null
  created_at: string
  updated_at: string
  queued_at: string | null
  started_at: string | null
  finished_at: string | null
}

export interface Artifact {
  name: string
  kind: ArtifactKind
  size_bytes: number
  file_count: number
  step: number | null
}

export interface ExportRef {
  id: number
  name: string
  status: JobStatus
}

export interface TrainingJobDetail extends TrainingJob {
  artifacts: Artifact[]
  exports: ExportRef[]
}

export interface TrainingJobCreate extends TrainingParams {
  name: string
  description: string
  dataset_ids: number[]
  base_model: string
  template: string
  stage: Stage
  finetuning_type: FinetuningType
  /** null: follow the server's SwanLab configuration. */
  use_swanlab: boolean | null
  swanlab_project: string | null
  swanlab_run_name: string | null
  /** Queue the job at once. */
  start: boolean
}

export interface MetricPoint {
  step: number
  loss: number | null
  lr: number | null
  epoch: number | null
  eval_loss: number | null
}

export interface JobMetrics {
  progress: JobProgress | null
  points: MetricPoint[]
}

export interface JobLogs {
  offset: number
  next_offset: number
  size: number
  lines: string[]
  truncated: boolean
}

/** The frames of `GET /{id}/events`. */
export type JobEvent =
  | { type: 'job'; job: TrainingJob }
  | { type: 'metrics'; points: MetricPoint[] }
  | { type: 'log'; lines: string[]; next_offset: number }
  | { type: 'end'; status: JobStatus }
  /** The job went away mid-stream (code job_not_found); `data: [ERROR]` follows. */
  | { type: 'error'; code?: string; message?: string }

export interface JobQuery {
  page: number
  size: number
  status?: JobStatus | ''
  kind?: JobKind | ''
  q?: string
  scope?: JobScope
}

export interface CallOptions {
  form?: FormErrorTarget
  silent?: boolean
  signal?: AbortSignal
}

const BASE = '/training'

export async function getEngine(options: CallOptions = {}): Promise<EngineInfo> {
  const { data } = await api.get<EngineInfo>(`${BASE}/engine`, options)
  return data
}

export async function listJobs(
  query: JobQuery,
  options: CallOptions = {},
): Promise<Page<TrainingJob>> {
  const params: Record<string, string | number> = { page: query.page, size: query.size }
  if (query.status) params.status = query.status
  if (query.kind) params.kind = query.kind
  if (query.q?.trim()) params.q = query.q.trim()
  if (query.scope) params.scope = query.scope
  const { data } = await api.get<Page<TrainingJob>>(BASE, { params, ...options })
  return data
}

export async function getJob(id: number, options: CallOptions = {}): Promise<TrainingJobDetail> {
  const { data } = await api.get<TrainingJobDetail>(`${BASE}/${id}`, options)
  return data
}

export async function createJob(
  body: TrainingJobCreate,
  options: CallOptions = {},
): Promise<TrainingJobDetail> {
  const { data } = await api.post<TrainingJobDetail>(BASE, body, options)
  return data
}

export async function updateJob(
  id: number,
  changes: { name?: string; description?: string },
  options: CallOptions = {},
): Promise<TrainingJobDetail> {
  const { data } = await api.patch<TrainingJobDetail>(`${BASE}/${id}`, changes, options)
  return data
}

export async function deleteJob(id: number, options: CallOptions = {}): Promise<void> {
  await api.delete(`${BASE}/${id}`, options)
}

export type JobAction = 'start' | 'cancel' | 'resume'

export async function jobAction(
  id: number,
  action: JobAction,
  options: CallOptions = {},
): Promise<TrainingJobDetail> {
  // Cancelling waits for the process to stop (up to ~10 s on the server).
  const { data } = await api.post<TrainingJobDetail>(`${BASE}/${id}/${action}`, undefined, {
    timeout: 60_000,
    ...options,
  })
  return data
}

/** Merge a LoRA / QLoRA job's adapter into its base model: answers with the new export job. */
export async function exportJob(
  id: number,
  exportDtype: ExportDtype,
  options: CallOptions = {},
): Promise<TrainingJobDetail> {
  const { data } = await api.post<TrainingJobDetail>(
    `${BASE}/${id}/export`,
    { export_dtype: exportDtype },
    options,
  )
  return data
}

export async function getMetrics(
  id: number,
  afterStep?: number,
  options: CallOptions = {},
): Promise<JobMetrics> {
  const params = afterStep === undefined ? {} : { after_step: afterStep }
  const { data } = await api.get<JobMetrics>(`${BASE}/${id}/metrics`, { params, ...options })
  return data
}

export async function getLogs(
  id: number,
  offset?: number,
  options: CallOptions = {},
): Promise<JobLogs> {
  const params = offset === undefined ? {} : { offset }
  const { data } = await api.get<JobLogs>(`${BASE}/${id}/logs`, { params, ...options })
  return data
}

export async function listArtifacts(id: number, options: CallOptions = {}): Promise<Artifact[]> {
  const { data } = await api.get<Artifact[]>(`${BASE}/${id}/artifacts`, options)
  return data
}

export function downloadArtifact(
  jobId: number,
  name: string,
  options: DownloadOptions = {},
): Promise<DownloadedFile> {
  return downloadFile(
    `${BASE}/${jobId}/artifacts/${encodeURIComponent(name)}/download`,
    `job-${jobId}-${name}.zip`,
    options,
  )
}

/** Where a reconnecting stream picks up: log bytes and metric steps already shown. */
export interface EventsResume {
  log_offset?: number | null
  after_step?: number | null
}

export function eventsPath(id: number, resume: EventsResume = {}): string {
  const params = new URLSearchParams()
  if (resume.log_offset !== undefined && resume.log_offset !== null) {
    params.set('log_offset', String(resume.log_offset))
  }
  if (resume.after_step !== undefined && resume.after_step !== null) {
    params.set('after_step', String(resume.after_step))
  }
  const query = params.toString()
  return `/api${BASE}/${id}/events${query ? `?${query}` : ''}`
}

/**
 * Open a job's event stream (read it with `processSSEResponse`). It is a GET, which
 * `openEventStream` (POST with a body) does not make; refusals become the same
 * StreamRequestError through its `refusal`.
 */
export async function openJobEvents(
  id: number,
  resume: EventsResume = {},
  signal?: AbortSignal,
): Promise<Response> {
  const response = await authenticatedFetch(eventsPath(id, resume), {
    method: 'GET',
    headers: { Accept: 'text/event-stream' },
    signal,
  })
  if (!response.ok) throw await refusal(response)
  return response
}
