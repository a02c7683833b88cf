/**
 * The chat list's rendering contract: while an answer streams, only the streaming message
 * renders again; finished messages keep their rendered Markdown (no re-parse per chunk), and
 * the reasoning shows live, open, in the 思考过程 block.
 */
import { flushPromises, mount } from '@vue/test-utils'
import { createPinia, setActivePinia } from 'pinia'
import { beforeAll, beforeEach, describe, expect, it, vi } from 'vitest'

import * as chatApi from '@/api/chat'
import { i18n, loadPageMessages } from '@/locales'
import { useChatStore } from '@/store/modules/chat'
import * as markdown from '@/utils/markdown'
import MessageList from '@/views/model-chat/modules/MessageList.vue'

import { frame, makeChatSession, makeMessage, sseStream } from './chatFixtures'

vi.mock('element-plus', async (importOriginal) => {
  const actual = await importOriginal<typeof import('element-plus')>()
  return { ...actual, ElMessage: { error: vi.fn(), success: vi.fn() } }
})

vi.mock('@/api/chat', async (importOriginal) => {
  const actual = await importOriginal<typeof import('@/api/chat')>()
  return { ...actual, getSession: vi.fn(), openSessionStream: vi.fn() }
})

// Count Markdown work without changing it.
vi.mock('@/utils/markdown', async (importOriginal) => {
  const actual = await importOriginal<typeof import('@/utils/markdown')>()
  return { ...actual, render: vi.fn(actual.render), renderCached: vi.fn(actual.renderCached) }
})

const api = vi.mocked(chatApi)
const md = vi.mocked(markdown)

beforeAll(async () => {
  await loadPageMessages('chat')
})

beforeEach(() => {
  setActivePinia(createPinia())
  vi.clearAllMocks()
})

describe('MessageList while an answer streams', () => {
  it('re-renders only the streaming message and shows its reasoning live', async () => {
    const session = makeChatSession({ id: 3 })
    const history = [
      makeMessage({ id: 1, session_id: 3, role: 'user', content: 'First question' }),
      makeMessage({ id: 2, session_id: 3, content: '# Heading\n\n```python\nprint(1)\n```' }),
      makeMessage({ id: 3, session_id: 3, role: 'user', content: 'Second question' }),
      makeMessage({ id: 4, session_id: 3, content: 'A **finished** answer', reasoning: 'Old why' }),
    ]
    api.getSession.mockResolvedValue({ session, messages: { items: history, has_more: false } })
    const store = useChatStore()
    await store.openSession(3)

    const wrapper = mount(MessageList, { global: { plugins: [i18n] }, attachTo: document.body })
    await flushPromises()
    expect(wrapper.findAll('[data-testid="chat-message"]')).toHaveLength(4)
    expect(wrapper.find('[data-message-id="2"] h1').text()).toBe('Heading')
    const finishedRenders = md.renderCached.mock.calls.length
    expect(finishedRenders).toBe(2) // one per answer, once
    const finishedNodes = wrapper.findAll('.mt-markdown').map((w) => w.element)

    const sse = sseStream()
    api.openSessionStream.mockResolvedValueOnce(sse.response)
    const sending = store.send({
      content: 'Third',
      modelConfigId: 5,
      systemPromptId: null,
      stream: true,
    })
    await vi.waitFor(() => expect(wrapper.find('[data-testid="chat-waiting"]').exists()).toBe(true))

    // Reasoning streams into an open 思考过程 block.
    sse.push(frame({ type: 'reasoning', text: 'Let me ' }))
    sse.push(frame({ type: 'reasoning', text: 'think.' }))
    const live = () => wrapper.find('[data-testid="chat-streaming-message"]')
    await vi.waitFor(() =>
      expect(live().find('[data-testid="think-text"]').text()).toBe('Let me think.'),
    )
    expect(live().find('.mt-think-title').text()).toBe('思考过程')
    expect(live().find('[data-testid="think-toggle"]').attributes('aria-expanded')).toBe('true')
    expect(live().find('.mt-think-live').exists()).toBe(true)

    // Then the answer, chunk by chunk.
    for (let i = 0; i < 30; i++) sse.push(frame({ type: 'content', text: `w${i} ` }))
    sse.push(frame({ type: 'content', text: '**bold**' }))
    await vi.waitFor(() =>
      expect(live().find('[data-testid="chat-streaming-content"] strong').text()).toBe('bold'),
    )
    // Reasoning is over: the block folds away by itself.
    expect(live().find('[data-testid="think-toggle"]').attributes('aria-expanded')).toBe('false')
    // The streaming text is rendered per frame, not per chunk (31 content chunks).
    expect(md.render.mock.calls.length).toBeLessThan(31)
    // Nothing finished was rendered again, and its DOM is the same nodes.
    expect(md.renderCached.mock.calls.length).toBe(finishedRenders)
    const stillThere = wrapper
      .findAll('[data-testid="chat-message"] .mt-markdown')
      .map((w) => w.element)
    expect(stillThere).toEqual(finishedNodes)
    expect(stillThere.every((node, i) => node === finishedNodes[i])).toBe(true)

    const saved = makeMessage({ id: 6, session_id: 3, content: 'Final **answer**' })
    sse.push(frame({ type: 'message', message: saved }))
    sse.push(frame('[DONE]'))
    await sending
    await flushPromises()
    expect(live().exists()).toBe(false)
    expect(wrapper.find('[data-message-id="6"] strong').text()).toBe('answer')
    // Only the new answer was rendered for keeps.
    expect(md.renderCached.mock.calls.length).toBe(finishedRenders + 1)
    wrapper.unmount()
  })

  it('marks interrupted and failed answers and keeps their text', async () => {
    api.getSession.mockResolvedValue({
      session: makeChatSession({ id: 4 }),
      messages: {
        items: [
          makeMessage({ id: 1, session_id: 4, content: 'Half', status: 'interrupted' }),
          makeMessage({
            id: 2,
            session_id: 4,
            content: 'Par',
            status: 'error',
            error: 'upstream went away',
          }),
        ],
        has_more: false,
      },
    })
    const store = useChatStore()
    await store.openSession(4)
    const wrapper = mount(MessageList, { global: { plugins: [i18n] } })
    await flushPromises()
    const first = wrapper.find('[data-message-id="1"]')
    expect(first.find('[data-testid="chat-message-content"]').text()).toBe('Half')
    expect(first.find('[data-testid="chat-message-interrupted"]').text()).toBe('已中断')
    const second = wrapper.find('[data-message-id="2"]')
    expect(second.find('[data-testid="chat-message-content"]').text()).toBe('Par')
    expect(second.find('[data-testid="chat-message-error"]').text()).toBe('出错')
    expect(second.text()).toContain('upstream went away')
    // The last answer offers regenerate; the earlier one does not.
    expect(first.find('[data-testid="chat-message-regenerate"]').exists()).toBe(false)
    expect(second.find('[data-testid="chat-message-regenerate"]').exists()).toBe(true)
    wrapper.unmount()
  })
})
