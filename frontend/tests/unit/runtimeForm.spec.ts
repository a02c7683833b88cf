import { AxiosError, AxiosHeaders, type InternalAxiosRequestConfig } from 'axios'
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest'

import {
  deployJob,
  getRuntimeLogs,
  listRuntimes,
  runtimeErrorMessage,
  unloadRuntime,
} from '@/api/runtime'
import { i18n, loadPageMessages } from '@/locales'
import { api } from '@/utils/api'
import {
  conflictField,
  defaultForm,
  engineArgSpecs,
  engineChoices,
  filterRuntimes,
  formatDuration,
  formFromRuntime,
  loadingSeconds,
  pollDelay,
  POLL_BUSY_MS,
  POLL_IDLE_MS,
  runtimeActions,
  runtimeFieldErrors,
  statusKey,
  suggestName,
  toCreateBody,
  toUpdateBody,
  uptimeSeconds,
  type JobChoice,
  type RuntimeForm,
} from '@/views/model-runtime/data'

import { reply, scriptedAdapter } from './helpers'
import { failedRuntime, loadingRuntime, makeRuntime, readyRuntime } from './runtimeFixtures'

vi.mock('element-plus', () => ({ ElMessage: { error: vi.fn() } }))

const originalAdapter = api.defaults.adapter

beforeAll(async () => {
  await loadPageMessages('runtime')
})

afterEach(() => {
  api.defaults.adapter = originalAdapter
})

/** Every engine argument set, so each test shows which ones an engine keeps. */
function fullForm(overrides: Partial<RuntimeForm> = {}): RuntimeForm {
  return {
    ...defaultForm(),
    name: ' qwen-small ',
    description: '  a test  ',
    source: ' /models/qwen ',
    args: {
      gpu_memory_utilization: 0.8,
      max_model_len: 4096,
      tensor_parallel_size: 2,
      dtype: 'bfloat16',
      max_loras: 4,
      trust_remote_code: true,
      enforce_eager: true,
    },
    ...overrides,
  }
}

const adapterJob: JobChoice = {
  id: 9,
  name: 'sft',
  kind: 'train',
  base_model: '/models/tiny',
  template: 'qwen',
  artifacts: ['adapter'],
}

