/**
 * "Deploy and compare" a finished training job: serve its model and its base model beside it
 * (POST /api/training/{id}/deploy, with_base), wait until both are ready (or one fails, whose
 * reason is shown), refresh the model-config cache so their auto-registered configs are known,
 * and open the comparison page with both preselected.
 *
 * Cancelling (or the component going away) only stops the waiting: the runtimes keep loading on
 * the server and are managed on the runtime page.
 */
import { AxiosError } from 'axios'
import { getCurrentScope, onScopeDispose, reactive, readonly } from 'vue'
import { useRouter, type Router } from 'vue-router'

import {
  deployJob,
  errorCode,
  getRuntime,
  runtimeErrorMessage,
  type DeployRequest,
  type Runtime,
  type RuntimeEngine,
} from '@/api/runtime'
import { i18n, loadPageMessages } from '@/locales'
import { useModelStore } from '@/store/modules/model'

export type DeployPhase = 'idle' | 'deploying' | 'loading' | 'ready' | 'failed' | 'cancelled'
export type DeployRole = 'tuned' | 'base'

export interface DeployState {
  phase: DeployPhase
  jobId: number | null
  /** The fine-tuned model's runtime, as last seen. */
  tuned: Runtime | null
  /** The base model's runtime (reused when one exists), as last seen. */
  base: Runtime | null
  /** One line saying what went wrong; '' unless failed. */
  error: string
  /** The failed runtime's reason (exit code and the log's tail); '' when none. */
  reason: string
  /** Which runtime failed; null when the deploy call itself did. */
  failedRole: DeployRole | null
  /** When deploy() was called (ms), for an elapsed-time display. */
  startedAt: number | null
  /** The model configs the comparison opens with (base first), once ready. */
  configIds: number[]
}

export interface DeployOptions {
  /** The fine-tuned runtime's served name (default: job-<id>). */
  name?: string
  /** null / absent: vLLM where it can run, else LLaMA-Factory. */
  engine?: RuntimeEngine | null
  /** Open the comparison once both are ready (default true). */
  navigate?: boolean
}

export interface UseDeployOptions {
  /** Delay between status checks while loading. */
  intervalMs?: number
  /** Give up after this many failed checks in a row (network trouble). */
  maxPollErrors?: number
  /** Outside a component's setup, pass the router. */
  router?: Router
}

/** Status checks while a model loads: loading takes seconds (tiny model) to minutes. */
export const DEPLOY_POLL_MS = 1500
export const DEPLOY_MAX_POLL_ERRORS = 5

function initialState(): DeployState {
  return {
    phase: 'idle',
    jobId: null,
    tuned: null,
    base: null,
    error: '',
    reason: '',
    failedRole: null,
    startedAt: null,
    configIds: [],
  }
}

function isNotFound(error: unknown): boolean {
  return (
    (error instanceof AxiosError && error.response?.status === 404) ||
    errorCode(error) === 'runtime_not_found'
  )
}

