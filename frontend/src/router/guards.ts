/** Where a navigation may go, as a pure function of the route and the session (unit-tested). */
import type { RouteLocationNormalized, RouteLocationRaw } from 'vue-router'

export interface SessionView {
  isAuthenticated: boolean
  isAdmin: boolean
  mustChangePassword: boolean
}

declare module 'vue-router' {
  interface RouteMeta {
    /** Reachable without signing in. */
    public?: boolean
    /** Only for visitors who are not signed in (login, register). */
    guestOnly?: boolean
    /** Admins only. */
    admin?: boolean
    /** Page title key in the locale files. */
    title?: string
    /** Page text modules (locales/<lang>/<name>.ts) to load before the page shows. */
    i18n?: string[]
  }
}

/** Only same-app paths are followed after sign-in (no open redirect to another site). */
export function safeRedirect(value: unknown): string {
  return typeof value === 'string' && value.startsWith('/') && !value.startsWith('//') ? value : '/'
}

export function resolveNavigation(
  to: Pick<RouteLocationNormalized, 'name' | 'fullPath' | 'meta' | 'query'>,
  session: SessionView,
): true | RouteLocationRaw {
  if (to.meta.public) {
    if (to.meta.guestOnly && session.isAuthenticated) {
      return session.mustChangePassword
        ? { name: 'change-password' }
        : safeRedirect(to.query.redirect)
    }
    return true
  }
  if (!session.isAuthenticated) {
    return { name: 'login', query: { redirect: to.fullPath } }
  }
  if (session.mustChangePassword && to.name !== 'change-password') {
    return { name: 'change-password', query: { redirect: to.fullPath } }
  }
  if (to.meta.admin && !session.isAdmin) {
    return { name: 'dashboard' }
  }
  return true
}
