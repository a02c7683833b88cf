import { createPinia, setActivePinia } from 'pinia'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { nextTick } from 'vue'

import { i18n, LOCALE_STORAGE_KEY } from '@/locales'
import { DARK_KEY, SIDEBAR_KEY, useAuthStore, useUiStore } from '@/store'
import { api } from '@/utils/api'
import { clearSession, getAccessToken, setSession } from '@/utils/tokenManager'

import {
  deferred,
  jsonResponse,
  makeSession,
  networkError,
  reply,
  scriptedAdapter,
} from './helpers'

const { messageError } = vi.hoisted(() => ({ messageError: vi.fn() }))
vi.mock('element-plus', () => ({ ElMessage: { error: messageError } }))

const originalAdapter = api.defaults.adapter

function stubFetch(answer: () => Promise<Response> | Response) {
  const fetchMock = vi.fn(async (input: RequestInfo | URL) => {
    expect(String(input)).toBe('/api/auth/refresh')
    return answer()
  })
  vi.stubGlobal('fetch', fetchMock)
  return fetchMock
}

beforeEach(() => {
  clearSession()
  localStorage.clear()
  document.documentElement.classList.remove('dark')
  messageError.mockClear()
  setActivePinia(createPinia())
})

afterEach(() => {
  api.defaults.adapter = originalAdapter
  vi.unstubAllGlobals()
  clearSession()
  i18n.global.locale.value = 'zh-CN'
})

describe('useAuthStore', () => {
  it('starts signed out and not restored', () => {
    const auth = useAuthStore()
    expect(auth.user).toBeNull()
    expect(auth.restored).toBe(false)
    expect(auth.isAuthenticated).toBe(false)
    expect(auth.isAdmin).toBe(false)
    expect(auth.mustChangePassword).toBe(false)
  })

  it('restore() refreshes once however often it is called, and sets the user', async () => {
    const gate = deferred()
    const fetchMock = stubFetch(async () => {
      await gate.promise
      return jsonResponse(
        makeSession('restored-token', { user: { role: 'admin' }, must_change_password: true }),
      )
    })
    const auth = useAuthStore()

    const first = auth.restore()
    const second = auth.restore()
    expect(auth.restored).toBe(false)
    gate.resolve()
    await Promise.all([first, second])

    expect(fetchMock).toHaveBeenCalledTimes(1)
    expect(auth.restored).toBe(true)
    expect(getAccessToken()).toBe('restored-token')
    expect(auth.user).toMatchObject({
      id: 1,
      nickname: 'alice',
      role: 'admin',
      must_change_password: true,
    })
    expect(auth.isAuthenticated).toBe(true)
    expect(auth.isAdmin).toBe(true)
    expect(auth.mustChangePassword).toBe(true)

    // Once restored, later navigations do not refresh again.
    await auth.restore()
    expect(fetchMock).toHaveBeenCalledTimes(1)
  })

  it('restore() with a refused refresh leaves the user signed out but restored', async () => {
    const fetchMock = stubFetch(() => jsonResponse({ detail: 'No session' }, 401))
    const auth = useAuthStore()
    await expect(auth.restore()).resolves.toBeUndefined()
    expect(fetchMock).toHaveBeenCalledTimes(1)
    expect(auth.user).toBeNull()
    expect(auth.restored).toBe(true)
    expect(getAccessToken()).toBeNull()
  })

  it('restore() settles signed out when the refresh cannot reach the server', async () => {
    stubFetch(() => Promise.reject(new TypeError('Failed to fetch')))
    const auth = useAuthStore()
    await expect(auth.restore()).resolves.toBeUndefined()
    expect(auth.user).toBeNull()
    expect(auth.restored).toBe(true)
  })

  it('login() drops the old session before sending the credentials', async () => {
    const fetchMock = stubFetch(() => jsonResponse(makeSession('should-not-be-used')))
    const { adapter, requests } = scriptedAdapter((config) =>
      reply(config, 200, makeSession('fresh-token', { must_change_password: true })),
    )
    api.defaults.adapter = adapter
    const auth = useAuthStore()
    setSession(makeSession('stale-token', { user: { id: 9, nickname: 'someone-else' } }))
    expect(auth.user?.id).toBe(9)

    const session = await auth.login('admin', 'admin')

    expect(requests).toHaveLength(1)
    expect(requests[0]).toMatchObject({
      method: 'POST',
      url: '/auth/login',
      authorization: null,
      data: { username: 'admin', password: 'admin' },
    })
    expect(session.access_token).toBe('fresh-token')
    expect(getAccessToken()).toBe('fresh-token')
    expect(auth.user).toMatchObject({ id: 1, nickname: 'alice', must_change_password: true })
    expect(auth.mustChangePassword).toBe(true)
    expect(auth.restored).toBe(true)
    expect(fetchMock).not.toHaveBeenCalled()
  })

  it('login() with bad credentials neither refreshes nor keeps the old session', async () => {
    const fetchMock = stubFetch(() => jsonResponse(makeSession('should-not-be-used')))
    api.defaults.adapter = scriptedAdapter((config) =>
      reply(config, 401, { detail: 'Invalid credentials', code: 'invalid_credentials' }),
    ).adapter
    const auth = useAuthStore()
    setSession(makeSession('stale-token'))

    await expect(auth.login('admin', 'wrong')).rejects.toMatchObject({
      response: { status: 401 },
    })
    expect(fetchMock).not.toHaveBeenCalled()
    expect(auth.user).toBeNull()
    expect(getAccessToken()).toBeNull()
  })

  it('logout() sends the token and clears the user', async () => {
    const { adapter, requests } = scriptedAdapter((config) => reply(config, 204, null))
    api.defaults.adapter = adapter
    const auth = useAuthStore()
    setSession(makeSession('live-token'))
    expect(auth.isAuthenticated).toBe(true)

    await auth.logout()
    expect(requests).toEqual([
      expect.objectContaining({
        method: 'POST',
        url: '/auth/logout',
        authorization: 'Bearer live-token',
      }),
    ])
    expect(auth.user).toBeNull()
    expect(getAccessToken()).toBeNull()
  })

  it('logout() clears the user even when the API call fails, without a message', async () => {
    const fetchMock = stubFetch(() => jsonResponse(makeSession('should-not-be-used')))
    api.defaults.adapter = scriptedAdapter((config) => networkError(config)).adapter
    const auth = useAuthStore()
    setSession(makeSession('live-token'))

    await expect(auth.logout()).rejects.toThrow()
    expect(auth.user).toBeNull()
    expect(getAccessToken()).toBeNull()
    expect(fetchMock).not.toHaveBeenCalled()
    expect(messageError).not.toHaveBeenCalled()
  })

  it('follows sessions set and cleared elsewhere (e.g. by the refresh in api.ts)', () => {
    const auth = useAuthStore()
    setSession(makeSession('t1', { user: { id: 5, role: 'admin' } }))
    expect(auth.user).toMatchObject({ id: 5, role: 'admin', must_change_password: false })
    expect(auth.isAdmin).toBe(true)

    setSession(makeSession('t2', { user: { id: 5, role: 'user' }, must_change_password: true }))
    expect(auth.isAdmin).toBe(false)
    expect(auth.mustChangePassword).toBe(true)

    clearSession()
    expect(auth.user).toBeNull()
    expect(auth.isAuthenticated).toBe(false)
  })

  it('reloadUser() replaces the user with /auth/me', async () => {
    const me = { ...makeSession('x').user, nickname: 'renamed', must_change_password: false }
    const { adapter, requests } = scriptedAdapter((config) => reply(config, 200, me))
    api.defaults.adapter = adapter
    const auth = useAuthStore()
    setSession(makeSession('live-token', { must_change_password: true }))

    await auth.reloadUser()
    expect(requests[0]).toMatchObject({ method: 'GET', url: '/auth/me' })
    expect(auth.user).toEqual(me)
    expect(auth.mustChangePassword).toBe(false)
  })
})

