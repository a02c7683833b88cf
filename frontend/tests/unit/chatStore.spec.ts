import { AxiosError, AxiosHeaders, type InternalAxiosRequestConfig } from 'axios'
import { createPinia, setActivePinia } from 'pinia'
import { beforeEach, describe, expect, it, vi } from 'vitest'

import * as chatApi from '@/api/chat'
import type { ChatMessage, ChatSession } from '@/api/chat'
import type { Page } from '@/api/types'
import { MESSAGE_PAGE, useChatStore } from '@/store/modules/chat'

import { frame, makeChatSession, makeMessage, sseResponse, sseStream } from './chatFixtures'
import { deferred, flush } from './helpers'

const { messageError } = vi.hoisted(() => ({ messageError: vi.fn() }))
vi.mock('element-plus', () => ({ ElMessage: { error: messageError } }))

// The API module with its calls replaced; its types and StreamRequestError stay real.
vi.mock('@/api/chat', async (importOriginal) => {
  const actual = await importOriginal<typeof import('@/api/chat')>()
  return {
    ...actual,
    listSessions: vi.fn(),
    createSession: vi.fn(),
    getSession: vi.fn(),
    listMessages: vi.fn(),
    updateSession: vi.fn(),
    deleteSession: vi.fn(),
    sendChat: vi.fn(),
    openSessionStream: vi.fn(),
  }
})

const api = vi.mocked(chatApi)

function page<T>(items: T[], total = items.length, number = 1): Page<T> {
  return { items, total, page: number, size: 20 }
}

function httpError(status: number, body: unknown): AxiosError {
  const config = { headers: new AxiosHeaders() } as InternalAxiosRequestConfig
  return new AxiosError(
    'failed',
    'ERR_BAD_REQUEST',
    config,
    {},
    {
      status,
      statusText: String(status),
      data: body,
      headers: {},
      config,
    },
  )
}

/** A session with `count` messages (ids 1..count), alternating user / assistant. */
function conversation(sessionId: number, count: number, firstId = 1): ChatMessage[] {
  return Array.from({ length: count }, (_, i) =>
    makeMessage({
      id: firstId + i,
      session_id: sessionId,
      role: i % 2 === 0 ? 'user' : 'assistant',
      content: `message ${firstId + i}`,
    }),
  )
}

async function openWith(
  session: ChatSession,
  items: ChatMessage[],
  hasMore = false,
): Promise<ReturnType<typeof useChatStore>> {
  const store = useChatStore()
  api.getSession.mockResolvedValueOnce({ session, messages: { items, has_more: hasMore } })
  await store.openSession(session.id)
  return store
}

beforeEach(() => {
  setActivePinia(createPinia())
  vi.clearAllMocks()
  // After each turn the store re-reads the session summary; by default it answers unchanged.
  api.getSession.mockImplementation(async (id) => ({
    session: makeChatSession({ id, title: `session ${id}` }),
    messages: { items: [], has_more: false },
  }))
})

