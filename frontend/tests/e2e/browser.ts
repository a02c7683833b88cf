/**
 * Shared browser plumbing for the e2e specs: launch, pages, signing in through the form,
 * selectors, the suite's URLs and skip reasons, screenshots on demand and on failure.
 */
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core'
import { inject, onTestFailed } from 'vitest'

import { CHROMIUM } from './globalSetup'

export const SHOT_DIR = fileURLToPath(new URL('../../test-results/screenshots', import.meta.url))
mkdirSync(SHOT_DIR, { recursive: true })

export const baseURL = (): string => inject('baseURL')
export const skipReason = (): string => inject('skipReason')
/** The mock OpenAI-compatible upstream's root (its API is under /v1); '' when it is missing. */
export const upstreamURL = (): string => inject('upstreamURL')
/** Why a spec that needs the mock upstream cannot run; '' when it can. */
export const upstreamSkipReason = (): string =>
  skipReason() || (upstreamURL() ? '' : 'the mock upstream is not available')

export async function launch(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  })
}

export async function newContext(browser: Browser): Promise<BrowserContext> {
  return browser.newContext({ baseURL: baseURL(), viewport: { width: 1280, height: 800 } })
}

export async function shot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: join(SHOT_DIR, `${name}.png`), fullPage: true })
}

/** Inside a test: screenshot every open page of `context` if the test fails. */
export function screenshotOnFailure(context: () => BrowserContext | undefined, name: string): void {
  onTestFailed(async () => {
    const pages = context()?.pages() ?? []
    await Promise.all(
      pages.map((page, index) => shot(page, `FAILED-${name}-${index}`).catch(() => undefined)),
    )
  })
}

/** Element Plus puts data-testid on the component root: reach the native input inside it. */
export const input = (testId: string): string =>
  `[data-testid="${testId}"] input, input[data-testid="${testId}"]`
/** Likewise for an el-input of type textarea: reach the native textarea inside it. */
export const textarea = (testId: string): string =>
  `[data-testid="${testId}"] textarea, textarea[data-testid="${testId}"]`
export const byId = (testId: string): string => `[data-testid="${testId}"]`

/** A valid 1×1 PNG as a file for `setInputFiles` (the server checks images by content). */
export const DOT_PNG = {
  name: 'dot.png',
  mimeType: 'image/png',
  buffer: Buffer.from(
    'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==',
    'base64',
  ),
}

/** Fill and submit the login form; the caller waits for whatever should follow. */
export async function signIn(page: Page, username: string, password: string): Promise<void> {
  await page.goto('/login')
  await page.fill(input('login-username'), username)
  await page.fill(input('login-password'), password)
  await page.click(byId('login-submit'))
}

/** A page in a new context of `browser`, signed in as `user` by the form, on the dashboard. */
export async function signedInPage(
  browser: Browser,
  user: { nickname: string; password: string },
): Promise<Page> {
  const page = await (await newContext(browser)).newPage()
  await signIn(page, user.nickname, user.password)
  await page.waitForURL((url) => url.pathname === '/')
  return page
}
