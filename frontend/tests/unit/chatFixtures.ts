/** Fixtures for the chat specs: messages, sessions and SSE responses fed piece by piece. */
import type { ChatMessage, ChatSession, ChatStreamEvent } from '@/api/chat'

let nextId = 1000

export function makeMessage(overrides: Partial<ChatMessage> = {}): ChatMessage {
  return {
    id: overrides.id ?? nextId++,
    session_id: 1,
    role: 'assistant',
    content: 'Hello',
    reasoning: null,
    status: 'complete',
    error: null,
    image_ids: [],
    model_config_id: 5,
    model: 'mock',
    prompt_tokens: null,
    completion_tokens: null,
    latency_ms: null,
    ttft_ms: null,
    finish_reason: 'stop',
    created_at: '2025-01-01T00:00:00Z',
    ...overrides,
  }
}

export function makeChatSession(overrides: Partial<ChatSession> = {}): ChatSession {
  return {
    id: overrides.id ?? nextId++,
    title: 'A chat',
    model_config_id: 5,
    system_prompt_id: null,
    message_count: 0,
    last_message_preview: '',
    created_at: '2025-01-01T00:00:00Z',
    updated_at: '2025-01-01T00:00:00Z',
    ...overrides,
  }
}

export const frame = (event: ChatStreamEvent | '[DONE]' | '[ERROR]'): string =>
  `data: ${typeof event === 'string' ? event : JSON.stringify(event)}\n\n`

/**
 * An SSE response whose body the test feeds: `push()` sends text, `end()` closes it. Until
 * `end()`, the stream stays open, like a slow provider. `cancelled` tells whether the reader
 * hung up (what an abort does).
 */
export function sseStream(): {
  response: Response
  push: (text: string) => void
  end: () => void
  cancelled: () => boolean
} {
  const encoder = new TextEncoder()
  let controller!: ReadableStreamDefaultController<Uint8Array>
  let cancelled = false
  let closed = false
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
    push: (text) => {
      if (!closed && !cancelled) controller.enqueue(encoder.encode(text))
    },
    end: () => {
      if (closed || cancelled) return
      closed = true
      controller.close()
    },
    cancelled: () => cancelled,
  }
}

/** A complete SSE response made of these frames, split into pieces of `size` characters. */
export function sseResponse(frames: string[], size = 7): Response {
  const text = frames.join('')
  const stream = sseStream()
  for (let i = 0; i < text.length; i += size) stream.push(text.slice(i, i + size))
  stream.end()
  return stream.response
}