describe('sessions', () => {
  it('loads the first page with the search, then further pages without repeats', async () => {
    const store = useChatStore()
    const first = [makeChatSession({ id: 1 }), makeChatSession({ id: 2 })]
    api.listSessions.mockResolvedValueOnce(page(first, 3))
    await store.loadSessions('report')
    expect(api.listSessions).toHaveBeenCalledWith({ page: 1, size: 20, q: 'report' })
    expect(store.sessions.map((s) => s.id)).toEqual([1, 2])
    expect(store.hasMoreSessions).toBe(true)

    // Page 2 repeats row 2 (a row moved between the requests) and adds row 3.
    api.listSessions.mockResolvedValueOnce(
      page([makeChatSession({ id: 2 }), makeChatSession({ id: 3 })], 3, 2),
    )
    await store.loadMoreSessions()
    expect(api.listSessions).toHaveBeenLastCalledWith({ page: 2, size: 20, q: 'report' })
    expect(store.sessions.map((s) => s.id)).toEqual([1, 2, 3])
    expect(store.hasMoreSessions).toBe(false)
    await store.loadMoreSessions()
    expect(api.listSessions).toHaveBeenCalledTimes(2)
  })

  it('keeps only the answer to the latest search', async () => {
    const store = useChatStore()
    const slow = deferred<Page<ChatSession>>()
    api.listSessions.mockReturnValueOnce(slow.promise)
    api.listSessions.mockResolvedValueOnce(page([makeChatSession({ id: 9, title: 'new' })]))
    const older = store.loadSessions('a')
    await store.loadSessions('ab')
    slow.resolve(page([makeChatSession({ id: 8, title: 'stale' })]))
    await older
    expect(store.sessions.map((s) => s.title)).toEqual(['new'])
    expect(store.sessionsLoading).toBe(false)
  })

  it('renames and removes; removing the open session closes it', async () => {
    const session = makeChatSession({ id: 4, title: 'old' })
    api.listSessions.mockResolvedValueOnce(page([session, makeChatSession({ id: 5 })]))
    const store = await openWith(session, conversation(4, 2))
    await store.loadSessions('')

    api.updateSession.mockResolvedValueOnce({ ...session, title: 'renamed' })
    await store.rename(4, 'renamed')
    expect(api.updateSession).toHaveBeenCalledWith(4, { title: 'renamed' })
    expect(store.sessions[0].title).toBe('renamed')
    expect(store.currentSession?.title).toBe('renamed')

    api.deleteSession.mockResolvedValueOnce()
    await store.remove(4)
    expect(store.sessions.map((s) => s.id)).toEqual([5])
    expect(store.sessionsTotal).toBe(1)
    expect(store.currentId).toBeNull()
    expect(store.messages).toEqual([])
  })

  it('drops a session that is already gone (404) instead of failing', async () => {
    const store = useChatStore()
    api.listSessions.mockResolvedValueOnce(page([makeChatSession({ id: 6 })]))
    await store.loadSessions()
    api.deleteSession.mockRejectedValueOnce(httpError(404, { code: 'not_found' }))
    await store.remove(6)
    expect(store.sessions).toEqual([])

    api.listSessions.mockResolvedValueOnce(page([makeChatSession({ id: 7 })]))
    await store.loadSessions()
    api.updateSession.mockRejectedValueOnce(httpError(404, { code: 'not_found' }))
    await expect(store.rename(7, 'x')).rejects.toBeInstanceOf(AxiosError)
    expect(store.sessions).toEqual([])
  })
})

describe('opening and scrolling back', () => {
  it('opens a session with its newest page of messages', async () => {
    const session = makeChatSession({ id: 3 })
    const store = await openWith(session, conversation(3, 4, 51), true)
    expect(api.getSession).toHaveBeenCalledWith(3, MESSAGE_PAGE, { silent: true })
    expect(store.currentId).toBe(3)
    expect(store.messages.map((m) => m.id)).toEqual([51, 52, 53, 54])
    expect(store.hasMore).toBe(true)
    expect(store.loadingSession).toBe(false)
  })

  it('loads older messages before the oldest one and prepends them', async () => {
    const store = await openWith(makeChatSession({ id: 3 }), conversation(3, 2, 51), true)
    const shown = store.messages
    api.listMessages.mockResolvedValueOnce({ items: conversation(3, 3, 48), has_more: false })
    expect(await store.loadOlder()).toBe(3)
    expect(api.listMessages).toHaveBeenCalledWith(3, 51, MESSAGE_PAGE)
    expect(store.messages.map((m) => m.id)).toEqual([48, 49, 50, 51, 52])
    // The messages already shown are the same objects: their views do not render again.
    expect(store.messages[3]).toBe(shown[0])
    expect(store.hasMore).toBe(false)
    expect(await store.loadOlder()).toBe(0)
    expect(api.listMessages).toHaveBeenCalledTimes(1)
  })

  it('ignores older messages that arrive after another session was opened', async () => {
    const store = await openWith(makeChatSession({ id: 3 }), conversation(3, 2, 51), true)
    const slow = deferred<chatApi.MessagePage>()
    api.listMessages.mockReturnValueOnce(slow.promise)
    const older = store.loadOlder()
    await openWith(makeChatSession({ id: 8 }), conversation(8, 1, 90))
    slow.resolve({ items: conversation(3, 2, 40), has_more: false })
    expect(await older).toBe(0)
    expect(store.messages.map((m) => m.id)).toEqual([90])
  })

  it('a missing session (404) leaves nothing open and leaves the list', async () => {
    const store = useChatStore()
    api.listSessions.mockResolvedValueOnce(page([makeChatSession({ id: 12 })]))
    await store.loadSessions()
    api.getSession.mockRejectedValueOnce(httpError(404, { code: 'not_found' }))
    await expect(store.openSession(12)).rejects.toBeInstanceOf(AxiosError)
    expect(store.currentId).toBeNull()
    expect(store.sessions).toEqual([])
  })
})

