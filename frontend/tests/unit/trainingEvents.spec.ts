import { afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest'
import { effectScope } from 'vue'

import type { JobEvent } from '@/api/training'
import { eventsPath } from '@/api/training'
import { i18n, loadPageMessages } from '@/locales'
import { clearSession, setSession } from '@/utils/tokenManager'
import {
  applyEvent,
  emptyLiveState,
  lastStep,
  LOG_LINES_MAX,
  mergePoints,
  reconnectDelay,
  resumeFrom,
  type LiveJobState,
} from '@/views/model-training/events'
import { useJobEvents } from '@/views/model-training/useJobEvents'

import { jsonResponse, makeSession } from './helpers'
import { makeJobDetail, makeTrainingJob, point } from './trainingFixtures'

function fold(events: JobEvent[], state: LiveJobState = emptyLiveState(makeJobDetail())) {
  return events.reduce(applyEvent, state)
}

describe('the job event reducer', () => {
  it('keeps the detail-only parts when a job frame brings new progress', () => {
    const detail = makeJobDetail({
      artifacts: [{ name: 'adapter', kind: 'adapter', size_bytes: 10, file_count: 2, step: null }],
      exports: [{ id: 9, name: 'merge', status: 'queued' }],
    })
    const progressed = makeTrainingJob({
      progress: { ...makeTrainingJob().progress!, step: 5, percentage: 50 },
    })
    const state = fold([{ type: 'job', job: progressed }], emptyLiveState(detail))
    expect(state.job?.progress?.step).toBe(5)
    expect(state.job?.artifacts).toEqual(detail.artifacts)
    expect(state.job?.exports).toEqual(detail.exports)
  })

  it('a job frame for another job does not inherit the held job detail', () => {
    const state = fold(
      [{ type: 'job', job: makeTrainingJob({ id: 99 }) }],
      emptyLiveState(makeJobDetail({ exports: [{ id: 1, name: 'x', status: 'failed' }] })),
    )
    expect(state.job?.id).toBe(99)
    expect(state.job?.exports).toEqual([])
  })

  it('appends metric points in step order and replaces a step seen again', () => {
    const state = fold([
      { type: 'metrics', points: [point(1), point(2)] },
      // A reconnect that overlaps: step 2 again, with the same or a newer value.
      { type: 'metrics', points: [{ ...point(2), loss: 1.5 }, point(3)] },
    ])
    expect(state.points.map((p) => p.step)).toEqual([1, 2, 3])
    expect(state.points[1]?.loss).toBe(1.5)
    expect(lastStep(state)).toBe(3)
  })

  it('merges out-of-order points into order', () => {
    expect(mergePoints([point(5)], [point(1), point(3)]).map((p) => p.step)).toEqual([1, 3, 5])
  })

  it('appends log lines and remembers where the log stands', () => {
    const state = fold([
      { type: 'log', lines: ['a', 'b'], next_offset: 4 },
      { type: 'log', lines: ['c'], next_offset: 6 },
    ])
    expect(state.logs).toEqual(['a', 'b', 'c'])
    expect(state.logOffset).toBe(6)
  })

  it('drops a log frame from before the held offset (a duplicate after a reconnect)', () => {
    const state = fold([
      { type: 'log', lines: ['a', 'b'], next_offset: 4 },
      { type: 'log', lines: ['a', 'b'], next_offset: 4 },
    ])
    expect(state.logs).toEqual(['a', 'b'])
  })

  it('keeps only the newest LOG_LINES_MAX lines and counts the dropped ones', () => {
    const many = Array.from({ length: LOG_LINES_MAX + 5 }, (_, i) => `line ${i}`)
    const state = fold([{ type: 'log', lines: many, next_offset: 100 }])
    expect(state.logs).toHaveLength(LOG_LINES_MAX)
    expect(state.logs[0]).toBe('line 5')
    expect(state.droppedLines).toBe(5)
  })

  it('an end frame settles the status and marks the stream finished', () => {
    const state = fold([{ type: 'end', status: 'succeeded' }])
    expect(state.ended).toBe('succeeded')
    expect(state.job?.status).toBe('succeeded')
  })

  it('resumes from the last log offset and step, or from scratch', () => {
    expect(resumeFrom(emptyLiveState())).toEqual({ log_offset: null, after_step: null })
    const state = fold([
      { type: 'metrics', points: [point(4)] },
      { type: 'log', lines: ['x'], next_offset: 120 },
    ])
    expect(resumeFrom(state)).toEqual({ log_offset: 120, after_step: 4 })
  })

  it('puts the resume point in the events URL only when there is one', () => {
    expect(eventsPath(7)).toBe('/api/training/7/events')
    expect(eventsPath(7, { log_offset: 0, after_step: null })).toBe(
      '/api/training/7/events?log_offset=0',
    )
    expect(eventsPath(7, { log_offset: 120, after_step: 4 })).toBe(
      '/api/training/7/events?log_offset=120&after_step=4',
    )
  })

  it('waits longer after each failed reconnect, up to a ceiling', () => {
    expect([0, 1, 2, 3, 10].map(reconnectDelay)).toEqual([1000, 2000, 4000, 8000, 15000])
  })
})

// ------------------------------------------------------------------------- the stream

const encoder = new TextEncoder()

/** An SSE response whose frames the test pushes, and that it can cut off. */
function controlledStream() {
  let controller!: ReadableStreamDefaultController<Uint8Array>
  let cancelled = false
  const body = new ReadableStream<Uint8Array>({
    start(c) {
      controller = c
    },
    cancel() {
      cancelled = true
    },
  })
  return {
    response: new Response(body, { headers: { 'Content-Type': 'text/event-stream' } }),
    send: (...events: (JobEvent | '[DONE]' | '[ERROR]')[]) => {
      for (const event of events) {
        const data = typeof event === 'string' ? event : JSON.stringify(event)
        controller.enqueue(encoder.encode(`data: ${data}\n\n`))
      }
    },
    drop: () => controller.close(),
    wasCancelled: () => cancelled,
  }
}

describe('useJobEvents', () => {
  const fetchMock = vi.fn<typeof fetch>()

  beforeAll(async () => {
    await loadPageMessages('training')
  })

  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] })
    setSession(makeSession('token-1'))
    vi.stubGlobal('fetch', fetchMock)
  })

  afterEach(() => {
    fetchMock.mockReset()
    vi.unstubAllGlobals()
    vi.useRealTimers()
    clearSession()
  })

  const settle = () => vi.advanceTimersByTimeAsync(0)

  function setup() {
    const onEnd = vi.fn()
    const onJob = vi.fn()
    const scope = effectScope()
    const live = scope.run(() => useJobEvents({ onEnd, onJob }))!
    return { live, scope, onEnd, onJob }
  }

  const urlOf = (call: number) => String(fetchMock.mock.calls[call]![0])

  it('streams job, metrics and log frames with the session token', async () => {
    const sse = controlledStream()
    fetchMock.mockResolvedValueOnce(sse.response)
    const { live, onJob } = setup()
    live.open(makeJobDetail())
    await settle()

    const [url, init] = fetchMock.mock.calls[0]!
    expect(url).toBe('/api/training/7/events')
    expect(init?.method).toBe('GET')
    expect(new Headers(init?.headers).get('Authorization')).toBe('Bearer token-1')
    expect(live.connected.value).toBe(true)

    sse.send(
      { type: 'job', job: makeTrainingJob({ status: 'running' }) },
      { type: 'metrics', points: [point(1), point(2)] },
      { type: 'log', lines: ['step 1', 'step 2'], next_offset: 30 },
    )
    await settle()
    expect(onJob).toHaveBeenCalledTimes(1)
    expect(live.state.value.points.map((p) => p.step)).toEqual([1, 2])
    expect(live.state.value.logs).toEqual(['step 1', 'step 2'])
  })

  it('reconnects after a drop from the log offset and last step, without repeating them', async () => {
    const first = controlledStream()
    const second = controlledStream()
    fetchMock.mockResolvedValueOnce(first.response).mockResolvedValueOnce(second.response)
    const { live } = setup()
    live.open(makeJobDetail())
    await settle()
    first.send(
      { type: 'metrics', points: [point(1), point(2)] },
      { type: 'log', lines: ['a', 'b'], next_offset: 10 },
    )
    first.drop() // the proxy cut it: no [DONE]
    await settle()
    expect(live.connected.value).toBe(false)
    expect(live.reconnecting.value).toBe(true)
    expect(fetchMock).toHaveBeenCalledTimes(1)

    await vi.advanceTimersByTimeAsync(reconnectDelay(0))
    expect(fetchMock).toHaveBeenCalledTimes(2)
    expect(urlOf(1)).toBe('/api/training/7/events?log_offset=10&after_step=2')
    expect(live.connected.value).toBe(true)

    second.send(
      { type: 'metrics', points: [point(3)] },
      { type: 'log', lines: ['c'], next_offset: 12 },
      { type: 'end', status: 'succeeded' },
      '[DONE]',
    )
    await settle()
    expect(live.state.value.points.map((p) => p.step)).toEqual([1, 2, 3])
    expect(live.state.value.logs).toEqual(['a', 'b', 'c'])
    expect(live.state.value.ended).toBe('succeeded')
  })

  it('stops after the end frame: no reconnect, onEnd told once', async () => {
    const sse = controlledStream()
    fetchMock.mockResolvedValueOnce(sse.response)
    const { live, onEnd } = setup()
    live.open(makeJobDetail({ status: 'failed' }))
    await settle()
    sse.send({ type: 'job', job: makeTrainingJob({ status: 'failed' }) })
    sse.send({ type: 'end', status: 'failed' }, '[DONE]')
    await settle()
    await vi.advanceTimersByTimeAsync(60_000)
    expect(fetchMock).toHaveBeenCalledTimes(1)
    expect(onEnd).toHaveBeenCalledExactlyOnceWith('failed')
    expect(live.reconnecting.value).toBe(false)
  })

  it('close() aborts the stream and cancels a pending reconnect', async () => {
    const sse = controlledStream()
    fetchMock.mockResolvedValueOnce(sse.response)
    const { live } = setup()
    live.open(makeJobDetail())
    await settle()
    live.close()
    await settle()
    expect((fetchMock.mock.calls[0]![1]?.signal as AbortSignal).aborted).toBe(true)
    expect(sse.wasCancelled()).toBe(true)

    // Closed while waiting to reconnect: the timer must not open a new stream.
    const again = controlledStream()
    fetchMock.mockResolvedValueOnce(again.response)
    live.open(makeJobDetail())
    await settle()
    again.drop()
    await settle()
    expect(live.reconnecting.value).toBe(true)
    live.close()
    await vi.advanceTimersByTimeAsync(60_000)
    expect(fetchMock).toHaveBeenCalledTimes(2)
  })

  it('disposing the scope (the drawer unmounting) closes the stream', async () => {
    const sse = controlledStream()
    fetchMock.mockResolvedValueOnce(sse.response)
    const { live, scope } = setup()
    live.open(makeJobDetail())
    await settle()
    scope.stop()
    await settle()
    expect(sse.wasCancelled()).toBe(true)
  })

  it('a refused stream (404) stops with the reason instead of retrying', async () => {
    fetchMock.mockResolvedValueOnce(
      jsonResponse({ detail: 'Training job not found', code: 'job_not_found' }, 404),
    )
    const { live } = setup()
    live.open(makeJobDetail())
    await settle()
    await vi.advanceTimersByTimeAsync(60_000)
    expect(fetchMock).toHaveBeenCalledTimes(1)
    expect(live.error.value).toBe(i18n.global.t('errors.job_not_found'))
    expect(live.reconnecting.value).toBe(false)
  })

  it('a server error while connecting is retried with a growing delay', async () => {
    const sse = controlledStream()
    fetchMock
      .mockResolvedValueOnce(jsonResponse({ detail: 'boom', code: 'internal_error' }, 502))
      .mockResolvedValueOnce(sse.response)
    const { live } = setup()
    live.open(makeJobDetail())
    await settle()
    expect(live.reconnecting.value).toBe(true)
    await vi.advanceTimersByTimeAsync(reconnectDelay(1) - 1)
    expect(fetchMock).toHaveBeenCalledTimes(1)
    await vi.advanceTimersByTimeAsync(1)
    expect(fetchMock).toHaveBeenCalledTimes(2)
    expect(live.connected.value).toBe(true)
  })

  it('a job deleted mid-stream ends it without reconnecting', async () => {
    const sse = controlledStream()
    fetchMock.mockResolvedValueOnce(sse.response)
    const { live } = setup()
    live.open(makeJobDetail())
    await settle()
    sse.send({ type: 'error', code: 'job_not_found', message: 'job deleted' }, '[ERROR]')
    await settle()
    await vi.advanceTimersByTimeAsync(60_000)
    expect(fetchMock).toHaveBeenCalledTimes(1)
    expect(live.error.value).toBe(i18n.global.t('errors.job_not_found'))
  })

  it('open() on another job starts it from scratch', async () => {
    const first = controlledStream()
    const second = controlledStream()
    fetchMock.mockResolvedValueOnce(first.response).mockResolvedValueOnce(second.response)
    const { live } = setup()
    live.open(makeJobDetail())
    await settle()
    first.send({ type: 'log', lines: ['old'], next_offset: 5 })
    await settle()
    live.open(makeJobDetail({ id: 8 }))
    await settle()
    expect(urlOf(1)).toBe('/api/training/8/events')
    expect(live.state.value.logs).toEqual([])
    // A late frame of the old stream must not land in the new state.
    expect(first.wasCancelled()).toBe(true)
  })
})
