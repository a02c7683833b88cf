/**
 * The runtime list, kept fresh: every 1.5 s while a runtime is loading or unloading, every 10 s
 * otherwise (another user's model may come up, or one may crash), and not at all once the
 * page's scope ends. Background refreshes are silent; an action's answer patches its row at once.
 */
import { getCurrentScope, onScopeDispose, ref, shallowRef } from 'vue'

import { listRuntimes, type Runtime } from '@/api/runtime'

import { pollDelay } from './data'

export function useRuntimeList() {
  const runtimes = shallowRef<Runtime[]>([])
  /** A request the user asked for (first load, refresh button) is in flight. */
  const loading = ref(false)
  /** The API has answered at least once. */
  const loaded = ref(false)
  /** When each row was fetched (ms, by id): uptimes count on from there. */
  const fetchedAt = shallowRef<Record<number, number>>({})

  let timer: ReturnType<typeof setTimeout> | undefined
  let stopped = false
  /** Bumped by local changes: a list fetched before one may be stale, so it is dropped. */
  let changes = 0
  let inflight: Promise<void> | null = null

  function schedule(delay = pollDelay(runtimes.value)): void {
    if (timer !== undefined) clearTimeout(timer)
    timer = undefined
    if (stopped) return
    timer = setTimeout(() => {
      timer = undefined
      void fetchList(true)
    }, delay)
  }

  async function fetchList(silent: boolean): Promise<void> {
    if (stopped) return
    if (inflight) return inflight
    const seen = changes
    if (!silent) loading.value = true
    inflight = (async () => {
      try {
        const list = await listRuntimes('', { silent })
        if (stopped) return
        if (seen !== changes) {
          schedule(0) // a row changed meanwhile: ask again rather than show the older list
          return
        }
        const now = Date.now()
        runtimes.value = list
        fetchedAt.value = Object.fromEntries(list.map((row) => [row.id, now]))
        loaded.value = true
      } catch {
        // Shown by api.ts when asked for; a background failure tries again on the next tick.
      } finally {
        inflight = null
        if (!silent) loading.value = false
        if (timer === undefined) schedule()
      }
    })()
    return inflight
  }

  /** Fetch now (the page's first load, the refresh button). */
  function refresh(): Promise<void> {
    return fetchList(false)
  }

  /** Show an action's answer now; a runtime that starts loading is polled fast from here. */
  function upsert(runtime: Runtime): void {
    changes++
    const index = runtimes.value.findIndex((row) => row.id === runtime.id)
    runtimes.value =
      index === -1
        ? [runtime, ...runtimes.value]
        : runtimes.value.map((row, i) => (i === index ? runtime : row))
    fetchedAt.value = { ...fetchedAt.value, [runtime.id]: Date.now() }
    schedule()
  }

  function drop(id: number): void {
    changes++
    runtimes.value = runtimes.value.filter((row) => row.id !== id)
    schedule()
  }

  function stop(): void {
    stopped = true
    if (timer !== undefined) clearTimeout(timer)
    timer = undefined
  }

  if (getCurrentScope()) onScopeDispose(stop)

  return { runtimes, loading, loaded, fetchedAt, refresh, upsert, drop, stop }
}
