/**
 * The training page's pure parts: the job form (defaults, presets, the request body it becomes,
 * its rules and where server field errors land), status colours and number formatting.
 */
import type { FormItemRule } from 'element-plus'

import { DATASET_EXTENSIONS, type Dataset, type DetectedFormat } from '@/api/datasets'
import type {
  EngineInfo,
  FinetuningType,
  JobStatus,
  Stage,
  TrainingJob,
  TrainingJobCreate,
  TrainingParams,
} from '@/api/training'
import { DATASETS_PER_JOB_MAX, JOB_NAME_MAX } from '@/api/training'
import type { ValidationIssue } from '@/api/types'

export { formatDateTime } from '@/utils/format'

type Translate = (key: string, named?: Record<string, unknown>) => string

export const DEFAULT_PAGE_SIZE = 20
export const PAGE_SIZES = [10, 20, 50, 100]
export const SEARCH_DEBOUNCE_MS = 300
/** How often the job list refreshes while a job is queued or running. */
export const JOB_POLL_MS = 3000
export const PREVIEW_PAGE_SIZE = 20

// ----------------------------------------------------------------------------- job form

export type DurationMode = 'epochs' | 'steps'
/** `server`: follow the server's SwanLab configuration (use_swanlab null). */
export type SwanlabChoice = 'server' | 'on' | 'off'

/** Both durations are kept while the user switches; `duration` says which one is sent. */
export interface JobForm extends Omit<TrainingParams, 'num_train_epochs' | 'max_steps'> {
  name: string
  description: string
  dataset_ids: number[]
  base_model: string
  template: string
  stage: Stage
  finetuning_type: FinetuningType
  /** Train for a number of epochs or a number of steps: the server takes exactly one. */
  duration: DurationMode
  num_train_epochs: number
  max_steps: number
  swanlab: SwanlabChoice
  swanlab_project: string
  swanlab_run_name: string
  start: boolean
}

/** The hyper-parameter fields a preset resets (what a job is, not what it is called or fed). */
const HYPER_FIELDS = [
  'stage',
  'finetuning_type',
  'duration',
  'num_train_epochs',
  'max_steps',
  'learning_rate',
  'per_device_train_batch_size',
  'gradient_accumulation_steps',
  'cutoff_len',
  'max_samples',
  'lora_rank',
  'lora_alpha',
  'lora_dropout',
  'lora_target',
  'freeze_trainable_layers',
  'quantization_bit',
  'pref_beta',
  'warmup',
  'lr_scheduler_type',
  'save_steps',
  'save_total_limit',
  'logging_steps',
  'val_size',
  'eval_steps',
  'bf16',
  'fp16',
  'seed',
] as const satisfies readonly (keyof JobForm)[]

/** The contract's defaults. */
export function defaultJobForm(): JobForm {
  return {
    name: '',
    description: '',
    dataset_ids: [],
    base_model: '',
    template: 'default',
    stage: 'sft',
    finetuning_type: 'lora',
    duration: 'epochs',
    num_train_epochs: 3,
    max_steps: 100,
    learning_rate: 5e-5,
    per_device_train_batch_size: 1,
    gradient_accumulation_steps: 8,
    cutoff_len: 1024,
    max_samples: null,
    lora_rank: 8,
    lora_alpha: null,
    lora_dropout: 0,
    lora_target: 'all',
    freeze_trainable_layers: 2,
    quantization_bit: 4,
    pref_beta: 0.1,
    warmup: 0,
    lr_scheduler_type: 'cosine',
    save_steps: 500,
    save_total_limit: 3,
    logging_steps: 10,
    val_size: 0,
    eval_steps: null,
    bf16: false,
    fp16: false,
    seed: 42,
    swanlab: 'server',
    swanlab_project: '',
    swanlab_run_name: '',
    start: true,
  }
}

export type PresetKey = 'loraSft' | 'qlora' | 'dpo'

export interface Preset {
  key: PresetKey
  /** Quantized training needs a CUDA GPU on the server. */
  needsGpu: boolean
  values: Partial<JobForm>
}

export const PRESETS: readonly Preset[] = [
  {
    key: 'loraSft',
    needsGpu: false,
    values: {
      stage: 'sft',
      finetuning_type: 'lora',
      duration: 'steps',
      max_steps: 100,
      learning_rate: 1e-4,
      logging_steps: 5,
      save_steps: 50,
    },
  },
  {
    key: 'qlora',
    needsGpu: true,
    values: { stage: 'sft', finetuning_type: 'qlora', quantization_bit: 4 },
  },
  {
    key: 'dpo',
    needsGpu: false,
    values: { stage: 'dpo', finetuning_type: 'lora', learning_rate: 5e-6, pref_beta: 0.1 },
  },
]

