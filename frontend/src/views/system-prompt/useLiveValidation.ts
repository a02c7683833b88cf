/**
 * Checks prompt content on the server (POST /validate) while the user types: a pause of
 * `delayMs` after the last change sends one request; a newer change aborts the older request,
 * and only the answer to the newest one is shown.
 */
import axios from 'axios'
import { onScopeDispose, ref, shallowRef, watch } from 'vue'

import { validatePrompt, type ValidateRequest, type ValidateResponse } from '@/api/systemPrompts'

import { VALIDATE_DEBOUNCE_MS } from './data'

/** idle: nothing to check; pending: waiting for the pause; checking: asked; done / failed. */
export type ValidationState = 'idle' | 'pending' | 'checking' | 'done' | 'failed'

export function useLiveValidation(
  source: () => ValidateRequest | null,
  delayMs: number = VALIDATE_DEBOUNCE_MS,
) {
  const result = shallowRef<ValidateResponse | null>(null)
  const state = ref<ValidationState>('idle')

  let timer: ReturnType<typeof setTimeout> | undefined
  let controller: AbortController | undefined
  let ticket = 0

  function cancel(): void {
    if (timer !== undefined) clearTimeout(timer)
    timer = undefined
    controller?.abort()
    controller = undefined
    ticket++
  }

  async function run(request: ValidateRequest): Promise<void> {
    const mine = ++ticket
    const abort = new AbortController()
    controller = abort
    state.value = 'checking'
    try {
      const answer = await validatePrompt(request, { silent: true, signal: abort.signal })
      if (mine !== ticket) return
      result.value = answer
      state.value = 'done'
    } catch (error) {
      if (mine !== ticket || axios.isCancel(error)) return
      // Say that the check failed, but keep the last findings: they are still the best guess.
      state.value = 'failed'
    } finally {
      if (controller === abort) controller = undefined
    }
  }

  function schedule(request: ValidateRequest | null, immediately = false): void {
    cancel()
    if (request === null || request.content.trim() === '') {
      // Empty content is the form's own "required" rule; nothing to ask the server.
      result.value = null
      state.value = 'idle'
      return
    }
    if (immediately) {
      void run(request)
      return
    }
    state.value = 'pending'
    timer = setTimeout(() => {
      timer = undefined
      void run(request)
    }, delayMs)
  }

  /** Check the current content now (e.g. when the editor opens on an existing prompt). */
  function validateNow(): void {
    schedule(source(), true)
  }

  watch(source, (request) => schedule(request))
  onScopeDispose(cancel)

  return { result, state, validateNow, cancel }
}
