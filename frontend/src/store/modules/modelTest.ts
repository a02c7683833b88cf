/**
 * Saved model comparisons: the ratings and winner of the comparison on screen (kept locally
 * until it is saved, then written through with PATCH), the saved test it belongs to, and the
 * paginated history of saved tests.
 */
import { AxiosError } from 'axios'
import { defineStore } from 'pinia'
import { reactive, ref, watch } from 'vue'

import * as testApi from '@/api/modelTests'
import type {
  ExportFile,
  ExportFormat,
  ModelTest,
  ModelTestCreate,
  ModelTestUpdate,
} from '@/api/modelTests'
import { useAuthStore } from '@/store'

export const HISTORY_PAGE_SIZE = 10

function isNotFound(error: unknown): boolean {
  return error instanceof AxiosError && error.response?.status === 404
}

export const useModelTestStore = defineStore('modelTest', () => {
  const auth = useAuthStore()

  /** The saved test the comparison on screen belongs to; null while unsaved. */
  const saved = ref<ModelTest | null>(null)
  /** One rating (1-5 or null) per column on screen. */
  const ratings = ref<(number | null)[]>([])
  const winner = ref<number | null>(null)
  const saving = ref(false)
  /** A PATCH of ratings / winner is on its way (or queued behind one). */
  const syncing = ref(false)
  const syncError = ref<unknown>(null)

  const history = reactive({
    items: [] as ModelTest[],
    total: 0,
    page: 1,
    size: HISTORY_PAGE_SIZE,
    loading: false,
    loaded: false,
  })
  let historyTicket = 0

  // Changes made while a PATCH is in flight wait here and go out together afterwards: one
  // request at a time, so an older answer can never overwrite a newer choice on the server.
  let queued: ModelTestUpdate | null = null
  let flushing: Promise<void> | null = null

  /** A new comparison with `count` columns: nothing rated, nothing saved. */
  function reset(count: number): void {
    saved.value = null
    ratings.value = Array.from({ length: count }, () => null)
    winner.value = null
    queued = null
    syncError.value = null
  }

  function adopt(test: ModelTest): void {
    saved.value = test
    ratings.value = test.results.map((result) => result.rating ?? null)
    winner.value = test.winner_index
  }

  async function flushChanges(): Promise<void> {
    syncing.value = true
    try {
      while (queued && saved.value) {
        const changes = queued
        const id = saved.value.id
        queued = null
        try {
          const updated = await testApi.updateTest(id, changes)
          // Keep the choices made meanwhile (they are queued); take the rest from the server.
          if (saved.value?.id === id) saved.value = updated
          syncError.value = null
        } catch (error) {
          syncError.value = error
          if (isNotFound(error) && saved.value?.id === id) {
            // Deleted elsewhere: what is on screen is unsaved again.
            saved.value = null
            queued = null
            dropFromHistory(id)
          }
        }
      }
    } finally {
      syncing.value = false
      flushing = null
    }
  }

  function queue(changes: ModelTestUpdate): Promise<void> {
    if (!saved.value) return Promise.resolve()
    queued = { ...queued, ...changes }
    flushing ??= flushChanges()
    return flushing
  }

  /** Rate column `index` (null clears); written through when the comparison is saved. */
  function setRating(index: number, value: number | null): Promise<void> {
    if (index < 0 || index >= ratings.value.length) return Promise.resolve()
    ratings.value = ratings.value.map((rating, i) => (i === index ? value : rating))
    return queue({ ratings: [...ratings.value] })
  }

  /** Pick column `index` as the better answer (null: no winner). */
  function setWinner(index: number | null): Promise<void> {
    winner.value = index
    return queue({ winner_index: index })
  }

  /** Save the comparison on screen with the current ratings and winner. */
  async function save(payload: Omit<ModelTestCreate, 'winner_index'>): Promise<ModelTest> {
    saving.value = true
    try {
      const results = payload.results.map((result, index) => ({
        ...result,
        rating: ratings.value[index] ?? null,
      }))
      const created = await testApi.createTest({ ...payload, results, winner_index: winner.value })
      adopt(created)
      void loadHistory(1)
      return created
    } finally {
      saving.value = false
    }
  }

  /** Fetch a saved test and make it the one on screen. */
  async function open(id: number): Promise<ModelTest> {
    try {
      const test = await testApi.getTest(id)
      queued = null
      adopt(test)
      return test
    } catch (error) {
      if (isNotFound(error)) dropFromHistory(id)
      throw error
    }
  }

  async function remove(id: number): Promise<void> {
    try {
      await testApi.deleteTest(id)
    } catch (error) {
      if (!isNotFound(error)) throw error
    }
    if (saved.value?.id === id) {
      saved.value = null
      queued = null
    }
    dropFromHistory(id)
    // The page may now be past the end, or a row from the next page moves up.
    const last = Math.max(1, Math.ceil(history.total / history.size))
    await loadHistory(Math.min(history.page, last))
  }

  function dropFromHistory(id: number): void {
    const before = history.items.length
    history.items = history.items.filter((item) => item.id !== id)
    if (history.items.length < before) history.total = Math.max(0, history.total - 1)
  }

  /** Load a page of the history (default: the current one). Only the newest answer is kept. */
  async function loadHistory(page = history.page): Promise<void> {
    const ticket = ++historyTicket
    history.loading = true
    try {
      const result = await testApi.listTests({ page, size: history.size })
      if (ticket !== historyTicket) return
      history.items = result.items
      history.total = result.total
      history.page = page
      history.loaded = true
      const last = Math.max(1, Math.ceil(result.total / history.size))
      if (result.items.length === 0 && page > last) await loadHistory(last)
    } catch {
      // api.ts has shown why; the rows that were there stay
    } finally {
      if (ticket === historyTicket) history.loading = false
    }
  }

  function exportFile(format: ExportFormat): Promise<ExportFile> {
    return testApi.exportTests(format)
  }

  // Another account signed in (or the session ended): nothing of this one's may show.
  watch(
    () => auth.user?.id,
    () => {
      reset(0)
      historyTicket++
      Object.assign(history, { items: [], total: 0, page: 1, loading: false, loaded: false })
    },
  )

  return {
    saved,
    ratings,
    winner,
    saving,
    syncing,
    syncError,
    history,
    reset,
    setRating,
    setWinner,
    save,
    open,
    remove,
    loadHistory,
    exportFile,
  }
})