/** The form with a preset applied: hyper-parameters back to defaults, then the preset's own. */
export function applyPreset(form: JobForm, preset: Preset): JobForm {
  const defaults = defaultJobForm()
  const next: JobForm = { ...form }
  for (const field of HYPER_FIELDS)
    (next as unknown as Record<string, unknown>)[field] = defaults[field]
  return { ...next, ...preset.values }
}

/** Whether the server can run quantized (QLoRA) training: it needs a GPU. */
export function gpuAvailable(engine: EngineInfo | null): boolean {
  return engine !== null && engine.gpus.length > 0 && engine.quantization
}

function optionalText(value: string): string | null {
  const text = value.trim()
  return text === '' ? null : text
}

/** The POST body for a form: exactly one of epochs / steps, SwanLab's tri-state, trimmed text. */
export function toCreateBody(form: JobForm): TrainingJobCreate {
  const byEpochs = form.duration === 'epochs'
  return {
    name: form.name.trim(),
    description: form.description.trim(),
    dataset_ids: [...form.dataset_ids],
    base_model: form.base_model.trim(),
    template: form.template.trim() || 'default',
    stage: form.stage,
    finetuning_type: form.finetuning_type,
    num_train_epochs: byEpochs ? form.num_train_epochs : null,
    max_steps: byEpochs ? null : form.max_steps,
    learning_rate: form.learning_rate,
    per_device_train_batch_size: form.per_device_train_batch_size,
    gradient_accumulation_steps: form.gradient_accumulation_steps,
    cutoff_len: form.cutoff_len,
    max_samples: form.max_samples ?? null,
    lora_rank: form.lora_rank,
    lora_alpha: form.lora_alpha ?? null,
    lora_dropout: form.lora_dropout,
    lora_target: form.lora_target.trim() || 'all',
    freeze_trainable_layers: form.freeze_trainable_layers,
    quantization_bit: form.quantization_bit,
    pref_beta: form.pref_beta,
    warmup: form.warmup,
    lr_scheduler_type: form.lr_scheduler_type,
    save_steps: form.save_steps,
    save_total_limit: form.save_total_limit ?? null,
    logging_steps: form.logging_steps,
    val_size: form.val_size,
    eval_steps: form.eval_steps ?? null,
    bf16: form.bf16,
    fp16: form.fp16,
    seed: form.seed,
    use_swanlab: form.swanlab === 'server' ? null : form.swanlab === 'on',
    swanlab_project: form.swanlab === 'off' ? null : optionalText(form.swanlab_project),
    swanlab_run_name: form.swanlab === 'off' ? null : optionalText(form.swanlab_run_name),
    start: form.start,
  }
}

/** Form fields whose empty value is null (the server's default or "no limit"). */
const NULLABLE_FIELDS: readonly string[] = [
  'max_samples',
  'lora_alpha',
  'save_total_limit',
  'eval_steps',
]

function numberParam(params: Record<string, unknown>, key: string): number | undefined {
  const value = params[key]
  return typeof value === 'number' && Number.isFinite(value) ? value : undefined
}

/**
 * A new form with an existing job's settings ("train again with changes"): its stored
 * parameters over the defaults, a fresh name, and only the datasets that still exist.
 */
export function formFromJob(job: TrainingJob, copyName: string): JobForm {
  const form = defaultJobForm()
  const params = job.params
  const writable = form as unknown as Record<string, unknown>
  for (const field of HYPER_FIELDS) {
    if (field === 'duration' || field === 'stage' || field === 'finetuning_type') continue
    const value = params[field]
    if (value === undefined) continue
    if (value === null && !NULLABLE_FIELDS.includes(field)) continue
    writable[field] = value
  }
  const steps = numberParam(params, 'max_steps')
  form.duration = steps !== undefined ? 'steps' : 'epochs'
  if (steps !== undefined) form.max_steps = steps
  form.num_train_epochs = numberParam(params, 'num_train_epochs') ?? form.num_train_epochs
  form.name = copyName.slice(0, JOB_NAME_MAX)
  form.description = job.description
  form.dataset_ids = job.datasets.map((dataset) => dataset.id)
  form.base_model = job.base_model
  form.template = job.template
  form.stage = job.stage
  form.finetuning_type = job.finetuning_type
  form.swanlab = job.swanlab.enabled ? 'on' : 'server'
  form.swanlab_project = job.swanlab.project ?? ''
  return form
}