describe('useUiStore', () => {
  it('defaults to light and applies the dark class when toggled, persisting it', async () => {
    const ui = useUiStore()
    await nextTick()
    expect(ui.dark).toBe(false)
    expect(document.documentElement.classList.contains('dark')).toBe(false)

    ui.toggleDark()
    await nextTick()
    expect(document.documentElement.classList.contains('dark')).toBe(true)
    expect(localStorage.getItem(DARK_KEY)).toBe('true')

    ui.toggleDark()
    await nextTick()
    expect(document.documentElement.classList.contains('dark')).toBe(false)
    expect(localStorage.getItem(DARK_KEY)).toBe('false')
  })

  it('keeps dark mode across a reload', async () => {
    const ui = useUiStore()
    ui.toggleDark()
    await nextTick()

    // A reload: the class is gone, a fresh Pinia reads localStorage.
    document.documentElement.classList.remove('dark')
    setActivePinia(createPinia())
    const reloaded = useUiStore()
    await nextTick()
    expect(reloaded.dark).toBe(true)
    expect(document.documentElement.classList.contains('dark')).toBe(true)
  })

  it('follows the system preference until the user chooses', async () => {
    vi.stubGlobal(
      'matchMedia',
      vi.fn((query: string) => ({
        matches: query === '(prefers-color-scheme: dark)',
        media: query,
      })),
    )
    expect(useUiStore().dark).toBe(true)

    localStorage.setItem(DARK_KEY, 'false')
    setActivePinia(createPinia())
    const ui = useUiStore()
    await nextTick()
    expect(ui.dark).toBe(false)
    expect(document.documentElement.classList.contains('dark')).toBe(false)
  })

  it('persists the collapsed sidebar', async () => {
    const ui = useUiStore()
    expect(ui.sidebarCollapsed).toBe(false)
    ui.toggleSidebar()
    await nextTick()
    expect(localStorage.getItem(SIDEBAR_KEY)).toBe('true')

    setActivePinia(createPinia())
    expect(useUiStore().sidebarCollapsed).toBe(true)
  })

  it('setLocale() switches i18n and remembers the choice', async () => {
    const ui = useUiStore()
    await nextTick()
    expect(ui.locale).toBe('zh-CN')

    ui.setLocale('en')
    await nextTick()
    expect(i18n.global.locale.value).toBe('en')
    expect(localStorage.getItem(LOCALE_STORAGE_KEY)).toBe('en')
    expect(document.documentElement.lang).toBe('en')
    expect(i18n.global.t('nav.logout')).toBe('Sign out')

    ui.setLocale('zh-CN')
    await nextTick()
    expect(i18n.global.locale.value).toBe('zh-CN')
    expect(localStorage.getItem(LOCALE_STORAGE_KEY)).toBe('zh-CN')
  })
})
