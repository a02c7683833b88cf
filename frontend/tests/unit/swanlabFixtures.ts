/** Shared fixtures for the SwanLab page's tests: server answers as the backend shapes them. */
import type { SwanlabConfig, SwanlabStatus } from '@/api/swanlab'
import type { MetricPoint, TrainingJob } from '@/api/training'

export function makeConfig(overrides: Partial<SwanlabConfig> = {}): SwanlabConfig {
  return {
    mode: 'local',
    project: 'modeltrain',
    workspace: null,
    logdir: '/srv/data/swanlog',
    logdir_is_default: true,
    host: null,
    port: 5092,
    has_api_key: false,
    api_key_masked: null,
    ...overrides,
  }
}

export function makeStatus(overrides: Partial<SwanlabStatus> = {}): SwanlabStatus {
  return {
    running: false,
    healthy: false,
    pid: null,
    port: null,
    url: null,
    logdir: null,
    started_at: null,
    engine_available: true,
    install_hint: null,
    log_tail: [],
    ...overrides,
  }
}

export function makeJob(id: number, overrides: Partial<TrainingJob> = {}): TrainingJob {
  return {
    id,
    name: `job ${id}`,
    description: '',
    kind: 'train',
    source_job_id: null,
    owner: { id: 1, nickname: 'alice' },
    status: 'succeeded',
    cancel_requested: false,
    reason: null,
    exit_code: 0,
    resumable: false,
    queue_position: null,
    attempt: 1,
    base_model: '/models/tiny',
    template: 'default',
    stage: 'sft',
    finetuning_type: 'lora',
    datasets: [{ id: 1, name: 'ds' }],
    params: {},
    swanlab: { enabled: true, project: 'modeltrain', run_name: `run-${id}`, mode: 'local' },
    progress: null,
    created_at: '2025-01-01T00:00:00Z',
    updated_at: '2025-01-01T00:00:00Z',
    queued_at: null,
    started_at: null,
    finished_at: null,
    ...overrides,
  }
}

export function makePoint(step: number, loss: number, lr = 1e-4): MetricPoint {
  return { step, loss, lr, epoch: step / 10, eval_loss: null }
}