export function useDeployAndCompare(options: UseDeployOptions = {}) {
  const intervalMs = options.intervalMs ?? DEPLOY_POLL_MS
  const maxPollErrors = options.maxPollErrors ?? DEPLOY_MAX_POLL_ERRORS
  const router = options.router ?? useRouter()
  const models = useModelStore()
  const state = reactive<DeployState>(initialState())

  /** Bumped by every deploy() and cancel(): a run whose number is stale stops quietly. */
  let run = 0
  let timer: ReturnType<typeof setTimeout> | undefined
  let wake: (() => void) | null = null
  let controller: AbortController | null = null

  const t = (key: string, named: Record<string, unknown> = {}): string => i18n.global.t(key, named)

  function stopWaiting(): void {
    run++
    if (timer !== undefined) clearTimeout(timer)
    timer = undefined
    controller?.abort()
    controller = null
    wake?.()
    wake = null
  }

  /** Wait `ms`, or less when the run is stopped meanwhile. */
  function sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      wake = resolve
      timer = setTimeout(() => {
        timer = undefined
        wake = null
        resolve()
      }, ms)
    })
  }

  function roleLabel(role: DeployRole): string {
    return t(`runtime.deploy.${role}`)
  }

  function fail(message: string, role: DeployRole | null, reason = ''): DeployPhase {
    state.phase = 'failed'
    state.error = message
    state.failedRole = role
    state.reason = reason
    return 'failed'
  }

  function watched(): [DeployRole, Runtime][] {
    const list: [DeployRole, Runtime][] = []
    if (state.tuned) list.push(['tuned', state.tuned])
    if (state.base) list.push(['base', state.base])
    return list
  }

  /** 'ready' when every runtime is, 'failed' (recorded) when one cannot get there, else 'wait'. */
  function verdict(): 'ready' | 'failed' | 'wait' {
    for (const [role, runtime] of watched()) {
      if (runtime.status === 'failed') {
        fail(
          t('runtime.deploy.runtimeFailed', { which: roleLabel(role), name: runtime.name }),
          role,
          runtime.reason ?? '',
        )
        return 'failed'
      }
      if (runtime.status === 'stopped' || runtime.unload_requested) {
        fail(
          t('runtime.deploy.runtimeStopped', { which: roleLabel(role), name: runtime.name }),
          role,
          runtime.reason ?? '',
        )
        return 'failed'
      }
    }
    const all = watched()
    const ready = all.every(([, runtime]) => runtime.status === 'ready' && runtime.model_config_id)
    return all.length > 0 && ready ? 'ready' : 'wait'
  }

  /** Fetch the runtimes not ready yet. */
  async function refresh(token: number): Promise<void> {
    controller = new AbortController()
    const signal = controller.signal
    const pending = watched().filter(([, runtime]) => runtime.status !== 'ready')
    const fresh = await Promise.all(
      pending.map(async ([role, runtime]) => {
        try {
          return [role, await getRuntime(runtime.id, { silent: true, signal })] as const
        } catch (error) {
          if (isNotFound(error)) {
            throw Object.assign(new Error('gone'), { role, runtime, gone: true })
          }
          throw error
        }
      }),
    )
    if (token !== run) return
    for (const [role, runtime] of fresh) state[role] = runtime
  }

  async function waitUntilReady(token: number, navigate: boolean): Promise<DeployPhase> {
    let errors = 0
    for (;;) {
      const found = verdict()
      if (found === 'failed') return 'failed'
      if (found === 'ready') break
      await sleep(intervalMs)
      if (token !== run) return state.phase
      try {
        await refresh(token)
        errors = 0
      } catch (error) {
        if (token !== run) return state.phase
        const gone = error as { gone?: boolean; role?: DeployRole; runtime?: Runtime }
        if (gone.gone && gone.role && gone.runtime) {
          return fail(
            t('runtime.deploy.runtimeGone', {
              which: roleLabel(gone.role),
              name: gone.runtime.name,
            }),
            gone.role,
          )
        }
        if (++errors >= maxPollErrors) return fail(runtimeErrorMessage(error), null)
      }
      if (token !== run) return state.phase
    }

    // Their model configs were created on ready: the comparison page picks from this cache.
    await models.load()
    if (token !== run) return state.phase
    const ids = [state.base, state.tuned]
      .map((runtime) => runtime?.model_config_id)
      .filter((id): id is number => typeof id === 'number')
    state.configIds = ids
    state.phase = 'ready'
    if (navigate) {
      await router.push({ path: '/model-test', query: { configs: ids.join(',') } })
    }
    return 'ready'
  }

  /** Deploy job `jobId` beside its base model; resolves with the phase it ends in. */
  async function deploy(jobId: number, opts: DeployOptions = {}): Promise<DeployPhase> {
    stopWaiting()
    const token = run
    Object.assign(state, initialState(), {
      phase: 'deploying',
      jobId,
      startedAt: Date.now(),
    } satisfies Partial<DeployState>)
    // The messages below are the runtime page's; the page using this may not have loaded them.
    await loadPageMessages('runtime').catch(() => undefined)
    if (token !== run) return state.phase
    const body: DeployRequest = { with_base: true }
    if (opts.name) body.name = opts.name
    if (opts.engine !== undefined) body.engine = opts.engine
    try {
      const result = await deployJob(jobId, body, { silent: true })
      if (token !== run) return state.phase
      state.tuned = result.runtime
      state.base = result.base_runtime
      state.phase = 'loading'
    } catch (error) {
      if (token !== run) return state.phase
      // invalid_state here is about the job, not a runtime.
      const message =
        errorCode(error) === 'invalid_state'
          ? t('runtime.deploy.notSucceeded')
          : runtimeErrorMessage(error)
      return fail(message, null)
    }
    return waitUntilReady(token, opts.navigate ?? true)
  }

  /** Stop waiting (the runtimes keep loading on the server). */
  function cancel(): void {
    const active = state.phase === 'deploying' || state.phase === 'loading'
    stopWaiting()
    if (active) state.phase = 'cancelled'
  }

  /** Back to idle (e.g. when a dialog closes after a failure). */
  function reset(): void {
    stopWaiting()
    Object.assign(state, initialState())
  }

  if (getCurrentScope()) onScopeDispose(stopWaiting)

  return { deploy, state: readonly(state), cancel, reset }
}
