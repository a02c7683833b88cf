import { mount } from '@vue/test-utils'
import { afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest'
import { defineComponent, effectScope, h, nextTick, type PropType } from 'vue'

import type { CompareMetrics, CompareStreamEvent } from '@/api/playground'
import {
  applyEvent,
  columnFromResult,
  createCompareReducer,
  newColumn,
  useCompareStream,
  type ColumnTarget,
  type CompareColumn,
} from '@/composables/useCompareStream'
import { i18n, loadPageMessages } from '@/locales'
import { api } from '@/utils/api'
import { clearSession, setSession } from '@/utils/tokenManager'

import { flush, jsonResponse, makeSession, reply, scriptedAdapter } from './helpers'

const { messageError } = vi.hoisted(() => ({ messageError: vi.fn() }))
vi.mock('element-plus', () => ({ ElMessage: { error: messageError } }))

const TARGETS: ColumnTarget[] = [
  { id: 11, name: 'Plain', model: 'plain' },
  { id: 12, name: 'Broken', model: 'server-error' },
  { id: 13, name: 'Thinker', model: 'reasoning-content' },
]

const METRICS: CompareMetrics = {
  ttft_ms: 40,
  total_ms: 400,
  output_tokens: 12,
  tokens_per_s: 30,
  finish_reason: 'stop',
}

function columns(): CompareColumn[] {
  return TARGETS.map((target, index) => newColumn(index, target))
}

/** A scheduler the test runs by hand: `frame()` runs what was scheduled, like one animation frame. */
function manualFrames() {
  let callbacks: (() => void)[] = []
  const schedule = (callback: () => void) => {
    callbacks.push(callback)
    return () => {
      callbacks = callbacks.filter((c) => c !== callback)
    }
  }
  return {
    schedule,
    pending: () => callbacks.length,
    frame: () => {
      const run = callbacks
      callbacks = []
      run.forEach((callback) => callback())
    },
  }
}

const content = (model_index: number, text: string): CompareStreamEvent => ({
  type: 'content',
  model_index,
  text,
})
const reasoning = (model_index: number, text: string): CompareStreamEvent => ({
  type: 'reasoning',
  model_index,
  text,
})
const metrics = (model_index: number, extra: Partial<CompareMetrics> = {}): CompareStreamEvent => ({
  type: 'metrics',
  model_index,
  ...METRICS,
  ...extra,
})
const failure = (model_index: number): CompareStreamEvent => ({
  type: 'error',
  model_index,
  code: 'provider_error',
  message: 'upstream said 500',
})

function frame(event: CompareStreamEvent | string): string {
  return `data: ${typeof event === 'string' ? event : JSON.stringify(event)}\n\n`
}

/** An SSE response the test feeds frame by frame. */
function controlledStream() {
  const encoder = new TextEncoder()
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
    send: (...events: (CompareStreamEvent | string)[]) =>
      controller.enqueue(encoder.encode(events.map(frame).join(''))),
    close: () => controller.close(),
    wasCancelled: () => cancelled,
  }
}

const REQUEST = {
  model_config_ids: [11, 12, 13],
  messages: [{ role: 'user' as const, content: 'Hello' }],
}

beforeAll(async () => {
  await loadPageMessages('modelTest')
})

