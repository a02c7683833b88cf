/**
 * The access token lives only in memory; the refresh token is an HttpOnly cookie the browser
 * sends to /api/auth. After a reload the session comes back through one refresh call.
 */
import type { TokenResponse } from '@/api/types'

const REFRESH_URL = '/api/auth/refresh'
const REFRESH_LOCK = 'modeltrain-refresh'

let accessToken: string | null = null
let inflightRefresh: Promise<TokenResponse> | null = null

type SessionListener = (session: TokenResponse | null) => void
const listeners = new Set<SessionListener>()

export class SessionExpiredError extends Error {
  constructor(message = 'Session expired') {
    super(message)
    this.name = 'SessionExpiredError'
  }
}

export function getAccessToken(): string | null {
  return accessToken
}

/** Called with every new session (login, refresh) and with null when it ends. */
export function onSessionChange(listener: SessionListener): () => void {
  listeners.add(listener)
  return () => listeners.delete(listener)
}

export function setSession(session: TokenResponse): void {
  accessToken = session.access_token
  listeners.forEach((listener) => listener(session))
}

export function clearSession(): void {
  accessToken = null
  listeners.forEach((listener) => listener(null))
}

async function requestRefresh(): Promise<TokenResponse> {
  const response = await fetch(REFRESH_URL, { method: 'POST', credentials: 'include' })
  if (!response.ok) throw new SessionExpiredError()
  return (await response.json()) as TokenResponse
}

/** Run `task` holding a browser-wide Web Lock (where the browser has them). */
function withRefreshLock<T>(task: () => Promise<T>): Promise<T> {
  const locks = typeof navigator !== 'undefined' ? navigator.locks : undefined
  if (!locks) return task()
  // request() resolves to the callback's own (awaited) result; the DOM typings miss that.
  return locks.request(REFRESH_LOCK, task) as unknown as Promise<T>
}

/**
 * One refresh at a time however many callers ask: they all share the same promise.
 * Tabs of the same browser serialize through a Web Lock, so a second tab sends the cookie
 * the first one just rotated instead of replaying the old one (which would revoke the family).
 */
export function refreshSession(): Promise<TokenResponse> {
  if (!inflightRefresh) {
    const attempt = withRefreshLock(requestRefresh)
    inflightRefresh = attempt
      .then((session) => {
        setSession(session)
        return session
      })
      .catch((error: unknown) => {
        clearSession()
        throw error instanceof SessionExpiredError ? error : new SessionExpiredError(String(error))
      })
      .finally(() => {
        inflightRefresh = null
      })
  }
  return inflightRefresh
}

function withToken(init: RequestInit, token: string | null): RequestInit {
  const headers = new Headers(init.headers)
  if (token) headers.set('Authorization', `Bearer ${token}`)
  return { ...init, headers, credentials: init.credentials ?? 'same-origin' }
}

/** fetch() with the access token; on 401 refreshes once and retries once. */
export async function authenticatedFetch(
  input: RequestInfo | URL,
  init: RequestInit = {},
): Promise<Response> {
  const response = await fetch(input, withToken(init, accessToken))
  if (response.status !== 401) return response
  const session = await refreshSession()
  return fetch(input, withToken(init, session.access_token))
}

export interface SSEHandlers<T = unknown> {
  /** One parsed `data:` JSON payload. */
  onEvent: (event: T) => void
  /** The stream ended with `data: [DONE]`. */
  onDone?: () => void
  /** `data: [ERROR]`, a network failure or a stream that ended without [DONE]. */
  onError?: (error: Error) => void
}

export type SSEOutcome = 'done' | 'error' | 'aborted'

/**
 * Read an SSE response to its end. UTF-8 is decoded incrementally (a character split across
 * chunks survives) and frames may be split anywhere. Never throws: the outcome says how it ended.
 */
export async function processSSEResponse<T = unknown>(
  response: Response,
  handlers: SSEHandlers<T>,
  signal?: AbortSignal,
): Promise<SSEOutcome> {
  if (!response.body) {
    handlers.onError?.(new Error('Response has no body'))
    return 'error'
  }
  const reader = response.body.getReader()
  const decoder = new TextDecoder('utf-8')
  let buffer = ''
  let dataLines: string[] = []
  let lastError: Error | null = null
  const abort = () => void reader.cancel().catch(() => undefined)
  signal?.addEventListener('abort', abort, { once: true })

  // Returns an outcome when the stream is finished, undefined to keep reading.
  const dispatch = (): SSEOutcome | undefined => {
    if (dataLines.length === 0) return undefined
    const data = dataLines.join('\n')
    dataLines = []
    if (data === '[DONE]') return 'done'
    if (data === '[ERROR]') return 'error'
    try {
      const parsed = JSON.parse(data) as T & { type?: string; message?: string }
      if (parsed && parsed.type === 'error') lastError = new Error(parsed.message ?? 'Stream error')
      handlers.onEvent(parsed)
    } catch {
      lastError = new Error(`Malformed event: ${data.slice(0, 200)}`)
    }
    return undefined
  }

  const handleLine = (line: string): SSEOutcome | undefined => {
    if (line === '') return dispatch()
    if (line.startsWith(':')) return undefined // comment / keep-alive
    const colon = line.indexOf(':')
    const field = colon === -1 ? line : line.slice(0, colon)
    let value = colon === -1 ? '' : line.slice(colon + 1)
    if (value.startsWith(' ')) value = value.slice(1)
    if (field === 'data') dataLines.push(value)
    return undefined
  }

  const finish = (outcome: SSEOutcome): SSEOutcome => {
    signal?.removeEventListener('abort', abort)
    if (outcome === 'done') handlers.onDone?.()
    if (outcome === 'error') handlers.onError?.(lastError ?? new Error('Stream reported an error'))
    if (outcome !== 'aborted') void reader.cancel().catch(() => undefined)
    return outcome
  }

  try {
    for (;;) {
      if (signal?.aborted) return finish('aborted')
      const { value, done } = await reader.read()
      if (done) break
      buffer += decoder.decode(value, { stream: true })
      let newline: number
      while ((newline = buffer.search(/\r\n|\r|\n/)) !== -1) {
        // A lone trailing CR may be the first half of a CRLF split across chunks.
        if (buffer[newline] === '\r' && newline === buffer.length - 1) break
        const line = buffer.slice(0, newline)
        buffer = buffer.slice(newline + (buffer.startsWith('\r\n', newline) ? 2 : 1))
        const outcome = handleLine(line)
        if (outcome) return finish(outcome)
      }
    }
    // An abort cancels the reader, which ends the loop: deliver nothing after it.
    if (signal?.aborted) return finish('aborted')
    buffer += decoder.decode()
    const tail = (buffer ? handleLine(buffer) : undefined) ?? dispatch()
    if (tail) return finish(tail)
    lastError = lastError ?? new Error('Stream ended before [DONE]')
    return finish('error')
  } catch (error) {
    if (signal?.aborted) return finish('aborted')
    lastError = error instanceof Error ? error : new Error(String(error))
    return finish('error')
  }
}
