/**
 * The live columns of a model comparison. One column per compared config; stream events are
 * routed by `model_index`, so one model failing leaves the others streaming. Text deltas are
 * buffered and applied once per animation frame, and each column is its own reactive object:
 * a chunk for column 1 re-renders column 1 only.
 */
import { AxiosError } from 'axios'
import { getCurrentScope, onScopeDispose, ref, shallowRef } from 'vue'

import {
  compare,
  openCompareStream,
  StreamRequestError,
  type CompareError,
  type CompareMetrics,
  type CompareRequest,
  type CompareResult,
  type CompareStreamEvent,
} from '@/api/playground'
import { i18n } from '@/locales'
import { errorMessage } from '@/utils/api'
import { processSSEResponse, SessionExpiredError } from '@/utils/tokenManager'

/**
 * waiting: nothing received yet; streaming: text is arriving; done: the model finished;
 * error: the model failed (its error says why); stopped: the user stopped it part-way.
 */
export type ColumnStatus = 'waiting' | 'streaming' | 'done' | 'error' | 'stopped'

export interface CompareColumn {
  index: number
  configId: number | null
  configName: string
  model: string
  reasoning: string
  content: string
  status: ColumnStatus
  error: CompareError | null
  metrics: CompareMetrics | null
}

/** What a column shows in its header before any answer arrives. */
export interface ColumnTarget {
  id: number | null
  name: string
  model: string
}

export type CompareMode = 'stream' | 'normal'

/** How a run ended: every model had its say, the user stopped it, or the request itself failed. */
export type RunOutcome = 'done' | 'stopped' | 'failed'

export function newColumn(index: number, target: ColumnTarget): CompareColumn {
  return {
    index,
    configId: target.id,
    configName: target.name,
    model: target.model,
    reasoning: '',
    content: '',
    status: 'waiting',
    error: null,
    metrics: null,
  }
}

export function isFinished(column: CompareColumn): boolean {
  return column.status === 'done' || column.status === 'error' || column.status === 'stopped'
}

/** A finished answer: from the non-streaming compare, or from a saved test (whose config may
 * since have been deleted, hence a nullable id). */
export type FinishedResult = Pick<
  CompareResult,
  'config_name' | 'model' | 'content' | 'reasoning' | 'error' | 'metrics'
> & { model_config_id: number | null }

/** A whole result as a finished column. */
export function columnFromResult(index: number, result: FinishedResult): CompareColumn {
  return {
    index,
    configId: result.model_config_id,
    configName: result.config_name,
    model: result.model,
    reasoning: result.reasoning ?? '',
    content: result.content ?? '',
    status: result.error ? 'error' : 'done',
    error: result.error ?? null,
    metrics: result.metrics ?? null,
  }
}

/**
 * Apply one non-text event to its column; text events go through `appendText`. Returns the
 * column, or null when the index matches none (such an event is ignored).
 */
export function applyEvent(
  columns: readonly CompareColumn[],
  event: CompareStreamEvent,
): CompareColumn | null {
  const column = columns[event.model_index]
  if (!column) return null
  switch (event.type) {
    case 'reasoning':
    case 'content':
      appendText(column, event.type, event.text)
      break
    case 'metrics':
      column.metrics = {
        ttft_ms: event.ttft_ms,
        total_ms: event.total_ms,
        output_tokens: event.output_tokens,
        tokens_per_s: event.tokens_per_s,
        finish_reason: event.finish_reason,
      }
      if (column.status !== 'error') column.status = 'done'
      break
    case 'error':
      column.error = { code: event.code, message: event.message }
      column.status = 'error'
      break
    case 'usage':
      break // the metrics event that follows carries the output token count
  }
  return column
}

export function appendText(
  column: CompareColumn,
  kind: 'reasoning' | 'content',
  text: string,
): void {
  if (!text) return
  if (kind === 'reasoning') column.reasoning += text
  else column.content += text
  if (column.status === 'waiting') column.status = 'streaming'
}

type Schedule = (callback: () => void) => () => void

/** requestAnimationFrame where there is one (a hidden tab pauses it; the end flushes anyway). */
export const nextFrame: Schedule = (callback) => {
  if (typeof requestAnimationFrame === 'function') {
    const handle = requestAnimationFrame(() => callback())
    return () => cancelAnimationFrame(handle)
  }
  const handle = setTimeout(callback, 16)
  return () => clearTimeout(handle)
}

interface PendingText {
  reasoning: string
  content: string
}

/**
 * Routes stream events to columns. Deltas wait in a per-column buffer until the next frame
 * (`schedule`), so a burst of chunks costs one render; any other event flushes its column's
 * buffer first, so nothing is applied out of order.
 */
export function createCompareReducer(
  columns: () => readonly CompareColumn[],
  schedule: Schedule = nextFrame,
) {
  const pending = new Map<number, PendingText>()
  let cancelFrame: (() => void) | null = null

  function flushColumn(index: number): void {
    const buffered = pending.get(index)
    if (!buffered) return
    pending.delete(index)
    const column = columns()[index]
    if (!column) return
    appendText(column, 'reasoning', buffered.reasoning)
    appendText(column, 'content', buffered.content)
  }

  function flush(): void {
    cancelFrame?.()
    cancelFrame = null
    for (const index of [...pending.keys()]) flushColumn(index)
  }

  function push(event: CompareStreamEvent): void {
    if (event.type === 'reasoning' || event.type === 'content') {
      if (!columns()[event.model_index] || !event.text) return
      const buffered = pending.get(event.model_index) ?? { reasoning: '', content: '' }
      buffered[event.type] += event.text
      pending.set(event.model_index, buffered)
      cancelFrame ??= schedule(() => {
        cancelFrame = null
        flush()
      })
      return
    }
    flushColumn(event.model_index)
    applyEvent(columns(), event)
  }

  /** Drop what is buffered (a new run replaces the columns). */
  function reset(): void {
    cancelFrame?.()
    cancelFrame = null
    pending.clear()
  }

  return { push, flush, reset }
}

