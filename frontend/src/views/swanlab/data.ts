/**
 * The SwanLab page's fixed parts: the config form (its rules and the PUT body it makes), the
 * dashboard's states, and how training jobs and SwanLab runs find each other.
 */
import { AxiosError } from 'axios'
import type { FormItemRule } from 'element-plus'

import type {
  SwanlabConfig,
  SwanlabConfigUpdate,
  SwanlabMode,
  SwanlabProject,
  SwanlabRun,
  SwanlabRunStatus,
  SwanlabStatus,
} from '@/api/swanlab'
import type { ApiErrorBody } from '@/api/types'
import { errorMessage } from '@/utils/api'

export { formatDateTime } from '@/utils/format'

type Translate = (key: string, named?: Record<string, unknown>) => string

/** The backend's limits (schemas/swanlab.py). */
export const NAME_PATTERN = /^[A-Za-z0-9_.+-]{1,100}$/
export const API_KEY_PATTERN = /^[\x21-\x7e]*$/
export const API_KEY_MAX = 1000
export const LOGDIR_MAX = 4096
export const HOST_MAX = 2048
export const PORT_MIN = 1024
export const PORT_MAX = 65535
export const DEFAULT_CLOUD_HOST = 'https://api.swanlab.cn'
/** How often the dashboard's state and a running job's curves refresh. */
export const STATUS_POLL_MS = 10_000
export const METRICS_POLL_MS = 3_000

// ---------------------------------------------------------------------------- config form

export interface SwanlabForm {
  mode: SwanlabMode
  project: string
  /** '' for none (the API key's own account). */
  workspace: string
  /** '' for the server's default folder. */
  logdir: string
  /** '' for the official cloud API. */
  host: string
  /** null while the number box is cleared; the rules refuse to save it so. */
  port: number | null
  /** Write-only: '' keeps the stored key (unless `removeKey`), anything else replaces it. */
  api_key: string
  removeKey: boolean
}

export const FORM_FIELDS = [
  'mode',
  'project',
  'workspace',
  'logdir',
  'host',
  'port',
  'api_key',
] as const
export type FormField = (typeof FORM_FIELDS)[number]

/** The form for a stored config: the defaults show as empty fields (with a placeholder). */
export function formFromConfig(config: SwanlabConfig): SwanlabForm {
  return {
    mode: config.mode,
    project: config.project,
    workspace: config.workspace ?? '',
    logdir: config.logdir_is_default ? '' : config.logdir,
    host: config.host ?? '',
    port: config.port,
    api_key: '',
    removeKey: false,
  }
}

function normalHost(value: string | null | undefined): string | null {
  const text = (value ?? '').trim().replace(/\/+$/, '')
  return text === '' ? null : text
}

/** The host field names another cloud host than the stored one. */
export function hostChanged(form: SwanlabForm, config: SwanlabConfig): boolean {
  return normalHost(form.host) !== normalHost(config.host)
}

/**
 * The server drops a stored key when the host changes and no new key is sent (a key only ever
 * goes to the host it was entered for); the form warns before that happens.
 */
export function hostChangeDropsKey(form: SwanlabForm, config: SwanlabConfig): boolean {
  return (
    config.has_api_key && !form.removeKey && form.api_key.trim() === '' && hostChanged(form, config)
  )
}

/** Whether a key will be stored once this form is saved. */
export function keyAfterSave(form: SwanlabForm, config: SwanlabConfig): boolean {
  if (form.api_key.trim() !== '') return true
  if (form.removeKey) return false
  return config.has_api_key && !hostChanged(form, config)
}

/**
 * The PUT body for the form. Every field is sent, so the server stores exactly what the form
 * shows; empty optional fields go back to their defaults (null). `api_key` follows the
 * server's rule: absent keeps the stored key, '' removes it, a value replaces it.
 */
export function buildUpdate(form: SwanlabForm): SwanlabConfigUpdate {
  const optional = (value: string): string | null => (value.trim() === '' ? null : value.trim())
  const body: SwanlabConfigUpdate = {
    mode: form.mode,
    project: form.project.trim(),
    workspace: optional(form.workspace),
    logdir: optional(form.logdir),
    host: normalHost(form.host),
  }
  if (form.port !== null) body.port = form.port
  const key = form.api_key.trim()
  if (key !== '') body.api_key = key
  else if (form.removeKey) body.api_key = ''
  return body
}

