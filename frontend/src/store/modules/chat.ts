/**
 * Chat sessions and the open conversation.
 *
 * - `sessions`: the user's sessions, newest change first, paged and searchable (server-side).
 * - `messages`: the open session's loaded messages, oldest first, in a shallowRef of plain
 *   objects that are replaced, never mutated: a finished message keeps its identity, so its
 *   component never re-renders (and its Markdown is never parsed again) while another message
 *   streams. The streaming answer lives apart, in `stream.turn` (useChatStream), which only the
 *   streaming message's component reads.
 * - Messages not (yet) confirmed by the server carry negative ids: the user's turn between
 *   sending and the server's `message` event, and a stopped or failed answer whose saved copy
 *   the stream could not deliver (the server saves it as interrupted / error; a reload shows
 *   that copy).
 */
import { AxiosError } from 'axios'
import { defineStore } from 'pinia'
import { computed, ref, shallowRef } from 'vue'

import * as chatApi from '@/api/chat'
import type {
  ChatMessage,
  ChatSession,
  GenerationParams,
  SessionCreate,
  SessionUpdate,
} from '@/api/chat'
import { useChatStream, type StreamFailure, type StreamResult } from '@/composables/useChatStream'
import { errorMessage } from '@/utils/api'

/** Messages per request when opening a session and when scrolling back. */
export const MESSAGE_PAGE = 50
export const SESSION_PAGE = 20

export interface SendInput {
  content: string
  imageIds?: string[]
  modelConfigId: number | null
  systemPromptId: number | null
  /** Stream the answer (SSE) or wait for it whole (POST /api/chat/). */
  stream: boolean
  params?: GenerationParams | null
}

export interface SendResult {
  /** An answer (possibly partial) exists now. */
  ok: boolean
  /** The server refused before doing anything: the caller may give the input back. */
  refused: boolean
  outcome: StreamResult['outcome'] | 'failed'
  error: StreamFailure | null
}

function isStatus(error: unknown, status: number): boolean {
  return error instanceof AxiosError && error.response?.status === status
}

/** A failed axios call as a StreamFailure (its code, its localized message, its status). */
function failureOf(error: unknown): StreamFailure {
  const status = error instanceof AxiosError ? (error.response?.status ?? null) : null
  const body = error instanceof AxiosError ? (error.response?.data as { code?: unknown }) : null
  const code = body && typeof body.code === 'string' ? body.code : status ? 'http_error' : 'network'
  return { code, message: errorMessage(error), status }
}

let nextLocalId = -1
/** A client-side id for a message the server has not confirmed. */
function localId(): number {
  return nextLocalId--
}

function localMessage(sessionId: number, fields: Partial<ChatMessage>): ChatMessage {
  return {
    id: localId(),
    session_id: sessionId,
    role: 'assistant',
    content: '',
    reasoning: null,
    status: 'complete',
    error: null,
    image_ids: [],
    model_config_id: null,
    model: null,
    prompt_tokens: null,
    completion_tokens: null,
    latency_ms: null,
    ttft_ms: null,
    finish_reason: null,
    created_at: new Date().toISOString(),
    ...fields,
  }
}

