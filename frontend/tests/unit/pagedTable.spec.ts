import { mount } from '@vue/test-utils'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { defineComponent, nextTick } from 'vue'

import { usePagedTable, type PageRequest } from '@/composables/usePagedTable'

interface Query {
  q: string
  role: string
}
type Request = PageRequest & Query

/** Run the composable inside a real component (it registers an unmount hook). */
function setup(fetchPage: (request: Request) => Promise<{ items: number[]; total: number }>) {
  let table!: ReturnType<typeof usePagedTable<number, Query>>
  const wrapper = mount(
    defineComponent({
      setup() {
        table = usePagedTable(fetchPage, { query: { q: '', role: '' }, size: 10, debounce: ['q'] })
        return () => null
      },
    }),
  )
  return { table, wrapper }
}

const flush = async () => {
  await nextTick()
  await Promise.resolve()
  await nextTick()
}

afterEach(() => {
  vi.useRealTimers()
})

describe('usePagedTable', () => {
  it('loads the first page at once with the query', async () => {
    const fetchPage = vi.fn(async () => ({ items: [1, 2], total: 12 }))
    const { table } = setup(fetchPage)
    await flush()
    expect(fetchPage).toHaveBeenCalledTimes(1)
    expect(fetchPage).toHaveBeenCalledWith({ q: '', role: '', page: 1, size: 10 })
    expect(table.items.value).toEqual([1, 2])
    expect(table.total.value).toBe(12)
    expect(table.loading.value).toBe(false)
  })

  it('reloads when the page changes and returns to page 1 when a filter changes', async () => {
    const fetchPage = vi.fn(async (request: Request) => ({ items: [request.page], total: 30 }))
    const { table } = setup(fetchPage)
    await flush()
    table.page.value = 3
    await flush()
    expect(fetchPage).toHaveBeenLastCalledWith(expect.objectContaining({ page: 3 }))
    table.query.role = 'admin'
    await flush()
    expect(table.page.value).toBe(1)
    expect(fetchPage).toHaveBeenLastCalledWith(expect.objectContaining({ page: 1, role: 'admin' }))
    expect(fetchPage).toHaveBeenCalledTimes(3)
  })

  it('debounces the search box into one request', async () => {
    vi.useFakeTimers()
    const fetchPage = vi.fn(async () => ({ items: [], total: 0 }))
    const { table } = setup(fetchPage)
    await flush()
    for (const text of ['a', 'al', 'ali']) {
      table.query.q = text
      await flush()
      vi.advanceTimersByTime(100)
    }
    expect(fetchPage).toHaveBeenCalledTimes(1)
    vi.advanceTimersByTime(300)
    await flush()
    expect(fetchPage).toHaveBeenCalledTimes(2)
    expect(fetchPage).toHaveBeenLastCalledWith(expect.objectContaining({ q: 'ali', page: 1 }))
  })

  it('ignores a slow answer to an older request', async () => {
    let resolveSlow!: (value: { items: number[]; total: number }) => void
    const fetchPage = vi
      .fn<(request: Request) => Promise<{ items: number[]; total: number }>>()
      .mockImplementationOnce(() => new Promise((resolve) => (resolveSlow = resolve)))
      .mockImplementation(async () => ({ items: [2], total: 1 }))
    const { table } = setup(fetchPage)
    table.query.role = 'user'
    await flush()
    expect(table.items.value).toEqual([2])
    resolveSlow({ items: [1], total: 1 })
    await flush()
    expect(table.items.value).toEqual([2])
  })

  it('steps back a page when the last row of the last page is removed', async () => {
    const fetchPage = vi.fn(async (request: Request) => ({ items: [request.page], total: 21 }))
    const { table } = setup(fetchPage)
    await flush()
    table.page.value = 3
    await flush()
    table.afterRemove(1)
    await flush()
    expect(table.page.value).toBe(2)
    expect(fetchPage).toHaveBeenLastCalledWith(expect.objectContaining({ page: 2 }))
  })

  it('stops a pending debounced search when the component goes away', async () => {
    vi.useFakeTimers()
    const fetchPage = vi.fn(async () => ({ items: [], total: 0 }))
    const { table, wrapper } = setup(fetchPage)
    await flush()
    table.query.q = 'x'
    await flush()
    wrapper.unmount()
    vi.advanceTimersByTime(1000)
    await flush()
    expect(fetchPage).toHaveBeenCalledTimes(1)
  })
})