describe('applyEvent and the frame reducer', () => {
  it('routes each event to the column of its model_index and ignores unknown indexes', () => {
    const cols = columns()
    applyEvent(cols, content(2, 'Hi'))
    applyEvent(cols, reasoning(0, 'think'))
    expect(applyEvent(cols, content(5, 'lost'))).toBeNull()
    expect(cols.map((c) => [c.content, c.reasoning, c.status])).toEqual([
      ['', 'think', 'streaming'],
      ['', '', 'waiting'],
      ['Hi', '', 'streaming'],
    ])
  })

  it('applies text once per frame, only to the columns that received some', () => {
    const cols = columns()
    const frames = manualFrames()
    const reducer = createCompareReducer(() => cols, frames.schedule)
    reducer.push(content(0, 'Hel'))
    reducer.push(content(0, 'lo'))
    reducer.push(reasoning(2, 'Let me '))
    reducer.push(reasoning(2, 'think'))
    // Nothing is applied before the frame, and four chunks asked for one frame only.
    expect(cols.map((c) => c.content + c.reasoning)).toEqual(['', '', ''])
    expect(frames.pending()).toBe(1)
    frames.frame()
    expect(cols.map((c) => [c.content, c.reasoning])).toEqual([
      ['Hello', ''],
      ['', ''],
      ['', 'Let me think'],
    ])
    expect(cols[1]!.status).toBe('waiting')
    expect(frames.pending()).toBe(0)
  })

  it('keeps order: a metrics event first applies the text buffered for its column', () => {
    const cols = columns()
    const frames = manualFrames()
    const reducer = createCompareReducer(() => cols, frames.schedule)
    reducer.push(content(0, 'All '))
    reducer.push(content(0, 'done'))
    reducer.push(content(2, 'still going'))
    reducer.push(metrics(0, { output_tokens: 2 }))
    expect(cols[0]).toMatchObject({
      content: 'All done',
      status: 'done',
      metrics: { ttft_ms: 40, total_ms: 400, output_tokens: 2, tokens_per_s: 30 },
    })
    // Column 2's text still waits for the frame.
    expect(cols[2]!.content).toBe('')
    frames.frame()
    expect(cols[2]!.content).toBe('still going')
  })

  it('an error in one column leaves the others streaming to their end', () => {
    const cols = columns()
    const frames = manualFrames()
    const reducer = createCompareReducer(() => cols, frames.schedule)
    reducer.push(content(0, 'A1 '))
    reducer.push(reasoning(2, 'R1 '))
    reducer.push(failure(1))
    reducer.push(content(0, 'A2'))
    reducer.push(content(2, 'C1'))
    frames.frame()
    expect(cols.map((c) => c.status)).toEqual(['streaming', 'error', 'streaming'])
    reducer.push(metrics(0))
    reducer.push(metrics(2, { tokens_per_s: null }))
    expect(cols.map((c) => c.status)).toEqual(['done', 'error', 'done'])
    expect(cols[1]).toMatchObject({
      error: { code: 'provider_error', message: 'upstream said 500' },
      metrics: null,
      content: '',
    })
    expect(cols[0]!.content).toBe('A1 A2')
    expect(cols[2]).toMatchObject({ reasoning: 'R1 ', content: 'C1' })
    expect(cols[2]!.metrics?.tokens_per_s).toBeNull()
  })

  it('a result becomes a finished column; one with an error is an error column', () => {
    const ok = columnFromResult(0, {
      model_config_id: 1,
      config_name: 'A',
      model: 'plain',
      content: 'hi',
      reasoning: '',
      error: null,
      metrics: METRICS,
    })
    const bad = columnFromResult(1, {
      model_config_id: null,
      config_name: 'B',
      model: 'x',
      content: '',
      reasoning: '',
      error: { code: 'provider_error', message: 'no' },
      metrics: null,
    })
    expect(ok).toMatchObject({ status: 'done', content: 'hi', metrics: METRICS })
    expect(bad).toMatchObject({ status: 'error', error: { code: 'provider_error' } })
  })
})

