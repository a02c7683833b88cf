/** The comparison page's fixed parts: limits, form rules and the helpers its parts share. */
import type { FormItemRule } from 'element-plus'
import type { LocationQueryValue } from 'vue-router'

import type { CompareMetrics } from '@/api/playground'
import { COMPARE_MAX } from '@/api/playground'
import type { ModelConfig } from '@/api/modelConfig'
import type { ModelTestResult } from '@/api/modelTests'
import type { CompareColumn } from '@/composables/useCompareStream'

export { COMPARE_MAX }
export { formatDateTime } from '@/utils/format'

/** The backend's limit on a message (schemas/chat.py MESSAGE_CONTENT_MAX). */
export const PROMPT_MAX = 100_000
export const TITLE_MAX = 100
export const MODE_STORAGE_KEY = 'modeltrain.modelTest.mode'

type Translate = (key: string, named?: Record<string, unknown>) => string

export interface CompareForm {
  configIds: number[]
  systemPrompt: string
  prompt: string
}

/**
 * `?configs=1,2` (or `?configs=1&configs=2`) as config ids, in order, without repeats or
 * junk, at most COMPARE_MAX.
 */
export function parseConfigQuery(
  value: LocationQueryValue | LocationQueryValue[] | undefined,
): number[] {
  const parts = (Array.isArray(value) ? value : [value])
    .filter((part): part is string => typeof part === 'string')
    .flatMap((part) => part.split(','))
  const ids: number[] = []
  for (const part of parts) {
    const text = part.trim()
    if (!/^\d+$/.test(text)) continue
    const id = Number(text)
    if (id > 0 && !ids.includes(id)) ids.push(id)
  }
  return ids.slice(0, COMPARE_MAX)
}

/** Split wanted ids into the usable ones (at most COMPARE_MAX) and the rest. */
export function pickUsable(
  wanted: readonly number[],
  usable: readonly ModelConfig[],
): { picked: number[]; rejected: number[] } {
  const ids = new Set(usable.map((config) => config.id))
  const picked = wanted.filter((id) => ids.has(id)).slice(0, COMPARE_MAX)
  return { picked, rejected: wanted.filter((id) => !picked.includes(id)) }
}

/** The picked configs that cannot read images; empty when all of them can (or none is picked). */
export function withoutVision(picked: readonly ModelConfig[]): ModelConfig[] {
  return picked.filter((config) => !config.capabilities.vision)
}

/** Why the image button is off, or '' when an image may be attached. */
export function imageBlockReason(picked: readonly ModelConfig[], t: Translate): string {
  if (picked.length === 0) return t('modelTest.image.pickFirst')
  const blind = withoutVision(picked)
  if (blind.length === 0) return ''
  return t('modelTest.image.noVision', { names: blind.map((config) => config.name).join(', ') })
}

/** Element Plus rules; built per call so the messages follow the current locale. */
export function compareRules(
  t: Translate,
  imageProblem: () => string,
): Record<string, FormItemRule[]> {
  return {
    configIds: [
      {
        type: 'array',
        required: true,
        min: 1,
        message: t('modelTest.rules.configsRequired'),
        trigger: 'change',
      },
      {
        type: 'array',
        max: COMPARE_MAX,
        message: t('modelTest.rules.configsMax', { max: COMPARE_MAX }),
        trigger: 'change',
      },
      {
        trigger: 'change',
        validator: (_rule, _value, callback) => {
          const problem = imageProblem()
          return problem ? callback(new Error(problem)) : callback()
        },
      },
    ],
    prompt: [
      {
        required: true,
        whitespace: true,
        message: t('modelTest.rules.promptRequired'),
        trigger: 'blur',
      },
      {
        max: PROMPT_MAX,
        message: t('modelTest.rules.promptMax', { max: PROMPT_MAX }),
        trigger: 'blur',
      },
    ],
    systemPrompt: [
      {
        max: PROMPT_MAX,
        message: t('modelTest.rules.promptMax', { max: PROMPT_MAX }),
        trigger: 'blur',
      },
    ],
  }
}

/** A saved test's title: the prompt's first non-empty line, shortened. */
export function titleFromPrompt(prompt: string): string {
  const line =
    prompt
      .split(/\r?\n/)
      .map((l) => l.trim())
      .find(Boolean) ?? ''
  return line.length > TITLE_MAX ? `${line.slice(0, TITLE_MAX - 1)}…` : line
}

/** The columns on screen as saved results (ratings are added by the store). */
export function resultsFromColumns(columns: readonly CompareColumn[]): ModelTestResult[] {
  return columns.map((column) => ({
    model_config_id: column.configId,
    config_name: column.configName,
    model: column.model,
    content: column.content,
    reasoning: column.reasoning,
    metrics: column.metrics,
    error: column.error,
    rating: null,
  }))
}

/** A column that can be rated: it has finished with an answer, or at least a part of one. */
export function isRateable(column: CompareColumn): boolean {
  return (
    column.content.trim() !== '' && column.status !== 'waiting' && column.status !== 'streaming'
  )
}

/** The winner must be an answer that did not fail (the server refuses one that did). */
export function canWin(column: CompareColumn): boolean {
  return isRateable(column) && column.error === null
}

/** The four figures a column shows; '—' where there is none. */
export function metricTexts(
  metrics: CompareMetrics | null,
  locale: string,
): { ttft: string; total: string; tokens: string; speed: string } {
  const dash = '—'
  const int = (value: number | null | undefined) =>
    value === null || value === undefined ? dash : Math.round(value).toLocaleString(locale)
  const speed = metrics?.tokens_per_s
  return {
    ttft: metrics ? `${int(metrics.ttft_ms)}${metrics.ttft_ms === null ? '' : ' ms'}` : dash,
    total: metrics ? `${int(metrics.total_ms)} ms` : dash,
    tokens: metrics ? int(metrics.output_tokens) : dash,
    speed:
      speed === null || speed === undefined
        ? dash
        : speed.toLocaleString(locale, { maximumFractionDigits: 1 }),
  }
}

/** Hand a downloaded file to the browser as a save. */
export function saveBlob(blob: Blob, filename: string): void {
  const url = URL.createObjectURL(blob)
  const link = document.createElement('a')
  link.href = url
  link.download = filename
  link.style.display = 'none'
  document.body.appendChild(link)
  link.click()
  link.remove()
  // Revoking at once can cancel the download in some browsers.
  setTimeout(() => URL.revokeObjectURL(url), 10_000)
}
