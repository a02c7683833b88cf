/** The model config page's fixed parts: filters, limits, form rules and the helpers its cards use. */
import { AxiosError } from 'axios'
import type { FormItemRule } from 'element-plus'

import type { ApiErrorBody } from '@/api/types'
import type { ModelConfig, ModelParams, ProviderInfo } from '@/api/modelConfig'
import { errorMessage } from '@/utils/api'

export const NAME_MAX = 100
export const DESCRIPTION_MAX = 500
export const SEARCH_DEBOUNCE_MS = 200

/** The backend's ranges (issue 4): temperature 0–2, max_tokens ≥ 1, top_p (0, 1], top_k ≥ 0. */
export const PARAM_LIMITS = {
  temperature: { min: 0, max: 2, step: 0.1, precision: 2 },
  max_tokens: { min: 1, max: 1_000_000, step: 256, precision: 0 },
  top_p: { min: 0, max: 1, step: 0.05, precision: 2 },
  top_k: { min: 0, max: 1_000, step: 1, precision: 0 },
} as const

export type StatusFilter = 'all' | 'enabled' | 'disabled'

/** Labels are locale keys. */
export const STATUS_FILTERS: { value: StatusFilter; label: string }[] = [
  { value: 'all', label: 'modelConfig.filter.allStatus' },
  { value: 'enabled', label: 'modelConfig.status.enabled' },
  { value: 'disabled', label: 'modelConfig.status.disabled' },
]

export interface ConfigFilters {
  q: string
  /** A provider key, or 'all'. */
  provider: string
  status: StatusFilter
}

/** Client-side filtering: every user sees every config, so the cached list is the whole list. */
export function filterConfigs(
  configs: readonly ModelConfig[],
  filters: ConfigFilters,
  providerName: (key: string) => string = (key) => key,
): ModelConfig[] {
  const words = filters.q.trim().toLowerCase().split(/\s+/).filter(Boolean)
  return configs.filter((config) => {
    if (filters.provider !== 'all' && config.provider !== filters.provider) return false
    if (filters.status === 'enabled' && config.status !== 1) return false
    if (filters.status === 'disabled' && config.status === 1) return false
    if (words.length === 0) return true
    const haystack = [
      config.name,
      config.model,
      config.endpoint,
      config.description,
      config.provider,
      providerName(config.provider),
      config.owner.nickname,
    ]
      .filter(Boolean)
      .join('\n')
      .toLowerCase()
    return words.every((word) => haystack.includes(word))
  })
}

export function isHttpUrl(value: string): boolean {
  try {
    const url = new URL(value.trim())
    return (url.protocol === 'http:' || url.protocol === 'https:') && url.host !== ''
  } catch {
    return false
  }
}

/** What a config still needs before it may be enabled (status 1), as field names. */
export type MissingField = 'endpoint' | 'model' | 'apiKey'

export function missingForEnable(
  values: { endpoint: string; model: string; hasKey: boolean },
  provider: Pick<ProviderInfo, 'requires_api_key'> | undefined,
): MissingField[] {
  const missing: MissingField[] = []
  if (!isHttpUrl(values.endpoint)) missing.push('endpoint')
  if (!values.model.trim()) missing.push('model')
  if (provider?.requires_api_key && !values.hasKey) missing.push('apiKey')
  return missing
}

/** The params a card lists: only the ones set (null means the provider's default). */
export function paramEntries(params: ModelParams): [keyof ModelParams, number][] {
  return (Object.keys(PARAM_LIMITS) as (keyof ModelParams)[])
    .filter((key) => params[key] !== null && params[key] !== undefined)
    .map((key) => [key, params[key] as number])
}

/** A provider failure for inline display: our wording for the code, plus the provider's own words. */
export function describeFailure(error: unknown): { message: string; detail: string } {
  const message = errorMessage(error)
  let detail = ''
  if (error instanceof AxiosError) {
    const body = error.response?.data as Partial<ApiErrorBody> | undefined
    if (typeof body?.detail === 'string' && body.detail !== message) detail = body.detail
  }
  return { message, detail }
}

export { formatDateTime } from '@/utils/format'

type Translate = (key: string, named?: Record<string, unknown>) => string

/** A number field that may be left empty (the provider's default) but must be in range when set. */
function rangeRule(message: string, check: (value: number) => boolean): FormItemRule {
  return {
    trigger: ['blur', 'change'],
    validator: (_rule, value: number | null | undefined, callback) => {
      if (value === null || value === undefined || Number.isNaN(value)) return callback()
      return check(value) ? callback() : callback(new Error(message))
    },
  }
}

/** Element Plus rules for the config form. Built per call so messages follow the current locale. */
export function configRules(t: Translate): Record<string, FormItemRule[]> {
  return {
    name: [
      {
        required: true,
        whitespace: true,
        message: t('modelConfig.rules.nameRequired'),
        trigger: 'blur',
      },
      {
        max: NAME_MAX,
        message: t('modelConfig.rules.nameLength', { max: NAME_MAX }),
        trigger: 'blur',
      },
    ],
    provider: [
      { required: true, message: t('modelConfig.rules.providerRequired'), trigger: 'change' },
    ],
    endpoint: [
      {
        trigger: 'blur',
        validator: (_rule, value: string, callback) =>
          !value?.trim() || isHttpUrl(value)
            ? callback()
            : callback(new Error(t('modelConfig.rules.endpointInvalid'))),
      },
    ],
    model: [
      {
        required: true,
        whitespace: true,
        message: t('modelConfig.rules.modelRequired'),
        // Not on 'change': resetting the form for the next config would flag it at once.
        trigger: 'blur',
      },
    ],
    temperature: [rangeRule(t('modelConfig.rules.temperature'), (v) => v >= 0 && v <= 2)],
    max_tokens: [rangeRule(t('modelConfig.rules.maxTokens'), (v) => Number.isInteger(v) && v >= 1)],
    top_p: [rangeRule(t('modelConfig.rules.topP'), (v) => v > 0 && v <= 1)],
    top_k: [rangeRule(t('modelConfig.rules.topK'), (v) => Number.isInteger(v) && v >= 0)],
  }
}