describe('useCompareStream', () => {
  const fetchMock = vi.fn<typeof fetch>()

  beforeEach(() => {
    setSession(makeSession('token-1'))
    vi.stubGlobal('fetch', fetchMock)
  })

  afterEach(() => {
    fetchMock.mockReset()
    vi.unstubAllGlobals()
    clearSession()
  })

  function setup() {
    const frames = manualFrames()
    const scope = effectScope()
    const stream = scope.run(() => useCompareStream({ schedule: frames.schedule }))!
    return { stream, frames, scope }
  }

  it('streams three columns: two answer, one fails, and [DONE] ends the run', async () => {
    const sse = controlledStream()
    fetchMock.mockResolvedValueOnce(sse.response)
    const { stream, frames } = setup()
    const run = stream.run(REQUEST, TARGETS, 'stream')
    await flush()

    const [url, init] = fetchMock.mock.calls[0]!
    expect(url).toBe('/api/playground/compare/stream')
    expect(init?.method).toBe('POST')
    expect(new Headers(init?.headers).get('Authorization')).toBe('Bearer token-1')
    expect(JSON.parse(String(init?.body))).toEqual(REQUEST)
    expect(stream.running.value).toBe(true)
    expect(stream.columns.value.map((c) => [c.configName, c.status])).toEqual([
      ['Plain', 'waiting'],
      ['Broken', 'waiting'],
      ['Thinker', 'waiting'],
    ])

    sse.send(content(0, 'Hello '), reasoning(2, 'Hmm'), failure(1))
    await flush()
    frames.frame()
    expect(stream.columns.value.map((c) => c.status)).toEqual(['streaming', 'error', 'streaming'])
    sse.send(content(0, 'world'), metrics(0), content(2, '42'), metrics(2), '[DONE]')
    sse.close()

    await expect(run).resolves.toBe('done')
    expect(stream.running.value).toBe(false)
    expect(stream.requestError.value).toBeNull()
    const [plain, broken, thinker] = stream.columns.value
    expect(plain).toMatchObject({ content: 'Hello world', status: 'done', metrics: METRICS })
    expect(broken).toMatchObject({ status: 'error', error: { code: 'provider_error' } })
    expect(thinker).toMatchObject({ reasoning: 'Hmm', content: '42', status: 'done' })
  })

  it('a stream that breaks off marks the unfinished columns as failed, not the finished ones', async () => {
    const sse = controlledStream()
    fetchMock.mockResolvedValueOnce(sse.response)
    const { stream } = setup()
    const run = stream.run(REQUEST, TARGETS)
    await flush()
    sse.send(content(0, 'Done'), metrics(0), content(1, 'half'))
    sse.close() // no [DONE]
    await expect(run).resolves.toBe('done')
    expect(stream.columns.value.map((c) => c.status)).toEqual(['done', 'error', 'error'])
    expect(stream.columns.value[1]).toMatchObject({
      content: 'half',
      error: { code: 'stream_broken', message: i18n.global.t('modelTest.errors.streamBroken') },
    })
  })

  it('stop() aborts the request and keeps what arrived, unfinished columns read stopped', async () => {
    const sse = controlledStream()
    fetchMock.mockResolvedValueOnce(sse.response)
    const { stream } = setup()
    const run = stream.run(REQUEST, TARGETS)
    await flush()
    sse.send(content(0, 'partial'), failure(1))
    await flush()
    stream.stop()
    await expect(run).resolves.toBe('stopped')
    expect((fetchMock.mock.calls[0]![1]?.signal as AbortSignal).aborted).toBe(true)
    expect(sse.wasCancelled()).toBe(true)
    expect(stream.running.value).toBe(false)
    expect(stream.columns.value.map((c) => [c.status, c.content])).toEqual([
      ['stopped', 'partial'],
      ['error', ''],
      ['stopped', ''],
    ])
  })

  it('a refused request (JSON error) shows one error and no columns', async () => {
    fetchMock.mockResolvedValueOnce(
      jsonResponse({ detail: 'Config 12 is not usable', code: 'model_unavailable' }, 409),
    )
    const { stream } = setup()
    await expect(stream.run(REQUEST, TARGETS)).resolves.toBe('failed')
    expect(stream.columns.value).toEqual([])
    expect(stream.requestError.value?.code).toBe('model_unavailable')
    expect(stream.requestError.value?.message).toBeTruthy()
  })

  it('retries once with a refreshed token on 401', async () => {
    const sse = controlledStream()
    fetchMock
      .mockResolvedValueOnce(jsonResponse({ detail: 'expired', code: 'invalid_token' }, 401))
      .mockResolvedValueOnce(jsonResponse(makeSession('token-2')))
      .mockResolvedValueOnce(sse.response)
    const { stream } = setup()
    const run = stream.run(REQUEST, TARGETS)
    await flush()
    await flush()
    sse.send(metrics(0), metrics(1), metrics(2), '[DONE]')
    sse.close()
    await expect(run).resolves.toBe('done')
    const third = fetchMock.mock.calls[2]!
    expect(third[0]).toBe('/api/playground/compare/stream')
    expect(new Headers(third[1]?.headers).get('Authorization')).toBe('Bearer token-2')
  })

  it('a new run replaces the columns and drops text buffered for the old ones', async () => {
    const first = controlledStream()
    const second = controlledStream()
    fetchMock.mockResolvedValueOnce(first.response).mockResolvedValueOnce(second.response)
    const { stream, frames } = setup()
    const run1 = stream.run(REQUEST, TARGETS)
    await flush()
    first.send(content(0, 'old text'))
    await flush()
    const run2 = stream.run(REQUEST, TARGETS.slice(0, 1))
    await expect(run1).resolves.toBe('stopped')
    // The old run's end did not mark the new run's column as stopped.
    expect(stream.columns.value.map((c) => c.status)).toEqual(['waiting'])
    frames.frame()
    expect(stream.running.value).toBe(true)
    expect(stream.columns.value).toHaveLength(1)
    expect(stream.columns.value[0]!.content).toBe('')
    await flush()
    second.send(content(0, 'new'), metrics(0), '[DONE]')
    second.close()
    await expect(run2).resolves.toBe('done')
    expect(stream.columns.value[0]!.content).toBe('new')
    expect(stream.running.value).toBe(false)
  })

  it('showing saved results during a run ends the run without touching them', async () => {
    const sse = controlledStream()
    fetchMock.mockResolvedValueOnce(sse.response)
    const { stream } = setup()
    const run = stream.run(REQUEST, TARGETS)
    await flush()
    stream.show([
      {
        model_config_id: null,
        config_name: 'Saved',
        model: 'm',
        content: 'kept',
        reasoning: '',
        error: null,
        metrics: METRICS,
      },
    ])
    await expect(run).resolves.toBe('stopped')
    expect(sse.wasCancelled()).toBe(true)
    expect(stream.running.value).toBe(false)
    expect(stream.columns.value.map((c) => [c.configName, c.status, c.content])).toEqual([
      ['Saved', 'done', 'kept'],
    ])
  })

  it('disposing the scope (leaving the page) aborts the stream', async () => {
    const sse = controlledStream()
    fetchMock.mockResolvedValueOnce(sse.response)
    const { stream, scope } = setup()
    const run = stream.run(REQUEST, TARGETS)
    await flush()
    scope.stop()
    await expect(run).resolves.toBe('stopped')
    expect(sse.wasCancelled()).toBe(true)
  })

  describe('normal mode', () => {
    const originalAdapter = api.defaults.adapter
    afterEach(() => {
      api.defaults.adapter = originalAdapter
    })

    it('posts to /playground/compare and fills every column from the results', async () => {
      const { adapter, requests } = scriptedAdapter((config) =>
        reply(config, 200, {
          results: [
            {
              model_index: 1,
              model_config_id: 12,
              config_name: 'Broken',
              model: 'server-error',
              content: '',
              reasoning: '',
              error: { code: 'provider_error', message: 'boom' },
              metrics: null,
            },
            {
              model_index: 0,
              model_config_id: 11,
              config_name: 'Plain',
              model: 'plain',
              content: 'Hi',
              reasoning: 'r',
              error: null,
              metrics: METRICS,
            },
          ],
        }),
      )
      api.defaults.adapter = adapter
      const { stream } = setup()
      await expect(stream.run(REQUEST, TARGETS.slice(0, 2), 'normal')).resolves.toBe('done')
      expect(requests[0]).toMatchObject({
        method: 'POST',
        url: '/playground/compare',
        data: REQUEST,
      })
      expect(stream.columns.value.map((c) => [c.status, c.content, c.reasoning])).toEqual([
        ['done', 'Hi', 'r'],
        ['error', '', ''],
      ])
      expect(fetchMock).not.toHaveBeenCalled()
    })

    it('a refused request becomes the run error, without a popup', async () => {
      const { adapter } = scriptedAdapter((config) =>
        reply(config, 422, { detail: 'no vision', code: 'vision_unsupported' }),
      )
      api.defaults.adapter = adapter
      const { stream } = setup()
      await expect(stream.run(REQUEST, TARGETS, 'normal')).resolves.toBe('failed')
      expect(stream.requestError.value).toMatchObject({ code: 'vision_unsupported' })
      expect(messageError).not.toHaveBeenCalled()
    })
  })
})

