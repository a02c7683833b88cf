import { AxiosError, AxiosHeaders, type InternalAxiosRequestConfig } from 'axios'
import { mount } from '@vue/test-utils'
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest'
import { defineComponent, nextTick, reactive } from 'vue'

import {
  convertPrompt,
  listPrompts,
  renderPrompt,
  type SystemPrompt,
  type SystemPromptCreate,
  type ValidateRequest,
  type ValidateResponse,
} from '@/api/systemPrompts'
import { i18n, loadPageMessages } from '@/locales'
import { api } from '@/utils/api'
import {
  chatLocation,
  cleanList,
  conversionFailure,
  copyPayload,
  importPrompts,
  isValidTag,
  isValidVariable,
  previewVariables,
  promptRules,
  renderValues,
  sortProblems,
  storedFormat,
} from '@/views/system-prompt/data'
import { useLiveValidation } from '@/views/system-prompt/useLiveValidation'

import { deferred, flush, reply, scriptedAdapter } from './helpers'

const { messageError } = vi.hoisted(() => ({ messageError: vi.fn() }))
vi.mock('element-plus', () => ({ ElMessage: { error: messageError } }))

const originalAdapter = api.defaults.adapter

afterEach(() => {
  api.defaults.adapter = originalAdapter
  vi.useRealTimers()
})

let nextId = 1

function makePrompt(overrides: Partial<SystemPrompt> = {}): SystemPrompt {
  const id = overrides.id ?? nextId++
  return {
    id,
    name: `prompt ${id}`,
    content: 'Translate {{ source }} into {{ target }}.',
    category: 'writing',
    tags: ['translate', '中文'],
    format: 'text',
    variables: ['source', 'target'],
    is_shared: true,
    is_builtin: true,
    owner: { id: 1, nickname: 'admin' },
    can_edit: false,
    created_at: '2025-01-01T00:00:00Z',
    updated_at: '2025-01-01T00:00:00Z',
    ...overrides,
  }
}

function failure(status: number, body: unknown): AxiosError {
  const config = { headers: new AxiosHeaders() } as InternalAxiosRequestConfig
  try {
    reply(config, status, body)
  } catch (error) {
    return error as AxiosError
  }
  throw new Error('reply did not reject')
}

