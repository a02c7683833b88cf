/** The prompt library page's fixed parts: limits, options, form rules and helpers. */
import { AxiosError } from 'axios'
import type { FormItemRule } from 'element-plus'
import type { RouteLocationRaw } from 'vue-router'

import type {
  ConvertFormat,
  PromptFormat,
  PromptProblem,
  PromptScope,
  SystemPrompt,
  SystemPromptCreate,
} from '@/api/systemPrompts'
import type { ApiErrorBody } from '@/api/types'
import { errorMessage } from '@/utils/api'

// The backend's limits (app/models/system_prompt.py, app/schemas/system_prompt.py).
export const NAME_MAX = 100
export const CATEGORY_MAX = 50
export const TAG_MAX = 30
export const TAGS_MAX = 10
export const CONTENT_MAX = 20_000
export const VARIABLE_MAX = 64
export const VARIABLES_MAX = 50
export const DEFAULT_CATEGORY = 'general'

export const PAGE_SIZES = [10, 20, 50]
export const DEFAULT_PAGE_SIZE = 20
export const SEARCH_DEBOUNCE_MS = 300
/** Typing pauses this long before the content is checked on the server. */
export const VALIDATE_DEBOUNCE_MS = 400

export const PROMPT_FORMATS: PromptFormat[] = ['text', 'markdown', 'json', 'yaml']
export const CONVERT_FORMATS: ConvertFormat[] = [...PROMPT_FORMATS, 'openai-messages']
export const SCOPES: PromptScope[] = ['all', 'mine', 'shared', 'builtin']

const VARIABLE_RE = /^[A-Za-z_][A-Za-z0-9_]*$/
// Tags are matched as JSON text in SQL, so the server refuses these characters.
const TAG_FORBIDDEN_RE = /["\\\u0000-\u001f\u007f]/

export function isValidTag(tag: string): boolean {
  const trimmed = tag.trim()
  return trimmed !== '' && trimmed.length <= TAG_MAX && !TAG_FORBIDDEN_RE.test(trimmed)
}

export function isValidVariable(name: string): boolean {
  return name.length <= VARIABLE_MAX && VARIABLE_RE.test(name)
}

/** Trimmed, without empties and repeats, first occurrence first (as the server stores them). */
export function cleanList(values: readonly string[]): string[] {
  return [...new Set(values.map((value) => value.trim()).filter(Boolean))]
}

/** Where "use in chat" goes: the chat page reads the prompt id from the query. */
export function chatLocation(promptId: number): RouteLocationRaw {
  return { name: 'model-chat', query: { system_prompt_id: String(promptId) } }
}

/** A prompt stores text, markdown, json or yaml: an OpenAI messages array is stored as json. */
export function storedFormat(format: ConvertFormat): PromptFormat {
  return format === 'openai-messages' ? 'json' : format
}

/** A private copy of a prompt (built-ins are read-only for non-admins: copy, then change). */
export function copyPayload(prompt: SystemPrompt): SystemPromptCreate {
  return {
    name: prompt.name,
    content: prompt.content,
    category: prompt.category,
    tags: [...prompt.tags],
    format: prompt.format,
    variables: [...prompt.variables],
    is_shared: false,
  }
}

export interface ImportResult {
  created: SystemPrompt[]
  failed: { prompt: SystemPrompt; error: unknown }[]
}

/**
 * Copy `prompts` one after the other (one request at a time keeps the order and the server's
 * load even); a failure does not stop the rest.
 */
export async function importPrompts(
  prompts: readonly SystemPrompt[],
  create: (payload: SystemPromptCreate) => Promise<SystemPrompt>,
): Promise<ImportResult> {
  const result: ImportResult = { created: [], failed: [] }
  for (const prompt of prompts) {
    try {
      result.created.push(await create(copyPayload(prompt)))
    } catch (error) {
      result.failed.push({ prompt, error })
    }
  }
  return result
}

/** The variables to ask values for: those the content uses, then declared ones it does not. */
export function previewVariables(
  detected: readonly string[] | undefined,
  declared: readonly string[],
): string[] {
  return cleanList([...(detected ?? []), ...declared])
}

/** Only the values typed in: an empty box leaves the marker in place (listed as missing). */
export function renderValues(
  names: readonly string[],
  values: Readonly<Record<string, string>>,
): Record<string, string> {
  const filled: Record<string, string> = {}
  for (const name of names) {
    const value = values[name]
    if (value !== undefined && value !== '') filled[name] = value
  }
  return filled
}

/** The reason a conversion failed: the server's explanation for 422 conversion_failed. */
export function conversionFailure(error: unknown): string {
  if (error instanceof AxiosError) {
    const body = error.response?.data as Partial<ApiErrorBody> | undefined
    if (body?.code === 'conversion_failed' && typeof body.detail === 'string') return body.detail
  }
  return errorMessage(error)
}

/** Problems in reading order: placed ones by line and column, then the ones without a place. */
export function sortProblems(problems: readonly PromptProblem[]): PromptProblem[] {
  const key = (p: PromptProblem) => [p.line ?? Infinity, p.column ?? Infinity]
  return [...problems].sort((a, b) => {
    const [la, ca] = key(a)
    const [lb, cb] = key(b)
    return la === lb ? ca - cb : la - lb
  })
}

export { formatDateTime } from '@/utils/format'

type Translate = (key: string, named?: Record<string, unknown>) => string

function listRule(check: (values: string[]) => string | null): FormItemRule {
  return {
    trigger: 'change',
    validator: (_rule, value: string[] | undefined, callback) => {
      const message = check(value ?? [])
      return message ? callback(new Error(message)) : callback()
    },
  }
}

/** Element Plus rules for the prompt form, mirroring the server's (which still decides). */
export function promptRules(t: Translate): Record<string, FormItemRule[]> {
  return {
    name: [
      {
        required: true,
        whitespace: true,
        message: t('systemPrompt.rules.nameRequired'),
        trigger: 'blur',
      },
      {
        max: NAME_MAX,
        message: t('systemPrompt.rules.nameLength', { max: NAME_MAX }),
        trigger: 'blur',
      },
    ],
    content: [
      {
        required: true,
        whitespace: true,
        message: t('systemPrompt.rules.contentRequired'),
        // 'change' too: typing clears the message at once (the live check sits right below).
        trigger: ['blur', 'change'],
      },
    ],
    category: [
      {
        max: CATEGORY_MAX,
        message: t('systemPrompt.rules.categoryLength', { max: CATEGORY_MAX }),
        trigger: 'change',
      },
    ],
    tags: [
      listRule((tags) => {
        if (tags.some((tag) => !isValidTag(tag)))
          return t('systemPrompt.rules.tagInvalid', { max: TAG_MAX })
        if (cleanList(tags).length > TAGS_MAX)
          return t('systemPrompt.rules.tagsCount', { max: TAGS_MAX })
        return null
      }),
    ],
    variables: [
      listRule((names) => {
        if (names.some((name) => !isValidVariable(name.trim())))
          return t('systemPrompt.rules.variableInvalid', { max: VARIABLE_MAX })
        if (cleanList(names).length > VARIABLES_MAX)
          return t('systemPrompt.rules.variablesCount', { max: VARIABLES_MAX })
        return null
      }),
    ],
  }
}
