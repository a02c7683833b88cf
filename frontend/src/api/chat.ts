/**
 * Chat (`/api/chat`): saved sessions and their messages, non-streaming and streamed answers,
 * exports, and the system-prompt list the composer picks from. Shapes mirror
 * backend/app/schemas/chat.py (its docstring defines the stream events).
 */
import type { ModelParams } from '@/api/modelConfig'
import { openEventStream } from '@/api/stream'
import type { Page } from '@/api/types'
import { api, type FormErrorTarget } from '@/utils/api'

export { StreamRequestError } from '@/api/stream'

export type MessageRole = 'system' | 'user' | 'assistant'
export type MessageStatus = 'complete' | 'interrupted' | 'error'
export type ExportFormat = 'markdown' | 'json' | 'openai-jsonl' | 'sharegpt'

export const EXPORT_FORMATS: readonly ExportFormat[] = [
  'markdown',
  'json',
  'openai-jsonl',
  'sharegpt',
]
/** The backend's limits (schemas/chat.py). */
export const MESSAGE_CONTENT_MAX = 100_000
export const IMAGES_MAX = 4
export const TITLE_MAX = 200

export interface ChatSession {
  id: number
  title: string
  model_config_id: number | null
  system_prompt_id: number | null
  message_count: number
  last_message_preview: string
  created_at: string
  updated_at: string
}

export interface ChatMessage {
  id: number
  session_id: number
  role: MessageRole
  content: string
  reasoning: string | null
  status: MessageStatus
  error: string | null
  image_ids: string[]
  model_config_id: number | null
  model: string | null
  prompt_tokens: number | null
  completion_tokens: number | null
  latency_ms: number | null
  ttft_ms: number | null
  finish_reason: string | null
  created_at: string
}

/** Oldest first; `has_more`: older messages exist (ask with before = items[0].id). */
export interface MessagePage {
  items: ChatMessage[]
  has_more: boolean
}

export interface ChatSessionDetail {
  session: ChatSession
  messages: MessagePage
}

export interface SessionCreate {
  title?: string | null
  model_config_id?: number | null
  system_prompt_id?: number | null
}

/** Only the fields sent change; null clears the config / prompt. */
export type SessionUpdate = SessionCreate

export type GenerationParams = Partial<ModelParams>

export interface ChatRequest {
  session_id: number
  content: string
  image_ids?: string[]
  /** Also becomes the session's config (as with a stream). */
  model_config_id?: number | null
  system_prompt_id?: number | null
  params?: GenerationParams | null
}

export interface ChatResponse {
  content: string
  reasoning: string
  usage: Record<string, number> | null
  finish_reason: string | null
  latency_ms: number
  model: string
  user_message: ChatMessage | null
  assistant_message: ChatMessage | null
}

/** A new user turn, or `{regenerate: true}` to answer the last user turn again. */
export type StreamRequest =
  | {
      content: string
      image_ids?: string[]
      model_config_id?: number | null
      system_prompt_id?: number | null
      params?: GenerationParams | null
    }
  | {
      regenerate: true
      model_config_id?: number | null
      system_prompt_id?: number | null
      params?: GenerationParams | null
    }

export interface StreamMetrics {
  ttft_ms: number | null
  total_ms: number
  output_tokens: number
  tokens_per_s: number | null
  finish_reason: string | null
}

export interface StreamUsage {
  prompt_tokens: number
  completion_tokens: number
}

/** One `data:` frame of a chat stream. */
export type ChatStreamEvent =
  | { type: 'message'; message: ChatMessage }
  | { type: 'reasoning'; text: string }
  | { type: 'content'; text: string }
  | ({ type: 'usage' } & StreamUsage)
  | ({ type: 'metrics' } & StreamMetrics)
  | { type: 'error'; code: string; message: string }

export interface CallOptions {
  form?: FormErrorTarget
  silent?: boolean
  signal?: AbortSignal
}

const BASE = '/chat'

