/** Global state: the signed-in user and the UI preferences that survive a reload. */
import { defineStore } from 'pinia'
import { computed, ref, watch } from 'vue'

import * as authApi from '@/api/auth'
import type { TokenResponse, UserMe } from '@/api/types'
import { i18n, LOCALE_STORAGE_KEY, type Locale } from '@/locales'
import {
  clearSession,
  onSessionChange,
  refreshSession,
  SessionExpiredError,
  setSession,
} from '@/utils/tokenManager'

export const DARK_KEY = 'modeltrain.dark'
export const SIDEBAR_KEY = 'modeltrain.sidebarCollapsed'

export const useAuthStore = defineStore('auth', () => {
  const user = ref<UserMe | null>(null)
  const restored = ref(false)
  let restoring: Promise<void> | null = null

  const isAuthenticated = computed(() => user.value !== null)
  const isAdmin = computed(() => user.value?.role === 'admin')
  const mustChangePassword = computed(() => user.value?.must_change_password ?? false)

  function applySession(session: TokenResponse | null): void {
    user.value = session
      ? { ...session.user, must_change_password: session.must_change_password }
      : null
  }
  // Every login and refresh (also the ones api.ts does behind the scenes) updates the user.
  onSessionChange(applySession)

  /** Once per page load: get an access token from the refresh cookie, if there is one. */
  function restore(): Promise<void> {
    if (restored.value) return Promise.resolve()
    restoring ??= refreshSession()
      .then(() => undefined)
      .catch((error: unknown) => {
        if (!(error instanceof SessionExpiredError)) throw error
      })
      .finally(() => {
        restored.value = true
        restoring = null
      })
    return restoring
  }

  async function login(
    username: string,
    password: string,
    form?: Parameters<typeof authApi.login>[2],
  ): Promise<TokenResponse> {
    clearSession() // never send a stale token along with new credentials
    const session = await authApi.login(username, password, form)
    setSession(session)
    restored.value = true
    return session
  }

  async function logout(): Promise<void> {
    try {
      await authApi.logout()
    } finally {
      clearSession()
    }
  }

  async function reloadUser(): Promise<void> {
    user.value = await authApi.me()
  }

  return {
    user,
    restored,
    isAuthenticated,
    isAdmin,
    mustChangePassword,
    restore,
    login,
    logout,
    reloadUser,
  }
})

function readBool(key: string, fallback: boolean): boolean {
  const value = localStorage.getItem(key)
  return value === null ? fallback : value === 'true'
}

export const useUiStore = defineStore('ui', () => {
  const prefersDark =
    typeof window !== 'undefined' && window.matchMedia?.('(prefers-color-scheme: dark)').matches
  const dark = ref(readBool(DARK_KEY, Boolean(prefersDark)))
  const sidebarCollapsed = ref(readBool(SIDEBAR_KEY, false))
  const locale = ref<Locale>(i18n.global.locale.value)

  // Element Plus's dark theme keys off the `dark` class on <html>.
  watch(
    dark,
    (value) => {
      document.documentElement.classList.toggle('dark', value)
      localStorage.setItem(DARK_KEY, String(value))
    },
    { immediate: true },
  )
  watch(sidebarCollapsed, (value) => localStorage.setItem(SIDEBAR_KEY, String(value)))
  watch(
    locale,
    (value) => {
      i18n.global.locale.value = value
      localStorage.setItem(LOCALE_STORAGE_KEY, value)
      document.documentElement.lang = value
    },
    { immediate: true },
  )

  return {
    dark,
    sidebarCollapsed,
    locale,
    toggleDark: () => (dark.value = !dark.value),
    toggleSidebar: () => (sidebarCollapsed.value = !sidebarCollapsed.value),
    setLocale: (value: Locale) => (locale.value = value),
  }
})
