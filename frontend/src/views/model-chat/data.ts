/** The chat page's helpers: composer rules, message display, preferences, downloads. */
import type { FormItemRule } from 'element-plus'

import { MESSAGE_CONTENT_MAX, type ChatMessage } from '@/api/chat'
import type { StreamFailure } from '@/composables/useChatStream'
import { i18n } from '@/locales'
import { CLOSE_TAG, OPEN_TAG, splitThink } from '@/utils/thinkParser'

export interface ComposerForm {
  modelConfigId: number | null
  systemPromptId: number | null
  content: string
}

/**
 * Element Plus rules for the composer. `visionProblem()` says whether images are attached to a
 * model without vision (checked on the model field, where the fix is).
 */
export function composerRules(
  t: (key: string, values?: Record<string, unknown>) => string,
  visionProblem: () => boolean,
): Record<keyof ComposerForm, FormItemRule[]> {
  return {
    modelConfigId: [
      { required: true, message: t('chat.validation.model'), trigger: 'change' },
      {
        validator: (_rule, _value, callback) => {
          if (visionProblem()) callback(new Error(t('chat.validation.vision')))
          else callback()
        },
        trigger: 'change',
      },
    ],
    systemPromptId: [],
    content: [
      {
        validator: (_rule, value: string, callback) => {
          if (!value || !value.trim()) callback(new Error(t('chat.validation.content')))
          else if (value.length > MESSAGE_CONTENT_MAX)
            callback(new Error(t('chat.validation.contentTooLong', { max: MESSAGE_CONTENT_MAX })))
          else callback()
        },
        trigger: 'submit',
      },
    ],
  }
}

/**
 * Reasoning and answer of a saved message. The backend stores reasoning apart, but a turn
 * written back by a client (POST /api/chat/messages) or a provider that slipped tags through
 * may still carry inline `<think>` blocks: those are split here, once per message.
 */
export function messageParts(message: Pick<ChatMessage, 'content' | 'reasoning' | 'role'>): {
  reasoning: string
  content: string
} {
  if (message.role !== 'assistant') return { reasoning: '', content: message.content }
  const content = message.content
  if (!content.includes(OPEN_TAG) && !content.includes(CLOSE_TAG)) {
    return { reasoning: message.reasoning ?? '', content }
  }
  const split = splitThink(content)
  const reasoning = [message.reasoning ?? '', split.reasoning].filter(Boolean).join('\n\n')
  return { reasoning, content: split.content }
}

/** The text for a failure: the page's wording for its code, the common one, else the server's. */
export function failureText(failure: StreamFailure): string {
  const { t, te } = i18n.global
  if (te(`chat.errors.${failure.code}`)) return t(`chat.errors.${failure.code}`)
  if (te(`errors.${failure.code}`)) return t(`errors.${failure.code}`)
  return failure.message || t('errors.http', { status: failure.status ?? '?' })
}

/** A session's time: the clock time today, else the date (and the year when not this one). */
export function formatSessionTime(iso: string, locale: string, now = new Date()): string {
  const date = new Date(iso)
  if (Number.isNaN(date.getTime())) return ''
  const sameDay = date.toDateString() === now.toDateString()
  if (sameDay) return date.toLocaleTimeString(locale, { hour: '2-digit', minute: '2-digit' })
  const sameYear = date.getFullYear() === now.getFullYear()
  return date.toLocaleDateString(locale, {
    year: sameYear ? undefined : 'numeric',
    month: 'short',
    day: 'numeric',
  })
}

// ------------------------------------------------------------------ preferences (per browser)

const PREFS_KEY = 'modeltrain.chat.prefs.v1'

export interface ChatPrefs {
  stream: boolean
  modelConfigId: number | null
}

export function readPrefs(): ChatPrefs {
  const fallback: ChatPrefs = { stream: true, modelConfigId: null }
  try {
    const raw = localStorage.getItem(PREFS_KEY)
    if (!raw) return fallback
    const value = JSON.parse(raw) as Partial<ChatPrefs>
    return {
      stream: typeof value.stream === 'boolean' ? value.stream : true,
      modelConfigId: typeof value.modelConfigId === 'number' ? value.modelConfigId : null,
    }
  } catch {
    return fallback
  }
}

export function writePrefs(prefs: ChatPrefs): void {
  try {
    localStorage.setItem(PREFS_KEY, JSON.stringify(prefs))
  } catch {
    // Private mode or full storage: the choice just is not remembered.
  }
}

/** Save a blob as a file through a temporary link. */
export function downloadBlob(blob: Blob, filename: string): void {
  const url = URL.createObjectURL(blob)
  const link = document.createElement('a')
  link.href = url
  link.download = filename
  link.rel = 'noopener'
  document.body.appendChild(link)
  link.click()
  link.remove()
  setTimeout(() => URL.revokeObjectURL(url), 1000)
}

/** A positive integer from a route query value, else null. */
export function queryId(value: unknown): number | null {
  const raw = Array.isArray(value) ? value[0] : value
  if (typeof raw !== 'string' || !/^\d+$/.test(raw)) return null
  const id = Number(raw)
  return Number.isSafeInteger(id) && id > 0 ? id : null
}