describe('sending, streamed', () => {
  it('creates a session for a new chat, shows the turn at once, then the saved turns', async () => {
    const store = useChatStore()
    const session = makeChatSession({ id: 20, title: '' })
    api.createSession.mockResolvedValueOnce(session)
    const user = makeMessage({ id: 201, session_id: 20, role: 'user', content: 'Hi there' })
    const answer = makeMessage({ id: 202, session_id: 20, content: 'Hello!', reasoning: 'Greet.' })
    const sse = sseStream()
    api.openSessionStream.mockResolvedValueOnce(sse.response)

    const sending = store.send({
      content: 'Hi there',
      modelConfigId: 5,
      systemPromptId: 9,
      stream: true,
      imageIds: ['a'.repeat(32)],
    })
    await vi.waitFor(() => expect(api.openSessionStream).toHaveBeenCalled())
    expect(api.createSession).toHaveBeenCalledWith({ model_config_id: 5, system_prompt_id: 9 })
    expect(api.openSessionStream).toHaveBeenCalledWith(
      20,
      {
        content: 'Hi there',
        image_ids: ['a'.repeat(32)],
        model_config_id: 5,
        system_prompt_id: 9,
        params: null,
      },
      expect.any(AbortSignal),
    )
    expect(store.currentId).toBe(20)
    expect(store.sending).toBe(true)
    expect(store.answering).toBe(true)
    // The user's turn shows before the server confirms it, with a local (negative) id.
    expect(store.messages).toHaveLength(1)
    expect(store.messages[0]).toMatchObject({ role: 'user', content: 'Hi there' })
    expect(store.messages[0].id).toBeLessThan(0)

    sse.push(frame({ type: 'message', message: user }))
    sse.push(frame({ type: 'reasoning', text: 'Greet.' }))
    sse.push(frame({ type: 'content', text: 'Hello!' }))
    await vi.waitFor(() => expect(store.turn.content).toBe('Hello!'))
    expect(store.messages.map((m) => m.id)).toEqual([201])
    expect(store.turn.reasoning).toBe('Greet.')

    api.getSession.mockResolvedValueOnce({
      session: { ...session, title: 'Hi there', message_count: 2 },
      messages: { items: [answer], has_more: true },
    })
    sse.push(frame({ type: 'message', message: answer }))
    sse.push(frame('[DONE]'))
    const result = await sending
    expect(result).toEqual({ ok: true, refused: false, outcome: 'done', error: null })
    expect(store.messages.map((m) => m.id)).toEqual([201, 202])
    expect(store.sending).toBe(false)
    expect(store.answering).toBe(false)
    // The summary (server-made title, count) is read again and the session goes to the top.
    await vi.waitFor(() => expect(store.sessions[0]?.title).toBe('Hi there'))
    expect(store.currentSession?.message_count).toBe(2)
  })

  it('keeps finished messages as the same objects while another streams', async () => {
    const store = await openWith(makeChatSession({ id: 3 }), conversation(3, 2, 1))
    const [first, second] = store.messages
    const sse = sseStream()
    api.openSessionStream.mockResolvedValueOnce(sse.response)
    const sending = store.send({
      content: 'more',
      modelConfigId: 5,
      systemPromptId: null,
      stream: true,
    })
    for (let i = 0; i < 20; i++) sse.push(frame({ type: 'content', text: `w${i} ` }))
    await vi.waitFor(() => expect(store.turn.content).toContain('w19'))
    expect(store.messages[0]).toBe(first)
    expect(store.messages[1]).toBe(second)
    sse.push(frame({ type: 'message', message: makeMessage({ id: 99, session_id: 3 }) }))
    sse.push(frame('[DONE]'))
    await sending
    expect(store.messages[0]).toBe(first)
    expect(store.messages[1]).toBe(second)
  })

  it('a refusal removes the pending turn and reports the code', async () => {
    const store = await openWith(makeChatSession({ id: 3 }), conversation(3, 2, 1))
    api.openSessionStream.mockRejectedValueOnce(
      new chatApi.StreamRequestError(409, 'model_unavailable', 'The config is switched off'),
    )
    const result = await store.send({
      content: 'hello?',
      modelConfigId: 5,
      systemPromptId: null,
      stream: true,
    })
    expect(result).toMatchObject({
      ok: false,
      refused: true,
      error: { code: 'model_unavailable', status: 409 },
    })
    expect(store.messages.map((m) => m.id)).toEqual([1, 2])
    expect(store.lastError?.code).toBe('model_unavailable')
  })

  it('stop keeps the partial answer, marked interrupted', async () => {
    const store = await openWith(makeChatSession({ id: 3 }), [])
    const sse = sseStream()
    api.openSessionStream.mockResolvedValueOnce(sse.response)
    const user = makeMessage({ id: 301, session_id: 3, role: 'user', content: 'tell me' })
    const sending = store.send({
      content: 'tell me',
      modelConfigId: 5,
      systemPromptId: null,
      stream: true,
    })
    sse.push(frame({ type: 'message', message: user }))
    sse.push(frame({ type: 'reasoning', text: 'Hmm' }))
    sse.push(frame({ type: 'content', text: 'Once upon' }))
    await vi.waitFor(() => expect(store.turn.content).toBe('Once upon'))
    store.stop()
    const result = await sending
    expect(result).toMatchObject({ ok: true, outcome: 'aborted', error: null })
    expect(sse.cancelled()).toBe(true)
    expect(store.messages).toHaveLength(2)
    expect(store.messages[0]).toEqual(user)
    expect(store.messages[1]).toMatchObject({
      role: 'assistant',
      content: 'Once upon',
      reasoning: 'Hmm',
      status: 'interrupted',
    })
    expect(store.answering).toBe(false)
  })

  it('a provider failure mid-way shows the saved error message and the error', async () => {
    const store = await openWith(makeChatSession({ id: 3 }), [])
    const failed = makeMessage({
      id: 302,
      session_id: 3,
      content: 'Hel',
      status: 'error',
      error: 'connection dropped',
    })
    api.openSessionStream.mockResolvedValueOnce(
      sseResponse([
        frame({ type: 'message', message: makeMessage({ id: 301, session_id: 3, role: 'user' }) }),
        frame({ type: 'content', text: 'Hel' }),
        frame({ type: 'message', message: failed }),
        frame({ type: 'error', code: 'provider_error', message: 'connection dropped' }),
        frame('[ERROR]'),
      ]),
    )
    const result = await store.send({
      content: 'hi',
      modelConfigId: 5,
      systemPromptId: null,
      stream: true,
    })
    expect(result).toMatchObject({ ok: true, outcome: 'error', error: { code: 'provider_error' } })
    expect(store.messages.map((m) => m.id)).toEqual([301, 302])
    expect(store.messages[1]).toEqual(failed)
    expect(store.lastError?.message).toBe('connection dropped')
  })

  it('a stream that breaks before the saved answer keeps the partial text as an error', async () => {
    const store = await openWith(makeChatSession({ id: 3 }), [])
    api.openSessionStream.mockResolvedValueOnce(
      sseResponse([frame({ type: 'content', text: 'Half an ans' })]),
    )
    await store.send({ content: 'hi', modelConfigId: 5, systemPromptId: null, stream: true })
    expect(store.messages[1]).toMatchObject({
      content: 'Half an ans',
      status: 'error',
    })
    expect(store.messages[1].error).toBeTruthy()
  })

  it('does not start a second send while one is in flight', async () => {
    const store = await openWith(makeChatSession({ id: 3 }), [])
    const sse = sseStream()
    api.openSessionStream.mockResolvedValueOnce(sse.response)
    const first = store.send({ content: 'a', modelConfigId: 5, systemPromptId: null, stream: true })
    const second = await store.send({
      content: 'b',
      modelConfigId: 5,
      systemPromptId: null,
      stream: true,
    })
    expect(second.ok).toBe(false)
    expect(api.openSessionStream).toHaveBeenCalledTimes(1)
    sse.push(frame('[DONE]'))
    await first
  })
})