/** The form differs from the stored config (the connection test checks the stored one). */
export function isDirty(form: SwanlabForm, config: SwanlabConfig): boolean {
  return JSON.stringify(buildUpdate(form)) !== JSON.stringify(buildUpdate(formFromConfig(config)))
}

/** Where the API key field stands, for its placeholder. */
export type KeyState = 'none' | 'stored' | 'unreadable' | 'removing'

export function keyState(form: SwanlabForm, config: SwanlabConfig | null): KeyState {
  if (!config?.has_api_key) return 'none'
  if (form.removeKey) return 'removing'
  return config.api_key_masked === null ? 'unreadable' : 'stored'
}

export function isAbsoluteLogdir(value: string): boolean {
  const text = value.trim()
  return text.startsWith('/') && !text.includes('\0') && !text.split('/').includes('..')
}

/** What is wrong with a cloud host, as a locale key; '' when it is fine. */
export function hostProblem(value: string): string {
  const text = value.trim()
  if (text === '') return ''
  let url: URL
  try {
    url = new URL(text)
  } catch {
    return 'swanlab.rules.hostInvalid'
  }
  if ((url.protocol !== 'http:' && url.protocol !== 'https:') || !url.hostname) {
    return 'swanlab.rules.hostInvalid'
  }
  if (url.username || url.password) return 'swanlab.rules.hostCredentials'
  if (url.search || url.hash || text.includes('?') || text.includes('#')) {
    return 'swanlab.rules.hostQuery'
  }
  return ''
}

function check(message: string, ok: (value: string) => boolean): FormItemRule {
  return {
    trigger: 'blur',
    validator: (_rule, value: string | undefined, callback) =>
      ok(value ?? '') ? callback() : callback(new Error(message)),
  }
}

/**
 * Element Plus rules for the config form, mirroring the server's checks. Built per call so the
 * messages follow the current locale; `state` gives what a rule needs beyond its own field.
 */
export function configRules(
  t: Translate,
  state: () => { form: SwanlabForm; config: SwanlabConfig | null },
): Record<string, FormItemRule[]> {
  return {
    mode: [{ required: true, message: t('swanlab.rules.modeRequired'), trigger: 'change' }],
    project: [
      {
        required: true,
        whitespace: true,
        message: t('swanlab.rules.projectRequired'),
        trigger: 'blur',
      },
      check(t('swanlab.rules.name'), (value) => NAME_PATTERN.test(value.trim())),
    ],
    workspace: [
      check(t('swanlab.rules.name'), (value) => !value.trim() || NAME_PATTERN.test(value.trim())),
    ],
    logdir: [
      check(t('swanlab.rules.logdirAbsolute'), (value) => !value.trim() || isAbsoluteLogdir(value)),
      { max: LOGDIR_MAX, message: t('swanlab.rules.tooLong', { max: LOGDIR_MAX }) },
    ],
    host: [
      {
        trigger: 'blur',
        validator: (_rule, value: string | undefined, callback) => {
          const problem = hostProblem(value ?? '')
          return problem ? callback(new Error(t(problem))) : callback()
        },
      },
      { max: HOST_MAX, message: t('swanlab.rules.tooLong', { max: HOST_MAX }) },
    ],
    port: [
      {
        required: true,
        trigger: ['blur', 'change'],
        validator: (_rule, value: number | null | undefined, callback) =>
          typeof value === 'number' &&
          Number.isInteger(value) &&
          value >= PORT_MIN &&
          value <= PORT_MAX
            ? callback()
            : callback(new Error(t('swanlab.rules.port', { min: PORT_MIN, max: PORT_MAX }))),
      },
    ],
    api_key: [
      check(t('swanlab.rules.apiKeyChars'), (value) => API_KEY_PATTERN.test(value.trim())),
      { max: API_KEY_MAX, message: t('swanlab.rules.tooLong', { max: API_KEY_MAX }) },
      {
        // Cloud mode without a key saves, but every job would then fail to sign in.
        trigger: 'blur',
        validator: (_rule, _value, callback) => {
          const { form, config } = state()
          if (form.mode !== 'cloud' || !config || keyAfterSave(form, config)) return callback()
          return callback(new Error(t('swanlab.rules.apiKeyRequired')))
        },
      },
    ],
  }
}

// ------------------------------------------------------------------------------- dashboard

/** The local dashboard as the status card shows it. */
export type DashboardState = 'running' | 'unhealthy' | 'stopped' | 'unavailable'

export function dashboardState(status: SwanlabStatus | null): DashboardState | null {
  if (!status) return null
  if (status.running) return status.healthy ? 'running' : 'unhealthy'
  return status.engine_available ? 'stopped' : 'unavailable'
}

