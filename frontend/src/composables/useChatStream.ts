/**
 * One streamed answer at a time: opens the SSE request, turns its events into a live `turn`
 * (reasoning + content) for the view, and stops on demand.
 *
 * - Deltas are buffered and applied to `turn` at most once per animation frame (with a timer
 *   as a fallback, since hidden tabs get no frames), so a fast provider sending hundreds of
 *   chunks a second costs one re-render of the streaming message per frame; nothing else in
 *   the page reads `turn`.
 * - Content goes through utils/thinkParser.ts: the backend already splits inline `<think>`
 *   blocks into reasoning events, but a provider or proxy that slips one through still shows
 *   its reasoning in the reasoning block, never as answer text.
 * - `stop()` aborts the request; the server then saves the partial answer as "interrupted".
 * - `start()` never throws: the result says how the stream ended and why.
 */
import { getCurrentScope, onScopeDispose, reactive, readonly, ref, shallowRef } from 'vue'

import {
  StreamRequestError,
  type ChatMessage,
  type ChatStreamEvent,
  type StreamMetrics,
  type StreamUsage,
} from '@/api/chat'
import { ThinkParser, type ThinkDelta } from '@/utils/thinkParser'
import { processSSEResponse, SessionExpiredError } from '@/utils/tokenManager'

export type StreamOutcome = 'done' | 'error' | 'aborted'

export interface StreamFailure {
  /** The server's code (`model_required`, `provider_error`, ...) or a client-side one. */
  code: string
  message: string
  /** HTTP status of a refusal before streaming; null for failures during the stream. */
  status: number | null
}

export interface StreamResult {
  outcome: StreamOutcome
  error: StreamFailure | null
  /** The server refused the request before streaming anything (nothing was saved). */
  refused: boolean
  reasoning: string
  content: string
  /** Every `message` event, in order (chat streams: the saved user turn, then the answer). */
  messages: ChatMessage[]
  usage: StreamUsage | null
  metrics: StreamMetrics | null
}

export interface StreamHandlers {
  /** A persisted turn arrived (see ChatStreamEvent `message`). */
  onMessage?: (message: ChatMessage) => void
  /** The first reasoning or content text arrived. */
  onFirstToken?: () => void
}

/** The live answer. `phase`: waiting for the first token, reasoning, or writing the answer. */
export interface StreamTurn {
  reasoning: string
  content: string
  phase: 'waiting' | 'reasoning' | 'answering'
}

export type FrameScheduler = (callback: () => void) => () => void

/** Next animation frame, or a timer when frames do not come (hidden tab): whichever is first. */
export const nextFrame: FrameScheduler = (callback) => {
  let done = false
  const run = () => {
    if (done) return
    done = true
    cancel()
    callback()
  }
  const raf = typeof requestAnimationFrame === 'function' ? requestAnimationFrame(run) : null
  const timer = setTimeout(run, 100)
  function cancel(): void {
    if (raf !== null && typeof cancelAnimationFrame === 'function') cancelAnimationFrame(raf)
    clearTimeout(timer)
  }
  return () => {
    done = true
    cancel()
  }
}

export interface ChatStreamOptions {
  /** How deltas are batched; tests pass a synchronous or manual scheduler. */
  schedule?: FrameScheduler
}

