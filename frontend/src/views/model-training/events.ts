/**
 * What the job drawer shows live, folded from the frames of `GET /{id}/events`. Pure functions,
 * so the reconnect and dedupe rules are testable without a server.
 */
import type {
  JobEvent,
  JobStatus,
  MetricPoint,
  TrainingJob,
  TrainingJobDetail,
} from '@/api/training'

/** The most log lines kept in the page; older ones scroll out (the full log stays on the server). */
export const LOG_LINES_MAX = 5000

export interface LiveJobState {
  job: TrainingJobDetail | null
  /** Sorted by step, one point per step. */
  points: MetricPoint[]
  logs: string[]
  /** Byte offset of the log after the last line received; null before any log frame. */
  logOffset: number | null
  /** Lines dropped from the front to keep LOG_LINES_MAX. */
  droppedLines: number
  /** The final status the stream ended with, or null while it may still change. */
  ended: JobStatus | null
}

export function emptyLiveState(job: TrainingJobDetail | null = null): LiveJobState {
  return { job, points: [], logs: [], logOffset: null, droppedLines: 0, ended: null }
}

/** The highest step shown: what a reconnect asks only newer points after. */
export function lastStep(state: LiveJobState): number | null {
  const last = state.points[state.points.length - 1]
  return last ? last.step : null
}

/** Where a dropped stream picks up without repeating lines or points. */
export function resumeFrom(state: LiveJobState): {
  log_offset: number | null
  after_step: number | null
} {
  return { log_offset: state.logOffset, after_step: lastStep(state) }
}

/**
 * Merge points by step: a step seen again (a reconnect that overlaps, or a resumed run
 * logging a step again) replaces the old one, so the curve never doubles back.
 */
export function mergePoints(
  current: readonly MetricPoint[],
  incoming: readonly MetricPoint[],
): MetricPoint[] {
  if (incoming.length === 0) return current as MetricPoint[]
  const byStep = new Map<number, MetricPoint>()
  for (const point of current) byStep.set(point.step, point)
  for (const point of incoming) byStep.set(point.step, { ...byStep.get(point.step), ...point })
  return [...byStep.values()].sort((a, b) => a.step - b.step)
}

/**
 * A `job` frame carries the list shape (no artifacts / exports): those stay from the detail
 * already held until the drawer reloads it.
 */
export function mergeJob(current: TrainingJobDetail | null, job: TrainingJob): TrainingJobDetail {
  return {
    artifacts: [],
    exports: [],
    ...(current && current.id === job.id ? current : {}),
    ...job,
  } as TrainingJobDetail
}

export function applyEvent(state: LiveJobState, event: JobEvent): LiveJobState {
  switch (event.type) {
    case 'job':
      return { ...state, job: mergeJob(state.job, event.job) }
    case 'metrics':
      return { ...state, points: mergePoints(state.points, event.points ?? []) }
    case 'log': {
      // A frame from before the offset already held (a duplicate after a reconnect) adds nothing.
      if (state.logOffset !== null && event.next_offset <= state.logOffset) return state
      let logs = state.logs.concat(event.lines ?? [])
      let dropped = state.droppedLines
      if (logs.length > LOG_LINES_MAX) {
        dropped += logs.length - LOG_LINES_MAX
        logs = logs.slice(logs.length - LOG_LINES_MAX)
      }
      return { ...state, logs, droppedLines: dropped, logOffset: event.next_offset }
    }
    case 'end': {
      const job = state.job ? { ...state.job, status: event.status } : null
      return { ...state, job, ended: event.status }
    }
    default:
      return state
  }
}

/** The delay before reconnect attempt `attempt` (0-based): 1 s doubling to 15 s at most. */
export function reconnectDelay(attempt: number): number {
  return Math.min(15_000, 1000 * 2 ** Math.max(0, attempt))
}
