/** Client-side checks mirroring backend/app/schemas/user.py; the server still has the last word. */
import type { FormItemRule } from 'element-plus'

type Translate = (key: string) => string
/** Returns an error message, or '' when the value is fine. */
export type Check = (value: string) => string

/** An Element Plus rule from a check. */
export const checkRule = (check: Check): FormItemRule => ({
  trigger: 'blur',
  validator: (_rule, value: string, callback) => {
    const problem = check(value ?? '')
    callback(problem ? new Error(problem) : undefined)
  },
})

export const passwordProblem =
  (t: Translate): Check =>
  (value) => {
    const chars = [...value]
    if (chars.length < 8) return t('auth.rules.passwordMin')
    if (chars.length > 128) return t('auth.rules.passwordMax')
    if (new Set(chars).size < 3) return t('auth.rules.passwordWeak')
    return ''
  }

export const nicknameProblem =
  (t: Translate): Check =>
  (value) => {
    const chars = [...value.trim().normalize('NFC')]
    if (chars.length < 2 || chars.length > 32) return t('auth.rules.nicknameLength')
    if (value.includes('@')) return t('auth.rules.nicknameAt')
    if (/\p{C}/u.test(value.trim())) return t('auth.rules.nicknameControl')
    return ''
  }

/** The "confirm password" field must repeat `original()`. */
export const confirmRule = (t: Translate, original: () => string): FormItemRule =>
  checkRule((value) => (value === original() ? '' : t('auth.rules.confirmMismatch')))