describe('the create form -> POST /api/model body', () => {
  it('LLaMA-Factory (huggingface) with a local path keeps only dtype and trust_remote_code', () => {
    expect(toCreateBody(fullForm(), undefined, true)).toEqual({
      name: 'qwen-small',
      description: 'a test',
      source_kind: 'path',
      source: '/models/qwen',
      engine: 'llamafactory',
      backend: 'huggingface',
      engine_args: { dtype: 'bfloat16', trust_remote_code: true },
      port: null,
      load: true,
    })
  })

  it('vLLM takes its own arguments, sends backend huggingface, and no max_loras without an adapter', () => {
    const body = toCreateBody(
      fullForm({ engine: 'vllm', backend: 'vllm', source_kind: 'hub', source: 'Qwen/Qwen2.5' }),
      undefined,
      false,
    )
    expect(body.backend).toBe('huggingface')
    expect(body.source_kind).toBe('hub')
    expect(body.source).toBe('Qwen/Qwen2.5')
    expect(body.load).toBe(false)
    expect(body.engine_args).toEqual({
      gpu_memory_utilization: 0.8,
      max_model_len: 4096,
      tensor_parallel_size: 2,
      dtype: 'bfloat16',
      trust_remote_code: true,
      enforce_eager: true,
    })
  })

  it('vLLM serving a job adapter (chosen, or picked automatically) adds max_loras', () => {
    const chosen = toCreateBody(
      fullForm({ engine: 'vllm', source_kind: 'job', job_id: 9, artifact: 'adapter' }),
      adapterJob,
      true,
    )
    expect(chosen.engine_args.max_loras).toBe(4)
    expect(chosen).toMatchObject({ source_kind: 'job', job_id: 9, artifact: 'adapter' })
    expect(chosen).not.toHaveProperty('source')

    const automatic = toCreateBody(
      fullForm({ engine: 'vllm', source_kind: 'job', job_id: 9, artifact: '' }),
      adapterJob,
      true,
    )
    expect(automatic.engine_args.max_loras).toBe(4)
    expect(automatic).not.toHaveProperty('artifact') // the server picks

    const merged = toCreateBody(
      fullForm({ engine: 'vllm', source_kind: 'job', job_id: 9, artifact: 'merged' }),
      adapterJob,
      true,
    )
    expect(merged.engine_args).not.toHaveProperty('max_loras')
  })

  it('LLaMA-Factory with the vLLM backend takes the vLLM arguments but not max_loras', () => {
    const body = toCreateBody(
      fullForm({ backend: 'vllm', source_kind: 'job', job_id: 9 }),
      adapterJob,
      true,
    )
    expect(body.backend).toBe('vllm')
    expect(Object.keys(body.engine_args).sort()).toEqual([
      'dtype',
      'enforce_eager',
      'gpu_memory_utilization',
      'max_model_len',
      'tensor_parallel_size',
      'trust_remote_code',
    ])
  })

  it('leaves unset arguments, template and description out; sends a chosen port', () => {
    const body = toCreateBody(
      { ...defaultForm(), name: 'a', source: '/m', template: '  ', port: 9001 },
      undefined,
      true,
    )
    expect(body.engine_args).toEqual({})
    expect(body).not.toHaveProperty('template')
    expect(body).not.toHaveProperty('description')
    expect(body.port).toBe(9001)
    const templated = toCreateBody(
      { ...defaultForm(), name: 'a', template: ' qwen ' },
      undefined,
      true,
    )
    expect(templated.template).toBe('qwen')
  })

  it('lists the arguments each engine shows', () => {
    const keys = (...args: Parameters<typeof engineArgSpecs>) =>
      engineArgSpecs(...args).map((spec) => spec.key)
    expect(keys('llamafactory', 'huggingface', true)).toEqual(['dtype', 'trust_remote_code'])
    expect(keys('vllm', 'huggingface', false)).toEqual([
      'gpu_memory_utilization',
      'max_model_len',
      'tensor_parallel_size',
      'dtype',
      'trust_remote_code',
      'enforce_eager',
    ])
    expect(keys('vllm', 'huggingface', true)).toContain('max_loras')
  })
})

describe('editing -> PATCH body', () => {
  it('sends only the description while the model is loaded', () => {
    const runtime = readyRuntime({ engine_args: { dtype: 'float16' } })
    const form = { ...formFromRuntime(runtime), description: ' new ', port: 9000 }
    expect(toUpdateBody(form, runtime)).toEqual({ description: 'new' })
  })

  it('sends the serving settings when stopped, with the arguments replaced as a whole', () => {
    const runtime = makeRuntime({ engine_args: { dtype: 'float16', trust_remote_code: true } })
    const form = formFromRuntime(runtime)
    expect(form.args.dtype).toBe('float16')
    form.args.trust_remote_code = false
    form.template = 'qwen'
    form.port = 9100
    expect(toUpdateBody(form, runtime)).toEqual({
      description: '',
      template: 'qwen',
      engine_args: { dtype: 'float16' },
      port: 9100,
    })
  })
})