export function useChatStream(options: ChatStreamOptions = {}) {
  const schedule = options.schedule ?? nextFrame
  const turn = reactive<StreamTurn>({ reasoning: '', content: '', phase: 'waiting' })
  const streaming = ref(false)
  const error = shallowRef<StreamFailure | null>(null)
  const metrics = shallowRef<StreamMetrics | null>(null)
  const usage = shallowRef<StreamUsage | null>(null)

  let controller: AbortController | null = null
  /** Bumped by every start(): a stopped run that is still winding down must not touch `turn`. */
  let generation = 0
  let flushScheduled = false
  let cancelFlush: (() => void) | null = null

  function cancelScheduled(): void {
    cancelFlush?.()
    cancelFlush = null
    flushScheduled = false
  }

  function reset(): void {
    cancelScheduled()
    turn.reasoning = ''
    turn.content = ''
    turn.phase = 'waiting'
    error.value = null
    metrics.value = null
    usage.value = null
  }

  /**
   * Run one stream: `open` sends the request (with the given abort signal) and resolves with
   * the SSE response. A stream already running is stopped first.
   */
  async function start(
    open: (signal: AbortSignal) => Promise<Response>,
    handlers: StreamHandlers = {},
  ): Promise<StreamResult> {
    stop()
    reset()
    const run = ++generation
    const current = () => run === generation
    const own = new AbortController()
    controller = own
    streaming.value = true
    const parser = new ThinkParser()
    const messages: ChatMessage[] = []
    let first = true
    let failure: StreamFailure | null = null
    let refused = false
    // This run's whole text, and what has not reached `turn` yet.
    let reasoning = ''
    let content = ''
    let pendingReasoning = ''
    let pendingContent = ''

    const apply = () => {
      if (!current()) return
      cancelFlush = null
      flushScheduled = false
      if (pendingReasoning) turn.reasoning += pendingReasoning
      if (pendingContent) turn.content += pendingContent
      pendingReasoning = ''
      pendingContent = ''
      if (turn.content) turn.phase = 'answering'
      else if (turn.reasoning) turn.phase = 'reasoning'
    }

    const text = (deltas: readonly ThinkDelta[]) => {
      if (deltas.length === 0) return
      if (first) {
        first = false
        handlers.onFirstToken?.()
      }
      for (const delta of deltas) {
        if (delta.kind === 'reasoning') {
          reasoning += delta.text
          pendingReasoning += delta.text
        } else {
          content += delta.text
          pendingContent += delta.text
        }
      }
      if (current() && !flushScheduled) {
        flushScheduled = true
        const cancel = schedule(apply)
        // A scheduler may run the callback at once (tests do): then there is nothing to cancel.
        if (flushScheduled) cancelFlush = cancel
      }
    }

    let outcome: StreamOutcome
    try {
      const response = await open(own.signal)
      outcome = await processSSEResponse<ChatStreamEvent>(
        response,
        {
          onEvent: (event) => {
            switch (event.type) {
              case 'reasoning':
                text([{ kind: 'reasoning', text: event.text }])
                break
              case 'content':
                text(parser.feed(event.text))
                break
              case 'message':
                messages.push(event.message)
                handlers.onMessage?.(event.message)
                break
              case 'usage':
                if (!current()) break
                usage.value = {
                  prompt_tokens: event.prompt_tokens,
                  completion_tokens: event.completion_tokens,
                }
                break
              case 'metrics':
                if (!current()) break
                metrics.value = {
                  ttft_ms: event.ttft_ms,
                  total_ms: event.total_ms,
                  output_tokens: event.output_tokens,
                  tokens_per_s: event.tokens_per_s,
                  finish_reason: event.finish_reason,
                }
                break
              case 'error':
                failure = { code: event.code, message: event.message, status: null }
                break
            }
          },
          onError: (streamError) => {
            failure ??= { code: 'stream_broken', message: streamError.message, status: null }
          },
        },
        own.signal,
      )
    } catch (caught) {
      if (own.signal.aborted) outcome = 'aborted'
      else {
        outcome = 'error'
        if (caught instanceof StreamRequestError) {
          refused = true
          failure = { code: caught.code, message: caught.message, status: caught.status }
        } else if (caught instanceof SessionExpiredError) {
          refused = true
          failure = { code: 'session_expired', message: caught.message, status: 401 }
        } else {
          failure = {
            code: 'network',
            message: caught instanceof Error ? caught.message : String(caught),
            status: null,
          }
        }
      }
    }
    text(parser.flush())
    if (current()) {
      cancelScheduled()
      apply()
    }
    if (controller === own) {
      controller = null
      streaming.value = false
    }
    if (outcome === 'aborted') failure = null
    if (current()) error.value = failure
    return {
      outcome,
      error: failure,
      refused,
      reasoning,
      content,
      messages,
      usage: current() ? usage.value : null,
      metrics: current() ? metrics.value : null,
    }
  }

  /** Abort the running stream, if any; its `start()` then resolves with outcome "aborted". */
  function stop(): void {
    if (!controller) return
    controller.abort()
    controller = null
    streaming.value = false
  }

  if (getCurrentScope()) onScopeDispose(stop)

  return {
    turn: readonly(turn),
    streaming: readonly(streaming),
    error: readonly(error),
    metrics: readonly(metrics),
    usage: readonly(usage),
    start,
    stop,
    reset,
  }
}

export type ChatStream = ReturnType<typeof useChatStream>
