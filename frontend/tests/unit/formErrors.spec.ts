import { describe, expect, it } from 'vitest'
import { isReactive, nextTick, watch } from 'vue'

import { useFormErrors } from '@/composables/useFormErrors'

describe('useFormErrors', () => {
  it('starts with an empty message for every field', () => {
    const { errors } = useFormErrors(['email', 'password'] as const)
    expect(errors).toEqual({ email: '', password: '' })
    expect(isReactive(errors)).toBe(true)
  })

  it('sets the known fields and ignores unknown ones', () => {
    const { errors, target } = useFormErrors(['email', 'password'] as const)
    target.setFieldErrors({ email: 'Already registered', role: 'not on this form' })
    expect(errors).toEqual({ email: 'Already registered', password: '' })
    expect('role' in errors).toBe(false)
  })

  it('replaces the previous errors on each call', () => {
    const { errors, target } = useFormErrors(['email', 'password'] as const)
    target.setFieldErrors({ email: 'first', password: 'too short' })
    target.setFieldErrors({ password: 'still too short' })
    expect(errors).toEqual({ email: '', password: 'still too short' })
  })

  it('clear() empties every field', () => {
    const { errors, target, clear } = useFormErrors(['email', 'nickname'] as const)
    target.setFieldErrors({ email: 'x', nickname: 'y' })
    clear()
    expect(errors).toEqual({ email: '', nickname: '' })
  })

  it('updates reactively, so bound form items re-render', async () => {
    const { errors, target } = useFormErrors(['email'] as const)
    const seen: string[] = []
    watch(
      () => errors.email,
      (value) => seen.push(value),
    )
    target.setFieldErrors({ email: 'bad' })
    await nextTick()
    expect(seen).toEqual(['bad'])
  })
})
