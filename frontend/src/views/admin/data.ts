/** The admin panel's fixed parts: filter options, page sizes and the helpers its cells use. */
import type { AdminUser, Role } from '@/api/types'

export const PAGE_SIZES = [10, 20, 50]
export const DEFAULT_PAGE_SIZE = 20
export const SEARCH_DEBOUNCE_MS = 300

/** The role filter's choices: 'all' or a role (a real value, so the select never looks empty). */
export type RoleFilter = Role | 'all'

/** Labels are locale keys. */
export const ROLE_FILTERS: { value: RoleFilter; label: string }[] = [
  { value: 'all', label: 'admin.filter.allRoles' },
  { value: 'admin', label: 'admin.role.admin' },
  { value: 'user', label: 'admin.role.user' },
]

/** Why a row may not be changed: the built-in admin, or the admin looking at the page. */
export type LockReason = 'protected' | 'self' | null

export function lockReason(row: AdminUser, currentUserId: number | undefined): LockReason {
  if (row.is_protected) return 'protected'
  if (row.id === currentUserId) return 'self'
  return null
}

export { formatDateTime } from '@/utils/format'