export type TagType = 'primary' | 'success' | 'warning' | 'danger' | 'info'

export const DASHBOARD_TAG: Record<DashboardState, TagType> = {
  running: 'success',
  unhealthy: 'warning',
  stopped: 'info',
  unavailable: 'danger',
}

/** What the current user may do with the dashboard now. */
export function dashboardActions(
  status: SwanlabStatus | null,
  isAdmin: boolean,
): { start: boolean; stop: boolean; open: boolean } {
  const running = status?.running ?? false
  return {
    start: isAdmin && status !== null && !running && status.engine_available,
    stop: isAdmin && running,
    // Also while it does not answer: swanboard serves its page but fails its API until the
    // log folder holds a run, which the health check counts as not answering.
    open: running && Boolean(status?.url),
  }
}

export const MODE_TAG: Record<SwanlabMode, TagType> = {
  local: 'success',
  offline: 'primary',
  cloud: 'warning',
  disabled: 'info',
}

export const RUN_TAG: Record<SwanlabRunStatus, TagType> = {
  running: 'primary',
  finished: 'success',
  crashed: 'danger',
  unknown: 'info',
}

// ------------------------------------------------------------------------ jobs and runs

/** What matching needs of a training job (api/training's TrainingJob has it). */
export interface JobLike {
  id: number
  name: string
  swanlab: {
    enabled: boolean
    project: string | null
    run_name: string | null
    mode: string | null
  }
}

export interface RunMatch {
  project: SwanlabProject
  run: SwanlabRun
  /** The job logged to this very project name (a log folder may hold runs of several). */
  sameProject: boolean
}

/**
 * The local SwanLab runs that are this job's: the same run name, the job's own project first.
 * SwanLab files a run under the log folder's first project, so a different project name still
 * matches by run name.
 */
export function runsForJob(job: JobLike, projects: readonly SwanlabProject[]): RunMatch[] {
  const name = job.swanlab.run_name
  if (!job.swanlab.enabled || !name) return []
  const found: RunMatch[] = []
  for (const project of projects) {
    for (const run of project.runs) {
      if (run.name === name) {
        found.push({ project, run, sameProject: project.name === job.swanlab.project })
      }
    }
  }
  return found.sort((a, b) => Number(b.sameProject) - Number(a.sameProject))
}

/** The jobs that logged as this run (a resumed job logs several runs of one name). */
export function jobsForRun<J extends JobLike>(
  run: SwanlabRun,
  project: SwanlabProject,
  jobs: readonly J[],
): J[] {
  const matching = jobs.filter((job) => job.swanlab.enabled && job.swanlab.run_name === run.name)
  const same = matching.filter((job) => job.swanlab.project === project.name)
  return same.length > 0 ? same : matching
}

// ---------------------------------------------------------------------------------- curves

/** A job whose curves still grow. */
export function isActiveStatus(status: string): boolean {
  return status === 'running' || status === 'queued'
}

interface StepPoint {
  step: number
}

/** Add newly fetched points: one per step (the newer wins), in step order. */
export function mergePoints<P extends StepPoint>(
  current: readonly P[],
  incoming: readonly P[],
): P[] {
  if (incoming.length === 0) return current as P[]
  const byStep = new Map<number, P>()
  for (const point of current) byStep.set(point.step, point)
  for (const point of incoming) byStep.set(point.step, point)
  return [...byStep.values()].sort((a, b) => a.step - b.step)
}

export function lastStep(points: readonly StepPoint[]): number | undefined {
  return points.length ? points[points.length - 1]?.step : undefined
}

/** `?job=12` as a job id, or null. */
export function parseJobQuery(value: unknown): number | null {
  const text = Array.isArray(value) ? value[0] : value
  if (typeof text !== 'string' || !/^\d+$/.test(text)) return null
  const id = Number(text)
  return id > 0 ? id : null
}

/** An API failure for inline display: our wording for its code, plus the server's own words. */
export function describeError(error: unknown): { message: string; detail: string } {
  const message = errorMessage(error)
  let detail = ''
  if (error instanceof AxiosError) {
    const body = error.response?.data as Partial<ApiErrorBody> | undefined
    if (typeof body?.detail === 'string' && body.detail !== message) detail = body.detail
  }
  return { message, detail }
}

/** The caller may not do this (a non-admin's save, start or stop). */
export function isForbidden(error: unknown): boolean {
  return error instanceof AxiosError && error.response?.status === 403
}
