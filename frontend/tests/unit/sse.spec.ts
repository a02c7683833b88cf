import { describe, expect, it, vi } from 'vitest'

import { processSSEResponse, type SSEHandlers } from '@/utils/tokenManager'

const encoder = new TextEncoder()

type Chunk = string | Uint8Array

function bytes(chunk: Chunk): Uint8Array {
  return typeof chunk === 'string' ? encoder.encode(chunk) : chunk
}

/** A response whose body hands out exactly these chunks, one per read. */
function sseResponse(chunks: Chunk[]): Response {
  const queue = chunks.map(bytes)
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      const next = queue.shift()
      if (next) controller.enqueue(next)
      else controller.close()
    },
  })
  return new Response(body, { headers: { 'Content-Type': 'text/event-stream' } })
}

/** A response whose chunks the test pushes by hand. */
function controlledResponse() {
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
    response: new Response(body),
    push: (chunk: Chunk) => controller.enqueue(bytes(chunk)),
    close: () => controller.close(),
    fail: (error: Error) => controller.error(error),
    wasCancelled: () => cancelled,
  }
}

/** Split a string's UTF-8 bytes at the given byte offsets. */
function splitBytes(text: string, ...offsets: number[]): Uint8Array[] {
  const all = encoder.encode(text)
  const cuts = [0, ...offsets, all.length]
  return cuts.slice(1).map((end, i) => all.slice(cuts[i], end))
}

function recorder<T = unknown>() {
  const events: T[] = []
  const onDone = vi.fn()
  const onError = vi.fn<(error: Error) => void>()
  const handlers: SSEHandlers<T> = { onEvent: (event) => events.push(event), onDone, onError }
  return { events, onDone, onError, handlers }
}

