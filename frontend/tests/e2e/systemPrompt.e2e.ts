/**
 * The prompt library in a real browser against the real backend: built-ins are read-only,
 * malformed JSON shows its error with the line under the editor while typing, the fixed prompt
 * saves and is listed, the preview fills (and escapes) a variable, conversion shows the result
 * or the reason it is impossible, built-ins are copied into one's own prompts, and "use in chat"
 * opens the chat with the prompt's id. It registers its own user.
 */
import type { Browser, BrowserContext, Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

import { ApiClient, register, suffix, uniqueUser } from './api'
import {
  byId,
  input,
  launch,
  screenshotOnFailure,
  shot,
  signedInPage,
  skipReason,
  textarea,
} from './browser'

const USER = uniqueUser('prompts', 'Prompt-Library-Pass-2026')
const api = new ApiClient(USER)
const NAME = `Translator ${suffix}`
const BROKEN = '{\n  "role": "translator",\n  "target": "{{ lang }}",\n}'
const FIXED = '{\n  "role": "translator",\n  "target": "{{ lang }}"\n}'

const reason = skipReason()
const skip = Boolean(reason)

interface PromptRow {
  id: number
  name: string
  content: string
  format: string
  variables: string[]
  is_builtin: boolean
  can_edit: boolean
}

async function listPrompts(params: Record<string, string>): Promise<PromptRow[]> {
  const query = new URLSearchParams({ size: '100', ...params })
  const path = `/api/chat/system-prompts/?${query}`
  return (await api.json<{ items: PromptRow[] }>('GET', path, undefined, 200)).items
}

async function mine(): Promise<PromptRow[]> {
  return listPrompts({ scope: 'mine' })
}

describe.skipIf(skip)('the prompt library in the browser', () => {
  let browser: Browser
  let context: BrowserContext | undefined
  let page: Page

  beforeAll(async () => {
    await register(USER)
    browser = await launch()
    page = await signedInPage(browser, USER)
    context = page.context()
  })

  afterAll(async () => {
    await browser?.close()
  })

  async function pickOption(select: string, option: string): Promise<void> {
    await page.click(byId(select))
    const item = page.locator(byId(option))
    await item.waitFor({ state: 'visible' })
    await item.click()
  }

  /** Wait for the table to show exactly these prompt names (in any order). */
  async function listedNames(): Promise<string[]> {
    await page.waitForSelector(`${byId('prompt-table')} .el-loading-mask`, { state: 'detached' })
    return page
      .locator('[data-testid^="prompt-row-"]')
      .evaluateAll((cells) => cells.map((cell) => cell.getAttribute('data-prompt-name') ?? ''))
  }

  it('reaches the page from the menu; built-ins are listed read-only', async () => {
    screenshotOnFailure(() => context, 'prompts-page')
    await page.click(byId('menu-system-prompts'))
    await page.waitForURL((url) => url.pathname === '/prompts')
    await page.click(byId('prompt-scope-builtin'))
    await expect.poll(listedNames).toContain('翻译')
    const builtins = await listPrompts({ scope: 'builtin' })
    const translate = builtins.find((row) => row.name === '翻译')
    if (!translate) throw new Error('no built-in 翻译')
    expect(await page.locator(byId(`prompt-view-${translate.id}`)).count()).toBe(1)
    expect(await page.locator(byId(`prompt-edit-${translate.id}`)).count()).toBe(0)
    expect(await page.locator(byId(`prompt-delete-${translate.id}`)).count()).toBe(0)
    expect(await page.locator(byId(`prompt-import-${translate.id}`)).count()).toBe(1)
    await shot(page, '30-prompts-builtins')

    // Viewing it: read-only form, no save button, but preview works.
    await page.click(byId(`prompt-view-${translate.id}`))
    await page.waitForSelector(byId('prompt-readonly'))
    expect(await page.locator(byId('prompt-save')).count()).toBe(0)
    await page.keyboard.press('Escape')
    await page.waitForSelector(byId('prompt-readonly'), { state: 'hidden' })
  })

  it('shows malformed JSON inline with its line, refuses to save it, then saves the fix', async () => {
    screenshotOnFailure(() => context, 'prompts-create')
    await page.click(byId('prompt-scope-all'))
    await page.click(byId('prompt-new'))
    await page.waitForSelector(input('prompt-name'), { state: 'visible' })
    await page.fill(input('prompt-name'), NAME)
    await pickOption('prompt-format', 'prompt-format-option-json')
    await page.fill(textarea('prompt-content'), BROKEN)

    const error = page.locator(byId('prompt-validation-error')).first()
    await error.waitFor({ state: 'visible' })
    expect(await error.getAttribute('data-line')).toBe('4')
    expect(await error.innerText()).toContain('第 4 行')
    expect(await error.innerText()).toContain('Invalid JSON')
    await shot(page, '31-prompts-inline-error')

    // Save stays usable: the server refuses and its reason sits under the content field.
    await page.click(byId('prompt-save'))
    const fieldError = page.locator(
      `${byId('prompt-dialog')} .el-form-item.is-error .el-form-item__error`,
    )
    await fieldError.waitFor({ state: 'visible' })
    expect(await fieldError.innerText()).toContain('line 4, column 1')
    expect(await mine()).toHaveLength(0)

    await page.fill(textarea('prompt-content'), FIXED)
    await page.waitForSelector(byId('prompt-validation-ok'))
    expect(await page.locator(byId('prompt-validation-error')).count()).toBe(0)
    expect(await page.innerText(byId('prompt-detected'))).toContain('lang')
    await shot(page, '32-prompts-fixed')

    await page.click(byId('prompt-save'))
    await page.waitForSelector(input('prompt-name'), { state: 'hidden' })
    const saved = await mine()
    expect(saved).toHaveLength(1)
    expect(saved[0]).toMatchObject({ name: NAME, format: 'json', variables: ['lang'] })
    expect(saved[0]?.content).toBe(FIXED)
    await expect.poll(listedNames).toContain(NAME)
    await shot(page, '33-prompts-listed')
  })

  it('previews with a variable: the value is escaped into valid JSON', async () => {
    screenshotOnFailure(() => context, 'prompts-preview')
    const [prompt] = await mine()
    if (!prompt) throw new Error('no prompt')
    await page.click(byId(`prompt-edit-${prompt.id}`))
    await page.waitForSelector(byId('prompt-validation-ok'))
    const value = 'Deutsch "formal"\nline two'
    await page.fill(textarea('prompt-var-lang'), value)
    await page.click(byId('prompt-render'))
    const result = page.locator(byId('prompt-render-result'))
    await result.waitFor()
    const rendered = JSON.parse(await result.innerText()) as { role: string; target: string }
    expect(rendered).toEqual({ role: 'translator', target: value })
    expect(await page.locator(byId('prompt-render-missing')).count()).toBe(0)
    await shot(page, '34-prompts-preview')
  })

  it('converts: an impossible target shows the reason, YAML is shown and applied', async () => {
    screenshotOnFailure(() => context, 'prompts-convert')
    await page.click(byId('prompt-tab-convert'))
    await pickOption('prompt-convert-target', 'prompt-convert-option-openai-messages')
    await page.click(byId('prompt-convert'))
    const failure = page.locator(byId('prompt-convert-error'))
    await failure.waitFor()
    expect(await failure.innerText()).toContain('openai-messages')

    await pickOption('prompt-convert-target', 'prompt-convert-option-yaml')
    await page.click(byId('prompt-convert'))
    const result = page.locator(byId('prompt-convert-result'))
    await result.waitFor()
    expect((await result.innerText()).trim()).toBe('role: translator\ntarget: "{{ lang }}"')
    await shot(page, '35-prompts-convert')

    await page.click(byId('prompt-convert-apply'))
    await expect
      .poll(() => page.inputValue(textarea('prompt-content')))
      .toBe('role: translator\ntarget: "{{ lang }}"\n')
    await page.waitForSelector(byId('prompt-validation-ok'))
    await page.click(byId('prompt-save'))
    await page.waitForSelector(input('prompt-name'), { state: 'hidden' })
    const [saved] = await mine()
    expect(saved).toMatchObject({ name: NAME, format: 'yaml', variables: ['lang'] })
  })

  it('copies built-ins into my prompts: one with a click, then the ticked ones', async () => {
    screenshotOnFailure(() => context, 'prompts-import')
    const builtins = await listPrompts({ scope: 'builtin' })
    const [first, second, third] = builtins
    if (!first || !second || !third) throw new Error('too few built-ins')
    await page.click(byId('prompt-scope-builtin'))
    await expect.poll(listedNames).toContain(first.name)

    await page.click(byId(`prompt-import-${first.id}`))
    await expect.poll(async () => (await mine()).length).toBe(2)
    const copy = (await mine()).find((row) => row.name === first.name)
    expect(copy).toMatchObject({
      content: first.content,
      format: first.format,
      is_builtin: false,
      can_edit: true,
    })

    for (const prompt of [second, third]) {
      await page.click(`tr:has(${byId(`prompt-row-${prompt.id}`)}) .el-checkbox`)
    }
    const button = page.locator(byId('prompt-import-selected'))
    await expect.poll(() => button.innerText()).toContain('2')
    await shot(page, '36-prompts-import-selected')
    await button.click()
    await expect.poll(async () => (await mine()).length).toBe(4)
    const names = (await mine()).map((row) => row.name)
    expect(names).toEqual(expect.arrayContaining([first.name, second.name, third.name, NAME]))

    await page.click(byId('prompt-scope-mine'))
    await expect.poll(async () => (await listedNames()).length).toBe(4)
    // My copies are mine to change.
    expect(await page.locator('[data-testid^="prompt-edit-"]').count()).toBe(4)
    await shot(page, '37-prompts-mine')
  })

  it('filters by text and tag', async () => {
    screenshotOnFailure(() => context, 'prompts-filter')
    await page.fill(input('prompt-search'), suffix)
    await expect.poll(listedNames).toEqual([NAME])
    await page.fill(input('prompt-search'), '')
    await expect.poll(async () => (await listedNames()).length).toBe(4)
    const copies = (await mine()).filter((row) => row.name !== NAME)
    const [copy] = copies
    if (!copy) throw new Error('no copy')
    const withTag = await listPrompts({ scope: 'mine', tag: 'english' })
    await pickOption('prompt-filter-tag', 'prompt-tag-option-english')
    await expect
      .poll(async () => (await listedNames()).sort())
      .toEqual(withTag.map((row) => row.name).sort())
    await shot(page, '38-prompts-filtered')
  })

  it('"use in chat" opens the chat with the prompt id', async () => {
    screenshotOnFailure(() => context, 'prompts-use-in-chat')
    const prompt = (await mine()).find((row) => row.name === NAME)
    if (!prompt) throw new Error('no prompt')
    await page.goto('/prompts')
    await expect.poll(listedNames).toContain(NAME)
    await page.click(byId(`prompt-use-${prompt.id}`))
    await page.waitForURL((url) => url.pathname === '/chat')
    const url = new URL(page.url())
    expect(url.searchParams.get('system_prompt_id')).toBe(String(prompt.id))
    await shot(page, '39-prompts-use-in-chat')
  })
})