describe('prompt page helpers', () => {
  it('copies a built-in as a private prompt with the same content', () => {
    const builtin = makePrompt({ format: 'yaml', content: 'role: {{ r }}', variables: ['r'] })
    const payload = copyPayload(builtin)
    expect(payload).toEqual({
      name: builtin.name,
      content: 'role: {{ r }}',
      category: 'writing',
      tags: ['translate', '中文'],
      format: 'yaml',
      variables: ['r'],
      is_shared: false,
    })
    payload.tags?.push('x')
    expect(builtin.tags).toEqual(['translate', '中文']) // a copy, not the row's own list
  })

  it('imports one after the other and keeps going after a failure', async () => {
    const prompts = [makePrompt(), makePrompt(), makePrompt()]
    const order: string[] = []
    const create = vi.fn(async (payload: SystemPromptCreate) => {
      order.push(payload.name)
      if (payload.name === prompts[1]?.name) throw new Error('boom')
      return makePrompt({ name: payload.name, is_builtin: false, can_edit: true })
    })
    const result = await importPrompts(prompts, create)
    expect(order).toEqual(prompts.map((p) => p.name))
    expect(result.created.map((p) => p.name)).toEqual([prompts[0]?.name, prompts[2]?.name])
    expect(result.failed.map((f) => f.prompt)).toEqual([prompts[1]])
    expect(create.mock.calls.every(([payload]) => payload.is_shared === false)).toBe(true)
  })

  it('sends the chat page the prompt id as a string', () => {
    expect(chatLocation(42)).toEqual({ name: 'model-chat', query: { system_prompt_id: '42' } })
  })

  it('stores OpenAI messages as json', () => {
    expect(storedFormat('openai-messages')).toBe('json')
    expect(storedFormat('yaml')).toBe('yaml')
  })

  it('asks values for used variables first, then declared ones, once each', () => {
    expect(previewVariables(['b', 'a'], ['a', 'c', ' c '])).toEqual(['b', 'a', 'c'])
    expect(previewVariables(undefined, [])).toEqual([])
    expect(renderValues(['a', 'b', 'c'], { a: 'x', b: '', d: 'other' })).toEqual({ a: 'x' })
    expect(cleanList([' a', 'a ', '', 'b'])).toEqual(['a', 'b'])
  })

  it('orders problems by line and column, unplaced ones last', () => {
    const sorted = sortProblems([
      { line: null, column: null, message: 'unused' },
      { line: 3, column: 1, message: 'c' },
      { line: 1, column: 9, message: 'b' },
      { line: 1, column: 2, message: 'a' },
    ])
    expect(sorted.map((p) => p.message)).toEqual(['a', 'b', 'c', 'unused'])
  })

  it('checks tags and variable names as the server does', () => {
    expect(isValidTag('中文')).toBe(true)
    expect(isValidTag('x'.repeat(30))).toBe(true)
    expect(isValidTag('x'.repeat(31))).toBe(false)
    expect(isValidTag('bad"quote')).toBe(false)
    expect(isValidTag('back\\slash')).toBe(false)
    expect(isValidTag('tab\there')).toBe(false)
    expect(isValidTag('  ')).toBe(false)
    expect(isValidVariable('target_lang')).toBe(true)
    expect(isValidVariable('_x1')).toBe(true)
    expect(isValidVariable('1x')).toBe(false)
    expect(isValidVariable('a-b')).toBe(false)
    expect(isValidVariable('v'.repeat(65))).toBe(false)
  })

  it('form rules refuse bad tags, too many tags and bad variable names', async () => {
    const rules = promptRules((key) => key)
    const run = (field: 'tags' | 'variables', value: string[]) =>
      new Promise<string | null>((resolve) => {
        const rule = rules[field]?.[0]
        const validator = rule?.validator
        if (!rule || !validator) throw new Error(`no validator for ${field}`)
        validator(
          rule,
          value,
          (error?: string | Error) =>
            resolve(error instanceof Error ? error.message : (error ?? null)),
          {},
          {},
        )
      })
    expect(await run('tags', ['ok', '中文'])).toBeNull()
    expect(await run('tags', ['bad"'])).toBe('systemPrompt.rules.tagInvalid')
    expect(
      await run(
        'tags',
        Array.from({ length: 11 }, (_, i) => `t${i}`),
      ),
    ).toBe('systemPrompt.rules.tagsCount')
    // Repeats count once, as the server keeps them once.
    expect(
      await run(
        'tags',
        Array.from({ length: 12 }, () => 'same'),
      ),
    ).toBeNull()
    expect(await run('variables', ['name', 'lang_2'])).toBeNull()
    expect(await run('variables', ['2bad'])).toBe('systemPrompt.rules.variableInvalid')
  })

  it("shows a failed conversion's reason, and other errors as usual", () => {
    const reason = 'The content is not valid JSON: Expecting value (line 1, column 7)'
    expect(conversionFailure(failure(422, { detail: reason, code: 'conversion_failed' }))).toBe(
      reason,
    )
    const other = conversionFailure(failure(500, { detail: 'x', code: 'internal_error' }))
    expect(other).not.toBe('x')
    expect(other).toBe(i18n.global.t('errors.internal_error'))
  })
})

describe('prompt page texts', () => {
  beforeAll(async () => {
    await loadPageMessages('systemPrompt')
  })

  it('write the marker syntax literally in both languages', () => {
    for (const locale of ['zh-CN', 'en'] as const) {
      const text = i18n.global.t('systemPrompt.dialog.placeholders.content', {}, { locale })
      expect(text).toContain('{{ name }}')
      expect(text).toContain('{{{{')
    }
  })

  it('use plural forms for counts', () => {
    const one = i18n.global.t('systemPrompt.importing.done', 1, { locale: 'en' })
    const many = i18n.global.t('systemPrompt.importing.done', 3, { locale: 'en' })
    expect(one).toBe('Imported 1 prompt')
    expect(many).toBe('Imported 3 prompts')
  })
})

describe('prompt API calls', () => {
  it('lists with only the filters that are set', async () => {
    const { adapter, requests } = scriptedAdapter((config) =>
      reply(config, 200, { items: [], total: 0, page: 1, size: 20 }),
    )
    let params: unknown
    api.defaults.adapter = async (config) => {
      params = config.params
      return adapter(config)
    }
    await listPrompts({ page: 2, size: 20, scope: 'mine', q: '', tag: undefined, category: 'ops' })
    expect(requests[0]?.url).toBe('/chat/system-prompts/')
    expect(params).toEqual({ page: 2, size: 20, scope: 'mine', category: 'ops' })
  })

  it('converts with from/to and renders content with its format', async () => {
    const { adapter, requests } = scriptedAdapter((config) =>
      reply(
        config,
        200,
        config.url?.endsWith('/convert')
          ? { content: 'x', format: 'yaml' }
          : {
              content: 'y',
              missing: [],
            },
      ),
    )
    api.defaults.adapter = adapter
    await convertPrompt('{"a": 1}', 'json', 'yaml')
    await renderPrompt({ content: '{{ a }}', format: 'text', variables: { a: '1' } })
    expect(requests.map((r) => [r.url, r.data])).toEqual([
      ['/chat/system-prompts/convert', { content: '{"a": 1}', from: 'json', to: 'yaml' }],
      [
        '/chat/system-prompts/render',
        { content: '{{ a }}', format: 'text', variables: { a: '1' } },
      ],
    ])
  })
})

