/**
 * The chat page in a real browser against the real backend and the mock OpenAI-compatible
 * upstream (backend/tests/upstream.py), whose model name picks the scenario:
 * `reasoning-content` (reasoning in its own delta field), `echo` (repeats the question, for
 * Markdown), `stall` (two chunks, then silence: for stopping) and `plain` (non-streamed mode).
 * Streamed answers with their reasoning, Markdown, validation, stop + reload keeps the partial
 * answer, regenerate, non-streamed mode, rename and delete. Registers its own user.
 */
import { readFile } from 'node:fs/promises'

import type { Browser, BrowserContext, Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

import { ApiClient, createMockConfig, register, suffix, uniqueUser } from './api'
import {
  baseURL,
  byId,
  DOT_PNG,
  input,
  launch,
  screenshotOnFailure,
  shot,
  signedInPage,
  upstreamSkipReason,
} from './browser'

const USER = uniqueUser('chat', 'Chat-Page-Pass-2026')
const api = new ApiClient(USER)
// What the mock answers (backend/tests/upstream.py).
const THINK_REASONING = 'The user greets me. I should greet back and mention 42.'
const THINK_ANSWER = 'Hello there! The answer is 42.'

const reason = upstreamSkipReason()
const skip = Boolean(reason)

interface Message {
  id: number
  role: string
  content: string
  reasoning: string | null
  status: string
}

interface SessionDetail {
  session: { id: number; title: string; model_config_id: number | null }
  messages: { items: Message[]; has_more: boolean }
}

async function setUp(): Promise<Record<string, number>> {
  await register(USER)
  const configs: Record<string, number> = {}
  // `echo-vision`: the echo scenario behind a config that declares vision.
  for (const key of [
    'reasoning-content',
    'reasoning-slow',
    'echo',
    'stall',
    'plain',
    'echo-vision',
  ]) {
    const vision = key === 'echo-vision'
    configs[key] = await createMockConfig(api, {
      name: `Mock ${key} ${suffix}`,
      model: vision ? 'echo' : key,
      apiKey: 'sk-test-key',
      vision,
      reasoning: key.startsWith('reasoning'),
    })
  }
  return configs
}

async function sessionDetail(id: number): Promise<SessionDetail> {
  return api.json<SessionDetail>('GET', `/api/chat/sessions/${id}?limit=50`, undefined, 200)
}

describe.skipIf(skip)('chat in the browser', () => {
  let browser: Browser
  let context: BrowserContext | undefined
  let page: Page
  let configs: Record<string, number>
  /** The session of the streamed reasoning chat (reused by regenerate / rename / delete). */
  let reasoningSession = 0

  beforeAll(async () => {
    configs = await setUp()
    browser = await launch()
    page = await signedInPage(browser, USER)
    context = page.context()
  })

  afterAll(async () => {
    await browser?.close()
  })

  const textarea = 'textarea[data-testid="chat-input"]'
  const assistantMessages = `${byId('chat-message')}[data-role="assistant"]`

  async function chooseModel(model: string): Promise<void> {
    await page.click(byId('chat-model-select'))
    const option = page.locator(byId(`chat-model-option-${configs[model]}`))
    await option.click()
    await option.waitFor({ state: 'hidden' })
  }

  function sessionFromUrl(): number {
    const id = Number(new URL(page.url()).searchParams.get('session'))
    expect(id).toBeGreaterThan(0)
    return id
  }

  it('reaches the page from the menu; an empty message shows the rule under the field', async () => {
    screenshotOnFailure(() => context, 'chat-validation')
    await page.click(byId('menu-model-chat'))
    await page.waitForURL((url) => url.pathname === '/chat')
    await page.waitForSelector(byId('chat-empty'))
    await page.click(byId('chat-send'))
    const error = page.locator(
      `${byId('chat-composer')} .el-form-item.is-error .el-form-item__error`,
    )
    await error.waitFor()
    expect((await error.innerText()).trim()).toBe('请输入消息内容')
    await shot(page, '30-chat-validation')
  })

  it('streams an answer with its reasoning in the 思考过程 block and keeps the session in the URL', async () => {
    screenshotOnFailure(() => context, 'chat-stream')
    await chooseModel('reasoning-content')
    await page.fill(textarea, 'Hi, who are you?')
    await page.press(textarea, 'Enter')

    const answer = page.locator(assistantMessages).last()
    await answer.waitFor()
    expect(await answer.getAttribute('data-status')).toBe('complete')
    expect((await answer.locator(byId('chat-message-content')).innerText()).trim()).toBe(
      THINK_ANSWER,
    )
    // The finished reasoning folds away; opening it shows the text.
    const think = answer.locator(byId('think-block'))
    expect(await think.locator('.mt-think-title').innerText()).toBe('思考过程')
    await think.locator(byId('think-toggle')).click()
    await expect.poll(() => think.locator(byId('think-text')).innerText()).toBe(THINK_REASONING)
    expect(await page.inputValue(textarea)).toBe('')
    await shot(page, '31-chat-streamed-reasoning')

    // The session is in the URL and in the list, titled from the first message.
    await expect.poll(() => new URL(page.url()).searchParams.get('session')).not.toBeNull()
    reasoningSession = sessionFromUrl()
    const item = page.locator(`${byId('chat-session')}[data-session-id="${reasoningSession}"]`)
    await expect
      .poll(() => item.locator(byId('chat-session-title')).innerText())
      .toContain('Hi, who are you?')
    const saved = await sessionDetail(reasoningSession)
    expect(saved.messages.items.map((m) => [m.role, m.status])).toEqual([
      ['user', 'complete'],
      ['assistant', 'complete'],
    ])
    expect(saved.messages.items[1]).toMatchObject({
      content: THINK_ANSWER,
      reasoning: THINK_REASONING,
    })

    // A reload reopens the same conversation.
    await page.reload()
    await page.locator(assistantMessages).first().waitFor()
    expect(sessionFromUrl()).toBe(reasoningSession)
    expect(await page.locator(byId('chat-message')).count()).toBe(2)
  })

  it('shows the reasoning live while it streams, then the answer', async () => {
    screenshotOnFailure(() => context, 'chat-live-reasoning')
    await page.click(byId('chat-new'))
    await chooseModel('reasoning-slow')
    await page.fill(textarea, 'Think slowly, please')
    await page.press(textarea, 'Enter')

    // While the model is still reasoning (150 ms a word), the open block grows word by word.
    const live = page.locator(byId('chat-streaming-message')).locator(byId('think-text'))
    await expect.poll(() => live.innerText(), { timeout: 10_000 }).toMatch(/^The user greets/)
    const partial = (await live.innerText()).trim()
    expect(THINK_REASONING.startsWith(partial)).toBe(true)
    expect(partial.length).toBeLessThan(THINK_REASONING.length)
    await shot(page, '32b-chat-live-reasoning')

    const answer = page.locator(assistantMessages).last()
    await expect
      .poll(() => answer.getAttribute('data-status'), { timeout: 15_000 })
      .toBe('complete')
    expect((await answer.locator(byId('chat-message-content')).innerText()).trim()).toBe(
      THINK_ANSWER,
    )
  })

  it("opens with the model of a config card's chat link preselected", async () => {
    screenshotOnFailure(() => context, 'chat-config-link')
    await page.goto(`${baseURL()}/models`)
    await page.click(byId(`config-chat-${configs['echo']}`))
    await expect.poll(() => new URL(page.url()).pathname).toBe('/chat')
    await page.fill(textarea, 'from the card')
    await page.press(textarea, 'Enter')
    const answer = page.locator(assistantMessages).last()
    await expect
      .poll(() => answer.locator(byId('chat-message-content')).innerText(), { timeout: 10_000 })
      .toContain('You said: from the card')
    await expect.poll(() => new URL(page.url()).searchParams.get('model_config_id')).toBeNull()
  })

  it('renders Markdown answers with highlighted, copyable code', async () => {
    screenshotOnFailure(() => context, 'chat-markdown')
    await page.click(byId('chat-new'))
    await page.waitForSelector(byId('chat-empty'))
    await chooseModel('echo')
    await page.fill(
      textarea,
      '**bold** and `inline` <img src=x onerror="window.__xss=1">\n\n```python\ndef f():\n    return 42\n```',
    )
    await page.press(textarea, 'Enter')
    const answer = page.locator(assistantMessages).last()
    await answer.waitFor()
    const content = answer.locator(byId('chat-message-content'))
    expect(await content.locator('strong').innerText()).toBe('bold')
    expect(await content.locator('p code').innerText()).toBe('inline')
    expect(
      await content.locator('pre code.language-python .hljs-keyword').first().innerText(),
    ).toBe('def')
    expect(await content.locator('button[data-mt-copy]').count()).toBe(1)
    // The raw HTML was shown as text, not run.
    expect(await content.locator('img').count()).toBe(0)
    expect(await page.evaluate(() => (window as { __xss?: number }).__xss)).toBeUndefined()
    await shot(page, '32-chat-markdown')
  })

  it('stops mid-stream; after a reload the partial answer is still there, marked interrupted', async () => {
    screenshotOnFailure(() => context, 'chat-stop')
    await page.click(byId('chat-new'))
    await page.waitForSelector(byId('chat-empty'))
    await chooseModel('stall')
    await page.fill(textarea, 'Tell me a long story')
    await page.press(textarea, 'Enter')

    // Two chunks arrive, then the provider goes silent: the answer is streaming.
    const live = page.locator(byId('chat-streaming-content'))
    await expect.poll(() => live.innerText().catch(() => '')).toContain('Hello!')
    await page.waitForSelector(byId('chat-stop'))
    await shot(page, '33-chat-streaming')
    await page.click(byId('chat-stop'))

    const partial = page.locator(assistantMessages).last()
    await partial.waitFor()
    expect(await partial.getAttribute('data-status')).toBe('interrupted')
    expect((await partial.locator(byId('chat-message-interrupted')).innerText()).trim()).toBe(
      '已中断',
    )
    await page.waitForSelector(byId('chat-send'))

    // The server saved what had arrived when the browser hung up.
    const id = sessionFromUrl()
    await expect
      .poll(async () => (await sessionDetail(id)).messages.items.map((m) => m.status), {
        timeout: 10_000,
      })
      .toEqual(['complete', 'interrupted'])

    await page.reload()
    const reloaded = page.locator(assistantMessages).last()
    await reloaded.waitFor()
    expect(await reloaded.getAttribute('data-status')).toBe('interrupted')
    expect(await reloaded.locator(byId('chat-message-content')).innerText()).toContain('Hello!')
    expect(await reloaded.locator(byId('chat-message-interrupted')).isVisible()).toBe(true)
    await shot(page, '34-chat-interrupted-after-reload')
  })

  it('regenerates the last answer in place', async () => {
    screenshotOnFailure(() => context, 'chat-regenerate')
    await page.click(`${byId('chat-session')}[data-session-id="${reasoningSession}"]`)
    await expect
      .poll(() => new URL(page.url()).searchParams.get('session'))
      .toBe(String(reasoningSession))
    const answer = page.locator(assistantMessages).last()
    await answer.waitFor()
    const before = await answer.getAttribute('data-message-id')
    await answer.hover()
    await answer.locator(byId('chat-message-regenerate')).click()
    await expect
      .poll(() => page.locator(assistantMessages).last().getAttribute('data-message-id'))
      .not.toBe(before)
    expect(await page.locator(assistantMessages).count()).toBe(1)
    const saved = await sessionDetail(reasoningSession)
    expect(saved.messages.items.map((m) => m.role)).toEqual(['user', 'assistant'])
    expect(String(saved.messages.items[1].id)).not.toBe(before)
    expect(saved.messages.items[1].content).toBe(THINK_ANSWER)
    await shot(page, '35-chat-regenerated')
  })

  it('answers whole with streaming switched off', async () => {
    screenshotOnFailure(() => context, 'chat-non-stream')
    await page.click(byId('chat-new'))
    await page.waitForSelector(byId('chat-empty'))
    await chooseModel('plain')
    await page.click(byId('chat-stream-toggle'))
    await page.fill(textarea, 'Say hello')
    await page.click(byId('chat-send'))
    const answer = page.locator(assistantMessages).last()
    await answer.waitFor()
    expect(await answer.locator(byId('chat-message-content')).innerText()).toContain(
      'Hello! I am the mock upstream.',
    )
    const id = sessionFromUrl()
    expect((await sessionDetail(id)).messages.items).toHaveLength(2)
    // Back on for the other tests (the choice is remembered in this browser).
    await page.click(byId('chat-stream-toggle'))
    await shot(page, '36-chat-non-stream')
  })

  it('exports the open session as a file', async () => {
    screenshotOnFailure(() => context, 'chat-export')
    await page.click(byId('chat-export'))
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.locator(`${byId('chat-export-markdown')}:visible`).click(),
    ])
    expect(download.suggestedFilename()).toMatch(/\.md$/)
    const path = await download.path()
    const text = await readFile(path, 'utf-8')
    // The open session is the one answered whole just before.
    expect(text).toContain('Say hello')
    expect(text).toContain('Hello! I am the mock upstream.')
  })

  it('preselects a prompt from the library link and sends with it', async () => {
    screenshotOnFailure(() => context, 'chat-prompt')
    const prompt = await api.json<{ id: number; name: string }>(
      'POST',
      '/api/chat/system-prompts/',
      { name: `Pirate ${suffix}`, content: 'Answer like a pirate.' },
      201,
    )

    await page.goto(`/chat?system_prompt_id=${prompt.id}`)
    await page.waitForSelector(byId('chat-empty'))
    const chosen = page.locator(
      `${byId('chat-prompt-select')} .el-select__placeholder:not(.is-transparent)`,
    )
    await expect.poll(() => chosen.innerText()).toBe(prompt.name)
    await chooseModel('echo')
    await page.fill(textarea, 'Ahoy')
    await page.press(textarea, 'Enter')
    await page.locator(assistantMessages).last().waitFor()
    await expect.poll(() => new URL(page.url()).searchParams.get('session')).not.toBeNull()
    // The preset was for the new chat; the session now carries it, the URL no longer.
    expect(new URL(page.url()).searchParams.get('system_prompt_id')).toBeNull()
    const id = sessionFromUrl()
    const saved = await api.json<{ session: { system_prompt_id: number | null } }>(
      'GET',
      `/api/chat/sessions/${id}`,
    )
    expect(saved.session.system_prompt_id).toBe(prompt.id)
    await shot(page, '39-chat-prompt-preset')
  })

  it('attaches an image only for a vision model and sends it', async () => {
    screenshotOnFailure(() => context, 'chat-image')
    await page.click(byId('chat-new'))
    await page.waitForSelector(byId('chat-empty'))
    await chooseModel('echo')
    expect(await page.locator(byId('chat-attach')).isDisabled()).toBe(true)
    await chooseModel('echo-vision')
    expect(await page.locator(byId('chat-attach')).isDisabled()).toBe(false)
    await page.setInputFiles(byId('chat-attach-input'), DOT_PNG)
    const thumb = page.locator(`${byId('chat-composer')} ${byId('chat-image-thumb')}`)
    await thumb.waitFor()
    await expect.poll(() => thumb.locator('.mt-thumb-uploading').count()).toBe(0)
    await shot(page, '40-chat-image-attached')
    await page.fill(textarea, 'What is this?')
    await page.press(textarea, 'Enter')
    const answer = page.locator(assistantMessages).last()
    await answer.waitFor()
    expect(await answer.locator(byId('chat-message-content')).innerText()).toContain('[1 image(s)]')
    expect(await thumb.count()).toBe(0)
    // The user's turn shows the image, fetched with the session's token.
    const sent = page.locator(
      `${byId('chat-message')}[data-role="user"] ${byId('chat-image-thumb')} img`,
    )
    await sent.waitFor()
    expect(await sent.getAttribute('src')).toMatch(/^blob:/)
    await expect.poll(() => sent.evaluate((img: HTMLImageElement) => img.naturalWidth)).toBe(1)
  })

  it('loads earlier messages when scrolled to the top, keeping the view', async () => {
    screenshotOnFailure(() => context, 'chat-older')
    const { id } = await api.json<{ id: number }>(
      'POST',
      '/api/chat/sessions',
      { title: `Long ${suffix}` },
      201,
    )
    for (let i = 1; i <= 60; i++) {
      const assistant = i % 2 === 0
      const message = {
        session_id: id,
        role: assistant ? 'assistant' : 'user',
        // The last answer was written back with its reasoning inline.
        content: i === 60 ? `<think>Inline reasoning</think>Answer ${i}` : `Message ${i}`,
      }
      await api.json('POST', '/api/chat/messages', message, 201)
    }
    await page.goto(`/chat?session=${id}`)
    const messages = page.locator(byId('chat-message'))
    await expect.poll(() => messages.count()).toBe(50)
    expect((await messages.first().locator(byId('chat-message-content')).innerText()).trim()).toBe(
      'Message 11',
    )
    // An inline <think> block of a saved answer shows as reasoning, not as text.
    const last = page.locator(assistantMessages).last()
    expect((await last.locator(byId('chat-message-content')).innerText()).trim()).toBe('Answer 60')
    await last.locator(byId('think-toggle')).click()
    expect(await last.locator(byId('think-text')).innerText()).toBe('Inline reasoning')

    const anchor = page.locator(`${byId('chat-message')}[data-message-id]`).first()
    const anchorId = await anchor.getAttribute('data-message-id')
    await page.locator(byId('chat-messages')).evaluate((el) => (el.scrollTop = 0))
    await expect.poll(() => messages.count()).toBe(60)
    await page.waitForSelector(byId('chat-start'))
    expect((await messages.first().locator(byId('chat-message-content')).innerText()).trim()).toBe(
      'Message 1',
    )
    // The message that was on top is still in view: the older ones went in above it.
    const box = await page
      .locator(`${byId('chat-message')}[data-message-id="${anchorId}"]`)
      .boundingBox()
    const frame = await page.locator(byId('chat-messages')).boundingBox()
    expect(box && frame && box.y >= frame.y - 5 && box.y < frame.y + frame.height).toBe(true)
    await shot(page, '41-chat-older-loaded')
  })

  it('renames a session inline and deletes one after confirming', async () => {
    screenshotOnFailure(() => context, 'chat-rename-delete')
    const item = page.locator(`${byId('chat-session')}[data-session-id="${reasoningSession}"]`)
    await item.hover()
    await item.locator(byId('chat-session-actions')).click()
    await page.locator(`${byId('chat-session-rename')}:visible`).click()
    const editor = item.locator(input('chat-session-rename-input'))
    await editor.waitFor()
    await editor.fill('Renamed in e2e')
    await editor.press('Enter')
    await expect
      .poll(() => item.locator(byId('chat-session-title')).innerText())
      .toBe('Renamed in e2e')
    expect((await sessionDetail(reasoningSession)).session.title).toBe('Renamed in e2e')
    await shot(page, '37-chat-renamed')

    // Delete the open one: it leaves the list, the page goes back to a new chat.
    await item.click()
    await expect
      .poll(() => new URL(page.url()).searchParams.get('session'))
      .toBe(String(reasoningSession))
    await item.hover()
    await item.locator(byId('chat-session-actions')).click()
    await page.locator(`${byId('chat-session-delete')}:visible`).click()
    await page.click('.mt-confirm-delete')
    await expect.poll(() => item.count()).toBe(0)
    await expect.poll(() => new URL(page.url()).searchParams.get('session')).toBeNull()
    await page.waitForSelector(byId('chat-empty'))
    const gone = await api.fetch(`/api/chat/sessions/${reasoningSession}`)
    expect(gone.status).toBe(404)
    await shot(page, '38-chat-deleted')
  })

  it('searches sessions on the server', async () => {
    screenshotOnFailure(() => context, 'chat-search')
    await page.fill(input('chat-session-search'), 'long story')
    await expect.poll(() => page.locator(byId('chat-session')).count()).toBe(1)
    await page.fill(input('chat-session-search'), 'no such words anywhere')
    await page.waitForSelector(byId('chat-sessions-empty'))
    await page.fill(input('chat-session-search'), '')
    await expect.poll(() => page.locator(byId('chat-session')).count()).toBeGreaterThan(1)
  })
})

// When the browser or the mock upstream is missing: one visible skipped entry.
if (skip) it.skip(`chat e2e skipped: ${reason}`, () => undefined)
