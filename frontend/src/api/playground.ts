/**
 * The playground (`/api/playground`): side-by-side comparison of 1-3 model configs, answered
 * whole (`compare`) or as one Server-Sent-Events stream whose events carry `model_index`
 * (`openCompareStream`; read it with `processSSEResponse`).
 */
import type { ModelParams } from '@/api/modelConfig'
import { openEventStream } from '@/api/stream'
import { api } from '@/utils/api'

export { StreamRequestError } from '@/api/stream'

/** The backend's limit on configs per comparison. */
export const COMPARE_MAX = 3

export type InputRole = 'system' | 'user' | 'assistant'

export interface InputMessage {
  role: InputRole
  content: string
  image_ids?: string[]
}

export interface CompareRequest {
  model_config_ids: number[]
  messages: InputMessage[]
  system_prompt?: string | null
  /** Attached to the last user message. */
  image_ids?: string[]
  params?: Partial<ModelParams> | null
}

export interface CompareMetrics {
  ttft_ms: number | null
  total_ms: number
  output_tokens: number
  tokens_per_s: number | null
  finish_reason: string | null
}

export interface CompareError {
  code: string
  message: string
}

export interface CompareResult {
  model_index: number
  model_config_id: number
  config_name: string
  model: string
  content: string
  reasoning: string
  error: CompareError | null
  metrics: CompareMetrics | null
}

export interface CompareResponse {
  results: CompareResult[]
}

/** One `data:` frame of the compare stream (backend/app/schemas/chat.py). */
export type CompareStreamEvent = { model_index: number } & (
  | { type: 'reasoning'; text: string }
  | { type: 'content'; text: string }
  | { type: 'usage'; prompt_tokens: number; completion_tokens: number }
  | ({ type: 'metrics' } & CompareMetrics)
  | ({ type: 'error' } & CompareError)
)

/** Answer every model, then return all results at once. */
export async function compare(
  request: CompareRequest,
  options: { signal?: AbortSignal; silent?: boolean } = {},
): Promise<CompareResponse> {
  // The server waits for the slowest model (up to its connect + idle timeouts).
  const { data } = await api.post<CompareResponse>('/playground/compare', request, {
    timeout: 300_000,
    ...options,
  })
  return data
}

/**
 * Open the compare stream. Resolves to the SSE response once the server accepted the request;
 * rejects with `StreamRequestError` when it refused it (404, 409, 422, ...).
 */
export async function openCompareStream(
  request: CompareRequest,
  signal?: AbortSignal,
): Promise<Response> {
  return openEventStream('/playground/compare/stream', request, signal)
}
