/**
 * A training job's curves from our own metrics (`GET /api/training/{id}/metrics`): the choice
 * of jobs, the selected job and its points, refreshed while the job runs. Only the points after
 * the last one shown are fetched on each refresh.
 */
import { onBeforeUnmount, ref, shallowRef } from 'vue'

import {
  getJob,
  getMetrics,
  listJobs,
  type JobProgress,
  type MetricPoint,
  type TrainingJob,
} from '@/api/training'

import { isActiveStatus, lastStep, mergePoints, METRICS_POLL_MS } from './data'

/** The newest jobs offered in the picker (the API's largest page). */
export const JOB_PICK_SIZE = 100

export function useJobCurves(options: { pollMs?: number } = {}) {
  const pollMs = options.pollMs ?? METRICS_POLL_MS
  const jobs = ref<TrainingJob[]>([])
  const jobsLoading = ref(false)
  const jobsError = shallowRef<unknown>(null)

  const selectedId = ref<number | null>(null)
  const job = ref<TrainingJob | null>(null)
  const points = ref<MetricPoint[]>([])
  const progress = ref<JobProgress | null>(null)
  const loading = ref(false)
  const error = shallowRef<unknown>(null)

  // A newer selection makes the answers of an older one stale.
  let generation = 0
  let timer: ReturnType<typeof setTimeout> | undefined

  async function loadJobs(): Promise<void> {
    jobsLoading.value = true
    try {
      const page = await listJobs({ page: 1, size: JOB_PICK_SIZE, kind: 'train' }, { silent: true })
      jobs.value = page.items
      jobsError.value = null
    } catch (err) {
      jobsError.value = err
    } finally {
      jobsLoading.value = false
    }
  }

  function stopPolling(): void {
    clearTimeout(timer)
    timer = undefined
  }

  function schedule(run: number): void {
    stopPolling()
    if (pollMs <= 0 || !job.value || !isActiveStatus(job.value.status)) return
    timer = setTimeout(() => void refresh(run), pollMs)
  }

  /** Fetch the job and its new points; keep refreshing while it runs. */
  async function refresh(run = generation): Promise<void> {
    const id = selectedId.value
    if (id === null) return
    try {
      const [detail, metrics] = await Promise.all([
        getJob(id, { silent: true }),
        getMetrics(id, lastStep(points.value), { silent: true }),
      ])
      if (run !== generation) return
      job.value = detail
      progress.value = metrics.progress
      points.value = mergePoints(points.value, metrics.points)
      // The picker shows the job's status too.
      const index = jobs.value.findIndex((item) => item.id === id)
      if (index >= 0) jobs.value.splice(index, 1, detail)
      error.value = null
    } catch (err) {
      if (run !== generation) return
      error.value = err
    }
    schedule(run)
  }

  async function select(id: number | null): Promise<void> {
    generation += 1
    const run = generation
    stopPolling()
    selectedId.value = id
    job.value = id === null ? null : (jobs.value.find((item) => item.id === id) ?? null)
    points.value = []
    progress.value = null
    error.value = null
    if (id === null) return
    loading.value = true
    try {
      await refresh(run)
    } finally {
      if (run === generation) loading.value = false
    }
  }

  onBeforeUnmount(() => {
    generation += 1
    stopPolling()
  })

  return {
    jobs,
    jobsLoading,
    jobsError,
    selectedId,
    job,
    points,
    progress,
    loading,
    error,
    loadJobs,
    select,
    refresh: () => refresh(),
  }
}
