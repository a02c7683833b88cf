/**
 * Opening a Server-Sent Events stream (chat, playground, compare). The server answers a refused
 * request with a normal JSON error before any event; that becomes a StreamRequestError here, so
 * callers tell "refused" from "failed mid-stream" (an `error` event) without reading bodies.
 */
import type { ApiErrorBody } from '@/api/types'
import { i18n } from '@/locales'
import { authenticatedFetch } from '@/utils/tokenManager'

/** A stream request the server refused before streaming (a JSON error, not SSE). */
export class StreamRequestError extends Error {
  readonly status: number
  readonly code: string

  constructor(status: number, code: string, message: string) {
    super(message)
    this.name = 'StreamRequestError'
    this.status = status
    this.code = code
  }
}

/** The words for a refused stream request: the locale's wording for its code, else the server's. */
export async function refusal(response: Response): Promise<StreamRequestError> {
  const { t, te } = i18n.global
  let body: Partial<ApiErrorBody> = {}
  try {
    body = (await response.json()) as Partial<ApiErrorBody>
  } catch {
    // not JSON (a proxy's error page): the status says enough
  }
  const code = body.code ?? `http_${response.status}`
  let message: string
  if (body.code && te(`errors.${body.code}`)) message = t(`errors.${body.code}`)
  else if (typeof body.detail === 'string') message = body.detail
  else if (Array.isArray(body.detail)) message = body.detail.map((issue) => issue.msg).join('; ')
  else message = t('errors.http', { status: response.status })
  return new StreamRequestError(response.status, code, message)
}

/**
 * POST `body` as JSON to `path` (under /api) and resolve with the SSE response once the server
 * accepted it (read it with `processSSEResponse`); reject with StreamRequestError otherwise.
 */
export async function openEventStream(
  path: string,
  body: unknown,
  signal?: AbortSignal,
): Promise<Response> {
  const response = await authenticatedFetch(`/api${path}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Accept: 'text/event-stream' },
    body: JSON.stringify(body),
    signal,
  })
  if (!response.ok) throw await refusal(response)
  return response
}
