/**
 * A job's live stream for the drawer: opens `GET /{id}/events`, folds its frames into a
 * LiveJobState, reconnects after a drop from where it was (log offset, last step) and stops
 * for good once the job is final or `close()` is called.
 */
import { getCurrentScope, onScopeDispose, ref, shallowRef } from 'vue'

import {
  openJobEvents,
  StreamRequestError,
  type JobEvent,
  type JobStatus,
  type TrainingJob,
  type TrainingJobDetail,
} from '@/api/training'
import { i18n } from '@/locales'
import { processSSEResponse } from '@/utils/tokenManager'

import { applyEvent, emptyLiveState, reconnectDelay, resumeFrom, type LiveJobState } from './events'

export interface JobEventHandlers {
  /** A `job` frame (status or progress changed). */
  onJob?: (job: TrainingJob) => void
  /** The stream ended because the job is final. */
  onEnd?: (status: JobStatus) => void
}

export function useJobEvents(handlers: JobEventHandlers = {}) {
  const state = shallowRef<LiveJobState>(emptyLiveState())
  const connected = ref(false)
  const reconnecting = ref(false)
  /** Why the stream stopped for good without the job ending (e.g. the job was deleted). */
  const error = ref('')

  // Bumped by every open/close: a loop from an older session must not touch the state.
  let session = 0
  let controller: AbortController | null = null
  let timer: ReturnType<typeof setTimeout> | undefined

  function stopTimers(): void {
    if (timer !== undefined) clearTimeout(timer)
    timer = undefined
    controller?.abort()
    controller = null
  }

  function close(): void {
    session++
    stopTimers()
    connected.value = false
    reconnecting.value = false
  }

  function retry(ticket: number, attempt: number): void {
    reconnecting.value = true
    timer = setTimeout(() => void run(ticket, attempt), reconnectDelay(attempt))
  }

  async function run(ticket: number, attempt: number): Promise<void> {
    const job = state.value.job
    if (!job || ticket !== session) return
    const abort = new AbortController()
    controller = abort
    let response: Response
    try {
      response = await openJobEvents(job.id, resumeFrom(state.value), abort.signal)
    } catch (failure) {
      if (abort.signal.aborted || ticket !== session) return
      // A refusal other than a server hiccup (404: deleted, 403) will not change by retrying.
      if (failure instanceof StreamRequestError && failure.status < 500) {
        reconnecting.value = false
        error.value = failure.message
        return
      }
      retry(ticket, attempt + 1)
      return
    }
    if (ticket !== session) return
    connected.value = true
    reconnecting.value = false
    error.value = ''
    let received = false
    let gone = false
    const outcome = await processSSEResponse<JobEvent>(
      response,
      {
        onEvent: (event) => {
          if (ticket !== session) return
          received = true
          state.value = applyEvent(state.value, event)
          if (event.type === 'job') handlers.onJob?.(event.job)
          if (event.type === 'end') handlers.onEnd?.(event.status)
          if (event.type === 'error' && event.code === 'job_not_found') gone = true
        },
      },
      abort.signal,
    )
    if (ticket !== session) return
    connected.value = false
    if (outcome === 'aborted' || outcome === 'done' || state.value.ended) return
    if (gone) {
      error.value = i18n.global.t('errors.job_not_found')
      return
    }
    // Dropped mid-way (network, proxy timeout, server restart): pick up where it was.
    retry(ticket, received ? 0 : attempt + 1)
  }

  /** Start streaming `job` from scratch (all points, the last log lines). */
  function open(job: TrainingJobDetail): void {
    close()
    error.value = ''
    state.value = emptyLiveState(job)
    void run(session, 0)
  }

  /** Keep the artifacts / exports of a freshly fetched detail without restarting the stream. */
  function setDetail(job: TrainingJobDetail): void {
    if (state.value.job?.id === job.id) state.value = { ...state.value, job }
  }

  if (getCurrentScope()) onScopeDispose(close)

  return { state, connected, reconnecting, error, open, close, setDetail }
}