/** Settle the columns a run left open: `done` -> done, `error` -> failed, `stopped` -> stopped. */
export function settleColumns(
  columns: readonly CompareColumn[],
  how: 'done' | 'broken' | 'stopped',
  reason?: string,
): void {
  for (const column of columns) {
    if (isFinished(column)) continue
    if (how === 'stopped') column.status = 'stopped'
    else if (how === 'done') column.status = 'done'
    else {
      column.status = 'error'
      column.error = {
        code: 'stream_broken',
        message: reason ?? i18n.global.t('modelTest.errors.streamBroken'),
      }
    }
  }
}

export function useCompareStream(options: { schedule?: Schedule } = {}) {
  const columns = ref<CompareColumn[]>([])
  const running = ref(false)
  /** The whole request failed (refused, or no answer at all); the columns are gone. */
  const requestError = shallowRef<{ code: string; message: string } | null>(null)

  const reducer = createCompareReducer(() => columns.value, options.schedule)
  let controller: AbortController | null = null
  let generation = 0

  function begin(targets: readonly ColumnTarget[]): AbortController {
    stop()
    reducer.reset()
    generation++
    requestError.value = null
    columns.value = targets.map((target, index) => newColumn(index, target))
    controller = new AbortController()
    running.value = true
    return controller
  }

  function finish(ticket: number): void {
    if (ticket !== generation) return
    controller = null
    running.value = false
  }

  // A run that was replaced (a new run, or a saved test shown) must not touch what replaced
  // it: every write below goes through `current()`.
  function fail(current: () => boolean, error: { code: string; message: string }): RunOutcome {
    if (current()) {
      columns.value = []
      requestError.value = error
    }
    return 'failed'
  }

  function settle(current: () => boolean, how: 'done' | 'broken' | 'stopped', reason?: string) {
    if (current()) settleColumns(columns.value, how, reason)
  }

  async function runStream(
    request: CompareRequest,
    signal: AbortSignal,
    current: () => boolean,
  ): Promise<RunOutcome> {
    let response: Response
    try {
      response = await openCompareStream(request, signal)
    } catch (error) {
      if (signal.aborted) {
        settle(current, 'stopped')
        return 'stopped'
      }
      if (error instanceof StreamRequestError) {
        return fail(current, { code: error.code, message: error.message })
      }
      if (error instanceof SessionExpiredError) {
        return fail(current, {
          code: 'session_expired',
          message: i18n.global.t('modelTest.errors.sessionExpired'),
        })
      }
      return fail(current, { code: 'network', message: i18n.global.t('errors.network') })
    }
    const outcome = await processSSEResponse<CompareStreamEvent>(
      response,
      { onEvent: (event) => reducer.push(event) },
      signal,
    )
    if (current()) reducer.flush()
    if (outcome === 'aborted') {
      settle(current, 'stopped')
      return 'stopped'
    }
    // A per-model failure comes as that model's error event; a broken stream leaves the
    // unfinished columns without an answer, so they say so.
    settle(current, outcome === 'done' ? 'done' : 'broken')
    return 'done'
  }

  async function runWhole(
    request: CompareRequest,
    signal: AbortSignal,
    current: () => boolean,
  ): Promise<RunOutcome> {
    try {
      const { results } = await compare(request, { signal, silent: true })
      if (!current()) return 'stopped'
      const next = columns.value.map((column) => {
        const result = results.find((r) => r.model_index === column.index)
        return result ? columnFromResult(column.index, result) : column
      })
      columns.value = next
      settleColumns(columns.value, 'broken', i18n.global.t('modelTest.errors.noResult'))
      return 'done'
    } catch (error) {
      if (signal.aborted) {
        settle(current, 'stopped')
        return 'stopped'
      }
      const body: unknown = error instanceof AxiosError ? error.response?.data : undefined
      const code =
        body && typeof body === 'object' && 'code' in body && typeof body.code === 'string'
          ? body.code
          : 'request_failed'
      return fail(current, { code, message: errorMessage(error) })
    }
  }

  /** Start a comparison (stopping one in progress). Resolves when it has ended. */
  async function run(
    request: CompareRequest,
    targets: readonly ColumnTarget[],
    mode: CompareMode = 'stream',
  ): Promise<RunOutcome> {
    const own = begin(targets)
    const ticket = generation
    const current = () => ticket === generation
    try {
      return mode === 'stream'
        ? await runStream(request, own.signal, current)
        : await runWhole(request, own.signal, current)
    } finally {
      finish(ticket)
    }
  }

  /** Stop the running comparison; what arrived stays, unfinished columns read "stopped". */
  function stop(): void {
    controller?.abort()
    controller = null
  }

  /** Show finished results (a saved test, reopened) instead of a live run. */
  function show(results: readonly FinishedResult[]): void {
    stop()
    reducer.reset()
    generation++
    running.value = false
    requestError.value = null
    columns.value = results.map((result, index) => columnFromResult(index, result))
  }

  function clear(): void {
    show([])
  }

  // Leaving the page ends the stream (the server stops asking the providers).
  if (getCurrentScope()) onScopeDispose(stop)

  return { columns, running, requestError, run, stop, show, clear }
}
