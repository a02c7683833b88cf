import { createI18n } from 'vue-i18n'

import en from './en'
import zhCN from './zh-CN'

export type Locale = 'zh-CN' | 'en'
export const LOCALES: { value: Locale; label: string }[] = [
  { value: 'zh-CN', label: '简体中文' },
  { value: 'en', label: 'English' },
]
export const LOCALE_STORAGE_KEY = 'modeltrain.locale'

export function initialLocale(): Locale {
  const saved =
    typeof localStorage !== 'undefined' ? localStorage.getItem(LOCALE_STORAGE_KEY) : null
  return saved === 'en' || saved === 'zh-CN' ? saved : 'zh-CN'
}

export type MessageSchema = typeof zhCN

export const i18n = createI18n<[MessageSchema], Locale, false>({
  legacy: false,
  locale: initialLocale(),
  fallbackLocale: 'zh-CN',
  messages: { 'zh-CN': zhCN, en },
})

// Page texts are loaded with their page (router meta `i18n`), not in the entry bundle that the
// login page needs; common and auth texts stay eager.
const pageLoaders = import.meta.glob<{ default: Record<string, unknown> }>([
  './*/*.ts',
  '!./*/index.ts',
  '!./*/common.ts',
  '!./*/auth.ts',
])
const loadedPages = new Set<string>()

/** Merge the texts of page module `name` (e.g. "modelConfig") for every locale, once. */
export async function loadPageMessages(name: string): Promise<void> {
  if (loadedPages.has(name)) return
  await Promise.all(
    LOCALES.map(async ({ value }) => {
      const loader = pageLoaders[`./${value}/${name}.ts`]
      if (!loader) throw new Error(`No ${value} texts for page module ${name}`)
      const texts = (await loader()).default
      i18n.global.mergeLocaleMessage(value, { [name]: texts } as never)
    }),
  )
  loadedPages.add(name)
}
