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
