import { AxiosError, type AxiosAdapter, type InternalAxiosRequestConfig } from 'axios'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'

import { i18n } from '@/locales'
import { api, errorMessage, fieldErrorsFrom, setAuthFailureHandler } from '@/utils/api'
import { clearSession, getAccessToken, setSession } from '@/utils/tokenManager'

import {
  deferred,
  flush,
  jsonResponse,
  makeSession,
  networkError,
  reply,
  scriptedAdapter,
} from './helpers'

const { messageError } = vi.hoisted(() => ({ messageError: vi.fn() }))
vi.mock('element-plus', () => ({ ElMessage: { error: messageError } }))
// Node cannot import the .css file this side-effect module pulls in; it has no behaviour.

const originalAdapter = api.defaults.adapter
const NEW_TOKEN = 'new-token'

/** 200 for the new token, 401 for anything else (no token, or the expired one). */
function authAdapter(): ReturnType<typeof scriptedAdapter> {
  return scriptedAdapter((config) =>
    config.headers.get('Authorization') === `Bearer ${NEW_TOKEN}`
      ? reply(config, 200, { url: config.url })
      : reply(config, 401, { detail: 'Not authenticated', code: 'not_authenticated' }),
  )
}

function useAdapter(adapter: AxiosAdapter): void {
  api.defaults.adapter = adapter
}

/** Stub fetch for POST /api/auth/refresh; `answer` decides each call's response. */
function stubRefresh(answer: () => Promise<Response> | Response) {
  const fetchMock = vi.fn(async (input: RequestInfo | URL, init?: RequestInit) => {
    expect(String(input)).toBe('/api/auth/refresh')
    expect(init?.method).toBe('POST')
    expect(init?.credentials).toBe('include')
    return answer()
  })
  vi.stubGlobal('fetch', fetchMock)
  return fetchMock
}

beforeEach(() => {
  clearSession()
  localStorage.clear()
  messageError.mockClear()
  i18n.global.locale.value = 'en'
})

afterEach(() => {
  api.defaults.adapter = originalAdapter
  setAuthFailureHandler(() => undefined)
  Reflect.deleteProperty(navigator, 'locks')
  vi.unstubAllGlobals()
  clearSession()
  i18n.global.locale.value = 'zh-CN'
})

