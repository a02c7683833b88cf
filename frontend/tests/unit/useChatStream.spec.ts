import { describe, expect, it, vi } from 'vitest'
import { effectScope } from 'vue'

import { StreamRequestError } from '@/api/chat'
import { nextFrame, useChatStream, type FrameScheduler } from '@/composables/useChatStream'
import { SessionExpiredError } from '@/utils/tokenManager'

import { frame, makeMessage, sseResponse, sseStream } from './chatFixtures'
import { flush } from './helpers'

/** A scheduler the test runs by hand: `run()` is "the next animation frame". */
function manualFrames(): { schedule: FrameScheduler; run: () => void; scheduled: () => number } {
  let queue: (() => void)[] = []
  let count = 0
  return {
    schedule: (callback) => {
      count++
      queue.push(callback)
      return () => (queue = queue.filter((c) => c !== callback))
    },
    run: () => {
      const callbacks = queue
      queue = []
      for (const callback of callbacks) callback()
    },
    scheduled: () => count,
  }
}

const METRICS = {
  type: 'metrics',
  ttft_ms: 12,
  total_ms: 90,
  output_tokens: 4,
  tokens_per_s: 44.4,
  finish_reason: 'stop',
} as const

describe('useChatStream', () => {
  it('streams reasoning and content, the saved turns and the metrics', async () => {
    const stream = useChatStream({ schedule: (cb) => (cb(), () => undefined) })
    const user = makeMessage({ role: 'user', content: 'hi' })
    const answer = makeMessage({ content: 'Hello there', reasoning: 'Greet back.' })
    const onMessage = vi.fn()
    const onFirstToken = vi.fn()
    const open = vi.fn(async () =>
      sseResponse([
        frame({ type: 'message', message: user }),
        frame({ type: 'reasoning', text: 'Greet ' }),
        frame({ type: 'reasoning', text: 'back.' }),
        frame({ type: 'content', text: 'Hello ' }),
        frame({ type: 'content', text: 'there' }),
        frame({ type: 'message', message: answer }),
        frame({ type: 'usage', prompt_tokens: 3, completion_tokens: 4 }),
        frame(METRICS),
        frame('[DONE]'),
      ]),
    )
    const result = await stream.start(open, { onMessage, onFirstToken })
    expect(open).toHaveBeenCalledWith(expect.any(AbortSignal))
    expect(result).toMatchObject({
      outcome: 'done',
      error: null,
      refused: false,
      reasoning: 'Greet back.',
      content: 'Hello there',
      messages: [user, answer],
      usage: { prompt_tokens: 3, completion_tokens: 4 },
      metrics: { ttft_ms: 12, total_ms: 90, tokens_per_s: 44.4, finish_reason: 'stop' },
    })
    expect(onMessage.mock.calls.map(([m]) => m.id)).toEqual([user.id, answer.id])
    expect(onFirstToken).toHaveBeenCalledTimes(1)
    expect(stream.turn).toMatchObject({
      reasoning: 'Greet back.',
      content: 'Hello there',
      phase: 'answering',
    })
    expect(stream.streaming.value).toBe(false)
    expect(stream.metrics.value?.total_ms).toBe(90)
  })

  it('applies deltas once per frame, not once per chunk', async () => {
    const frames = manualFrames()
    const stream = useChatStream({ schedule: frames.schedule })
    const sse = sseStream()
    const done = stream.start(async () => sse.response)
    await flush()
    expect(stream.streaming.value).toBe(true)
    expect(stream.turn.phase).toBe('waiting')

    for (let i = 0; i < 50; i++) sse.push(frame({ type: 'content', text: `t${i} ` }))
    await flush()
    // Fifty chunks arrived, one frame is scheduled, and nothing is shown before it runs.
    expect(frames.scheduled()).toBe(1)
    expect(stream.turn.content).toBe('')
    frames.run()
    expect(stream.turn.content.split(' ').filter(Boolean)).toHaveLength(50)
    expect(stream.turn.phase).toBe('answering')

    sse.push(frame({ type: 'reasoning', text: 'late thought' }))
    await flush()
    expect(frames.scheduled()).toBe(2)
    sse.push(frame('[DONE]'))
    const result = await done
    // The end applies whatever is pending without waiting for a frame.
    expect(stream.turn.reasoning).toBe('late thought')
    expect(result.content).toBe(stream.turn.content)
  })

  it('moves an inline <think> block into reasoning, however the tags are cut', async () => {
    const stream = useChatStream({ schedule: (cb) => (cb(), () => undefined) })
    const text = '<think>\nThe user greets me.\n</think>\n\nHello!'
    const pieces = text.match(/.{1,3}/gs) ?? []
    const result = await stream.start(async () =>
      sseResponse([
        ...pieces.map((piece) => frame({ type: 'content', text: piece })),
        frame('[DONE]'),
      ]),
    )
    expect(result).toMatchObject({ reasoning: 'The user greets me.', content: 'Hello!' })
    expect(stream.turn).toMatchObject({ reasoning: 'The user greets me.', content: 'Hello!' })
  })

  it('reports an error event with the partial text', async () => {
    const stream = useChatStream({ schedule: (cb) => (cb(), () => undefined) })
    const failed = makeMessage({ content: 'Hel', status: 'error', error: 'upstream broke' })
    const result = await stream.start(async () =>
      sseResponse([
        frame({ type: 'content', text: 'Hel' }),
        frame({ type: 'message', message: failed }),
        frame({ type: 'error', code: 'provider_error', message: 'upstream broke' }),
        frame('[ERROR]'),
      ]),
    )
    expect(result).toMatchObject({
      outcome: 'error',
      refused: false,
      content: 'Hel',
      error: { code: 'provider_error', message: 'upstream broke', status: null },
      messages: [failed],
    })
    expect(stream.error.value?.code).toBe('provider_error')
  })

  it('calls a stream that ends without [DONE] broken', async () => {
    const stream = useChatStream({ schedule: (cb) => (cb(), () => undefined) })
    const result = await stream.start(async () =>
      sseResponse([frame({ type: 'content', text: 'Hi' })]),
    )
    expect(result).toMatchObject({ outcome: 'error', content: 'Hi', refused: false })
    expect(result.error?.code).toBe('stream_broken')
  })

  it('reports a refusal before streaming with the server code and status', async () => {
    const stream = useChatStream()
    const result = await stream.start(async () => {
      throw new StreamRequestError(409, 'model_required', 'Choose a model first')
    })
    expect(result).toMatchObject({
      outcome: 'error',
      refused: true,
      error: { code: 'model_required', message: 'Choose a model first', status: 409 },
      content: '',
    })
    expect(stream.streaming.value).toBe(false)

    const expired = await stream.start(async () => {
      throw new SessionExpiredError()
    })
    expect(expired).toMatchObject({ refused: true, error: { code: 'session_expired' } })

    const offline = await stream.start(async () => {
      throw new TypeError('Failed to fetch')
    })
    expect(offline).toMatchObject({
      refused: false,
      error: { code: 'network', message: 'Failed to fetch' },
    })
  })

  it('stop() aborts mid-stream, hangs up and keeps the partial answer', async () => {
    const stream = useChatStream({ schedule: (cb) => (cb(), () => undefined) })
    const sse = sseStream()
    let signal: AbortSignal | undefined
    const done = stream.start(async (s) => {
      signal = s
      return sse.response
    })
    sse.push(frame({ type: 'reasoning', text: 'Thinking' }))
    sse.push(frame({ type: 'content', text: 'Partial ans' }))
    await vi.waitFor(() => expect(stream.turn.content).toBe('Partial ans'))
    stream.stop()
    expect(stream.streaming.value).toBe(false)
    const result = await done
    expect(signal?.aborted).toBe(true)
    expect(sse.cancelled()).toBe(true)
    expect(result).toMatchObject({
      outcome: 'aborted',
      error: null,
      reasoning: 'Thinking',
      content: 'Partial ans',
    })
  })

  it('stop() before the response arrives ends as aborted', async () => {
    const stream = useChatStream()
    const done = stream.start(
      (signal) =>
        new Promise<Response>((_, reject) =>
          signal.addEventListener('abort', () => reject(new DOMException('aborted', 'AbortError'))),
        ),
    )
    stream.stop()
    expect(await done).toMatchObject({ outcome: 'aborted', error: null, refused: false })
  })

  it('a new start() stops the old stream, which no longer writes to the turn', async () => {
    const frames = manualFrames()
    const stream = useChatStream({ schedule: frames.schedule })
    const first = sseStream()
    const firstDone = stream.start(async () => first.response)
    first.push(frame({ type: 'content', text: 'old ' }))
    await flush()

    const second = sseStream()
    const secondDone = stream.start(async () => second.response)
    expect(first.cancelled()).toBe(true)
    expect((await firstDone).outcome).toBe('aborted')
    second.push(frame({ type: 'content', text: 'new' }))
    await flush()
    frames.run()
    expect(stream.turn.content).toBe('new')
    expect(stream.streaming.value).toBe(true)
    second.push(frame('[DONE]'))
    expect(await secondDone).toMatchObject({ outcome: 'done', content: 'new' })
    expect(stream.turn.content).toBe('new')
  })

  it('stops when its effect scope is disposed (the page unmounts)', async () => {
    const scope = effectScope()
    const stream = scope.run(() => useChatStream())!
    const sse = sseStream()
    const done = stream.start(async () => sse.response)
    await flush()
    scope.stop()
    expect((await done).outcome).toBe('aborted')
    expect(sse.cancelled()).toBe(true)
  })

  it('nextFrame runs once, on a frame or on the fallback timer, and can be cancelled', async () => {
    vi.useFakeTimers()
    try {
      const callback = vi.fn()
      nextFrame(callback)
      vi.advanceTimersByTime(150)
      expect(callback).toHaveBeenCalledTimes(1)
      const cancelled = vi.fn()
      const cancel = nextFrame(cancelled)
      cancel()
      vi.advanceTimersByTime(150)
      expect(cancelled).not.toHaveBeenCalled()
    } finally {
      vi.useRealTimers()
    }
  })
})