describe('sending, not streamed', () => {
  it('posts to /api/chat/ with the session and shows both saved turns', async () => {
    const store = await openWith(makeChatSession({ id: 3 }), [])
    const user = makeMessage({ id: 401, session_id: 3, role: 'user', content: 'hi' })
    const answer = makeMessage({ id: 402, session_id: 3, content: 'Hello' })
    api.sendChat.mockResolvedValueOnce({
      content: 'Hello',
      reasoning: '',
      usage: null,
      finish_reason: 'stop',
      latency_ms: 10,
      model: 'mock',
      user_message: user,
      assistant_message: answer,
    })
    // The summary re-read fails: what the session shows comes from the turn itself.
    api.getSession.mockRejectedValueOnce(new Error('offline'))
    const result = await store.send({
      content: 'hi',
      modelConfigId: 6,
      systemPromptId: 2,
      stream: false,
    })
    expect(result).toMatchObject({ ok: true, outcome: 'done' })
    expect(api.sendChat).toHaveBeenCalledWith(
      {
        session_id: 3,
        content: 'hi',
        image_ids: [],
        model_config_id: 6,
        system_prompt_id: 2,
        params: null,
      },
      { silent: true, signal: expect.any(AbortSignal) },
    )
    expect(store.messages).toEqual([user, answer])
    expect(store.currentSession).toMatchObject({ model_config_id: 6, system_prompt_id: 2 })
    expect(api.openSessionStream).not.toHaveBeenCalled()
  })

  it('after a provider failure (502) shows what the server saved', async () => {
    const store = await openWith(makeChatSession({ id: 3 }), conversation(3, 2, 1))
    api.sendChat.mockRejectedValueOnce(
      httpError(502, { code: 'provider_error', detail: 'upstream said no' }),
    )
    const saved = [
      ...conversation(3, 2, 1),
      makeMessage({ id: 3, session_id: 3, role: 'user', content: 'q' }),
      makeMessage({ id: 4, session_id: 3, content: '', status: 'error', error: 'upstream' }),
    ]
    api.getSession.mockResolvedValueOnce({
      session: makeChatSession({ id: 3 }),
      messages: { items: saved, has_more: false },
    })
    const result = await store.send({
      content: 'q',
      modelConfigId: 5,
      systemPromptId: null,
      stream: false,
    })
    expect(result).toMatchObject({
      ok: false,
      refused: false,
      outcome: 'failed',
      error: { code: 'provider_error', status: 502 },
    })
    expect(store.messages.map((m) => [m.id, m.status])).toEqual([
      [1, 'complete'],
      [2, 'complete'],
      [3, 'complete'],
      [4, 'error'],
    ])
  })

  it('stop aborts the request', async () => {
    const store = await openWith(makeChatSession({ id: 3 }), [])
    let signal: AbortSignal | undefined
    api.sendChat.mockImplementationOnce(
      (_payload, options) =>
        new Promise((_, reject) => {
          signal = options?.signal
          signal?.addEventListener('abort', () => reject(new Error('canceled')))
        }),
    )
    const sending = store.send({
      content: 'q',
      modelConfigId: 5,
      systemPromptId: null,
      stream: false,
    })
    await flush()
    store.stop()
    const result = await sending
    expect(signal?.aborted).toBe(true)
    expect(result).toMatchObject({ ok: false, outcome: 'aborted', error: null })
  })
})