// Two tiny components: a host that owns the columns and a column that counts its renders.
/* eslint-disable vue/one-component-per-file */
describe('rendering', () => {
  it('a chunk re-renders only the column that received it', async () => {
    const renders = [0, 0, 0]
    const Column = defineComponent({
      props: { column: { type: Object as PropType<CompareColumn>, required: true } },
      setup(props) {
        return () => {
          renders[props.column.index]!++
          return h('div', `${props.column.reasoning}|${props.column.content}`)
        }
      },
    })
    const frames = manualFrames()
    let stream!: ReturnType<typeof useCompareStream>
    const Host = defineComponent({
      setup() {
        stream = useCompareStream({ schedule: frames.schedule })
        return () =>
          h(
            'div',
            stream.columns.value.map((column) => h(Column, { key: column.index, column })),
          )
      },
    })
    const sse = controlledStream()
    vi.stubGlobal('fetch', vi.fn().mockResolvedValueOnce(sse.response))
    setSession(makeSession('t'))
    const wrapper = mount(Host)
    const run = stream.run(REQUEST, TARGETS)
    await flush()
    await nextTick()
    const before = [...renders]

    sse.send(content(1, 'a'), content(1, 'b'), content(1, 'c'))
    await flush()
    frames.frame()
    await nextTick()
    expect(renders[0]).toBe(before[0])
    expect(renders[2]).toBe(before[2])
    // Three chunks in one frame: one render.
    expect(renders[1]).toBe(before[1]! + 1)
    expect(wrapper.text()).toContain('|abc')

    sse.send('[DONE]')
    sse.close()
    await run
    wrapper.unmount()
    vi.unstubAllGlobals()
    clearSession()
  })
})