describe('processSSEResponse', () => {
  it('reads whole frames and ends on [DONE]', async () => {
    const r = recorder()
    const outcome = await processSSEResponse(
      sseResponse([
        'data: {"type":"content","text":"a"}\n\n',
        'data: {"type":"content","text":"b"}\n\ndata: [DONE]\n\n',
      ]),
      r.handlers,
    )
    expect(outcome).toBe('done')
    expect(r.events).toEqual([
      { type: 'content', text: 'a' },
      { type: 'content', text: 'b' },
    ])
    expect(r.onDone).toHaveBeenCalledTimes(1)
    expect(r.onError).not.toHaveBeenCalled()
  })

  it('joins frames split mid-line and inside the "data:" prefix', async () => {
    const r = recorder()
    const outcome = await processSSEResponse(
      sseResponse([
        'da',
        'ta: {"type":"con',
        'tent","text":"hel',
        'lo"}',
        '\n',
        '\nd',
        'ata',
        ':',
        ' {"n":2}\n\nda',
        'ta: [DO',
        'NE]\n',
        '\n',
      ]),
      r.handlers,
    )
    expect(outcome).toBe('done')
    expect(r.events).toEqual([{ type: 'content', text: 'hello' }, { n: 2 }])
  })

  it('delivers one event per frame, not per chunk or per line', async () => {
    const r = recorder()
    await processSSEResponse(
      sseResponse(['data: {"i":1}\n\ndata: {"i":2}\n\ndata: {"i":3}\n', '\ndata: [DONE]\n\n']),
      r.handlers,
    )
    expect(r.events).toEqual([{ i: 1 }, { i: 2 }, { i: 3 }])
  })

  it('keeps a multi-byte character split across chunks', async () => {
    const r = recorder<{ text: string }>()
    const text = 'data: {"text":"思考🙂"}\n\ndata: [DONE]\n\n'
    const start = encoder.encode('data: {"text":"').length
    // Cut after the first byte of 思 (3 bytes) and in the middle of 🙂 (4 bytes).
    const chunks = splitBytes(text, start + 1, start + 3 + 3 + 2)
    expect(chunks).toHaveLength(3)
    const outcome = await processSSEResponse(sseResponse(chunks), r.handlers)
    expect(outcome).toBe('done')
    expect(r.events).toEqual([{ text: '思考🙂' }])
    expect(r.events[0].text).not.toContain('\uFFFD')
  })

  it('decodes a stream delivered one byte at a time', async () => {
    const r = recorder<{ text: string }>()
    const all = encoder.encode('data: {"text":"模型训练 ✓"}\r\n\r\ndata: [DONE]\r\n\r\n')
    const chunks = Array.from(all, (byte) => Uint8Array.of(byte))
    const outcome = await processSSEResponse(sseResponse(chunks), r.handlers)
    expect(outcome).toBe('done')
    expect(r.events).toEqual([{ text: '模型训练 ✓' }])
  })

  it('accepts CRLF and CR line endings, also with CR and LF in different chunks', async () => {
    const r = recorder()
    const outcome = await processSSEResponse(
      sseResponse([
        // A two-line frame whose CRLF is split: a lone CR must not end the frame early.
        'data: {"a":\r',
        '\ndata: 1}\r\n\r',
        '\n',
        'data: {"b":2}\r\rdata: {"c":3}\n\n',
        'data: [DONE]\r\n\r\n',
      ]),
      r.handlers,
    )
    expect(outcome).toBe('done')
    expect(r.events).toEqual([{ a: 1 }, { b: 2 }, { c: 3 }])
    expect(r.onError).not.toHaveBeenCalled()
  })

  it('ignores comments, keep-alives and other fields', async () => {
    const r = recorder()
    const outcome = await processSSEResponse(
      sseResponse([
        ': keep-alive\n\n',
        ':\n\n',
        'event: message\nid: 7\nretry: 1000\n',
        'data: {"ok":true}\n\n',
        ': ping\n\n',
        'data: [DONE]\n\n',
      ]),
      r.handlers,
    )
    expect(outcome).toBe('done')
    expect(r.events).toEqual([{ ok: true }])
  })

  it('joins multi-line data with \\n', async () => {
    const r = recorder()
    const outcome = await processSSEResponse(
      sseResponse(['data: {"x":\ndata: 1,\n', 'data:"y": [2,\ndata:  3]}\n\ndata: [DONE]\n\n']),
      r.handlers,
    )
    expect(outcome).toBe('done')
    // The data lines of a frame form one payload (a space after "data:" is dropped, once).
    expect(r.onError).not.toHaveBeenCalled()
    expect(r.events).toEqual([{ x: 1, y: [2, 3] }])
  })

  it('shows the \\n that joins data lines', async () => {
    // JSON forbids a raw newline inside a string, so the join is visible in the malformed report.
    const r = recorder()
    const outcome = await processSSEResponse(sseResponse(['data: "a\ndata: b"\n\n']), r.handlers)
    expect(outcome).toBe('error')
    expect(r.onError).toHaveBeenCalledTimes(1)
    expect(r.onError.mock.calls[0][0].message).toBe('Malformed event: "a\nb"')
  })

  it('delivers nothing after [DONE]', async () => {
    const r = recorder()
    const outcome = await processSSEResponse(
      sseResponse(['data: {"i":1}\n\ndata: [DONE]\n\ndata: {"i":2}\n\n', 'data: {"i":3}\n\n']),
      r.handlers,
    )
    expect(outcome).toBe('done')
    expect(r.events).toEqual([{ i: 1 }])
    expect(r.onDone).toHaveBeenCalledTimes(1)
    expect(r.onError).not.toHaveBeenCalled()
  })

  it('cancels the body once [DONE] arrives', async () => {
    const stream = controlledResponse()
    const r = recorder()
    const outcome = processSSEResponse(stream.response, r.handlers)
    stream.push('data: [DONE]\n\n')
    expect(await outcome).toBe('done')
    expect(stream.wasCancelled()).toBe(true)
  })

  it('reports the error event message on [ERROR]', async () => {
    const r = recorder()
    const outcome = await processSSEResponse(
      sseResponse([
        'data: {"type":"content","text":"partial"}\n\n',
        'data: {"type":"error","message":"boom"}\n\n',
        'data: [ERROR]\n\n',
        'data: {"type":"content","text":"late"}\n\n',
      ]),
      r.handlers,
    )
    expect(outcome).toBe('error')
    expect(r.onDone).not.toHaveBeenCalled()
    expect(r.onError).toHaveBeenCalledTimes(1)
    expect(r.onError.mock.calls[0][0]).toBeInstanceOf(Error)
    expect(r.onError.mock.calls[0][0].message).toBe('boom')
    // The error event itself reaches onEvent too; nothing after [ERROR] does.
    expect(r.events).toEqual([
      { type: 'content', text: 'partial' },
      { type: 'error', message: 'boom' },
    ])
  })

  it('reports a generic error for [ERROR] without an error event', async () => {
    const r = recorder()
    const outcome = await processSSEResponse(sseResponse(['data: [ERROR]\n\n']), r.handlers)
    expect(outcome).toBe('error')
    expect(r.onError).toHaveBeenCalledTimes(1)
    expect(r.onError.mock.calls[0][0].message).toBe('Stream reported an error')
  })

  it('treats a stream that ends without [DONE] as an error', async () => {
    const r = recorder()
    const outcome = await processSSEResponse(
      sseResponse(['data: {"type":"content","text":"cut"}\n\n']),
      r.handlers,
    )
    expect(outcome).toBe('error')
    expect(r.events).toEqual([{ type: 'content', text: 'cut' }])
    expect(r.onDone).not.toHaveBeenCalled()
    expect(r.onError).toHaveBeenCalledTimes(1)
    expect(r.onError.mock.calls[0][0].message).toBe('Stream ended before [DONE]')
  })

  it('accepts a final [DONE] frame without its blank line', async () => {
    const r = recorder()
    const outcome = await processSSEResponse(
      sseResponse(['data: {"i":1}\n\n', 'data: [DONE]']),
      r.handlers,
    )
    expect(outcome).toBe('done')
    expect(r.onDone).toHaveBeenCalledTimes(1)
  })

  it('reports a body that fails mid-stream', async () => {
    const stream = controlledResponse()
    const r = recorder()
    const outcome = processSSEResponse(stream.response, r.handlers)
    stream.push('data: {"i":1}\n\n')
    await vi.waitFor(() => expect(r.events).toHaveLength(1))
    stream.fail(new Error('connection reset'))
    expect(await outcome).toBe('error')
    expect(r.onError).toHaveBeenCalledTimes(1)
    expect(r.onError.mock.calls[0][0].message).toBe('connection reset')
    expect(r.onDone).not.toHaveBeenCalled()
  })

  it('reports a response without a body', async () => {
    const r = recorder()
    const outcome = await processSSEResponse(new Response(null), r.handlers)
    expect(outcome).toBe('error')
    expect(r.onError).toHaveBeenCalledTimes(1)
  })

  it('stops with "aborted" when the signal fires mid-stream', async () => {
    const stream = controlledResponse()
    const controller = new AbortController()
    const r = recorder()
    const outcome = processSSEResponse(stream.response, r.handlers, controller.signal)
    stream.push('data: {"i":1}\n\n')
    await vi.waitFor(() => expect(r.events).toHaveLength(1))

    controller.abort()
    expect(await outcome).toBe('aborted')
    expect(stream.wasCancelled()).toBe(true)
    // Whatever the server would still have sent is not read.
    expect(() => stream.push('data: {"i":2}\n\ndata: [DONE]\n\n')).toThrow()
    expect(r.events).toEqual([{ i: 1 }])
    expect(r.onDone).not.toHaveBeenCalled()
    expect(r.onError).not.toHaveBeenCalled()
  })

  // An abort that lands between a frame's data line and its blank line delivers nothing more.
  it('delivers no event after an abort, even for a frame missing its blank line', async () => {
    const stream = controlledResponse()
    const controller = new AbortController()
    const r = recorder()
    const outcome = processSSEResponse(stream.response, r.handlers, controller.signal)
    stream.push('data: {"i":1}\n\ndata: {"i":2}\n')
    await vi.waitFor(() => expect(r.events).toHaveLength(1))
    await new Promise((resolve) => setTimeout(resolve, 10))
    controller.abort()
    expect(await outcome).toBe('aborted')
    expect(r.events).toEqual([{ i: 1 }])
  })

  it('says "aborted", not "done", when the abort beats the blank line after [DONE]', async () => {
    const stream = controlledResponse()
    const controller = new AbortController()
    const r = recorder()
    const outcome = processSSEResponse(stream.response, r.handlers, controller.signal)
    stream.push('data: [DONE]\n')
    await new Promise((resolve) => setTimeout(resolve, 10))
    controller.abort()
    expect(await outcome).toBe('aborted')
    expect(r.onDone).not.toHaveBeenCalled()
  })

  it('returns "aborted" at once for a signal that has already fired', async () => {
    const controller = new AbortController()
    controller.abort()
    const r = recorder()
    const outcome = await processSSEResponse(
      sseResponse(['data: {"i":1}\n\ndata: [DONE]\n\n']),
      r.handlers,
      controller.signal,
    )
    expect(outcome).toBe('aborted')
    expect(r.events).toEqual([])
    expect(r.onDone).not.toHaveBeenCalled()
  })

  it('skips a malformed frame, keeps reading, and reports it if the stream then fails', async () => {
    const r = recorder()
    const outcome = await processSSEResponse(
      sseResponse(['data: {"i":1}\n\n', 'data: {not json\n\n', 'data: {"i":2}\n\n']),
      r.handlers,
    )
    expect(r.events).toEqual([{ i: 1 }, { i: 2 }])
    expect(outcome).toBe('error')
    expect(r.onError).toHaveBeenCalledTimes(1)
    expect(r.onError.mock.calls[0][0].message).toBe('Malformed event: {not json')
  })

  it('does not report a malformed frame when the stream still ends with [DONE]', async () => {
    const r = recorder()
    const outcome = await processSSEResponse(
      sseResponse(['data: {not json\n\n', 'data: {"i":2}\n\ndata: [DONE]\n\n']),
      r.handlers,
    )
    expect(outcome).toBe('done')
    expect(r.events).toEqual([{ i: 2 }])
    expect(r.onDone).toHaveBeenCalledTimes(1)
    expect(r.onError).not.toHaveBeenCalled()
  })

  it('prefers the error event over an earlier malformed frame on [ERROR]', async () => {
    const r = recorder()
    await processSSEResponse(
      sseResponse([
        'data: {oops\n\n',
        'data: {"type":"error","message":"boom"}\n\ndata: [ERROR]\n\n',
      ]),
      r.handlers,
    )
    expect(r.onError.mock.calls[0][0].message).toBe('boom')
  })
})
