import { AxiosError } from 'axios'
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest'

import {
  downloadDataset,
  listDatasets,
  uploadBody,
  uploadDataset,
  type DatasetDetail,
} from '@/api/datasets'
import { downloadArtifact, jobAction, listJobs, openJobEvents } from '@/api/training'
import { StreamRequestError } from '@/api/stream'
import { api, errorMessage } from '@/utils/api'
import { i18n } from '@/locales'

import { jsonResponse, reply, scriptedAdapter } from './helpers'
import { makeDataset, makeJobDetail } from './trainingFixtures'

const { messageError } = vi.hoisted(() => ({ messageError: vi.fn() }))
vi.mock('element-plus', () => ({ ElMessage: { error: messageError } }))

const originalAdapter = api.defaults.adapter

beforeAll(() => {
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

afterEach(() => {
  api.defaults.adapter = originalAdapter
  vi.unstubAllGlobals()
})

describe('datasets API', () => {
  it('leaves empty filters out of the list query', async () => {
    const { adapter } = scriptedAdapter((config) => {
      expect(config.params).toEqual({ page: 2, size: 50, q: 'abc', status: 'ready' })
      return reply(config, 200, { items: [], total: 0, page: 2, size: 50 })
    })
    api.defaults.adapter = adapter
    await listDatasets({
      page: 2,
      size: 50,
      scope: 'all',
      q: ' abc ',
      status: 'ready',
      detected_format: '',
    })
  })

  it('uploads the file in the `file` field with name, description and is_shared', () => {
    const file = new File(['{"instruction": "hi", "output": "yo"}'], 'mini.json')
    const body = uploadBody(file, { name: ' Mini ', description: '', is_shared: true })
    expect(body.get('name')).toBe('Mini')
    expect(body.has('description')).toBe(false)
    expect(body.get('is_shared')).toBe('true')
    expect((body.get('file') as File).name).toBe('mini.json')
  })

  it('reports upload progress and answers with the validation report', async () => {
    const report: DatasetDetail = {
      ...makeDataset(),
      errors: [{ line: 3, message: 'missing output' }],
      stats: { prompt: null, response: null, rejected: null, total_chars: 12 },
      llamafactory: null,
    }
    const { adapter, requests } = scriptedAdapter((config) => {
      config.onUploadProgress?.({ loaded: 50, total: 100, bytes: 50, lengthComputable: true })
      config.onUploadProgress?.({ loaded: 100, total: 100, bytes: 50, lengthComputable: true })
      return reply(config, 201, report)
    })
    api.defaults.adapter = adapter
    const progress: number[] = []
    const answer = await uploadDataset(
      new File(['x'], 'a.jsonl'),
      {},
      {
        onProgress: (fraction) => progress.push(fraction),
      },
    )
    expect(answer.errors[0]).toEqual({ line: 3, message: 'missing output' })
    expect(progress).toEqual([0.5, 1])
    expect(requests[0]).toMatchObject({ method: 'POST', url: '/training/datasets/upload' })
    expect(requests[0]!.data).toBeInstanceOf(FormData)
  })

  it('a failed download is read back from its blob so its code can be shown', async () => {
    const { adapter } = scriptedAdapter((config) =>
      reply(
        config,
        404,
        new Blob([JSON.stringify({ detail: 'gone', code: 'dataset_not_found' })], {
          type: 'application/json',
        }),
      ),
    )
    api.defaults.adapter = adapter
    const failure = await downloadDataset({ id: 3, file_name: 'a.json' }).catch((e: unknown) => e)
    expect(failure).toBeInstanceOf(AxiosError)
    expect(errorMessage(failure)).toBe(i18n.global.t('errors.dataset_not_found'))
    // Downloads are silent: the caller shows the message once.
    expect(messageError).not.toHaveBeenCalled()
  })
})

describe('training API', () => {
  it('lists jobs at /training with only the filters given', async () => {
    const { adapter, requests } = scriptedAdapter((config) => {
      expect(config.params).toEqual({ page: 1, size: 20, status: 'running' })
      return reply(config, 200, { items: [], total: 0, page: 1, size: 20 })
    })
    api.defaults.adapter = adapter
    await listJobs({ page: 1, size: 20, status: 'running', kind: '', q: '  ' })
    expect(requests[0]).toMatchObject({ method: 'GET', url: '/training' })
  })

  it('posts actions to /{id}/{action}', async () => {
    const { adapter, requests } = scriptedAdapter((config) =>
      reply(config, 200, makeJobDetail({ status: 'cancelled' })),
    )
    api.defaults.adapter = adapter
    const job = await jobAction(7, 'cancel')
    expect(job.status).toBe('cancelled')
    expect(requests[0]).toMatchObject({ method: 'POST', url: '/training/7/cancel' })
  })

  it('downloads an artifact by its escaped name, named by the server', async () => {
    const { adapter, requests } = scriptedAdapter((config) => {
      const response = reply(config, 200, new Blob(['PK']))
      response.headers = { 'content-disposition': 'attachment; filename="job-7-checkpoint-50.zip"' }
      return response
    })
    api.defaults.adapter = adapter
    const file = await downloadArtifact(7, 'checkpoint-50')
    expect(requests[0]!.url).toBe('/training/7/artifacts/checkpoint-50/download')
    expect(file.filename).toBe('job-7-checkpoint-50.zip')
  })

  it('turns a refused event stream into a StreamRequestError with its code', async () => {
    vi.stubGlobal(
      'fetch',
      vi.fn().mockResolvedValue(jsonResponse({ detail: 'nope', code: 'job_not_found' }, 404)),
    )
    const failure = await openJobEvents(7).catch((e: unknown) => e)
    expect(failure).toBeInstanceOf(StreamRequestError)
    expect(failure).toMatchObject({ status: 404, code: 'job_not_found' })
  })
})
