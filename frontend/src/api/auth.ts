import type { FormErrorTarget } from '@/utils/api'
import { api } from '@/utils/api'

import type { TokenResponse, UserMe, UserPublic } from './types'

// Sign-in style calls answer 401 for bad input, not for an expired session: never refresh on them.
const noRefresh = { skipAuthRefresh: true } as const

export async function login(
  username: string,
  password: string,
  form?: FormErrorTarget,
): Promise<TokenResponse> {
  const { data } = await api.post<TokenResponse>(
    '/auth/login',
    { username, password },
    { ...noRefresh, form },
  )
  return data
}

export async function register(
  payload: { email: string; nickname: string; password: string },
  form?: FormErrorTarget,
): Promise<UserPublic> {
  const { data } = await api.post<UserPublic>('/auth/register', payload, { ...noRefresh, form })
  return data
}

export async function logout(): Promise<void> {
  await api.post('/auth/logout', null, { ...noRefresh, silent: true })
}

export async function me(): Promise<UserMe> {
  const { data } = await api.get<UserMe>('/auth/me')
  return data
}

export async function changePassword(
  currentPassword: string,
  newPassword: string,
  form?: FormErrorTarget,
): Promise<void> {
  await api.post(
    '/auth/change-password',
    { current_password: currentPassword, new_password: newPassword },
    { form },
  )
}

export async function requestPasswordReset(email: string, form?: FormErrorTarget): Promise<void> {
  await api.post('/auth/password-reset/request', { email }, { ...noRefresh, form })
}

export async function confirmPasswordReset(
  token: string,
  newPassword: string,
  form?: FormErrorTarget,
): Promise<void> {
  await api.post(
    '/auth/password-reset/confirm',
    { token, new_password: newPassword },
    { ...noRefresh, form },
  )
}

export async function loginHints(): Promise<{ default_admin: boolean }> {
  const { data } = await api.get<{ default_admin: boolean }>('/auth/login-hints', {
    ...noRefresh,
    silent: true,
  })
  return data
}
