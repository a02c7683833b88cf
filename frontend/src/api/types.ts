/** Shapes of the backend's JSON, mirrored from backend/app/schemas. */

export type Role = 'admin' | 'user'

export interface UserPublic {
  id: number
  email: string
  nickname: string
  role: Role
  is_active: boolean
  created_at: string
}

export interface UserMe extends UserPublic {
  must_change_password: boolean
}

export interface AdminUser extends UserPublic {
  is_protected: boolean
  last_login_at: string | null
}

export interface TokenResponse {
  access_token: string
  token_type: 'bearer'
  expires_in: number
  user: UserPublic
  must_change_password: boolean
}

export interface Page<T> {
  items: T[]
  total: number
  page: number
  size: number
}

export interface AdminStats {
  users: { total: number; active: number; admins: number }
}

export interface ResetLink {
  reset_url: string
  expires_at: string
}

/** Every error the API returns: `detail` is a string, or FastAPI's list for 422. */
export interface ApiErrorBody {
  detail: string | ValidationIssue[]
  code: string
}

export interface ValidationIssue {
  type: string
  loc: (string | number)[]
  msg: string
}
