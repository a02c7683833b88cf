/** Training jobs and datasets as the API returns them, for the training page's specs. */
import type { Dataset, DatasetDetail } from '@/api/datasets'
import type { MetricPoint, TrainingJob, TrainingJobDetail } from '@/api/training'

export function makeTrainingJob(overrides: Partial<TrainingJob> = {}): TrainingJob {
  return {
    id: 7,
    name: 'tiny sft',
    description: '',
    kind: 'train',
    source_job_id: null,
    owner: { id: 1, nickname: 'alice' },
    status: 'running',
    cancel_requested: false,
    reason: null,
    exit_code: null,
    resumable: false,
    queue_position: null,
    attempt: 1,
    base_model: '/models/tiny',
    template: 'default',
    stage: 'sft',
    finetuning_type: 'lora',
    datasets: [{ id: 3, name: 'alpaca-mini' }],
    params: { max_steps: 10, num_train_epochs: null, learning_rate: 0.0001 },
    swanlab: { enabled: false, project: null, run_name: null, mode: null },
    progress: {
      step: 2,
      total: 10,
      percentage: 20,
      loss: 2.5,
      lr: 0.0001,
      epoch: 0.2,
      elapsed_s: 3,
      remaining_s: 12,
    },
    created_at: '2025-01-01T00:00:00Z',
    updated_at: '2025-01-01T00:00:00Z',
    queued_at: '2025-01-01T00:00:00Z',
    started_at: '2025-01-01T00:00:01Z',
    finished_at: null,
    ...overrides,
  }
}

export function makeJobDetail(overrides: Partial<TrainingJobDetail> = {}): TrainingJobDetail {
  return { ...makeTrainingJob(overrides), artifacts: [], exports: [], ...overrides }
}

export function point(step: number, loss: number | null = 3 - step / 10): MetricPoint {
  return { step, loss, lr: 1e-4, epoch: step / 10, eval_loss: null }
}

export function makeDataset(overrides: Partial<Dataset> = {}): Dataset {
  return {
    id: 3,
    name: 'alpaca-mini',
    description: '',
    is_shared: false,
    owner: { id: 1, nickname: 'alice' },
    can_edit: true,
    file_name: 'alpaca-mini.json',
    file_format: 'json',
    detected_format: 'alpaca',
    status: 'ready',
    rows: 10,
    valid_rows: 10,
    invalid_rows: 0,
    error_count: 0,
    size_bytes: 1234,
    source: 'upload',
    created_at: '2025-01-01T00:00:00Z',
    updated_at: '2025-01-01T00:00:00Z',
    ...overrides,
  }
}

/** A validation report: a clean dataset with length statistics unless overridden. */
export function makeDatasetDetail(overrides: Partial<DatasetDetail> = {}): DatasetDetail {
  const lengths = { min: 5, max: 40, mean: 20, p50: 18, p95: 38 }
  return {
    ...makeDataset(overrides),
    errors: [],
    stats: { prompt: lengths, response: lengths, rejected: null, total_chars: 400, labels: null },
    llamafactory: null,
    ...overrides,
  }
}
