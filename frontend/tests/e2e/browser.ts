/** Shared browser plumbing for the e2e specs: launch, pages, screenshots on demand and on failure. */
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
export const byId = (testId: string): string => `[data-testid="${testId}"]`
