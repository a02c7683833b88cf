/** Model runtimes as the API returns them, for the runtime page's and deploy-compare specs. */
import type { Runtime } from '@/api/runtime'

export function makeRuntime(overrides: Partial<Runtime> = {}): Runtime {
  return {
    id: 3,
    name: 'tiny',
    description: '',
    owner: { id: 1, nickname: 'alice' },
    can_manage: true,
    source_kind: 'path',
    source: '/models/tiny',
    job_id: null,
    base_model: '/models/tiny',
    adapter_path: null,
    template: 'default',
    engine: 'llamafactory',
    backend: 'huggingface',
    engine_args: {},
    requested_port: null,
    status: 'stopped',
    unload_requested: false,
    port: null,
    endpoint: null,
    reason: null,
    exit_code: null,
    model_config_id: null,
    uptime_s: null,
    load_requested_at: null,
    started_at: null,
    ready_at: null,
    stopped_at: null,
    created_at: '2025-01-01T00:00:00Z',
    updated_at: '2025-01-01T00:00:00Z',
    ...overrides,
  }
}

/** A runtime that is up on `port` with its model config `configId`. */
export function readyRuntime(overrides: Partial<Runtime> = {}, configId = 21): Runtime {
  const port = overrides.port ?? 8123
  return makeRuntime({
    status: 'ready',
    port,
    endpoint: `http://127.0.0.1:${port}/v1`,
    model_config_id: configId,
    uptime_s: 60,
    load_requested_at: '2025-01-01T00:00:00Z',
    started_at: '2025-01-01T00:00:00Z',
    ready_at: '2025-01-01T00:00:10Z',
    ...overrides,
  })
}

export function loadingRuntime(overrides: Partial<Runtime> = {}): Runtime {
  return makeRuntime({
    status: 'loading',
    port: 8124,
    load_requested_at: new Date(Date.now() - 42_000).toISOString(),
    started_at: new Date(Date.now() - 41_000).toISOString(),
    ...overrides,
  })
}

export function failedRuntime(overrides: Partial<Runtime> = {}): Runtime {
  return makeRuntime({
    status: 'failed',
    exit_code: 1,
    reason: 'exit code 1\nTraceback (most recent call last):\n  OSError: no config.json',
    load_requested_at: '2025-01-01T00:00:00Z',
    stopped_at: '2025-01-01T00:00:05Z',
    ...overrides,
  })
}
