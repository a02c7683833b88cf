/**
 * Saved model comparisons (`/api/model/tests`): create, list, read, rate, delete, and the
 * DPO / SFT export of the rated ones.
 */
import { AxiosError } from 'axios'

import type { CompareError, CompareMetrics } from '@/api/playground'
import type { ModelParams } from '@/api/modelConfig'
import type { Page } from '@/api/types'
import type { CallOptions } from '@/api/modelConfig'
import { api } from '@/utils/api'

export const RATING_MAX = 5

/** One compared model's answer as saved. */
export interface ModelTestResult {
  model_config_id: number | null
  config_name: string
  model: string
  content: string
  reasoning: string
  metrics: CompareMetrics | null
  error: CompareError | null
  /** 1-5, or null when not rated. */
  rating: number | null
}

export interface ModelTestCreate {
  title?: string
  prompt: string
  system_prompt?: string | null
  image_ids: string[]
  params?: Partial<ModelParams> | null
  results: ModelTestResult[]
  /** Index into `results` of the preferred answer. */
  winner_index: number | null
}

export interface ModelTest {
  id: number
  title: string
  prompt: string
  system_prompt: string | null
  image_ids: string[]
  params: Partial<ModelParams> | null
  results: ModelTestResult[]
  winner_index: number | null
  notes: string | null
  created_at: string
}

/** PATCH: only the fields sent change. `ratings` has one entry per result. */
export interface ModelTestUpdate {
  title?: string
  notes?: string | null
  winner_index?: number | null
  ratings?: (number | null)[]
}

export type ExportFormat = 'dpo' | 'sft'

export interface ExportFile {
  blob: Blob
  filename: string
}

const BASE = '/model/tests'

export async function listTests(
  query: { page: number; size: number },
  options: CallOptions = {},
): Promise<Page<ModelTest>> {
  const { data } = await api.get<Page<ModelTest>>(BASE, { params: query, ...options })
  return data
}

export async function getTest(id: number, options: CallOptions = {}): Promise<ModelTest> {
  const { data } = await api.get<ModelTest>(`${BASE}/${id}`, options)
  return data
}

export async function createTest(
  payload: ModelTestCreate,
  options: CallOptions = {},
): Promise<ModelTest> {
  const { data } = await api.post<ModelTest>(BASE, payload, options)
  return data
}

export async function updateTest(
  id: number,
  changes: ModelTestUpdate,
  options: CallOptions = {},
): Promise<ModelTest> {
  const { data } = await api.patch<ModelTest>(`${BASE}/${id}`, changes, options)
  return data
}

export async function deleteTest(id: number, options: CallOptions = {}): Promise<void> {
  await api.delete(`${BASE}/${id}`, options)
}

/** The name from `Content-Disposition` (RFC 6266 `filename*` first), else `fallback`. */
export function attachmentName(header: unknown, fallback: string): string {
  if (typeof header !== 'string') return fallback
  const star = /filename\*\s*=\s*(?:UTF-8|utf-8)''([^;]+)/.exec(header)
  if (star?.[1]) {
    try {
      return decodeURIComponent(star[1].trim())
    } catch {
      // malformed escape: try the plain parameter
    }
  }
  const plain = /filename\s*=\s*"?([^";]+)"?/.exec(header)
  return plain?.[1]?.trim() || fallback
}

/**
 * The rated comparisons as a training file (DPO preference pairs or SFT examples). The answer
 * is a blob, so an error's JSON arrives as a blob too: it is parsed back before rethrowing,
 * for the caller's `errorMessage` to read its code. Errors are not shown here (silent).
 */
export async function exportTests(format: ExportFormat): Promise<ExportFile> {
  try {
    const response = await api.get<Blob>(`${BASE}/export`, {
      params: { format },
      responseType: 'blob',
      silent: true,
    })
    return {
      blob: response.data,
      filename: attachmentName(
        response.headers['content-disposition'],
        `model-tests-${format}.jsonl`,
      ),
    }
  } catch (error) {
    if (error instanceof AxiosError && error.response?.data instanceof Blob) {
      try {
        error.response.data = JSON.parse(await error.response.data.text()) as unknown
      } catch {
        // not JSON: errorMessage falls back to the status
      }
    }
    throw error
  }
}
