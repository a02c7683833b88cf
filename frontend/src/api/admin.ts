import { api } from '@/utils/api'

import type { AdminUser, Page, ResetLink, Role } from './types'

export interface UserQuery {
  page: number
  size: number
  q?: string
  role?: Role
}

export async function listUsers(query: UserQuery): Promise<Page<AdminUser>> {
  const params = Object.fromEntries(
    Object.entries(query).filter(([, value]) => value !== undefined && value !== ''),
  )
  const { data } = await api.get<Page<AdminUser>>('/admin/users', { params })
  return data
}

export async function updateUser(
  id: number,
  changes: { role?: Role; is_active?: boolean },
): Promise<AdminUser> {
  const { data } = await api.patch<AdminUser>(`/admin/users/${id}`, changes)
  return data
}

export async function deleteUser(id: number): Promise<void> {
  await api.delete(`/admin/users/${id}`)
}

export async function createResetLink(id: number): Promise<ResetLink> {
  const { data } = await api.post<ResetLink>(`/admin/users/${id}/password-reset`)
  return data
}