describe('refresh queue', () => {
  it('runs without Web Locks in jsdom', () => {
    expect(navigator.locks).toBeUndefined()
  })

  it('turns three concurrent 401s into one refresh and replays all three', async () => {
    setSession(makeSession('expired-token'))
    const { adapter, requests } = authAdapter()
    useAdapter(adapter)
    const gate = deferred()
    const fetchMock = stubRefresh(async () => {
      await gate.promise
      return jsonResponse(makeSession(NEW_TOKEN))
    })

    const pending = Promise.all([api.get('/a'), api.get('/b'), api.post('/c', { x: 1 })])
    // Hold the refresh until every request has had its 401 and asked for a refresh.
    await vi.waitFor(() => expect(requests).toHaveLength(3))
    await flush()
    expect(fetchMock).toHaveBeenCalledTimes(1)
    gate.resolve()

    const responses = await pending
    expect(responses.map((r) => r.data)).toEqual([{ url: '/a' }, { url: '/b' }, { url: '/c' }])
    expect(fetchMock).toHaveBeenCalledTimes(1)
    expect(getAccessToken()).toBe(NEW_TOKEN)

    // Each request went out once with the old token and once more with the new one.
    expect(requests).toHaveLength(6)
    for (const url of ['/a', '/b', '/c']) {
      const tries = requests.filter((r) => r.url === url).map((r) => r.authorization)
      expect(tries).toEqual(['Bearer expired-token', `Bearer ${NEW_TOKEN}`])
    }
    // The replayed POST carries its body again.
    expect(requests.filter((r) => r.url === '/c').map((r) => r.data)).toEqual([{ x: 1 }, { x: 1 }])
    expect(messageError).not.toHaveBeenCalled()
  })

  it('refreshes once for a request sent with no token at all', async () => {
    const { adapter, requests } = authAdapter()
    useAdapter(adapter)
    const fetchMock = stubRefresh(() => jsonResponse(makeSession(NEW_TOKEN)))

    const { data } = await api.get('/me')
    expect(data).toEqual({ url: '/me' })
    expect(fetchMock).toHaveBeenCalledTimes(1)
    expect(requests.map((r) => r.authorization)).toEqual([null, `Bearer ${NEW_TOKEN}`])
  })

  it('takes the Web Lock when the browser has one and still refreshes once', async () => {
    let tail: Promise<unknown> = Promise.resolve()
    const request = vi.fn((_name: string, callback: () => Promise<unknown>) => {
      // A one-holder lock: callbacks run one after another.
      const run = tail.then(() => callback())
      tail = run.catch(() => undefined)
      return run
    })
    Object.defineProperty(navigator, 'locks', { value: { request }, configurable: true })

    setSession(makeSession('expired-token'))
    const { adapter, requests } = authAdapter()
    useAdapter(adapter)
    const gate = deferred()
    const fetchMock = stubRefresh(async () => {
      await gate.promise
      return jsonResponse(makeSession(NEW_TOKEN))
    })

    const pending = Promise.all([api.get('/a'), api.get('/b'), api.get('/c')])
    await vi.waitFor(() => expect(requests).toHaveLength(3))
    await flush()
    gate.resolve()
    const responses = await pending

    expect(responses.map((r) => r.status)).toEqual([200, 200, 200])
    expect(fetchMock).toHaveBeenCalledTimes(1)
    expect(request).toHaveBeenCalledTimes(1)
    expect(request.mock.calls[0][0]).toBe('modeltrain-refresh')
    expect(getAccessToken()).toBe(NEW_TOKEN)
  })

  it('clears the session, calls the auth-failure handler and rejects when the refresh fails', async () => {
    setSession(makeSession('expired-token'))
    const { adapter, requests } = authAdapter()
    useAdapter(adapter)
    const onFailure = vi.fn()
    setAuthFailureHandler(onFailure)
    const gate = deferred()
    const fetchMock = stubRefresh(async () => {
      await gate.promise
      return jsonResponse({ detail: 'Refresh token expired', code: 'invalid_token' }, 401)
    })

    const pending = Promise.allSettled([api.get('/a'), api.get('/b'), api.get('/c')])
    await vi.waitFor(() => expect(requests).toHaveLength(3))
    await flush()
    gate.resolve()
    const results = await pending

    expect(fetchMock).toHaveBeenCalledTimes(1)
    expect(getAccessToken()).toBeNull()
    for (const result of results) {
      expect(result.status).toBe('rejected')
      const reason = (result as PromiseRejectedResult).reason as unknown
      expect(reason).toBeInstanceOf(AxiosError)
      expect((reason as AxiosError).response?.status).toBe(401)
    }
    // Nothing was replayed.
    expect(requests).toHaveLength(3)
    expect(onFailure).toHaveBeenCalled()
    expect(onFailure.mock.calls.length).toBeLessThanOrEqual(3)
  })

  it('treats a refresh that cannot reach the server as a failed session', async () => {
    setSession(makeSession('expired-token'))
    const { adapter } = authAdapter()
    useAdapter(adapter)
    const onFailure = vi.fn()
    setAuthFailureHandler(onFailure)
    const fetchMock = stubRefresh(() => Promise.reject(new TypeError('Failed to fetch')))

    await expect(api.get('/a')).rejects.toBeInstanceOf(AxiosError)
    expect(fetchMock).toHaveBeenCalledTimes(1)
    expect(onFailure).toHaveBeenCalledTimes(1)
    expect(getAccessToken()).toBeNull()
  })

  it('does not loop when the replayed request is refused again', async () => {
    setSession(makeSession('expired-token'))
    const { adapter, requests } = scriptedAdapter((config) =>
      reply(config, 401, { detail: 'Not authenticated', code: 'not_authenticated' }),
    )
    useAdapter(adapter)
    const onFailure = vi.fn()
    setAuthFailureHandler(onFailure)
    const fetchMock = stubRefresh(() => jsonResponse(makeSession(NEW_TOKEN)))

    const error = await api.get('/a').catch((e: unknown) => e)
    expect(error).toBeInstanceOf(AxiosError)
    expect((error as AxiosError).response?.status).toBe(401)
    expect(fetchMock).toHaveBeenCalledTimes(1)
    expect(requests.map((r) => r.authorization)).toEqual([
      'Bearer expired-token',
      `Bearer ${NEW_TOKEN}`,
    ])
    expect(onFailure).not.toHaveBeenCalled()
    // The replay's own failure is shown once.
    expect(messageError).toHaveBeenCalledTimes(1)
    expect(messageError).toHaveBeenCalledWith({ message: 'Please sign in', grouping: true })
  })

  it('never refreshes for requests flagged skipAuthRefresh', async () => {
    setSession(makeSession('expired-token'))
    const { adapter, requests } = scriptedAdapter((config) =>
      reply(config, 401, { detail: 'Incorrect username or password', code: 'invalid_credentials' }),
    )
    useAdapter(adapter)
    const onFailure = vi.fn()
    setAuthFailureHandler(onFailure)
    const fetchMock = stubRefresh(() => jsonResponse(makeSession(NEW_TOKEN)))

    const results = await Promise.allSettled([
      api.post('/auth/login', { username: 'a', password: 'b' }, { skipAuthRefresh: true }),
      api.post('/auth/logout', null, { skipAuthRefresh: true }),
    ])
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected'])
    expect(fetchMock).not.toHaveBeenCalled()
    expect(onFailure).not.toHaveBeenCalled()
    expect(requests).toHaveLength(2)
    expect(getAccessToken()).toBe('expired-token')
    expect(messageError).toHaveBeenCalledWith({
      message: 'Incorrect username or password',
      grouping: true,
    })
  })
})

