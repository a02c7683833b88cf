import type { InternalAxiosRequestConfig } from 'axios'
import { flushPromises, mount, type VueWrapper } from '@vue/test-utils'
import { createPinia, setActivePinia } from 'pinia'
import { afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest'
import { defineComponent, h, ref } from 'vue'

import type { Dataset } from '@/api/datasets'
import type { EngineInfo, TrainingJobCreate } from '@/api/training'
import { i18n, loadPageMessages } from '@/locales'
import { api } from '@/utils/api'
import { defaultJobForm, type JobForm } from '@/views/model-training/data'
import JobCreateDialog from '@/views/model-training/modules/JobCreateDialog.vue'

import { reply, scriptedAdapter, type SeenRequest } from './helpers'
import { makeDataset, makeJobDetail } from './trainingFixtures'

const { messageError, messageSuccess } = vi.hoisted(() => ({
  messageError: vi.fn(),
  messageSuccess: vi.fn(),
}))
vi.mock('element-plus', async (importOriginal) => ({
  ...(await importOriginal<typeof import('element-plus')>()),
  ElMessage: { error: messageError, success: messageSuccess },
}))

const originalAdapter = api.defaults.adapter

const ENGINE: EngineInfo = {
  available: true,
  version: '0.9.5',
  version_supported: true,
  missing: null,
  install_hint: 'make train-env',
  gpus: [],
  quantization: false,
  templates: ['default', 'qwen'],
  cpu_threads: 1,
}

let requests: SeenRequest[] = []
let listed: Dataset[] = []
let createAnswer: (config: InternalAxiosRequestConfig) => ReturnType<typeof reply>

beforeAll(async () => {
  await loadPageMessages('training')
})

beforeEach(() => {
  setActivePinia(createPinia())
  const scripted = scriptedAdapter((config) => {
    if (config.url === '/training/datasets/') {
      return reply(config, 200, { items: listed, total: listed.length, page: 1, size: 100 })
    }
    if (config.method === 'post' && config.url === '/training') return createAnswer(config)
    return reply(config, 404, { detail: 'not here', code: 'not_found' })
  })
  requests = scripted.requests
  listed = [makeDataset()]
  api.defaults.adapter = scripted.adapter
  createAnswer = (config) => reply(config, 201, makeJobDetail({ status: 'queued' }))
})

afterEach(() => {
  api.defaults.adapter = originalAdapter
  document.body.innerHTML = ''
})

/** A form that passes the client-side rules, so submitting reaches the server. */
function readyForm(): JobForm {
  return { ...defaultJobForm(), name: 'tiny sft', dataset_ids: [3], base_model: '/models/tiny' }
}

async function settle(): Promise<void> {
  for (let i = 0; i < 6; i++) await flushPromises()
}

async function mountDialog(engine: EngineInfo = ENGINE, initial: JobForm | null = readyForm()) {
  const created = vi.fn()
  const Host = defineComponent({
    setup() {
      const open = ref(false)
      return () =>
        h(JobCreateDialog, {
          modelValue: open.value,
          'onUpdate:modelValue': (value: boolean) => (open.value = value),
          engine,
          initial,
          initialDatasets: [{ id: 3, name: 'alpaca-mini' }],
          onCreated: created,
        })
    },
  })
  const wrapper = mount(Host, {
    attachTo: document.body,
    global: { plugins: [i18n], stubs: { transition: false, 'transition-group': false } },
  })
  // Open it the way the page does: by flipping the v-model.
  const dialog = wrapper.findComponent(JobCreateDialog)
  dialog.vm.$emit('update:modelValue', true)
  await settle()
  return { wrapper, created }
}

function byId(testId: string): HTMLElement {
  const found = document.querySelector<HTMLElement>(`[data-testid="${testId}"]`)
  if (!found) throw new Error(`no element ${testId}`)
  return found
}

function sentBody(): TrainingJobCreate {
  const post = requests.filter((r) => r.method === 'POST' && r.url === '/training')
  expect(post).toHaveLength(1)
  return post[0]!.data as TrainingJobCreate
}

async function submit(): Promise<void> {
  byId('job-create-submit').click()
  await settle()
}

/** The error text Element Plus shows under the form item holding `testId`. */
function itemError(testId: string): string {
  const item = byId(testId).closest('.el-form-item')
  return item?.querySelector('.el-form-item__error')?.textContent?.trim() ?? ''
}

describe('the create dialog', () => {
  let wrapper: VueWrapper | undefined
  afterEach(() => wrapper?.unmount())

  it('applies the quick LoRA preset and sends the contract body', async () => {
    const mounted = await mountDialog()
    wrapper = mounted.wrapper
    byId('job-preset-loraSft').click()
    await settle()
    expect(byId('job-preset-hint').textContent).toContain('100')
    await submit()

    expect(sentBody()).toMatchObject({
      name: 'tiny sft',
      dataset_ids: [3],
      base_model: '/models/tiny',
      finetuning_type: 'lora',
      stage: 'sft',
      max_steps: 100,
      num_train_epochs: null,
      learning_rate: 1e-4,
      logging_steps: 5,
      save_steps: 50,
      start: true,
    })
    expect(mounted.created).toHaveBeenCalledOnce()
  })

  it('disables QLoRA (preset and type) when the server has no GPU', async () => {
    wrapper = (await mountDialog()).wrapper
    const presetButton = byId('job-preset-qlora') as HTMLButtonElement
    expect(presetButton.disabled).toBe(true)
    const radio = byId('job-finetuning-qlora').querySelector('input') as HTMLInputElement
    expect(radio.disabled).toBe(true)
  })

  it('offers QLoRA with a GPU and quantization', async () => {
    wrapper = (await mountDialog({ ...ENGINE, gpus: ['NVIDIA H100'], quantization: true })).wrapper
    expect((byId('job-preset-qlora') as HTMLButtonElement).disabled).toBe(false)
  })

  it('shows 422 field errors on their fields and opens the advanced section for them', async () => {
    createAnswer = (config) =>
      reply(config, 422, {
        code: 'invalid_training_spec',
        detail: [
          { type: 'value_error', loc: ['body', 'dataset_ids', 0], msg: 'dataset 3 not found' },
          {
            type: 'value_error',
            loc: ['body', 'max_steps'],
            msg: 'give num_train_epochs or max_steps, not both',
          },
          {
            type: 'value_error',
            loc: ['body', 'lora_rank'],
            msg: 'must be at least 1 and at most 1024',
          },
          { type: 'value_error', loc: ['body', 'output_dir'], msg: 'must be inside /data' },
        ],
      })
    const mounted = await mountDialog()
    wrapper = mounted.wrapper
    await submit()

    // Validation and the error's render settle over a few ticks.
    await vi.waitFor(() => {
      expect(itemError('job-datasets')).toBe('dataset 3 not found')
      expect(itemError('job-duration-mode')).toBe('give num_train_epochs or max_steps, not both')
      expect(itemError('job-lora-rank')).toBe('must be at least 1 and at most 1024')
    })
    expect(byId('job-form-error').textContent).toContain('output_dir: must be inside /data')
    expect(byId('job-advanced').classList.contains('is-active')).toBe(true)
    expect(mounted.created).not.toHaveBeenCalled()
    // The interceptor still says what went wrong, in the page's words.
    expect(messageError).toHaveBeenCalledWith(
      expect.objectContaining({ message: i18n.global.t('errors.invalid_training_spec') }),
    )
  })

  it('checks the chosen datasets again when the stage changes, for every stage', async () => {
    wrapper = (await mountDialog()).wrapper
    const message = (stage: string) =>
      i18n.global.t(`training.form.rules.stageDatasets.${stage}`, { names: 'alpaca-mini' })

    for (const stage of ['kto', 'pt', 'dpo'] as const) {
      byId(`job-stage-${stage}`).querySelector('input')!.click()
      await settle()
      await vi.waitFor(() => expect(itemError('job-datasets')).toBe(message(stage)))
    }
    byId('job-stage-sft').querySelector('input')!.click()
    await settle()
    await vi.waitFor(() => expect(itemError('job-datasets')).toBe(''))

    byId('job-stage-kto').querySelector('input')!.click()
    await submit()
    expect(requests.filter((r) => r.method === 'POST')).toHaveLength(0)
  })

  it('marks and sorts last the datasets the chosen stage cannot use', async () => {
    listed = [makeDataset(), makeDataset({ id: 4, name: 'tagged', detected_format: 'kto' })]
    wrapper = (await mountDialog()).wrapper
    byId('job-stage-kto').querySelector('input')!.click()
    await settle()
    byId('job-datasets').click()
    await settle()
    const option = await vi.waitFor(() => byId('job-dataset-option-3'))
    expect(option.dataset.unsuitable).toBe('true')
    expect(option.textContent).toContain(i18n.global.t('training.form.datasetUnsuitable'))
    const fitting = byId('job-dataset-option-4')
    expect(fitting.dataset.unsuitable).toBeUndefined()
    expect(fitting.textContent).not.toContain(i18n.global.t('training.form.datasetUnsuitable'))
    const order = [...document.querySelectorAll('[data-testid^="job-dataset-option-"]')].map(
      (item) => item.getAttribute('data-testid'),
    )
    expect(order).toEqual(['job-dataset-option-4', 'job-dataset-option-3'])
  })

  it('does not send a form that breaks the client-side rules', async () => {
    wrapper = (await mountDialog(ENGINE, { ...readyForm(), name: '  ', base_model: '' })).wrapper
    await submit()
    await vi.waitFor(() => {
      expect(itemError('job-name')).toBe(i18n.global.t('training.form.rules.name'))
      expect(itemError('job-base-model')).toBe(i18n.global.t('training.form.rules.baseModel'))
    })
    expect(requests.filter((r) => r.method === 'POST')).toHaveLength(0)
  })
})
