import { describe, expect, it } from 'vitest'

import type { ValidationIssue } from '@/api/types'
import {
  applyPreset,
  defaultJobForm,
  formatDuration,
  formFromJob,
  gpuAvailable,
  jobActions,
  datasetSuitsStage,
  jobFieldErrors,
  jobFormRules,
  PRESETS,
  progressPercent,
  stageDatasetProblem,
  toCreateBody,
  type JobForm,
  type PresetKey,
} from '@/views/model-training/data'

import { makeDataset, makeTrainingJob } from './trainingFixtures'

function preset(key: PresetKey) {
  const found = PRESETS.find((item) => item.key === key)
  if (!found) throw new Error(`no preset ${key}`)
  return found
}

function filled(overrides: Partial<JobForm> = {}): JobForm {
  return {
    ...defaultJobForm(),
    name: '  tiny sft  ',
    dataset_ids: [3],
    base_model: ' /models/tiny ',
    ...overrides,
  }
}

const issue = (loc: (string | number)[], msg: string): ValidationIssue => ({
  type: 'value_error',
  loc,
  msg,
})

describe('the job form -> request body', () => {
  it('sends the contract defaults, trimmed, training by epochs', () => {
    const body = toCreateBody(filled())
    expect(body).toMatchObject({
      name: 'tiny sft',
      base_model: '/models/tiny',
      template: 'default',
      stage: 'sft',
      finetuning_type: 'lora',
      num_train_epochs: 3,
      max_steps: null,
      learning_rate: 5e-5,
      per_device_train_batch_size: 1,
      gradient_accumulation_steps: 8,
      cutoff_len: 1024,
      max_samples: null,
      lora_rank: 8,
      lora_alpha: null,
      lora_target: 'all',
      lr_scheduler_type: 'cosine',
      save_steps: 500,
      save_total_limit: 3,
      logging_steps: 10,
      eval_steps: null,
      seed: 42,
      use_swanlab: null,
      swanlab_project: null,
      swanlab_run_name: null,
    })
  })

  it('sends exactly one of epochs and steps', () => {
    const bySteps = toCreateBody(filled({ duration: 'steps', max_steps: 250, num_train_epochs: 2 }))
    expect(bySteps.max_steps).toBe(250)
    expect(bySteps.num_train_epochs).toBeNull()
    const byEpochs = toCreateBody(
      filled({ duration: 'epochs', max_steps: 250, num_train_epochs: 2 }),
    )
    expect(byEpochs.num_train_epochs).toBe(2)
    expect(byEpochs.max_steps).toBeNull()
  })

  it('maps the SwanLab choice onto use_swanlab (null follows the server)', () => {
    const on = toCreateBody(
      filled({ swanlab: 'on', swanlab_project: ' proj ', swanlab_run_name: '' }),
    )
    expect(on).toMatchObject({ use_swanlab: true, swanlab_project: 'proj', swanlab_run_name: null })
    const off = toCreateBody(filled({ swanlab: 'off', swanlab_project: 'proj' }))
    expect(off).toMatchObject({ use_swanlab: false, swanlab_project: null })
    expect(toCreateBody(filled({ swanlab: 'server' })).use_swanlab).toBeNull()
  })

  it('sends only the fields the API knows (unknown fields are a 422 there)', () => {
    // The contract's body, field for field (docs: training_api.md, schemas/training.py).
    const contract = [
      'name',
      'description',
      'dataset_ids',
      'base_model',
      'template',
      'stage',
      'finetuning_type',
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
      'use_swanlab',
      'swanlab_project',
      'swanlab_run_name',
      'start',
    ]
    expect(Object.keys(toCreateBody(filled())).sort()).toEqual(contract.sort())
  })
})

