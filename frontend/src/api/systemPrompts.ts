/** The system-prompt library (`/api/chat/system-prompts`): typed calls and the shapes they carry. */
import type { Page } from '@/api/types'
import type { FormErrorTarget } from '@/utils/api'
import { api } from '@/utils/api'

/** How a prompt's content is read: plain text, Markdown, or a JSON / YAML document. */
export type PromptFormat = 'text' | 'markdown' | 'json' | 'yaml'
/** Conversion targets: the prompt formats plus an OpenAI `messages` array. */
export type ConvertFormat = PromptFormat | 'openai-messages'
/** all: what the user may see; mine: own; shared: shared by anyone; builtin: the templates. */
export type PromptScope = 'all' | 'mine' | 'shared' | 'builtin'

export interface SystemPrompt {
  id: number
  name: string
  content: string
  category: string
  tags: string[]
  format: PromptFormat
  /** Declared variables (found in the content when none were given). */
  variables: string[]
  is_shared: boolean
  is_builtin: boolean
  owner: { id: number; nickname: string }
  /** The user owns the prompt (and it is not a built-in) or is an admin. */
  can_edit: boolean
  created_at: string
  updated_at: string
}

export interface SystemPromptCreate {
  name: string
  content: string
  category?: string
  tags?: string[]
  format?: PromptFormat
  /** Omitted or null: the server takes the variables found in the content. */
  variables?: string[] | null
  is_shared?: boolean
}

/** PATCH: only the fields sent change (null is refused, except `variables`: found again). */
export type SystemPromptUpdate = Partial<SystemPromptCreate>

export interface PromptQuery {
  page?: number
  size?: number
  scope?: PromptScope
  category?: string
  tag?: string
  q?: string
}

/** What the visible prompts use: the choices for the category and tag filters. */
export interface PromptFacets {
  categories: string[]
  tags: string[]
}

/** 1-based position; null when the finding has no place (a declared but unused variable). */
export interface PromptProblem {
  line: number | null
  column: number | null
  message: string
}

export interface ValidateRequest {
  content: string
  format: PromptFormat
  /** The declared variables: when given, unused and undeclared ones come back as warnings. */
  variables?: string[] | null
}

export interface ValidateResponse {
  valid: boolean
  errors: PromptProblem[]
  warnings: PromptProblem[]
  variables: string[]
}

export interface ConvertResponse {
  content: string
  format: ConvertFormat
}

/** Exactly one of `prompt_id` and `content`. */
export type RenderRequest =
  | { prompt_id: number; variables: Record<string, string> }
  | { content: string; format: PromptFormat; variables: Record<string, string> }

export interface RenderResponse {
  content: string
  /** Variables without a value: left in the content as markers. */
  missing: string[]
}

/** Per-call options: `form` receives 422 field errors, `silent` leaves showing errors to the caller. */
export interface CallOptions {
  form?: FormErrorTarget
  silent?: boolean
  signal?: AbortSignal
}

const BASE = '/chat/system-prompts'

export async function listPrompts(
  query: PromptQuery = {},
  options: CallOptions = {},
): Promise<Page<SystemPrompt>> {
  const params = Object.fromEntries(
    Object.entries(query).filter(([, v]) => v !== undefined && v !== ''),
  )
  const { data } = await api.get<Page<SystemPrompt>>(`${BASE}/`, { params, ...options })
  return data
}

export async function promptFacets(
  scope: PromptScope = 'all',
  options: CallOptions = {},
): Promise<PromptFacets> {
  const { data } = await api.get<PromptFacets>(`${BASE}/facets`, { params: { scope }, ...options })
  return data
}

export async function getPrompt(id: number, options: CallOptions = {}): Promise<SystemPrompt> {
  const { data } = await api.get<SystemPrompt>(`${BASE}/${id}`, options)
  return data
}

export async function createPrompt(
  payload: SystemPromptCreate,
  options: CallOptions = {},
): Promise<SystemPrompt> {
  const { data } = await api.post<SystemPrompt>(`${BASE}/`, payload, options)
  return data
}

export async function updatePrompt(
  id: number,
  changes: SystemPromptUpdate,
  options: CallOptions = {},
): Promise<SystemPrompt> {
  const { data } = await api.patch<SystemPrompt>(`${BASE}/${id}`, changes, options)
  return data
}

export async function deletePrompt(id: number, options: CallOptions = {}): Promise<void> {
  await api.delete(`${BASE}/${id}`, options)
}

/** Errors and warnings with line and column, and the variables the content uses. */
export async function validatePrompt(
  request: ValidateRequest,
  options: CallOptions = {},
): Promise<ValidateResponse> {
  const { data } = await api.post<ValidateResponse>(`${BASE}/validate`, request, options)
  return data
}

/** 422 `conversion_failed` (with the reason as `detail`) when the formats cannot express it. */
export async function convertPrompt(
  content: string,
  from: ConvertFormat,
  to: ConvertFormat,
  options: CallOptions = {},
): Promise<ConvertResponse> {
  const { data } = await api.post<ConvertResponse>(
    `${BASE}/convert`,
    { content, from, to },
    options,
  )
  return data
}

/** Fill the variables (escaped for json/yaml); unfilled ones are listed in `missing`. */
export async function renderPrompt(
  request: RenderRequest,
  options: CallOptions = {},
): Promise<RenderResponse> {
  const { data } = await api.post<RenderResponse>(`${BASE}/render`, request, options)
  return data
}
