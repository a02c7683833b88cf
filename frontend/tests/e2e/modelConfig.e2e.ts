/**
 * The model config center in a real browser against the real backend and the mock
 * OpenAI-compatible upstream (backend/tests/upstream.py): create a config, fetch the model
 * list and pick from it, see it enabled, test the connection, and see a bad key's error.
 * It registers its own user, so it does not depend on what other specs did to the admin.
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
  upstreamSkipReason,
  upstreamURL,
} from './browser'

const USER = uniqueUser('models', 'Model-Config-Pass-2026')
const api = new ApiClient(USER)
const GOOD = { name: `Mock plain ${suffix}`, key: 'sk-test-key' }
const BAD = { name: `Mock wrong key ${suffix}`, key: 'sk-wrong-key' }
const DRAFT = { name: `OpenAI draft ${suffix}` }

const reason = upstreamSkipReason()
const skip = Boolean(reason)

interface ConfigRow {
  id: number
  name: string
  status: number
  model: string | null
  has_api_key: boolean
  api_key_masked: string | null
}

async function configByName(name: string): Promise<ConfigRow> {
  const rows = await api.json<ConfigRow[]>('GET', '/api/model-config/', undefined, 200)
  const found = rows.find((row) => row.name === name)
  if (!found) throw new Error(`no config named ${name}`)
  return found
}

describe.skipIf(skip)('model configs in the browser', () => {
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

  /** Open the new-config dialog and fill the connection for the mock upstream. */
  async function startConfig(name: string, key: string): Promise<void> {
    await page.click(byId('model-config-new'))
    await page.waitForSelector(input('config-name'), { state: 'visible' })
    await page.fill(input('config-name'), name)
    await page.click(byId('config-provider'))
    await page.click(byId('config-provider-option-custom'))
    // Choosing the provider filled its default endpoint; point it at the mock instead.
    await expect.poll(() => page.inputValue(input('config-endpoint'))).not.toBe('')
    await page.fill(input('config-endpoint'), `${upstreamURL()}/v1`)
    await page.fill(input('config-api-key'), key)
  }

  async function save(name: string): Promise<ConfigRow> {
    await page.click(byId('config-save'))
    await page.waitForSelector(input('config-name'), { state: 'hidden' })
    return configByName(name)
  }

  async function testConnection(id: number): Promise<string> {
    await page.click(byId(`config-test-${id}`))
    const result = page.locator(`${byId(`config-test-result-${id}`)}[data-ok]`)
    await result.waitFor({ timeout: 30_000 })
    return (await result.getAttribute('data-ok')) ?? ''
  }

  it('reaches the page from the menu and shows the seeded templates', async () => {
    screenshotOnFailure(() => context, 'model-config-page')
    await page.click(byId('menu-model-config'))
    await page.waitForURL((url) => url.pathname === '/models')
    await page.waitForSelector(byId('config-group-openai'))
    // Templates arrive disabled and belong to the built-in admin: no edit controls for us.
    const template = page.locator('[data-testid^="config-card-"]').first()
    await template.waitFor()
    const id = await template.getAttribute('data-config-id')
    expect(await page.getAttribute(byId(`config-status-${id}`), 'data-status')).toBe('0')
    expect(await page.locator(byId(`config-edit-${id}`)).count()).toBe(0)
    await shot(page, '20-model-config-page')
  })

  it('creates a config against the mock upstream, picks a fetched model and saves it enabled', async () => {
    screenshotOnFailure(() => context, 'model-config-create')
    await startConfig(GOOD.name, GOOD.key)
    await shot(page, '21-model-config-dialog')

    await page.click(byId('config-refresh-models'))
    await page.waitForSelector(byId('config-models-status'))
    await page.click(byId('config-model-select'))
    const plain = page.locator(`${byId('config-model-option')}[data-model-id="plain"]`)
    await plain.waitFor()
    expect(await page.locator(byId('config-model-option')).count()).toBeGreaterThan(1)
    await shot(page, '22-model-config-model-list')
    await plain.click()
    expect(await page.inputValue(input('config-model'))).toBe('plain')
    // Complete now: no "will be saved as not enabled" warning.
    expect(await page.locator(byId('config-missing')).isVisible()).toBe(false)

    const saved = await save(GOOD.name)
    expect(saved).toMatchObject({ status: 1, model: 'plain', has_api_key: true })
    expect(saved.api_key_masked).not.toContain(GOOD.key)

    const status = page.locator(byId(`config-status-${saved.id}`))
    await status.waitFor()
    expect(await status.getAttribute('data-status')).toBe('1')
    expect((await status.innerText()).trim()).toBe('启用')
    expect(await page.locator(byId(`config-edit-${saved.id}`)).isVisible()).toBe(true)
    await shot(page, '23-model-config-saved-enabled')
  })

  it('tests the connection: ok with its latency', async () => {
    screenshotOnFailure(() => context, 'model-config-test-ok')
    const { id } = await configByName(GOOD.name)
    expect(await testConnection(id)).toBe('true')
    const text = await page.innerText(byId(`config-test-result-${id}`))
    expect(text).toMatch(/\d+ ms/)
    await shot(page, '24-model-config-test-ok')
  })

  it('a config with a wrong key saves, and its test shows the error', async () => {
    screenshotOnFailure(() => context, 'model-config-test-error')
    await startConfig(BAD.name, BAD.key)
    await page.fill(input('config-model'), 'plain')
    const saved = await save(BAD.name)
    expect(saved.status).toBe(1)

    expect(await testConnection(saved.id)).toBe('false')
    const text = await page.innerText(byId(`config-test-result-${saved.id}`))
    expect(text.length).toBeGreaterThan('连接失败：'.length)
    await shot(page, '25-model-config-test-error')
  })

  it('saves an incomplete config as not enabled, enables it with a key, and deletes it', async () => {
    screenshotOnFailure(() => context, 'model-config-draft')
    // OpenAI needs a key: without one the dialog warns and the config stays a draft.
    await page.click(byId('model-config-new'))
    await page.waitForSelector(input('config-name'), { state: 'visible' })
    await page.fill(input('config-name'), DRAFT.name)
    await page.click(byId('config-provider'))
    await page.click(byId('config-provider-option-openai'))
    await expect.poll(() => page.inputValue(input('config-endpoint'))).toContain('openai.com')
    // Opening the dialog again after another config leaves no field flagged.
    expect(await page.locator(`${byId('config-dialog')} .el-form-item.is-error`).count()).toBe(0)
    await page.fill(input('config-model'), 'gpt-4o')
    await page.waitForSelector(byId('config-missing'))
    await shot(page, '27-model-config-draft-warning')
    const draft = await save(DRAFT.name)
    expect(draft.status).toBe(0)
    const status = page.locator(byId(`config-status-${draft.id}`))
    await status.waitFor()
    expect((await status.innerText()).trim()).toBe('未启用')

    // Adding the key completes it: saving enables it and the card shows only a mask.
    await page.click(byId(`config-edit-${draft.id}`))
    await page.waitForSelector(input('config-name'), { state: 'visible' })
    expect(await page.inputValue(input('config-name'))).toBe(DRAFT.name)
    await page.fill(input('config-api-key'), 'sk-draft-secret-1234')
    await expect.poll(() => page.locator(byId('config-missing')).isVisible()).toBe(false)
    expect((await save(DRAFT.name)).status).toBe(1)
    await expect.poll(() => status.getAttribute('data-status')).toBe('1')
    const key = await page.innerText(byId(`config-key-${draft.id}`))
    expect(key).not.toContain('sk-draft-secret-1234')

    // Removing the stored key makes it incomplete again.
    await page.click(byId(`config-edit-${draft.id}`))
    await page.waitForSelector(input('config-name'), { state: 'visible' })
    await page.click(byId('config-remove-key'))
    await page.waitForSelector(byId('config-missing'))
    const removed = await save(DRAFT.name)
    expect(removed).toMatchObject({ status: 0, has_api_key: false })
    await expect.poll(() => status.getAttribute('data-status')).toBe('0')

    await page.click(byId(`config-delete-${draft.id}`))
    await page.click('.mt-confirm-delete')
    await expect.poll(() => page.locator(byId(`config-card-${draft.id}`)).count()).toBe(0)
    await expect(configByName(DRAFT.name)).rejects.toThrow(/no config named/)
  })

  it('filters the cards by search text and status', async () => {
    screenshotOnFailure(() => context, 'model-config-filters')
    const good = await configByName(GOOD.name)
    const bad = await configByName(BAD.name)
    await page.fill(input('config-search'), BAD.name)
    await expect.poll(() => page.locator(byId(`config-card-${good.id}`)).count()).toBe(0)
    expect(await page.locator(byId(`config-card-${bad.id}`)).count()).toBe(1)
    await page.fill(input('config-search'), '')

    // "Not enabled" hides both (they are enabled) but keeps the templates.
    await page.click(byId('config-filter-status'))
    await page.click(byId('config-filter-status-disabled'))
    await expect.poll(() => page.locator(byId(`config-card-${good.id}`)).count()).toBe(0)
    expect(await page.locator('[data-testid^="config-card-"]').count()).toBeGreaterThan(0)
    await shot(page, '26-model-config-filtered')
  })
})

// When the browser or the mock upstream is missing: one visible skipped entry.
if (skip) it.skip(`model config e2e skipped: ${reason}`, () => undefined)