describe('server errors on the form', () => {
  it('maps 422 locations to form items, engine arguments included', () => {
    expect(
      runtimeFieldErrors([
        { type: 'x', loc: ['body', 'name'], msg: 'Value error, Use letters, digits' },
        {
          type: 'x',
          loc: ['body', 'engine_args', 'gpu_memory_utilization'],
          msg: 'must be greater than 0 and at most 1',
        },
        { type: 'x', loc: ['body', 'engine_args', 'foo'], msg: 'unknown engine argument' },
        { type: 'x', loc: ['body', 'model'], msg: '/x is not a model folder' },
        { type: 'x', loc: ['body', 'port'], msg: 'must be between 1024 and 65535' },
        { type: 'x', loc: ['query', 'status'], msg: 'ignored' },
      ]),
    ).toEqual({
      name: 'Use letters, digits',
      gpu_memory_utilization: 'must be greater than 0 and at most 1',
      form: 'engine_args.foo: unknown engine argument',
      source: '/x is not a model folder',
      port: 'must be between 1024 and 65535',
    })
  })

  it('puts a 409 under the field it is about', () => {
    expect(conflictField('name_taken', 'huggingface')).toBe('name')
    expect(conflictField('port_in_use', 'huggingface')).toBe('port')
    expect(conflictField('engine_unavailable', 'huggingface')).toBe('engine')
    expect(conflictField('engine_unavailable', 'vllm')).toBe('backend')
    expect(conflictField('invalid_state', 'huggingface')).toBeNull()
  })

  it('words runtime error codes with the server detail', () => {
    const error = (status: number, body: unknown) => {
      const config = { headers: new AxiosHeaders() } as InternalAxiosRequestConfig
      return new AxiosError(
        'x',
        'ERR_BAD_REQUEST',
        config,
        {},
        {
          status,
          statusText: '',
          headers: {},
          config,
          data: body,
        },
      )
    }
    expect(
      runtimeErrorMessage(
        error(409, { detail: 'vllm is not installed', code: 'engine_unavailable' }),
      ),
    ).toBe(i18n.global.t('runtime.errors.engine_unavailable', { detail: 'vllm is not installed' }))
    expect(runtimeErrorMessage(error(409, { detail: 'x', code: 'name_taken' }))).toBe(
      i18n.global.t('runtime.errors.name_taken'),
    )
    for (const code of ['port_in_use', 'invalid_state', 'unload_timeout', 'runtime_not_found']) {
      expect(runtimeErrorMessage(error(409, { detail: 'x', code }))).toBe(
        i18n.global.t(`runtime.errors.${code}`),
      )
    }
    // Codes of no runtime meaning fall back to the shared wording.
    expect(runtimeErrorMessage(error(403, { detail: 'no', code: 'forbidden' }))).toBe(
      i18n.global.t('errors.forbidden'),
    )
  })
})