describe('error handling', () => {
  it('maps a 422 detail list onto the form and strips "Value error, "', async () => {
    const detail = [
      {
        type: 'value_error',
        loc: ['body', 'email'],
        msg: 'Value error, this domain is not accepted',
      },
      { type: 'string_too_short', loc: ['body', 'password'], msg: 'String too short' },
      { type: 'other', loc: ['body', 'password'], msg: 'second message for password' },
      { type: 'list_item', loc: ['body', 'tags', 0], msg: 'item index, not a field' },
    ]
    useAdapter(scriptedAdapter((config) => reply(config, 422, { detail })).adapter)
    const form = { setFieldErrors: vi.fn() }

    await expect(api.post('/auth/register', {}, { form })).rejects.toBeInstanceOf(AxiosError)
    expect(form.setFieldErrors).toHaveBeenCalledTimes(1)
    expect(form.setFieldErrors).toHaveBeenCalledWith({
      email: 'this domain is not accepted',
      password: 'String too short',
    })
    expect(messageError).toHaveBeenCalledWith({
      message: 'Some fields are invalid; please check the form',
      grouping: true,
    })
  })

  it("translates the backend's common field messages into the current locale", () => {
    const detail = [
      { type: 'missing', loc: ['body', 'email'], msg: 'Field required' },
      { type: 'value_error', loc: ['body', 'password'], msg: 'Value error, at least 8 characters' },
    ]
    expect(fieldErrorsFrom(detail)).toEqual({
      email: 'This field is required',
      password: 'At least 8 characters',
    })
    i18n.global.locale.value = 'zh-CN'
    const zh = fieldErrorsFrom(detail)
    expect(zh.email).toBe(i18n.global.t('errors.field.required'))
    expect(zh.email).not.toBe('This field is required')
    expect(zh.password).toBe(i18n.global.t('errors.field.minLength', { a: '8' }))
    expect(zh.password).toContain('8')
  })

  it('leaves the form alone for a 422 whose detail is a string', async () => {
    useAdapter(
      scriptedAdapter((config) => reply(config, 422, { detail: 'Bad upload', code: 'bad_upload' }))
        .adapter,
    )
    const form = { setFieldErrors: vi.fn() }
    await expect(api.post('/x', {}, { form })).rejects.toBeInstanceOf(AxiosError)
    expect(form.setFieldErrors).not.toHaveBeenCalled()
    expect(messageError).toHaveBeenCalledWith({ message: 'Bad upload', grouping: true })
  })

  it('fieldErrorsFrom keeps the first message per field', () => {
    expect(
      fieldErrorsFrom([
        { type: 'a', loc: ['body', 'nickname'], msg: 'Value error, taken' },
        { type: 'b', loc: ['body', 'nickname'], msg: 'later' },
        { type: 'c', loc: ['query', 'page'], msg: 'Value error, Value error, twice' },
      ]),
    ).toEqual({ nickname: 'taken', page: 'Value error, twice' })
  })

  it('shows the message of a failed request unless it is silent', async () => {
    useAdapter(
      scriptedAdapter((config) =>
        reply(config, 409, { detail: 'Email already registered', code: 'email_taken' }),
      ).adapter,
    )
    await expect(api.post('/auth/register', {})).rejects.toBeInstanceOf(AxiosError)
    expect(messageError).toHaveBeenCalledTimes(1)
    expect(messageError).toHaveBeenCalledWith({
      message: 'This email is already registered',
      grouping: true,
    })

    messageError.mockClear()
    await expect(api.post('/auth/register', {}, { silent: true })).rejects.toBeInstanceOf(
      AxiosError,
    )
    expect(messageError).not.toHaveBeenCalled()
  })

  it('shows nothing for a cancelled request', async () => {
    const { adapter, requests } = scriptedAdapter((config) => reply(config, 200, {}))
    useAdapter(adapter)
    const controller = new AbortController()
    controller.abort()
    await expect(api.get('/slow', { signal: controller.signal })).rejects.toMatchObject({
      code: AxiosError.ERR_CANCELED,
    })
    expect(requests).toHaveLength(0)
    expect(messageError).not.toHaveBeenCalled()
  })

  it('shows the network message when the server cannot be reached', async () => {
    useAdapter(scriptedAdapter((config) => networkError(config)).adapter)
    await expect(api.get('/x')).rejects.toBeInstanceOf(AxiosError)
    expect(messageError).toHaveBeenCalledWith({
      message: 'Cannot reach the server; check your connection',
      grouping: true,
    })
  })
})

