import { describe, expect, it, vi } from 'vitest'
import type { LocationQuery, RouteLocationNormalized, RouteMeta } from 'vue-router'

import { router, routes } from '@/router'
import { resolveNavigation, safeRedirect, type SessionView } from '@/router/guards'

vi.mock('element-plus', () => ({ ElMessage: { error: vi.fn() } }))

type Target = Pick<RouteLocationNormalized, 'name' | 'fullPath' | 'meta' | 'query'>

function to(
  name: string,
  fullPath: string,
  meta: RouteMeta = {},
  query: LocationQuery = {},
): Target {
  return { name, fullPath, meta, query }
}

const anonymous: SessionView = { isAuthenticated: false, isAdmin: false, mustChangePassword: false }
const user: SessionView = { isAuthenticated: true, isAdmin: false, mustChangePassword: false }
const admin: SessionView = { isAuthenticated: true, isAdmin: true, mustChangePassword: false }
const forced: SessionView = { isAuthenticated: true, isAdmin: true, mustChangePassword: true }

const login = (query: LocationQuery = {}) =>
  to('login', '/login', { public: true, guestOnly: true }, query)

/** A location the real router resolves, in the shape the guard receives. */
function resolved(path: string): Target {
  const { name, fullPath, meta, query } = router.resolve(path)
  if (name == null) throw new Error(`no route named for ${path}`)
  return { name, fullPath, meta, query }
}

describe('resolveNavigation', () => {
  it('lets everyone reach a public page', () => {
    const reset = to('reset-password', '/reset-password?token=abc', { public: true })
    for (const session of [anonymous, user, admin, forced]) {
      expect(resolveNavigation(reset, session)).toBe(true)
    }
  })

  it('lets a visitor reach the guest-only pages', () => {
    expect(resolveNavigation(login(), anonymous)).toBe(true)
    expect(
      resolveNavigation(to('register', '/register', { public: true, guestOnly: true }), anonymous),
    ).toBe(true)
  })

  it('sends a signed-in user away from guest-only pages, to ?redirect when it is safe', () => {
    expect(resolveNavigation(login(), user)).toBe('/')
    expect(resolveNavigation(login({ redirect: '/admin?tab=users' }), admin)).toBe(
      '/admin?tab=users',
    )
    expect(resolveNavigation(login({ redirect: '//evil.com/steal' }), user)).toBe('/')
    expect(resolveNavigation(login({ redirect: 'https://evil.com' }), user)).toBe('/')
    expect(resolveNavigation(login({ redirect: ['/a', '/b'] }), user)).toBe('/')
  })

  it('sends a signed-in user who must change the password from guest-only pages to change-password', () => {
    expect(resolveNavigation(login({ redirect: '/admin' }), forced)).toEqual({
      name: 'change-password',
    })
  })

  it('sends a visitor to the login page, remembering where they were going', () => {
    expect(resolveNavigation(to('dashboard', '/'), anonymous)).toEqual({
      name: 'login',
      query: { redirect: '/' },
    })
    expect(
      resolveNavigation(to('admin', '/admin?tab=users#top', { admin: true }), anonymous),
    ).toEqual({ name: 'login', query: { redirect: '/admin?tab=users#top' } })
    expect(resolveNavigation(to('change-password', '/change-password'), anonymous)).toEqual({
      name: 'login',
      query: { redirect: '/change-password' },
    })
  })

  it('holds a user who must change the password on change-password', () => {
    expect(resolveNavigation(to('dashboard', '/'), forced)).toEqual({
      name: 'change-password',
      query: { redirect: '/' },
    })
    expect(resolveNavigation(to('admin', '/admin', { admin: true }), forced)).toEqual({
      name: 'change-password',
      query: { redirect: '/admin' },
    })
    expect(resolveNavigation(to('change-password', '/change-password?redirect=%2F'), forced)).toBe(
      true,
    )
  })

  it('keeps non-admins out of admin pages', () => {
    expect(resolveNavigation(to('admin', '/admin', { admin: true }), user)).toEqual({
      name: 'dashboard',
    })
  })

  it('lets admins into admin pages and users into their own', () => {
    expect(resolveNavigation(to('admin', '/admin', { admin: true }), admin)).toBe(true)
    expect(resolveNavigation(to('dashboard', '/'), user)).toBe(true)
    expect(resolveNavigation(to('change-password', '/change-password'), user)).toBe(true)
  })
})

describe('safeRedirect', () => {
  it('accepts paths inside the app', () => {
    expect(safeRedirect('/admin?x=1')).toBe('/admin?x=1')
    expect(safeRedirect('/')).toBe('/')
  })

  it('rejects other sites and anything that is not a string', () => {
    for (const value of [
      '//evil.com',
      '//evil.com/path',
      'https://evil.com',
      'javascript:alert(1)',
      'admin',
      '',
      undefined,
      null,
      42,
      ['/admin'],
      { path: '/admin' },
    ]) {
      expect(safeRedirect(value)).toBe('/')
    }
  })
})

describe('route table', () => {
  it('marks /admin as admin-only and the auth pages as public', () => {
    expect(router.resolve('/admin').meta).toMatchObject({ admin: true })
    expect(router.resolve('/admin').name).toBe('admin')
    for (const path of ['/login', '/register', '/reset-password']) {
      expect(router.resolve(path).meta.public, path).toBe(true)
    }
    expect(router.resolve('/login').meta.guestOnly).toBe(true)
    expect(router.resolve('/register').meta.guestOnly).toBe(true)
    // A reset link must work while signed in too.
    expect(router.resolve('/reset-password').meta.guestOnly).toBeFalsy()
  })

  it('keeps the app pages private', () => {
    for (const path of ['/', '/change-password', '/admin']) {
      expect(router.resolve(path).meta.public, path).toBeFalsy()
    }
    expect(router.resolve('/').meta.admin).toBeFalsy()
    expect(router.resolve('/no/such/page').name).toBe('not-found')
  })

  it('lazy-loads every page', () => {
    const records = routes.flatMap((r) => [r, ...(r.children ?? [])])
    for (const record of records) {
      if ('component' in record && record.component) {
        expect(typeof record.component, record.path).toBe('function')
      }
    }
  })

  it('sends an anonymous visitor of a private page through the guard to login', () => {
    const target = resolved('/admin?tab=users')
    expect(resolveNavigation(target, anonymous)).toEqual({
      name: 'login',
      query: { redirect: '/admin?tab=users' },
    })
    expect(resolveNavigation(target, user)).toEqual({ name: 'dashboard' })
    expect(resolveNavigation(resolved('/login?redirect=/admin'), admin)).toBe('/admin')
  })
})
