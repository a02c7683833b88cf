/**
 * State for a server-paged list: page, size, total, loading and a query object, with one
 * fetch function. Changing the page or size reloads; changing the query goes back to page 1
 * (at once, or debounced for the keys named in `debounce`, e.g. a search box).
 */
import { onBeforeUnmount, reactive, ref, shallowRef, watch, type Ref } from 'vue'

export interface PageRequest {
  page: number
  size: number
}

export interface PageResponse<T> {
  items: T[]
  total: number
}

export interface PagedTableOptions<Q extends object> {
  /** The filters, sent along with page and size. */
  query: Q
  /** First page size (default 20). */
  size?: number
  /** Query keys whose changes wait `debounceMs` before reloading (typing in a search box). */
  debounce?: (keyof Q)[]
  /** Default 300 ms. */
  debounceMs?: number
  /** Load the first page right away (default true). */
  immediate?: boolean
}

export function usePagedTable<T, Q extends object>(
  fetchPage: (request: PageRequest & Q) => Promise<PageResponse<T>>,
  options: PagedTableOptions<Q>,
) {
  const items = ref<T[]>([]) as Ref<T[]>
  const total = ref(0)
  const page = ref(1)
  const size = ref(options.size ?? 20)
  const loading = ref(false)
  const error = shallowRef<unknown>(null)
  const query = reactive(options.query)

  // Only the newest request may write the table: a slow answer to an old search must not
  // overwrite the answer to the current one.
  let latest = 0
  let timer: ReturnType<typeof setTimeout> | undefined

  async function load(): Promise<void> {
    const ticket = ++latest
    loading.value = true
    try {
      // The query holds plain values (strings, numbers), so its reactive view reads as Q.
      const result = await fetchPage({ ...(query as Q), page: page.value, size: size.value })
      if (ticket !== latest) return
      items.value = result.items
      total.value = result.total
      error.value = null
      // Someone deleted rows elsewhere and this page is now past the end: show the last page.
      const last = Math.max(1, Math.ceil(result.total / size.value))
      if (result.items.length === 0 && page.value > last) page.value = last
    } catch (failure) {
      // api.ts has already told the user; keep the rows that were there.
      if (ticket === latest) error.value = failure
    } finally {
      if (ticket === latest) loading.value = false
    }
  }

  function cancelPending(): void {
    if (timer !== undefined) clearTimeout(timer)
    timer = undefined
  }

  /** Back to page 1 with the current query (the page watcher loads when the page changes). */
  function search(): void {
    cancelPending()
    if (page.value !== 1) page.value = 1
    else void load()
  }

  function searchLater(): void {
    cancelPending()
    timer = setTimeout(search, options.debounceMs ?? 300)
  }

  /** After `count` rows were removed: reload, stepping back a page if this one is now empty. */
  function afterRemove(count = 1): void {
    const remaining = Math.max(0, total.value - count)
    const last = Math.max(1, Math.ceil(remaining / size.value))
    if (page.value > last) page.value = last
    else void load()
  }

  // Both change together when the page size grows past the last page: one load, not two.
  watch([page, size], () => void load())

  const debounced = new Set<PropertyKey>(options.debounce ?? [])
  for (const key of Object.keys(query) as (keyof typeof query)[]) {
    watch(
      () => query[key],
      () => (debounced.has(key) ? searchLater() : search()),
    )
  }

  onBeforeUnmount(cancelPending)
  if (options.immediate ?? true) void load()

  return { items, total, page, size, loading, error, query, load, search, afterRemove }
}