describe('presets', () => {
  it('LoRA SFT quick: 100 steps at 1e-4, logging every 5, saving every 50', () => {
    const body = toCreateBody(applyPreset(filled(), preset('loraSft')))
    expect(body).toMatchObject({
      finetuning_type: 'lora',
      stage: 'sft',
      max_steps: 100,
      num_train_epochs: null,
      learning_rate: 1e-4,
      logging_steps: 5,
      save_steps: 50,
    })
  })

  it('QLoRA quantizes and needs a GPU', () => {
    const qlora = preset('qlora')
    expect(qlora.needsGpu).toBe(true)
    expect(toCreateBody(applyPreset(filled(), qlora))).toMatchObject({
      finetuning_type: 'qlora',
      stage: 'sft',
      quantization_bit: 4,
    })
  })

  it('DPO: LoRA at 5e-6 with beta 0.1', () => {
    expect(toCreateBody(applyPreset(filled(), preset('dpo')))).toMatchObject({
      stage: 'dpo',
      finetuning_type: 'lora',
      learning_rate: 5e-6,
      pref_beta: 0.1,
      num_train_epochs: 3,
      max_steps: null,
    })
  })

  it('a preset resets the other hyper-parameters but keeps name, data and model', () => {
    const custom = filled({ lora_rank: 64, seed: 7, cutoff_len: 4096, swanlab: 'on' })
    const afterDpo = applyPreset(applyPreset(custom, preset('loraSft')), preset('dpo'))
    expect(afterDpo).toMatchObject({
      name: custom.name,
      dataset_ids: [3],
      base_model: custom.base_model,
      swanlab: 'on',
      lora_rank: 8,
      seed: 42,
      cutoff_len: 1024,
      // the quick preset's step count does not leak into DPO
      duration: 'epochs',
      logging_steps: 10,
    })
  })

  it('QLoRA is offered only with a GPU and quantization', () => {
    const engine = {
      available: true,
      version: '0.9.5',
      version_supported: true,
      missing: null,
      install_hint: 'make train-env',
      gpus: [] as string[],
      quantization: true,
      templates: [],
      cpu_threads: null,
    }
    expect(gpuAvailable(null)).toBe(false)
    expect(gpuAvailable(engine)).toBe(false)
    expect(gpuAvailable({ ...engine, gpus: ['H100'] })).toBe(true)
    expect(gpuAvailable({ ...engine, gpus: ['H100'], quantization: false })).toBe(false)
  })
})

describe('422 field errors', () => {
  it('lands each error on the form item of loc[1], the first message per item winning', () => {
    const errors = jobFieldErrors([
      issue(['body', 'name'], 'String should have at most 100 characters'),
      issue(['body', 'dataset_ids', 0], 'dataset 3 not found'),
      issue(['body', 'dataset_ids', 1], 'dataset 4 not found'),
      issue(['body', 'finetuning_type'], 'qlora needs a GPU'),
    ])
    expect(errors).toEqual({
      name: 'String should have at most 100 characters',
      dataset_ids: 'dataset 3 not found',
      finetuning_type: 'qlora needs a GPU',
    })
  })

  it('puts epochs / steps on the duration item and use_swanlab on the SwanLab choice', () => {
    expect(
      jobFieldErrors([
        issue(['body', 'max_steps'], 'Value error, give num_train_epochs or max_steps, not both'),
        issue(['body', 'use_swanlab'], 'SwanLab is disabled on this server'),
      ]),
    ).toEqual({
      duration: 'give num_train_epochs or max_steps, not both',
      swanlab: 'SwanLab is disabled on this server',
    })
  })

  it('whole-body and unknown-field errors go to the form, naming the field', () => {
    expect(jobFieldErrors([issue(['body'], 'Invalid JSON')])).toEqual({ form: 'Invalid JSON' })
    expect(jobFieldErrors([issue(['body', 'output_dir'], 'must be inside /data')])).toEqual({
      form: 'output_dir: must be inside /data',
    })
  })

  it('ignores errors that are not about the body (query, path)', () => {
    expect(jobFieldErrors([issue(['query', 'page'], 'bad')])).toEqual({})
  })
})