/** Form items that show server errors; the body's field names map onto them. */
/** Fields that live in the collapsed "advanced" section: opened when one of them has an error. */
const ADVANCED = [
  'per_device_train_batch_size',
  'gradient_accumulation_steps',
  'cutoff_len',
  'max_samples',
  'lora_rank',
  'lora_alpha',
  'lora_dropout',
  'lora_target',
  'freeze_trainable_layers',
  'quantization_bit',
  'pref_beta',
  'warmup',
  'lr_scheduler_type',
  'save_steps',
  'save_total_limit',
  'logging_steps',
  'val_size',
  'eval_steps',
  'bf16',
  'fp16',
  'seed',
  'swanlab',
  'swanlab_project',
  'swanlab_run_name',
] as const

export const JOB_FORM_FIELDS = [
  'name',
  'description',
  'dataset_ids',
  'base_model',
  'template',
  'stage',
  'finetuning_type',
  'duration',
  'learning_rate',
  ...ADVANCED,
  /** Errors about the body as a whole (loc ["body"]). */
  'form',
] as const

export type JobFormField = (typeof JOB_FORM_FIELDS)[number]

export const ADVANCED_FIELDS: readonly JobFormField[] = ADVANCED

const BODY_TO_FORM: Record<string, JobFormField> = {
  num_train_epochs: 'duration',
  max_steps: 'duration',
  use_swanlab: 'swanlab',
}

/**
 * FastAPI's 422 list as {form item: message}. The field is `loc[1]` (the body's top-level
 * field, also for an error deeper in a list such as ["body", "dataset_ids", 0]); a loc of just
 * ["body"] is about the whole body. The first message per item wins.
 */
export function jobFieldErrors(
  detail: readonly ValidationIssue[],
): Partial<Record<JobFormField, string>> {
  const errors: Partial<Record<JobFormField, string>> = {}
  for (const issue of detail) {
    if (issue.loc[0] !== 'body') continue
    const raw = issue.loc[1]
    let field: JobFormField | undefined
    if (raw === undefined) field = 'form'
    else if (typeof raw === 'string') {
      field =
        BODY_TO_FORM[raw] ??
        ((JOB_FORM_FIELDS as readonly string[]).includes(raw) ? (raw as JobFormField) : 'form')
    }
    if (!field || errors[field]) continue
    const message = issue.msg.replace(/^Value error, /, '')
    // An unknown top-level field still tells the user something: say which.
    errors[field] =
      field === 'form' && typeof raw === 'string' && raw !== field ? `${raw}: ${message}` : message
  }
  return errors
}

export interface DatasetLookup {
  (id: number): Pick<Dataset, 'detected_format' | 'name'> | undefined
}

/** The client-side rules; the server checks the rest (and answers 422 on the field). */
export function jobFormRules(
  t: Translate,
  form: JobForm,
  lookup: DatasetLookup,
): Partial<Record<JobFormField, FormItemRule[]>> {
  return {
    name: [
      { required: true, whitespace: true, message: t('training.form.rules.name'), trigger: 'blur' },
      { max: JOB_NAME_MAX, message: t('training.form.rules.nameMax', { n: JOB_NAME_MAX }) },
    ],
    dataset_ids: [
      {
        type: 'array',
        required: true,
        min: 1,
        message: t('training.form.rules.datasets'),
        trigger: 'change',
      },
      {
        type: 'array',
        max: DATASETS_PER_JOB_MAX,
        message: t('training.form.rules.datasetsMax', { n: DATASETS_PER_JOB_MAX }),
        trigger: 'change',
      },
      {
        trigger: 'change',
        validator: (_rule, value: number[], callback) => {
          const wrong = stageDatasetProblem(form.stage, value ?? [], lookup)
          callback(
            wrong
              ? new Error(t(`training.form.rules.stageDatasets.${form.stage}`, { names: wrong }))
              : undefined,
          )
        },
      },
    ],
    base_model: [
      {
        required: true,
        whitespace: true,
        message: t('training.form.rules.baseModel'),
        trigger: 'blur',
      },
    ],
    learning_rate: [
      {
        trigger: 'change',
        validator: (_rule, value: number, callback) =>
          callback(
            typeof value === 'number' && value > 0 && value < 1
              ? undefined
              : new Error(t('training.form.rules.learningRate')),
          ),
      },
    ],
  }
}

/**
 * The detected formats each stage trains on, as the server checks them (engines/llamafactory
 * STAGE_DATASET_KIND): instructions or conversations for SFT, plain text for pre-training,
 * chosen / rejected pairs for DPO, answers with a true/false kto_tag for KTO.
 */
export const STAGE_DATASET_FORMATS: Record<Stage, readonly DetectedFormat[]> = {
  sft: ['alpaca', 'sharegpt', 'openai'],
  pt: ['text'],
  dpo: ['preference'],
  kto: ['kto'],
}

/**
 * Whether a run of `stage` can train on a dataset of `format`. A format not known here yet
 * (`unknown`: a dataset the dialog has only a name for) counts as suitable: the server decides.
 */