describe('useLiveValidation', () => {
  function answer(valid: boolean, line = 1): ValidateResponse {
    return {
      valid,
      errors: valid ? [] : [{ line, column: 5, message: 'Invalid JSON: Expecting value' }],
      warnings: [],
      variables: [],
    }
  }

  function setup(delayMs = 400) {
    const source = reactive<{ request: ValidateRequest | null }>({
      request: { content: '', format: 'json' },
    })
    let live!: ReturnType<typeof useLiveValidation>
    const wrapper = mount(
      defineComponent({
        setup() {
          live = useLiveValidation(() => (source.request ? { ...source.request } : null), delayMs)
          return () => null
        },
      }),
    )
    return { source, live, wrapper }
  }

  const settle = async () => {
    await nextTick()
    await flush()
  }

  it('sends one request after typing pauses, with the declared variables', async () => {
    vi.useFakeTimers()
    const { adapter, requests } = scriptedAdapter((config) => reply(config, 200, answer(false)))
    api.defaults.adapter = adapter
    const { source, live } = setup()
    for (const content of ['{', '{"a"', '{"a": ']) {
      source.request = { content, format: 'json', variables: ['x'] }
      await nextTick()
      vi.advanceTimersByTime(100)
    }
    expect(live.state.value).toBe('pending')
    expect(requests).toHaveLength(0)
    vi.advanceTimersByTime(400)
    vi.useRealTimers()
    await settle()
    expect(requests).toHaveLength(1)
    expect(requests[0]).toMatchObject({
      url: '/chat/system-prompts/validate',
      data: { content: '{"a": ', format: 'json', variables: ['x'] },
    })
    expect(live.state.value).toBe('done')
    expect(live.result.value?.errors[0]?.line).toBe(1)
  })

  it('shows only the answer to the newest content', async () => {
    const first = deferred<void>()
    let calls = 0
    api.defaults.adapter = async (config) => {
      calls += 1
      const mine = calls
      if (mine === 1) await first.promise
      return reply(config, 200, answer(mine !== 1, mine))
    }
    const { source, live } = setup(0)
    source.request = { content: '{', format: 'json' }
    await settle()
    expect(live.state.value).toBe('checking')
    source.request = { content: '{}', format: 'json' }
    await settle()
    await settle()
    expect(live.result.value?.valid).toBe(true)
    first.resolve()
    await settle()
    // The slow, aborted answer about "{" does not come back over the newer one.
    expect(live.result.value?.valid).toBe(true)
    expect(live.state.value).toBe('done')
    expect(calls).toBe(2)
  })

  it('does not ask about empty content and forgets old findings', async () => {
    const { adapter, requests } = scriptedAdapter((config) => reply(config, 200, answer(false)))
    api.defaults.adapter = adapter
    const { source, live } = setup(0)
    source.request = { content: '{', format: 'json' }
    await settle()
    await settle()
    expect(live.result.value?.valid).toBe(false)
    source.request = { content: '   ', format: 'json' }
    await settle()
    expect(live.state.value).toBe('idle')
    expect(live.result.value).toBeNull()
    source.request = null
    await settle()
    expect(requests).toHaveLength(1)
  })

  it('reports a failed check quietly and keeps the last findings', async () => {
    let fail = false
    api.defaults.adapter = async (config) =>
      fail
        ? reply(config, 500, { detail: 'x', code: 'internal_error' })
        : reply(config, 200, answer(false))
    const { source, live } = setup(0)
    source.request = { content: '{', format: 'json' }
    await settle()
    await settle()
    fail = true
    source.request = { content: '{ ', format: 'json' }
    await settle()
    await settle()
    expect(live.state.value).toBe('failed')
    expect(live.result.value?.valid).toBe(false)
    expect(messageError).not.toHaveBeenCalled() // silent: the panel says it
  })

  it('validates at once on request and stops when unmounted', async () => {
    vi.useFakeTimers()
    const { adapter, requests } = scriptedAdapter((config) => reply(config, 200, answer(true)))
    api.defaults.adapter = adapter
    const { source, live, wrapper } = setup()
    source.request = { content: 'hello', format: 'text' }
    await nextTick()
    live.validateNow()
    vi.useRealTimers()
    await settle()
    expect(requests).toHaveLength(1)
    vi.useFakeTimers()
    source.request = { content: 'hello again', format: 'text' }
    await nextTick()
    wrapper.unmount()
    vi.advanceTimersByTime(1000)
    vi.useRealTimers()
    await settle()
    expect(requests).toHaveLength(1)
  })
})
