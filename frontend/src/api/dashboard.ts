/** The dashboard's counts (`/api/dashboard/stats`): the user's own, and team totals for admins. */
import type { AdminStats } from '@/api/types'
import { api } from '@/utils/api'

/** The states a training job goes through, in that order. */
export const JOB_STATUSES = [
  'created',
  'queued',
  'running',
  'succeeded',
  'failed',
  'cancelled',
] as const
export type JobStatus = (typeof JOB_STATUSES)[number]

/** Training jobs by status. */
export type JobCounts = Record<JobStatus, number>

/** What a user (or the whole team) has made in the platform. */
export interface ActivityCounts {
  sessions: number
  messages: number
  model_tests: number
  images: number
  datasets: number
  jobs: JobCounts
}

/** Everybody's activity, plus the accounts as /api/admin/stats counts them. */
export interface TeamCounts extends ActivityCounts {
  users: AdminStats['users']
}

export interface DashboardStats {
  mine: ActivityCounts
  /** Only for admins; null for everyone else. */
  team: TeamCounts | null
}

export async function dashboardStats(): Promise<DashboardStats> {
  const { data } = await api.get<DashboardStats>('/dashboard/stats')
  return data
}
