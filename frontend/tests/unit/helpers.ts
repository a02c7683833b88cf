/** Shared fixtures for the unit tests: a session, a scripted axios adapter, a fetch stub. */
import {
  AxiosError,
  AxiosHeaders,
  type AxiosAdapter,
  type AxiosResponse,
  type InternalAxiosRequestConfig,
} from 'axios'

import type { TokenResponse, UserPublic } from '@/api/types'

export function makeUser(overrides: Partial<UserPublic> = {}): UserPublic {
  return {
    id: 1,
    email: 'alice@example.com',
    nickname: 'alice',
    role: 'user',
    is_active: true,
    created_at: '2024-01-01T00:00:00Z',
    ...overrides,
  }
}

export function makeSession(
  token: string,
  overrides: { user?: Partial<UserPublic>; must_change_password?: boolean } = {},
): TokenResponse {
  return {
    access_token: token,
    token_type: 'bearer',
    expires_in: 900,
    user: makeUser(overrides.user),
    must_change_password: overrides.must_change_password ?? false,
  }
}

/** A request the adapter saw, as the server would have seen it. */
export interface SeenRequest {
  method: string
  url: string
  authorization: string | null
  data: unknown
}

export function seen(config: InternalAxiosRequestConfig): SeenRequest {
  const auth = AxiosHeaders.from(config.headers).get('Authorization')
  return {
    method: (config.method ?? 'get').toUpperCase(),
    url: config.url ?? '',
    authorization: typeof auth === 'string' ? auth : null,
    data: typeof config.data === 'string' ? JSON.parse(config.data) : config.data,
  }
}

/** Build the response axios' own adapters would give, rejecting outside 2xx like `settle`. */
export function reply(
  config: InternalAxiosRequestConfig,
  status: number,
  data: unknown,
): AxiosResponse {
  const response: AxiosResponse = {
    data,
    status,
    statusText: String(status),
    headers: {},
    config,
    request: {},
  }
  if (status >= 200 && status < 300) return response
  throw new AxiosError(
    `Request failed with status code ${status}`,
    status >= 500 ? AxiosError.ERR_BAD_RESPONSE : AxiosError.ERR_BAD_REQUEST,
    config,
    {},
    response,
  )
}

/** What axios raises when there is no response at all. */
export function networkError(config: InternalAxiosRequestConfig): never {
  throw new AxiosError('Network Error', AxiosError.ERR_NETWORK, config, {})
}

export type Responder = (
  config: InternalAxiosRequestConfig,
) => AxiosResponse | Promise<AxiosResponse>

/** An adapter that records every request and answers with `respond`. */
export function scriptedAdapter(respond: Responder): {
  adapter: AxiosAdapter
  requests: SeenRequest[]
} {
  const requests: SeenRequest[] = []
  const adapter: AxiosAdapter = async (config) => {
    requests.push(seen(config))
    // Answer asynchronously, as a real network would.
    await Promise.resolve()
    return respond(config)
  }
  return { adapter, requests }
}

export function jsonResponse(body: unknown, status = 200): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { 'Content-Type': 'application/json' },
  })
}

/** A promise resolved from outside. */
export function deferred<T = void>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void
  const promise = new Promise<T>((r) => (resolve = r))
  return { promise, resolve }
}

/** Let pending promise callbacks and timers of zero delay run. */
export function flush(): Promise<void> {
  return new Promise((r) => setTimeout(r, 0))
}