describe('regenerate', () => {
  it('hides the old answer while the new one streams, then replaces it', async () => {
    const store = await openWith(makeChatSession({ id: 3 }), conversation(3, 2, 1))
    const old = store.messages[1]
    const sse = sseStream()
    api.openSessionStream.mockResolvedValueOnce(sse.response)
    expect(store.canRegenerate).toBe(true)
    const regenerating = store.regenerate({ modelConfigId: 7 })
    await vi.waitFor(() => expect(api.openSessionStream).toHaveBeenCalled())
    expect(api.openSessionStream).toHaveBeenCalledWith(
      3,
      { regenerate: true, model_config_id: 7 },
      expect.any(AbortSignal),
    )
    expect(store.visibleMessages.map((m) => m.id)).toEqual([1])
    expect(store.canRegenerate).toBe(false)
    sse.push(frame({ type: 'content', text: 'Again' }))
    const fresh = makeMessage({ id: 3, session_id: 3, content: 'Again' })
    sse.push(frame({ type: 'message', message: fresh }))
    sse.push(frame('[DONE]'))
    await regenerating
    expect(store.messages.map((m) => m.id)).toEqual([1, 3])
    expect(store.messages).not.toContain(old)
    expect(store.visibleMessages.map((m) => m.id)).toEqual([1, 3])
  })

  it('a refused regenerate shows the old answer again', async () => {
    const store = await openWith(makeChatSession({ id: 3 }), conversation(3, 2, 1))
    api.openSessionStream.mockRejectedValueOnce(
      new chatApi.StreamRequestError(409, 'model_required', 'Choose a model'),
    )
    const result = await store.regenerate()
    expect(result).toMatchObject({ refused: true, error: { code: 'model_required' } })
    expect(store.visibleMessages.map((m) => m.id)).toEqual([1, 2])
    expect(store.replacingId).toBeNull()
  })

  it('a stopped regenerate replaces the old answer with the partial one', async () => {
    const store = await openWith(makeChatSession({ id: 3 }), conversation(3, 2, 1))
    const sse = sseStream()
    api.openSessionStream.mockResolvedValueOnce(sse.response)
    const regenerating = store.regenerate()
    sse.push(frame({ type: 'content', text: 'Par' }))
    await vi.waitFor(() => expect(store.turn.content).toBe('Par'))
    store.stop()
    await regenerating
    expect(store.messages).toHaveLength(2)
    expect(store.messages[1]).toMatchObject({ content: 'Par', status: 'interrupted' })
  })

  it('is not offered in a new chat or an empty session', async () => {
    const store = useChatStore()
    expect(store.canRegenerate).toBe(false)
    expect((await store.regenerate()).ok).toBe(false)
    await openWith(makeChatSession({ id: 3 }), [])
    expect(store.canRegenerate).toBe(false)
    expect(api.openSessionStream).not.toHaveBeenCalled()
  })
})

describe('switching while an answer streams', () => {
  it('stops the stream and leaves the new session untouched', async () => {
    const store = await openWith(makeChatSession({ id: 3 }), [])
    const sse = sseStream()
    api.openSessionStream.mockResolvedValueOnce(sse.response)
    const sending = store.send({
      content: 'x',
      modelConfigId: 5,
      systemPromptId: null,
      stream: true,
    })
    sse.push(frame({ type: 'content', text: 'partial' }))
    await vi.waitFor(() => expect(store.turn.content).toBe('partial'))
    await openWith(makeChatSession({ id: 8 }), conversation(8, 1, 80))
    await sending
    expect(sse.cancelled()).toBe(true)
    expect(store.currentId).toBe(8)
    expect(store.messages.map((m) => m.id)).toEqual([80])

    store.newChat()
    expect(store.currentId).toBeNull()
    expect(store.messages).toEqual([])
  })
})
