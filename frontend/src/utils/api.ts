/**
 * The one axios instance. It adds the access token, turns a burst of 401s into a single
 * refresh whose result every waiting request replays, and shows API errors to the user.
 */
import axios, { AxiosError, type AxiosInstance, type InternalAxiosRequestConfig } from 'axios'
import { ElMessage } from 'element-plus'
import 'element-plus/es/components/message/style/css'

import type { ApiErrorBody, ValidationIssue } from '@/api/types'
import { i18n } from '@/locales'
import { getAccessToken, refreshSession } from '@/utils/tokenManager'

/** A form that wants 422 field errors shown next to its fields. */
export interface FormErrorTarget {
  setFieldErrors: (errors: Record<string, string>) => void
}

declare module 'axios' {
  interface AxiosRequestConfig {
    /** Do not try a refresh on 401 (sign-in, refresh and reset calls). */
    skipAuthRefresh?: boolean
    /** Do not pop up a message on error; the caller shows it. */
    silent?: boolean
    /** Map 422 field errors onto this form. */
    form?: FormErrorTarget
    /** Internal: this request is a replay after a refresh. */
    _retried?: boolean
  }
}

type AuthFailureHandler = () => void
let onAuthFailure: AuthFailureHandler = () => undefined

/** What to do when the session cannot be refreshed (main.ts: go to the login page). */
export function setAuthFailureHandler(handler: AuthFailureHandler): void {
  onAuthFailure = handler
}

export const api: AxiosInstance = axios.create({
  baseURL: '/api',
  withCredentials: true,
  timeout: 30_000,
})

api.interceptors.request.use((config) => {
  const token = getAccessToken()
  if (token && !config.headers.has('Authorization')) {
    config.headers.set('Authorization', `Bearer ${token}`)
  }
  return config
})

/** The text to show for an API error: the locale's wording for its code, else the server's. */
export function errorMessage(error: unknown): string {
  const { t, te } = i18n.global
  if (error instanceof AxiosError) {
    const body = error.response?.data as Partial<ApiErrorBody> | undefined
    if (body?.code && te(`errors.${body.code}`)) return t(`errors.${body.code}`)
    if (typeof body?.detail === 'string') return body.detail
    if (Array.isArray(body?.detail)) return t('errors.validation_error')
    if (!error.response) return t('errors.network')
    return t('errors.http', { status: error.response.status })
  }
  return error instanceof Error ? error.message : String(error)
}

// The backend's field messages are English; the ones a person commonly meets are translated.
const FIELD_MESSAGES: [RegExp, string][] = [
  [/too common/i, 'errors.field.passwordCommon'],
  [/Nickname must be (\d+)-(\d+) characters/i, 'errors.field.nicknameLength'],
  [/at least (\d+) characters/i, 'errors.field.minLength'],
  [/at most (\d+) characters/i, 'errors.field.maxLength'],
  [/must not contain '@'/i, 'errors.field.nicknameAt'],
  [/not a valid email/i, 'errors.field.emailInvalid'],
  [/^Field required$/i, 'errors.field.required'],
]

function localizeFieldMessage(message: string): string {
  const text = message.replace(/^Value error, /, '')
  for (const [pattern, key] of FIELD_MESSAGES) {
    const match = pattern.exec(text)
    if (match) return i18n.global.t(key, { a: match[1] ?? '', b: match[2] ?? '' })
  }
  return text
}

/** Turn FastAPI's 422 list into {field: message} using the last element of each `loc`. */
export function fieldErrorsFrom(detail: ValidationIssue[]): Record<string, string> {
  const errors: Record<string, string> = {}
  for (const issue of detail) {
    const field = issue.loc[issue.loc.length - 1]
    if (typeof field === 'string' && !(field in errors)) {
      errors[field] = localizeFieldMessage(issue.msg)
    }
  }
  return errors
}

api.interceptors.response.use(
  (response) => response,
  async (error: AxiosError) => {
    const config = error.config as InternalAxiosRequestConfig | undefined
    const status = error.response?.status
    if (status === 401 && config && !config.skipAuthRefresh && !config._retried) {
      try {
        const session = await refreshSession()
        config._retried = true
        config.headers.set('Authorization', `Bearer ${session.access_token}`)
        return await api.request(config)
      } catch (refreshError) {
        if (refreshError instanceof AxiosError) throw refreshError // the replay itself failed
        onAuthFailure()
        throw error
      }
    }
    const body = error.response?.data as Partial<ApiErrorBody> | undefined
    if (status === 422 && config?.form && Array.isArray(body?.detail)) {
      config.form.setFieldErrors(fieldErrorsFrom(body.detail))
    }
    if (!config?.silent && !axios.isCancel(error)) {
      ElMessage.error({ message: errorMessage(error), grouping: true })
    }
    throw error
  },
)