describe('job form helpers', () => {
  describe('the stage / dataset rule', () => {
    const sets = new Map(
      [
        makeDataset({ id: 1, name: 'instructions', detected_format: 'alpaca' }),
        makeDataset({ id: 2, name: 'chat', detected_format: 'sharegpt' }),
        makeDataset({ id: 3, name: 'messages', detected_format: 'openai' }),
        makeDataset({ id: 4, name: 'corpus', detected_format: 'text' }),
        makeDataset({ id: 5, name: 'pairs', detected_format: 'preference' }),
        makeDataset({ id: 6, name: 'tagged', detected_format: 'kto' }),
        // a dataset the create dialog knows only by name (copied from a job)
        makeDataset({ id: 7, name: 'copied', detected_format: 'unknown' }),
      ].map((dataset) => [dataset.id, dataset]),
    )
    const lookup = (id: number) => sets.get(id)
    const all = [1, 2, 3, 4, 5, 6]

    it('SFT takes instructions and conversations only', () => {
      expect(stageDatasetProblem('sft', [1, 2, 3], lookup)).toBe('')
      expect(stageDatasetProblem('sft', all, lookup)).toBe('corpus, pairs, tagged')
    })

    it('pre-training takes plain text only', () => {
      expect(stageDatasetProblem('pt', [4], lookup)).toBe('')
      expect(stageDatasetProblem('pt', all, lookup)).toBe(
        'instructions, chat, messages, pairs, tagged',
      )
    })

    it('DPO takes preference pairs only', () => {
      expect(stageDatasetProblem('dpo', [5], lookup)).toBe('')
      expect(stageDatasetProblem('dpo', all, lookup)).toBe(
        'instructions, chat, messages, corpus, tagged',
      )
    })

    it('KTO takes kto_tag datasets only', () => {
      expect(stageDatasetProblem('kto', [6], lookup)).toBe('')
      expect(stageDatasetProblem('kto', all, lookup)).toBe(
        'instructions, chat, messages, corpus, pairs',
      )
    })

    it('leaves datasets of no known format, or not known at all, to the server', () => {
      for (const stage of ['sft', 'pt', 'dpo', 'kto'] as const) {
        expect(stageDatasetProblem(stage, [7, 99], lookup)).toBe('')
        expect(datasetSuitsStage(stage, 'unknown')).toBe(true)
      }
      expect(stageDatasetProblem('kto', [7, 1, 99], lookup)).toBe('instructions')
    })

    it('fails the datasets field with the stage’s own message', async () => {
      const messages: Record<string, string> = {}
      const t = (key: string, named?: Record<string, unknown>) => {
        messages[key] = String(named?.names ?? '')
        return key
      }
      const validate = (form: JobForm): Promise<string | undefined> => {
        const rule = jobFormRules(t, form, lookup).dataset_ids?.find((r) => r.validator)
        return new Promise((resolve) => {
          void rule?.validator?.(
            rule,
            form.dataset_ids,
            (error?: string | Error) => resolve(error instanceof Error ? error.message : error),
            {},
            {},
          )
        })
      }
      expect(await validate(filled({ stage: 'kto', dataset_ids: [6, 5] }))).toBe(
        'training.form.rules.stageDatasets.kto',
      )
      expect(messages['training.form.rules.stageDatasets.kto']).toBe('pairs')
      expect(await validate(filled({ stage: 'pt', dataset_ids: [1] }))).toBe(
        'training.form.rules.stageDatasets.pt',
      )
      expect(await validate(filled({ stage: 'sft', dataset_ids: [1, 7] }))).toBeUndefined()
    })
  })

  it('copies a job into a new form: its settings, datasets and a new name', () => {
    const job = makeTrainingJob({
      stage: 'dpo',
      params: {
        num_train_epochs: null,
        max_steps: 40,
        learning_rate: 5e-6,
        lora_rank: 16,
        save_total_limit: null,
        eval_steps: null,
        pref_beta: 0.2,
      },
      swanlab: { enabled: true, project: 'p', run_name: 'r', mode: 'local' },
    })
    const form = formFromJob(job, 'copy of tiny sft')
    expect(form).toMatchObject({
      name: 'copy of tiny sft',
      stage: 'dpo',
      duration: 'steps',
      max_steps: 40,
      learning_rate: 5e-6,
      lora_rank: 16,
      save_total_limit: null,
      pref_beta: 0.2,
      dataset_ids: [3],
      base_model: '/models/tiny',
      swanlab: 'on',
      swanlab_project: 'p',
    })
    expect(toCreateBody(form).num_train_epochs).toBeNull()
  })

  it('offers the actions the state allows', () => {
    const running = jobActions(makeTrainingJob({ status: 'running' }))
    expect(running).toMatchObject({ start: false, cancel: true, resume: false, remove: false })
    const failed = jobActions(makeTrainingJob({ status: 'failed', resumable: true }))
    expect(failed).toMatchObject({ start: true, restart: true, resume: true, cancel: false })
    expect(jobActions(makeTrainingJob({ status: 'created' }))).toMatchObject({
      start: true,
      restart: false,
    })
    const done = jobActions({
      ...makeTrainingJob({ status: 'succeeded' }),
      artifacts: [{ kind: 'adapter' }],
    })
    expect(done).toMatchObject({ start: true, restart: true, export: true, remove: true })
    const full = jobActions({
      ...makeTrainingJob({ status: 'succeeded', finetuning_type: 'full' }),
      artifacts: [{ kind: 'model' }],
    })
    expect(full.export).toBe(false)
    const cancelling = jobActions(makeTrainingJob({ status: 'running', cancel_requested: true }))
    expect(cancelling.cancel).toBe(false)
  })

  it('shows progress as a bounded percentage and times as H:MM:SS', () => {
    expect(progressPercent(makeTrainingJob())).toBe(20)
    expect(progressPercent(makeTrainingJob({ status: 'succeeded', progress: null }))).toBe(100)
    expect(progressPercent(makeTrainingJob({ status: 'queued', progress: null }))).toBe(0)
    expect(formatDuration(5)).toBe('0:05')
    expect(formatDuration(125)).toBe('2:05')
    expect(formatDuration(3725)).toBe('1:02:05')
    expect(formatDuration(null)).toBe('')
  })
})
