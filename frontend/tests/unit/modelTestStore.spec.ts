import type { InternalAxiosRequestConfig } from 'axios'
import { createPinia, setActivePinia } from 'pinia'
import { afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest'

import type { ModelConfig } from '@/api/modelConfig'
import { attachmentName, exportTests, type ModelTest, type ModelTestResult } from '@/api/modelTests'
import { i18n, loadPageMessages } from '@/locales'
import { useAuthStore } from '@/store'
import { useModelTestStore } from '@/store/modules/modelTest'
import { api, errorMessage } from '@/utils/api'
import { clearSession, setSession } from '@/utils/tokenManager'
import {
  compareRules,
  imageBlockReason,
  isRateable,
  metricTexts,
  parseConfigQuery,
  pickUsable,
  resultsFromColumns,
  titleFromPrompt,
} from '@/views/model-test/data'
import { newColumn } from '@/composables/useCompareStream'

import { deferred, flush, makeSession, reply, scriptedAdapter } from './helpers'

const { messageError } = vi.hoisted(() => ({ messageError: vi.fn() }))
vi.mock('element-plus', () => ({ ElMessage: { error: messageError } }))

const originalAdapter = api.defaults.adapter

function result(overrides: Partial<ModelTestResult> = {}): ModelTestResult {
  return {
    model_config_id: 1,
    config_name: 'A',
    model: 'plain',
    content: 'answer',
    reasoning: '',
    metrics: null,
    error: null,
    rating: null,
    ...overrides,
  }
}

function makeTest(id: number, overrides: Partial<ModelTest> = {}): ModelTest {
  return {
    id,
    title: `test ${id}`,
    prompt: `prompt ${id}`,
    system_prompt: null,
    image_ids: [],
    params: null,
    results: [result(), result({ model_config_id: 2, config_name: 'B' })],
    winner_index: null,
    notes: null,
    created_at: '2026-01-01T00:00:00Z',
    ...overrides,
  }
}

/**
 * An in-memory /api/model/tests behind the axios adapter, owned by one user. `gate` holds
 * PATCH answers until released, so a test can act while one is in flight.
 */
function fakeServer(initial: ModelTest[] = []) {
  const state = {
    tests: [...initial],
    nextId: 100,
    gate: null as Promise<void> | null,
    listGate: null as Promise<void> | null,
  }
  const { adapter, requests } = scriptedAdapter(async (config: InternalAxiosRequestConfig) => {
    const method = (config.method ?? 'get').toUpperCase()
    const url = config.url ?? ''
    const body = typeof config.data === 'string' ? JSON.parse(config.data) : config.data
    const match = /^\/model\/tests\/(\d+)$/.exec(url)
    const found = match ? state.tests.find((t) => t.id === Number(match[1])) : undefined
    if (url === '/model/tests' && method === 'GET') {
      if (state.listGate) await state.listGate
      const { page, size } = config.params as { page: number; size: number }
      const sorted = [...state.tests].sort((a, b) => b.id - a.id)
      return reply(config, 200, {
        items: sorted.slice((page - 1) * size, page * size),
        total: sorted.length,
        page,
        size,
      })
    }
    if (url === '/model/tests' && method === 'POST') {
      const created = makeTest(state.nextId++, { ...body, notes: null })
      state.tests.push(created)
      return reply(config, 201, created)
    }
    if (!found) return reply(config, 404, { detail: 'Not found', code: 'model_test_not_found' })
    if (method === 'GET') return reply(config, 200, found)
    if (method === 'DELETE') {
      state.tests = state.tests.filter((t) => t !== found)
      return reply(config, 204, null)
    }
    if (method === 'PATCH') {
      if (state.gate) await state.gate
      if (!state.tests.includes(found)) {
        return reply(config, 404, { detail: 'Not found', code: 'model_test_not_found' })
      }
      if ('winner_index' in body) found.winner_index = body.winner_index
      if (body.ratings) {
        found.results = found.results.map((r, i) => ({ ...r, rating: body.ratings[i] ?? null }))
      }
      return reply(config, 200, structuredClone(found))
    }
    return reply(config, 405, { detail: 'no', code: 'method_not_allowed' })
  })
  api.defaults.adapter = adapter
  return { state, requests }
}

beforeAll(async () => {
  await loadPageMessages('modelTest')
  // jsdom's Blob lacks text(), which every browser the SPA supports has.
  if (typeof Blob.prototype.text !== 'function') {
    Blob.prototype.text = function text(this: Blob): Promise<string> {
      return new Promise((resolve, reject) => {
        const reader = new FileReader()
        reader.onload = () => resolve(String(reader.result))
        reader.onerror = () => reject(reader.error)
        reader.readAsText(this)
      })
    }
  }
})

beforeEach(() => {
  setActivePinia(createPinia())
  setSession(makeSession('token', { user: { id: 7 } }))
  useAuthStore()
})

afterEach(() => {
  api.defaults.adapter = originalAdapter
  clearSession()
  messageError.mockReset()
})

const PAYLOAD = {
  title: 'Hello',
  prompt: 'Hello',
  system_prompt: null,
  image_ids: [],
  params: null,
  results: [result(), result({ model_config_id: 2, config_name: 'B', content: 'other' })],
}

describe('useModelTestStore: ratings and winner', () => {
  it('keeps choices local before saving, then saves them with the results', async () => {
    const { requests } = fakeServer()
    const store = useModelTestStore()
    store.reset(2)
    await store.setRating(0, 4)
    await store.setWinner(1)
    expect(requests).toHaveLength(0)
    expect(store.ratings).toEqual([4, null])

    const saved = await store.save(PAYLOAD)
    expect(requests[0]).toMatchObject({ method: 'POST', url: '/model/tests' })
    const sent = requests[0]!.data as { results: ModelTestResult[]; winner_index: number }
    expect(sent.results.map((r) => r.rating)).toEqual([4, null])
    expect(sent.winner_index).toBe(1)
    expect(store.saved?.id).toBe(saved.id)
    await flush()
    // The history shows the new test on its first page.
    expect(requests.some((r) => r.method === 'GET' && r.url === '/model/tests')).toBe(true)
    expect(store.history.items.map((t) => t.id)).toEqual([saved.id])
  })

  it('after saving, each change is a PATCH of the saved test', async () => {
    const { requests, state } = fakeServer()
    const store = useModelTestStore()
    store.reset(2)
    const saved = await store.save(PAYLOAD)
    requests.length = 0
    await store.setRating(1, 5)
    await store.setWinner(0)
    await store.setRating(1, null)
    expect(requests.map((r) => [r.method, r.url, r.data])).toEqual([
      ['PATCH', `/model/tests/${saved.id}`, { ratings: [null, 5] }],
      ['PATCH', `/model/tests/${saved.id}`, { winner_index: 0 }],
      ['PATCH', `/model/tests/${saved.id}`, { ratings: [null, null] }],
    ])
    const row = state.tests.find((t) => t.id === saved.id)!
    expect(row.winner_index).toBe(0)
    expect(row.results.map((r) => r.rating)).toEqual([null, null])
  })

  it('sends one PATCH at a time; changes made meanwhile go out together, newest last', async () => {
    const { requests, state } = fakeServer()
    const store = useModelTestStore()
    store.reset(2)
    const saved = await store.save(PAYLOAD)
    requests.length = 0
    const gate = deferred()
    state.gate = gate.promise
    const first = store.setRating(0, 2)
    await flush()
    void store.setRating(0, 3)
    void store.setWinner(1)
    const last = store.setRating(1, 1)
    expect(requests).toHaveLength(1)
    expect(store.syncing).toBe(true)
    state.gate = null
    gate.resolve()
    await first
    await last
    expect(requests.map((r) => r.data)).toEqual([
      { ratings: [2, null] },
      { ratings: [3, 1], winner_index: 1 },
    ])
    expect(store.syncing).toBe(false)
    expect(store.ratings).toEqual([3, 1])
    const row = state.tests.find((t) => t.id === saved.id)!
    expect(row.results.map((r) => r.rating)).toEqual([3, 1])
    expect(row.winner_index).toBe(1)
  })

  it('a saved test deleted elsewhere makes the comparison unsaved again', async () => {
    const { state } = fakeServer()
    const store = useModelTestStore()
    store.reset(2)
    const saved = await store.save(PAYLOAD)
    state.tests = []
    await store.setRating(0, 5)
    expect(store.saved).toBeNull()
    expect(store.ratings).toEqual([5, null])
    expect(store.syncError).not.toBeNull()
    expect(store.history.items.find((t) => t.id === saved.id)).toBeUndefined()
  })

  it('ignores a rating for a column that does not exist', async () => {
    fakeServer()
    const store = useModelTestStore()
    store.reset(2)
    await store.setRating(5, 3)
    expect(store.ratings).toEqual([null, null])
  })

  it('open() makes a saved test current with its ratings and winner', async () => {
    const test = makeTest(3, {
      results: [result({ rating: 2 }), result({ rating: null }), result({ rating: 5 })],
      winner_index: 2,
    })
    fakeServer([test])
    const store = useModelTestStore()
    const opened = await store.open(3)
    expect(opened.id).toBe(3)
    expect(store.saved?.id).toBe(3)
    expect(store.ratings).toEqual([2, null, 5])
    expect(store.winner).toBe(2)
    await expect(store.open(99)).rejects.toBeTruthy()
    expect(store.saved?.id).toBe(3)
  })

  it('signing in as someone else forgets the comparison and the history', async () => {
    fakeServer([makeTest(1)])
    const store = useModelTestStore()
    await store.open(1)
    await store.loadHistory(1)
    expect(store.history.items).toHaveLength(1)
    setSession(makeSession('other', { user: { id: 8 } }))
    await flush()
    expect(store.saved).toBeNull()
    expect(store.history.items).toEqual([])
    expect(store.history.loaded).toBe(false)
  })
})

describe('useModelTestStore: history', () => {
  const many = Array.from({ length: 23 }, (_, i) => makeTest(i + 1))

  it('pages through the saved tests, newest first', async () => {
    const { requests } = fakeServer(many)
    const store = useModelTestStore()
    await store.loadHistory(1)
    expect(store.history.total).toBe(23)
    expect(store.history.items.map((t) => t.id).slice(0, 3)).toEqual([23, 22, 21])
    await store.loadHistory(3)
    expect(store.history.page).toBe(3)
    expect(store.history.items.map((t) => t.id)).toEqual([3, 2, 1])
    expect(requests.at(-1)).toMatchObject({ method: 'GET', url: '/model/tests' })
  })

  it('keeps only the newest answer when pages are asked quickly', async () => {
    const { state } = fakeServer(many)
    const store = useModelTestStore()
    const gate = deferred()
    state.listGate = gate.promise
    const slow = store.loadHistory(1)
    await flush()
    state.listGate = null
    await store.loadHistory(2)
    gate.resolve()
    await slow
    expect(store.history.page).toBe(2)
    expect(store.history.items[0]!.id).toBe(13)
    expect(store.history.loading).toBe(false)
  })

  it('removing the last row of the last page steps back a page', async () => {
    const { state, requests } = fakeServer(many)
    const store = useModelTestStore()
    await store.loadHistory(3)
    await store.remove(3)
    await store.remove(2)
    await store.remove(1)
    expect(requests.filter((r) => r.method === 'DELETE').map((r) => r.url)).toEqual([
      '/model/tests/3',
      '/model/tests/2',
      '/model/tests/1',
    ])
    expect(state.tests).toHaveLength(20)
    expect(store.history.page).toBe(2)
    expect(store.history.items.map((t) => t.id)).toEqual([13, 12, 11, 10, 9, 8, 7, 6, 5, 4])
  })

  it('removing the comparison on screen makes it unsaved', async () => {
    fakeServer([makeTest(1), makeTest(2)])
    const store = useModelTestStore()
    await store.open(2)
    await store.remove(2)
    expect(store.saved).toBeNull()
    expect(store.history.items.map((t) => t.id)).toEqual([1])
  })
})

describe('exportTests', () => {
  it('returns the file with its server-given name', async () => {
    const { adapter, requests } = scriptedAdapter((config) => {
      const response = reply(config, 200, new Blob(['{"prompt":"x"}\n']))
      response.headers = {
        'content-disposition': `attachment; filename="x.jsonl"; filename*=UTF-8''model-tests-dpo.jsonl`,
      }
      return response
    })
    api.defaults.adapter = adapter
    const file = await exportTests('dpo')
    expect(requests[0]).toMatchObject({ method: 'GET', url: '/model/tests/export' })
    expect(file.filename).toBe('model-tests-dpo.jsonl')
    expect(await file.blob.text()).toBe('{"prompt":"x"}\n')
  })

  it("turns an error's blob body back into JSON so its code can be shown", async () => {
    const { adapter } = scriptedAdapter((config) =>
      reply(
        config,
        422,
        new Blob([JSON.stringify({ detail: 'Unknown format', code: 'not_authenticated' })]),
      ),
    )
    api.defaults.adapter = adapter
    const error = await exportTests('sft').catch((e: unknown) => e)
    expect(errorMessage(error)).toBe(i18n.global.t('errors.not_authenticated'))
    // Silent: the page shows it, not api.ts.
    expect(messageError).not.toHaveBeenCalled()
  })

  it('reads file names from Content-Disposition', () => {
    expect(attachmentName('attachment; filename="tests.jsonl"', 'f')).toBe('tests.jsonl')
    expect(attachmentName("attachment; filename*=UTF-8''%E5%AF%B9%E6%AF%94.jsonl", 'f')).toBe(
      '对比.jsonl',
    )
    expect(attachmentName(undefined, 'fallback.jsonl')).toBe('fallback.jsonl')
  })
})

function config(id: number, vision: boolean, name = `cfg${id}`): ModelConfig {
  return {
    id,
    name,
    provider: 'custom',
    endpoint: 'http://127.0.0.1:9/v1',
    model: 'plain',
    params: { temperature: null, max_tokens: null, top_p: null, top_k: null },
    capabilities: { vision, reasoning: false },
    status: 1,
    description: null,
    owner: { id: 7, nickname: 'alice' },
    has_api_key: false,
    api_key_masked: null,
    template_key: null,
    can_edit: true,
    created_at: '2026-01-01T00:00:00Z',
    updated_at: '2026-01-01T00:00:00Z',
  }
}

describe('the page helpers', () => {
  const t = (key: string, named?: Record<string, unknown>) => i18n.global.t(key, named ?? {})

  it('parses ?configs= into at most three distinct ids', () => {
    expect(parseConfigQuery('1,2')).toEqual([1, 2])
    expect(parseConfigQuery(['4', '5,4', 'x', '-1', '0', '6', '7'])).toEqual([4, 5, 6])
    expect(parseConfigQuery(' 3 , ,abc,3')).toEqual([3])
    expect(parseConfigQuery(undefined)).toEqual([])
    expect(parseConfigQuery(null)).toEqual([])
  })

  it('keeps the usable ids of a link and reports the others', () => {
    const usable = [config(1, false), config(2, false), config(3, false), config(4, false)]
    expect(pickUsable([2, 9, 1], usable)).toEqual({ picked: [2, 1], rejected: [9] })
    expect(pickUsable([1, 2, 3, 4], usable)).toEqual({ picked: [1, 2, 3], rejected: [4] })
  })

  it('allows an image only when every picked config reads images', () => {
    expect(imageBlockReason([], t)).toBe(t('modelTest.image.pickFirst'))
    expect(imageBlockReason([config(1, true), config(2, true)], t)).toBe('')
    const reason = imageBlockReason([config(1, true), config(2, false, 'Blind')], t)
    expect(reason).toBe(t('modelTest.image.noVision', { names: 'Blind' }))
    expect(reason).toContain('Blind')
  })

  it('validates the form: configs and prompt are required', async () => {
    const rules = compareRules(t, () => '')
    const check = (field: string, value: unknown) =>
      Promise.all(
        rules[field]!.map(
          (rule) =>
            new Promise<string>((resolve) => {
              if (rule.validator) {
                rule.validator(
                  rule,
                  value,
                  (error?: string | Error) => resolve(error ? String(error) : ''),
                  {},
                  {},
                )
                return
              }
              if (
                rule.required &&
                (Array.isArray(value) ? value.length === 0 : !String(value).trim())
              )
                return resolve(String(rule.message))
              if (rule.max !== undefined && Array.isArray(value) && value.length > rule.max)
                return resolve(String(rule.message))
              resolve('')
            }),
        ),
      ).then((errors) => errors.filter(Boolean))
    expect(await check('configIds', [])).toEqual([t('modelTest.rules.configsRequired')])
    expect(await check('configIds', [1, 2, 3, 4])).toEqual([
      t('modelTest.rules.configsMax', { max: 3 }),
    ])
    expect(await check('configIds', [1])).toEqual([])
    expect(await check('prompt', '   ')).toEqual([t('modelTest.rules.promptRequired')])
    const withImage = compareRules(t, () => 'image problem')
    const validator = withImage.configIds!.find((rule) => rule.validator)!.validator!
    const message = await new Promise<string>((resolve) =>
      validator({}, [1], (error?: string | Error) => resolve(String(error ?? '')), {}, {}),
    )
    expect(message).toContain('image problem')
  })

  it('titles a test with the first line of its prompt', () => {
    expect(titleFromPrompt('\n  Explain DPO  \nin detail')).toBe('Explain DPO')
    const long = titleFromPrompt('x'.repeat(300))
    expect(long).toHaveLength(100)
    expect(long.endsWith('…')).toBe(true)
  })

  it('formats metrics, with dashes for what is missing', () => {
    expect(metricTexts(null, 'en')).toEqual({ ttft: '—', total: '—', tokens: '—', speed: '—' })
    expect(
      metricTexts(
        {
          ttft_ms: 1234,
          total_ms: 2500,
          output_tokens: 42,
          tokens_per_s: 16.789,
          finish_reason: 'stop',
        },
        'en',
      ),
    ).toEqual({ ttft: '1,234 ms', total: '2,500 ms', tokens: '42', speed: '16.8' })
    expect(
      metricTexts(
        { ttft_ms: null, total_ms: 10, output_tokens: 0, tokens_per_s: null, finish_reason: null },
        'en',
      ),
    ).toEqual({ ttft: '—', total: '10 ms', tokens: '0', speed: '—' })
  })

  it('turns columns into results, and only finished answers can be rated', () => {
    const done = {
      ...newColumn(0, { id: 1, name: 'A', model: 'm' }),
      content: 'x',
      status: 'done' as const,
    }
    const live = { ...done, status: 'streaming' as const }
    const failed = {
      ...newColumn(1, { id: 2, name: 'B', model: 'n' }),
      status: 'error' as const,
      error: { code: 'provider_error', message: 'no' },
    }
    expect(isRateable(done)).toBe(true)
    expect(isRateable(live)).toBe(false)
    expect(isRateable(failed)).toBe(false)
    expect(resultsFromColumns([done, failed])).toEqual([
      expect.objectContaining({ model_config_id: 1, config_name: 'A', content: 'x', error: null }),
      expect.objectContaining({
        model_config_id: 2,
        error: { code: 'provider_error', message: 'no' },
      }),
    ])
  })
})
