/** SwanLab experiment tracking (`/api/training/swanlab`): typed calls and the shapes they carry. */
import type { FormErrorTarget } from '@/utils/api'
import { api } from '@/utils/api'

export type SwanlabMode = 'local' | 'cloud' | 'offline' | 'disabled'
export const SWANLAB_MODES: readonly SwanlabMode[] = ['local', 'cloud', 'offline', 'disabled']

export type SwanlabRunStatus = 'running' | 'finished' | 'crashed' | 'unknown'

/** The stored, server-wide configuration; the API key only as a mask. */
export interface SwanlabConfig {
  mode: SwanlabMode
  project: string
  workspace: string | null
  /** The folder runs write to and the dashboard reads (the default one when not set). */
  logdir: string
  logdir_is_default: boolean
  /** SwanLab API host for cloud mode; null: the official one. */
  host: string | null
  /** Port of the local dashboard (127.0.0.1). */
  port: number
  has_api_key: boolean
  /** e.g. '…a1b2'; null without a key or when the server cannot decrypt it. */
  api_key_masked: string | null
}

/**
 * PUT body: the fields sent replace the stored ones, omitted fields keep them. `workspace`,
 * `logdir` and `host` as null or '' go back to their defaults. `api_key`: absent or null keeps
 * the stored key, '' removes it, any other string replaces it.
 */
export interface SwanlabConfigUpdate {
  mode?: SwanlabMode
  project?: string
  workspace?: string | null
  logdir?: string | null
  host?: string | null
  port?: number
  api_key?: string | null
}

export interface SwanlabCheck {
  name: string
  ok: boolean
  message: string
}

export interface SwanlabTestResult {
  ok: boolean
  mode: SwanlabMode
  message: string
  checks: SwanlabCheck[]
}

/** The supervised local dashboard (`swanlab watch`). */
export interface SwanlabStatus {
  running: boolean
  /** The dashboard's HTTP port answers. */
  healthy: boolean
  pid: number | null
  port: number | null
  url: string | null
  logdir: string | null
  started_at: string | null
  engine_available: boolean
  install_hint: string | null
  log_tail: string[]
}

export interface SwanlabRun {
  run_id: string
  name: string
  status: SwanlabRunStatus
  created_at: string | null
  finished_at: string | null
}

export interface SwanlabProject {
  name: string
  created_at: string | null
  updated_at: string | null
  runs: SwanlabRun[]
}

export interface SwanlabProjects {
  logdir: string
  projects: SwanlabProject[]
}

const BASE = '/training/swanlab'

export async function getConfig(): Promise<SwanlabConfig> {
  const { data } = await api.get<SwanlabConfig>(`${BASE}/config`)
  return data
}

/** Administrators only (403 otherwise); 422 field errors go to `form`. */
export async function updateConfig(
  body: SwanlabConfigUpdate,
  form?: FormErrorTarget,
): Promise<SwanlabConfig> {
  const { data } = await api.put<SwanlabConfig>(`${BASE}/config`, body, { form })
  return data
}

/** Checks the stored configuration; may take a few seconds (cloud sign-in). */
export async function testConfig(): Promise<SwanlabTestResult> {
  const { data } = await api.post<SwanlabTestResult>(`${BASE}/test`)
  return data
}

/** `silent` for background polls: a failed refresh should not pop up a message each time. */
export async function dashboardStatus(silent = false): Promise<SwanlabStatus> {
  const { data } = await api.get<SwanlabStatus>(`${BASE}/status`, { silent })
  return data
}

/**
 * Administrators only; waits until the dashboard answers (up to ~20 s). Refusals: 409
 * engine_unavailable / port_in_use / dashboard_failed, 400 logdir_not_writable.
 * `silent`: the caller shows the error itself.
 */
export async function startDashboard(silent = false): Promise<SwanlabStatus> {
  const { data } = await api.post<SwanlabStatus>(`${BASE}/start`, undefined, {
    timeout: 60_000,
    silent,
  })
  return data
}

/** Administrators only; fine when it does not run. */
export async function stopDashboard(silent = false): Promise<SwanlabStatus> {
  const { data } = await api.post<SwanlabStatus>(`${BASE}/stop`, undefined, {
    timeout: 60_000,
    silent,
  })
  return data
}

/** 400 swanlab_logdir_unreadable when the folder's runs.swanlab cannot be read. */
export async function listProjects(silent = false): Promise<SwanlabProjects> {
  const { data } = await api.get<SwanlabProjects>(`${BASE}/projects`, { silent })
  return data
}