describe('errorMessage', () => {
  const config = { headers: {} } as InternalAxiosRequestConfig

  function httpError(status: number, data: unknown): AxiosError {
    try {
      reply(config, status, data)
    } catch (error) {
      return error as AxiosError
    }
    throw new Error('reply() did not throw')
  }

  it("prefers the locale's text for the error code", () => {
    const error = httpError(401, { detail: 'Invalid credentials', code: 'invalid_credentials' })
    expect(errorMessage(error)).toBe('Incorrect username or password')
    i18n.global.locale.value = 'zh-CN'
    const zh = errorMessage(error)
    expect(zh).toBe(i18n.global.t('errors.invalid_credentials'))
    expect(zh).not.toBe('Incorrect username or password')
    expect(zh).not.toBe('Invalid credentials')
  })

  it('falls back to the server detail for an unknown code', () => {
    expect(
      errorMessage(httpError(400, { detail: 'Something specific', code: 'no_such_code' })),
    ).toBe('Something specific')
    expect(errorMessage(httpError(400, { detail: 'No code at all' }))).toBe('No code at all')
  })

  it('uses the validation text for a 422 list without a known code', () => {
    const detail = [{ type: 'missing', loc: ['body', 'email'], msg: 'Field required' }]
    expect(errorMessage(httpError(422, { detail }))).toBe(
      'Some fields are invalid; please check the form',
    )
  })

  it('names the HTTP status when the body says nothing', () => {
    expect(errorMessage(httpError(502, '<html>Bad gateway</html>'))).toBe(
      'Request failed (HTTP 502)',
    )
  })

  it('gives errors.network when there is no response', () => {
    const error = new AxiosError('Network Error', AxiosError.ERR_NETWORK, config, {})
    expect(errorMessage(error)).toBe('Cannot reach the server; check your connection')
  })

  it('handles errors that are not from axios', () => {
    expect(errorMessage(new Error('plain failure'))).toBe('plain failure')
    expect(errorMessage('just a string')).toBe('just a string')
  })
})