export async function listSessions(
  query: { page?: number; size?: number; q?: string } = {},
  options: CallOptions = {},
): Promise<Page<ChatSession>> {
  const params: Record<string, string | number> = {
    page: query.page ?? 1,
    size: query.size ?? 20,
  }
  if (query.q?.trim()) params.q = query.q.trim()
  const { data } = await api.get<Page<ChatSession>>(`${BASE}/sessions`, { params, ...options })
  return data
}

export async function createSession(
  payload: SessionCreate,
  options: CallOptions = {},
): Promise<ChatSession> {
  const { data } = await api.post<ChatSession>(`${BASE}/sessions`, payload, options)
  return data
}

export async function getSession(
  id: number,
  limit = 50,
  options: CallOptions = {},
): Promise<ChatSessionDetail> {
  const { data } = await api.get<ChatSessionDetail>(`${BASE}/sessions/${id}`, {
    params: { limit },
    ...options,
  })
  return data
}

/** Messages older than `before` (a message id), oldest first. */
export async function listMessages(
  id: number,
  before: number,
  limit = 50,
  options: CallOptions = {},
): Promise<MessagePage> {
  const { data } = await api.get<MessagePage>(`${BASE}/sessions/${id}/messages`, {
    params: { before, limit },
    ...options,
  })
  return data
}

export async function updateSession(
  id: number,
  changes: SessionUpdate,
  options: CallOptions = {},
): Promise<ChatSession> {
  const { data } = await api.patch<ChatSession>(`${BASE}/sessions/${id}`, changes, options)
  return data
}

export async function deleteSession(id: number, options: CallOptions = {}): Promise<void> {
  await api.delete(`${BASE}/sessions/${id}`, options)
}

/** A non-streamed answer: both turns are saved and returned. */
export async function sendChat(
  payload: ChatRequest,
  options: CallOptions = {},
): Promise<ChatResponse> {
  // The server waits for the whole answer; give a slow provider the server's own timeouts.
  const { data } = await api.post<ChatResponse>(`${BASE}/`, payload, {
    timeout: 300_000,
    ...options,
  })
  return data
}

/**
 * Start a streamed answer in a session. Resolves with the SSE response (read it with
 * `processSSEResponse`); a refusal before streaming (409 model_required, 422 vision_unsupported,
 * 404, ...) rejects with a StreamRequestError carrying the server's code.
 */
export async function openSessionStream(
  sessionId: number,
  body: StreamRequest,
  signal?: AbortSignal,
): Promise<Response> {
  return openEventStream(`${BASE}/sessions/${sessionId}/stream`, body, signal)
}

/** The file name from a Content-Disposition header (RFC 5987 `filename*` first). */
export function filenameFrom(disposition: string | undefined, fallback: string): string {
  if (!disposition) return fallback
  const star = /filename\*\s*=\s*(?:UTF-8'')?([^;]+)/i.exec(disposition)
  if (star) {
    try {
      return decodeURIComponent(star[1].trim().replace(/^"|"$/g, ''))
    } catch {
      // malformed escape: try the plain form
    }
  }
  const plain = /filename\s*=\s*"?([^";]+)"?/i.exec(disposition)
  return plain ? plain[1].trim() : fallback
}

export const EXPORT_EXTENSIONS: Record<ExportFormat, string> = {
  markdown: 'md',
  json: 'json',
  'openai-jsonl': 'jsonl',
  sharegpt: 'json',
}

/** One session exported as a file (an authenticated download). */
export async function exportSession(
  id: number,
  format: ExportFormat,
  options: CallOptions = {},
): Promise<{ blob: Blob; filename: string }> {
  const response = await api.get<Blob>(`${BASE}/sessions/${id}/export`, {
    params: { format },
    responseType: 'blob',
    ...options,
  })
  const header = response.headers['content-disposition'] as string | undefined
  return {
    blob: response.data,
    filename: filenameFrom(header, `chat-${id}.${EXPORT_EXTENSIONS[format]}`),
  }
}