export const useChatStore = defineStore('chat', () => {
  // ------------------------------------------------------------------ sessions
  const sessions = ref<ChatSession[]>([])
  const sessionsTotal = ref(0)
  const sessionQuery = ref('')
  const sessionsLoading = ref(false)
  let sessionsPage = 1
  let sessionsRequest = 0
  const hasMoreSessions = computed(() => sessions.value.length < sessionsTotal.value)

  // ------------------------------------------------------------------ the open session
  const currentId = ref<number | null>(null)
  const currentSession = shallowRef<ChatSession | null>(null)
  const messages = shallowRef<ChatMessage[]>([])
  const hasMore = ref(false)
  const loadingSession = ref(false)
  const loadingOlder = ref(false)
  let openRequest = 0

  // ------------------------------------------------------------------ sending
  const stream = useChatStream()
  /** A send or regenerate is in flight (streamed or not). */
  const sending = ref(false)
  /** Streaming (or waiting for) an answer: the view shows the live message. */
  const answering = ref(false)
  /** The assistant message being regenerated: hidden while its replacement streams. */
  const replacingId = ref<number | null>(null)
  const lastError = shallowRef<StreamFailure | null>(null)
  let plainController: AbortController | null = null

  /** What the list shows: the loaded messages minus one being replaced. */
  const visibleMessages = computed(() =>
    replacingId.value === null
      ? messages.value
      : messages.value.filter((m) => m.id !== replacingId.value),
  )
  /** The last answer can be regenerated: nothing in flight, and the last turn is ours to redo. */
  const canRegenerate = computed(() => {
    if (sending.value || currentId.value === null) return false
    const last = messages.value[messages.value.length - 1]
    return last !== undefined && (last.role === 'assistant' || last.role === 'user')
  })

  function upsertSession(session: ChatSession, toTop = false): void {
    const index = sessions.value.findIndex((s) => s.id === session.id)
    if (index === -1) {
      if (toTop) {
        sessions.value = [session, ...sessions.value]
        sessionsTotal.value += 1
      }
    } else if (toTop) {
      sessions.value = [session, ...sessions.value.filter((s) => s.id !== session.id)]
    } else {
      sessions.value = sessions.value.map((s) => (s.id === session.id ? session : s))
    }
    if (currentId.value === session.id) currentSession.value = session
  }

  function dropSession(id: number): void {
    const before = sessions.value.length
    sessions.value = sessions.value.filter((s) => s.id !== id)
    if (sessions.value.length < before) sessionsTotal.value = Math.max(0, sessionsTotal.value - 1)
    if (currentId.value === id) clearCurrent()
  }

  /** The first page of sessions matching `q` (default: the current search). */
  async function loadSessions(q: string = sessionQuery.value): Promise<void> {
    sessionQuery.value = q
    const request = ++sessionsRequest
    sessionsLoading.value = true
    try {
      const page = await chatApi.listSessions({ page: 1, size: SESSION_PAGE, q })
      if (request !== sessionsRequest) return // a newer search won
      sessions.value = page.items
      sessionsTotal.value = page.total
      sessionsPage = 1
    } finally {
      if (request === sessionsRequest) sessionsLoading.value = false
    }
  }

  /** The next page of sessions (appended; rows already shown are not repeated). */
  async function loadMoreSessions(): Promise<void> {
    if (sessionsLoading.value || !hasMoreSessions.value) return
    const request = ++sessionsRequest
    sessionsLoading.value = true
    try {
      const page = await chatApi.listSessions({
        page: sessionsPage + 1,
        size: SESSION_PAGE,
        q: sessionQuery.value,
      })
      if (request !== sessionsRequest) return
      const seen = new Set(sessions.value.map((s) => s.id))
      sessions.value = [...sessions.value, ...page.items.filter((s) => !seen.has(s.id))]
      sessionsTotal.value = page.total
      sessionsPage = page.page
    } finally {
      if (request === sessionsRequest) sessionsLoading.value = false
    }
  }

  function clearCurrent(): void {
    stop()
    openRequest++
    currentId.value = null
    currentSession.value = null
    messages.value = []
    hasMore.value = false
    replacingId.value = null
    lastError.value = null
    loadingSession.value = false
    loadingOlder.value = false
  }

  /** Start a new, not yet saved conversation (saved on its first message). */
  function newChat(): void {
    clearCurrent()
  }

  /** Open a session with its latest messages. Rejects (e.g. 404) and leaves no session open. */
  async function openSession(id: number): Promise<void> {
    if (currentId.value === id && !loadingSession.value) return
    clearCurrent()
    const request = openRequest
    currentId.value = id
    currentSession.value = sessions.value.find((s) => s.id === id) ?? null
    loadingSession.value = true
    try {
      const detail = await chatApi.getSession(id, MESSAGE_PAGE, { silent: true })
      if (request !== openRequest) return
      currentSession.value = detail.session
      upsertSession(detail.session)
      messages.value = detail.messages.items
      hasMore.value = detail.messages.has_more
    } catch (error) {
      if (request === openRequest) {
        currentId.value = null
        currentSession.value = null
        if (isStatus(error, 404)) dropSession(id)
      }
      throw error
    } finally {
      if (request === openRequest) loadingSession.value = false
    }
  }

  /** Older messages of the open session, prepended. Returns how many arrived. */
  async function loadOlder(): Promise<number> {
    const id = currentId.value
    const oldest = messages.value.find((m) => m.id > 0)
    if (id === null || !hasMore.value || loadingOlder.value || !oldest) return 0
    const request = openRequest
    loadingOlder.value = true
    try {
      const page = await chatApi.listMessages(id, oldest.id, MESSAGE_PAGE)
      if (request !== openRequest) return 0
      const seen = new Set(messages.value.map((m) => m.id))
      const older = page.items.filter((m) => !seen.has(m.id))
      messages.value = [...older, ...messages.value]
      hasMore.value = page.has_more
      return older.length
    } finally {
      if (request === openRequest) loadingOlder.value = false
    }
  }

  async function createSession(payload: SessionCreate = {}): Promise<ChatSession> {
    const session = await chatApi.createSession(payload)
    clearCurrent()
    currentId.value = session.id
    currentSession.value = session
    upsertSession(session, true)
    return session
  }

  async function updateSession(id: number, changes: SessionUpdate): Promise<ChatSession> {
    try {
      const session = await chatApi.updateSession(id, changes)
      upsertSession(session)
      return session
    } catch (error) {
      if (isStatus(error, 404)) dropSession(id)
      throw error
    }
  }

  function rename(id: number, title: string): Promise<ChatSession> {
    return updateSession(id, { title })
  }

  async function remove(id: number): Promise<void> {
    try {
      await chatApi.deleteSession(id)
    } catch (error) {
      if (!isStatus(error, 404)) throw error // already gone: drop it all the same
    }
    dropSession(id)
  }

  /** Re-read a session's title, preview and count after a turn, and move it to the top. */
  async function refreshSummary(id: number): Promise<void> {
    try {
      const detail = await chatApi.getSession(id, 1, { silent: true })
      upsertSession(detail.session, true)
    } catch {
      // The list is only a summary; the next load fixes it.
    }
  }

  function replaceMessage(id: number, message: ChatMessage): void {
    messages.value = messages.value.map((m) => (m.id === id ? message : m))
  }

  function appendMessage(message: ChatMessage): void {
    if (messages.value.some((m) => m.id === message.id)) replaceMessage(message.id, message)
    else messages.value = [...messages.value, message]
  }

  function removeMessage(id: number): void {
    messages.value = messages.value.filter((m) => m.id !== id)
  }

  /**
   * A stream ended without delivering the saved answer (stopped, broken, failed): keep what
   * arrived as a local message marked like the server's copy.
   */
  function keepPartial(sessionId: number, result: StreamResult): void {
    const stopped = result.outcome === 'aborted'
    if (stopped && !result.content && !result.reasoning) return
    appendMessage(
      localMessage(sessionId, {
        content: result.content,
        reasoning: result.reasoning || null,
        status: stopped ? 'interrupted' : 'error',
        error: stopped ? null : (result.error?.message ?? null),
        completion_tokens: result.usage?.completion_tokens ?? null,
        prompt_tokens: result.usage?.prompt_tokens ?? null,
        ttft_ms: result.metrics?.ttft_ms ?? null,
        latency_ms: result.metrics?.total_ms ?? null,
        finish_reason: result.metrics?.finish_reason ?? null,
      }),
    )
  }

  async function runStream(
    sessionId: number,
    body: chatApi.StreamRequest,
    pendingUserId: number | null,
  ): Promise<StreamResult> {
    answering.value = true
    let answered = false
    try {
      return await stream
        .start((signal) => chatApi.openSessionStream(sessionId, body, signal), {
          onMessage: (message) => {
            if (currentId.value !== sessionId) return
            if (message.role === 'user' && pendingUserId !== null) {
              replaceMessage(pendingUserId, message)
              pendingUserId = null
              // The first turn names a new session: show the title while the answer streams.
              if (currentSession.value && !currentSession.value.title)
                void refreshSummary(sessionId)
            } else if (message.role === 'assistant') {
              answered = true
              if (replacingId.value !== null) removeMessage(replacingId.value)
              replacingId.value = null
              appendMessage(message)
            }
          },
        })
        .then((result) => {
          if (currentId.value === sessionId && !answered && !result.refused) {
            if (replacingId.value !== null) removeMessage(replacingId.value)
            replacingId.value = null
            keepPartial(sessionId, result)
          }
          return result
        })
    } finally {
      answering.value = false
    }
  }

  function resultOf(result: StreamResult): SendResult {
    return {
      ok: !result.refused,
      refused: result.refused,
      outcome: result.outcome,
      error: result.error,
    }
  }

  /** Send a user turn in the open session (creating one first when none is open). */
  async function send(input: SendInput): Promise<SendResult> {
    if (sending.value) {
      return { ok: false, refused: true, outcome: 'failed', error: null }
    }
    sending.value = true
    lastError.value = null
    try {
      let sessionId = currentId.value
      if (sessionId === null) {
        try {
          const session = await createSession({
            model_config_id: input.modelConfigId,
            system_prompt_id: input.systemPromptId,
          })
          sessionId = session.id
        } catch (error) {
          lastError.value = failureOf(error)
          return { ok: false, refused: true, outcome: 'failed', error: lastError.value }
        }
      }
      const imageIds = input.imageIds ?? []
      const pending = localMessage(sessionId, {
        role: 'user',
        content: input.content,
        image_ids: imageIds,
      })
      appendMessage(pending)

      if (input.stream) {
        const result = await runStream(
          sessionId,
          {
            content: input.content,
            image_ids: imageIds,
            model_config_id: input.modelConfigId,
            system_prompt_id: input.systemPromptId,
            params: input.params ?? null,
          },
          pending.id,
        )
        if (result.refused && currentId.value === sessionId) removeMessage(pending.id)
        lastError.value = result.error
        void refreshSummary(sessionId)
        if (!result.refused) settingsUsed(sessionId, input)
        return resultOf(result)
      }
      return await sendPlain(sessionId, input, pending.id, imageIds)
    } finally {
      sending.value = false
    }
  }

  /** A turn's config and prompt became the session's (the server does the same). */
  function settingsUsed(sessionId: number, input: SendInput): void {
    const session = currentSession.value
    if (session?.id !== sessionId) return
    currentSession.value = {
      ...session,
      model_config_id: input.modelConfigId,
      system_prompt_id: input.systemPromptId,
    }
  }

  async function sendPlain(
    sessionId: number,
    input: SendInput,
    pendingId: number,
    imageIds: string[],
  ): Promise<SendResult> {
    const controller = new AbortController()
    plainController = controller
    answering.value = true
    try {
      const response = await chatApi.sendChat(
        {
          session_id: sessionId,
          content: input.content,
          image_ids: imageIds,
          model_config_id: input.modelConfigId,
          system_prompt_id: input.systemPromptId,
          params: input.params ?? null,
        },
        { silent: true, signal: controller.signal },
      )
      if (currentId.value === sessionId) {
        if (response.user_message) replaceMessage(pendingId, response.user_message)
        if (response.assistant_message) appendMessage(response.assistant_message)
        else {
          appendMessage(
            localMessage(sessionId, {
              content: response.content,
              reasoning: response.reasoning || null,
              model: response.model,
              latency_ms: response.latency_ms,
              finish_reason: response.finish_reason,
            }),
          )
        }
      }
      void refreshSummary(sessionId)
      settingsUsed(sessionId, input)
      return { ok: true, refused: false, outcome: 'done', error: null }
    } catch (error) {
      const aborted = controller.signal.aborted
      const failure = aborted ? null : failureOf(error)
      lastError.value = failure
      // What did the server keep? Ask it rather than guess.
      if (currentId.value === sessionId) {
        removeMessage(pendingId)
        await resync(sessionId)
      }
      const refused =
        !aborted && failure !== null && failure.status !== null && failure.status < 500
      return { ok: false, refused, outcome: aborted ? 'aborted' : 'failed', error: failure }
    } finally {
      if (plainController === controller) plainController = null
      answering.value = false
    }
  }

  /** Reload the open session's latest messages (after a failure left the tail uncertain). */
  async function resync(sessionId: number): Promise<void> {
    const request = openRequest
    try {
      const detail = await chatApi.getSession(sessionId, MESSAGE_PAGE, { silent: true })
      if (request !== openRequest || currentId.value !== sessionId) return
      const newest = detail.messages.items
      const cut = newest.length > 0 ? newest[0].id : Infinity
      // Keep older pages already loaded; take the server's word for the rest.
      messages.value = [...messages.value.filter((m) => m.id > 0 && m.id < cut), ...newest]
      upsertSession(detail.session)
    } catch {
      // Keep what is shown.
    }
  }

  /** Answer the last user turn again; the previous answer is replaced. Always streamed. */
  async function regenerate(
    settings: { modelConfigId?: number | null; systemPromptId?: number | null } = {},
  ): Promise<SendResult> {
    const sessionId = currentId.value
    if (sessionId === null || !canRegenerate.value) {
      return { ok: false, refused: true, outcome: 'failed', error: null }
    }
    sending.value = true
    lastError.value = null
    const last = messages.value[messages.value.length - 1]
    replacingId.value = last.role === 'assistant' ? last.id : null
    try {
      const body: chatApi.StreamRequest = { regenerate: true }
      if (settings.modelConfigId !== undefined) body.model_config_id = settings.modelConfigId
      if (settings.systemPromptId !== undefined) body.system_prompt_id = settings.systemPromptId
      const result = await runStream(sessionId, body, null)
      if (result.refused) replacingId.value = null // nothing changed on the server
      lastError.value = result.error
      void refreshSummary(sessionId)
      return resultOf(result)
    } finally {
      replacingId.value = null
      sending.value = false
    }
  }

  /** Stop the answer in flight (the server keeps a stopped stream's partial answer). */
  function stop(): void {
    stream.stop()
    plainController?.abort()
  }

  return {
    sessions,
    sessionsTotal,
    sessionQuery,
    sessionsLoading,
    hasMoreSessions,
    currentId,
    currentSession,
    messages,
    visibleMessages,
    hasMore,
    loadingSession,
    loadingOlder,
    sending,
    answering,
    replacingId,
    lastError,
    canRegenerate,
    turn: stream.turn,
    streaming: stream.streaming,
    metrics: stream.metrics,
    loadSessions,
    loadMoreSessions,
    openSession,
    loadOlder,
    newChat,
    createSession,
    updateSession,
    rename,
    remove,
    send,
    regenerate,
    stop,
  }
})