export function datasetSuitsStage(stage: Stage, format: DetectedFormat): boolean {
  return format === 'unknown' || STAGE_DATASET_FORMATS[stage].includes(format)
}

/**
 * Names of the chosen datasets a run of `stage` cannot train on; '' if none. Datasets the
 * lookup does not know, or knows without a format, are left to the server.
 */
export function stageDatasetProblem(
  stage: Stage,
  ids: readonly number[],
  lookup: DatasetLookup,
): string {
  return ids
    .map((id) => lookup(id))
    .filter(
      (dataset): dataset is NonNullable<typeof dataset> =>
        dataset !== undefined && !datasetSuitsStage(stage, dataset.detected_format),
    )
    .map((dataset) => dataset.name)
    .join(', ')
}

// ------------------------------------------------------------------------- job display

type TagType = 'primary' | 'success' | 'info' | 'warning' | 'danger'

export const STATUS_TAGS: Record<JobStatus, { type: TagType; effect: 'light' | 'plain' | 'dark' }> =
  {
    created: { type: 'info', effect: 'light' },
    queued: { type: 'warning', effect: 'light' },
    running: { type: 'primary', effect: 'dark' },
    succeeded: { type: 'success', effect: 'light' },
    failed: { type: 'danger', effect: 'light' },
    cancelled: { type: 'info', effect: 'plain' },
  }

export function progressStatus(status: JobStatus): '' | 'success' | 'exception' | 'warning' {
  if (status === 'succeeded') return 'success'
  if (status === 'failed') return 'exception'
  if (status === 'cancelled') return 'warning'
  return ''
}

/** 0-100, one decimal at most; a succeeded job is full whatever its last log line said. */
export function progressPercent(job: Pick<TrainingJob, 'status' | 'progress'>): number {
  if (job.status === 'succeeded') return 100
  const value = job.progress?.percentage ?? 0
  return Math.round(Math.min(100, Math.max(0, value)) * 10) / 10
}

/** Seconds as H:MM:SS (M:SS under an hour); '' for none. */
export function formatDuration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds) || seconds < 0)
    return ''
  const total = Math.round(seconds)
  const h = Math.floor(total / 3600)
  const m = Math.floor((total % 3600) / 60)
  const s = total % 60
  const mm = String(m).padStart(h > 0 ? 2 : 1, '0')
  return `${h > 0 ? `${h}:` : ''}${mm}:${String(s).padStart(2, '0')}`
}

export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes) || bytes < 0) return ''
  const units = ['B', 'KB', 'MB', 'GB', 'TB']
  let value = bytes
  let unit = 0
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024
    unit++
  }
  return `${unit === 0 ? value : value.toFixed(value >= 10 ? 0 : 1)} ${units[unit]}`
}

/** A loss or learning rate: 4 significant digits, tiny rates in e-notation. */
export function formatNumber(value: number | null | undefined): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return ''
  if (value !== 0 && Math.abs(value) < 1e-3) return value.toExponential(2)
  return String(Number(value.toPrecision(4)))
}

export function isActive(status: JobStatus): boolean {
  return status === 'queued' || status === 'running'
}

/** What may be done to a job now (the server checks again). */
export function jobActions(job: TrainingJob & { artifacts?: { kind: string }[] }) {
  const active = isActive(job.status)
  return {
    start: ['created', 'failed', 'cancelled', 'succeeded'].includes(job.status),
    /** A job that ran before starts over from scratch (resume is the way to continue): say so. */
    restart: job.status !== 'created',
    cancel: active && !job.cancel_requested,
    resume: job.resumable && (job.status === 'failed' || job.status === 'cancelled'),
    export:
      job.kind === 'train' &&
      job.status === 'succeeded' &&
      (job.finetuning_type === 'lora' || job.finetuning_type === 'qlora') &&
      (job.artifacts === undefined ||
        job.artifacts.some((artifact) => artifact.kind === 'adapter')),
    remove: job.status !== 'running',
  }
}

// ------------------------------------------------------------------------- dataset display

export const DATASET_STATUS_TAGS: Record<Dataset['status'], TagType> = {
  ready: 'success',
  invalid: 'danger',
}

/** A preview record as indented JSON (a string record as itself). */
export function recordText(record: unknown): string {
  if (typeof record === 'string') return record
  try {
    return JSON.stringify(record, null, 2) ?? ''
  } catch {
    return String(record)
  }
}

/** Why a chosen file will be refused, before sending it; '' when it may go. */
export function datasetFileProblem(file: Pick<File, 'name' | 'size'>, t: Translate): string {
  const name = file.name.toLowerCase()
  if (!DATASET_EXTENSIONS.some((ext) => name.endsWith(ext))) {
    return t('training.datasets.upload.badType')
  }
  if (file.size === 0) return t('training.datasets.upload.emptyFile')
  return ''
}