describe('status display', () => {
  it('formats durations', () => {
    expect(formatDuration(null)).toBe('')
    expect(formatDuration(-1)).toBe('')
    expect(formatDuration(5)).toBe('0:05')
    expect(formatDuration(65)).toBe('1:05')
    expect(formatDuration(3_725)).toBe('1:02:05')
    expect(formatDuration(90_061)).toBe('1d 1:01:01')
  })

  it('counts loading time from load_requested_at and uptime on from the fetch', () => {
    const now = Date.parse('2025-01-01T00:01:30Z')
    const loading = loadingRuntime({ load_requested_at: '2025-01-01T00:00:00Z' })
    expect(loadingSeconds(loading, now)).toBe(90)
    expect(
      loadingSeconds(makeRuntime({ load_requested_at: '2025-01-01T00:00:00Z' }), now),
    ).toBeNull()
    // A clock behind the server's never shows a negative time.
    expect(loadingSeconds(loading, Date.parse('2024-12-31T23:59:00Z'))).toBe(0)

    const ready = readyRuntime({ uptime_s: 100 })
    expect(uptimeSeconds(ready, now - 5_000, now)).toBe(105)
    expect(uptimeSeconds(makeRuntime(), now, now)).toBeNull()
  })

  it('labels an unload in progress, and polls fast only while something moves', () => {
    expect(statusKey(readyRuntime())).toBe('runtime.status.ready')
    expect(statusKey(readyRuntime({ unload_requested: true }))).toBe('runtime.status.unloading')
    expect(statusKey(failedRuntime())).toBe('runtime.status.failed')
    expect(pollDelay([readyRuntime(), makeRuntime()])).toBe(POLL_IDLE_MS)
    expect(pollDelay([readyRuntime(), loadingRuntime()])).toBe(POLL_BUSY_MS)
    expect(pollDelay([readyRuntime({ unload_requested: true })])).toBe(POLL_BUSY_MS)
    expect(pollDelay([])).toBe(POLL_IDLE_MS)
  })

  it('offers managing only to managers, and chat / compare on ready models to everyone', () => {
    const others = runtimeActions(readyRuntime({ can_manage: false }))
    expect(others).toEqual({
      load: false,
      unload: false,
      edit: false,
      editServing: false,
      remove: false,
      logs: false,
      chat: true,
      compare: true,
    })
    const stopped = runtimeActions(makeRuntime())
    expect(stopped).toMatchObject({ load: true, unload: false, chat: false, editServing: true })
    const loading = runtimeActions(loadingRuntime())
    expect(loading).toMatchObject({ load: false, unload: true, chat: false, editServing: false })
    expect(runtimeActions(failedRuntime())).toMatchObject({ load: true, unload: false })
  })

  it('gives the reason an engine is unavailable', () => {
    const choices = engineChoices([
      { engine: 'llamafactory', available: true, missing: null, install_hint: 'make train-env' },
      {
        engine: 'vllm',
        available: false,
        missing: 'no NVIDIA GPU',
        install_hint: 'install vLLM on a GPU host',
      },
    ])
    expect(choices).toEqual([
      { engine: 'llamafactory', available: true, reason: '' },
      { engine: 'vllm', available: false, reason: 'no NVIDIA GPU — install vLLM on a GPU host' },
    ])
    expect(engineChoices(null).every((choice) => choice.available)).toBe(true)
  })

  it('suggests a served name from a path or hub id, and filters the list', () => {
    expect(suggestName('Qwen/Qwen2.5-0.5B-Instruct')).toBe('Qwen2.5-0.5B-Instruct')
    expect(suggestName('/models/my model/')).toBe('my-model')
    expect(suggestName('  ')).toBe('')
    const list = [
      readyRuntime({ id: 1, name: 'alpha' }),
      makeRuntime({ id: 2, name: 'beta', owner: { id: 2, nickname: 'bob' } }),
    ]
    expect(filterRuntimes(list, 'ready', '').map((r) => r.id)).toEqual([1])
    expect(filterRuntimes(list, 'all', 'BOB').map((r) => r.id)).toEqual([2])
  })
})

describe('runtime API', () => {
  it('calls the documented paths', async () => {
    const seenParams: unknown[] = []
    const { adapter, requests } = scriptedAdapter((config) => {
      seenParams.push(config.params)
      if (config.url === '/model') return reply(config, 200, [])
      if (config.url === '/model/3/unload') return reply(config, 200, makeRuntime())
      if (config.url === '/model/3/logs') {
        return reply(config, 200, {
          offset: 0,
          next_offset: 10,
          size: 10,
          lines: [],
          truncated: false,
        })
      }
      if (config.url === '/training/5/deploy') {
        return reply(config, 201, { runtime: loadingRuntime(), base_runtime: null })
      }
      return reply(config, 404, {})
    })
    api.defaults.adapter = adapter
    await listRuntimes('ready')
    await unloadRuntime(3)
    await getRuntimeLogs(3, 120)
    await getRuntimeLogs(3)
    await deployJob(5)
    expect(requests.map((r) => `${r.method} ${r.url}`)).toEqual([
      'GET /model',
      'POST /model/3/unload',
      'GET /model/3/logs',
      'GET /model/3/logs',
      'POST /training/5/deploy',
    ])
    expect(seenParams[0]).toEqual({ status: 'ready' })
    expect(seenParams[2]).toEqual({ offset: 120 })
    expect(seenParams[3]).toEqual({})
    expect(requests[4]?.data).toEqual({ with_base: true })
  })
})
