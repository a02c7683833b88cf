/**
 * API plumbing for the e2e specs: unique users, registration, access tokens, authenticated
 * JSON calls and configs for the mock upstream, all against the real backend of the suite.
 */
import { expect } from 'vitest'

import { baseURL, upstreamURL } from './browser'

/** Unique to this spec file's run: keeps its users and names apart on the shared backend. */
export const suffix = Date.now().toString(36)

/** What signing in needs (the backend takes the nickname or the email as username). */
export interface Credentials {
  nickname: string
  password: string
}

/** What registering needs. */
export interface NewUser extends Credentials {
  email: string
}

/** A user of this run only: `<prefix>-<suffix>`, with a matching email. */
export function uniqueUser(prefix: string, password: string): NewUser {
  return { email: `${prefix}-${suffix}@example.com`, nickname: `${prefix}-${suffix}`, password }
}

/** `fetch` a backend path (`/api/...`) with a JSON content type and, when given, a bearer token. */
export function apiFetch(path: string, init: RequestInit = {}, token = ''): Promise<Response> {
  return fetch(`${baseURL()}${path}`, {
    ...init,
    headers: {
      'content-type': 'application/json',
      ...(token ? { Authorization: `Bearer ${token}` } : {}),
      ...(init.headers ?? {}),
    },
  })
}

/** Register `user` (POST /api/auth/register), expecting 201. */
export async function register(user: NewUser): Promise<void> {
  const response = await apiFetch('/api/auth/register', {
    method: 'POST',
    body: JSON.stringify(user),
  })
  expect(response.status, await response.clone().text()).toBe(201)
}

/** Sign `user` in through the API (POST /api/auth/login), expecting 200: the access token. */
export async function accessToken(user: Credentials): Promise<string> {
  const response = await apiFetch('/api/auth/login', {
    method: 'POST',
    body: JSON.stringify({ username: user.nickname, password: user.password }),
  })
  expect(response.status).toBe(200)
  return ((await response.json()) as { access_token: string }).access_token
}

/** Calls the API as one user: signs in on the first call and keeps the token. */
export class ApiClient {
  private token = ''

  constructor(private readonly user: Credentials) {}

  /** `apiFetch` as this user. */
  async fetch(path: string, init: RequestInit = {}): Promise<Response> {
    if (!this.token) this.token = await accessToken(this.user)
    return apiFetch(path, init, this.token)
  }

  /** `method path` with `body` as JSON, expecting `status` (else any 2xx): the answer, or null. */
  async json<T>(method: string, path: string, body?: unknown, status?: number): Promise<T> {
    const response = await this.fetch(path, {
      method,
      body: body === undefined ? undefined : JSON.stringify(body),
    })
    const message = `${method} ${path}: ${await response.clone().text()}`
    if (status === undefined) expect(response.ok, message).toBe(true)
    else expect(response.status, message).toBe(status)
    return (response.status === 204 ? null : await response.json()) as T
  }
}

/** A mock upstream config; its model name picks the scenario (see backend/tests/upstream.py). */
export interface MockConfig {
  name: string
  model: string
  apiKey?: string
  vision?: boolean
  reasoning?: boolean
}

/** Create an enabled config pointing at the mock upstream, expecting 201 and status 1: its id. */
export async function createMockConfig(api: ApiClient, config: MockConfig): Promise<number> {
  const created = await api.json<{ id: number; status: number }>(
    'POST',
    '/api/model-config/',
    {
      name: config.name,
      provider: 'custom',
      endpoint: `${upstreamURL()}/v1`,
      ...(config.apiKey ? { api_key: config.apiKey } : {}),
      model: config.model,
      capabilities: { vision: config.vision ?? false, reasoning: config.reasoning ?? false },
      status: 1,
    },
    201,
  )
  expect(created.status).toBe(1)
  return created.id
}
