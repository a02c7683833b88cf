/**
 * Training datasets (`/api/training/datasets`): upload with a validation report, import from
 * chats, list (own + shared), preview, download, rename / share, delete. Shapes mirror
 * backend/app/schemas/dataset.py.
 */
import { AxiosError, type AxiosResponse } from 'axios'

import { attachmentName } from '@/api/modelTests'
import type { Page } from '@/api/types'
import { api, type FormErrorTarget } from '@/utils/api'

export type DatasetScope = 'all' | 'mine' | 'shared'
export type FileFormat = 'json' | 'jsonl' | 'csv' | 'txt'
/**
 * What the server recognised in a file. `kto`: instruction/answer records or conversations
 * ending with an assistant answer, each with a boolean `kto_tag` (or `label`) saying whether
 * the answer is desirable.
 */
export type DetectedFormat =
  'alpaca' | 'sharegpt' | 'openai' | 'preference' | 'kto' | 'text' | 'unknown'
export type DatasetStatus = 'ready' | 'invalid'
export type DatasetSource = 'upload' | 'chat' | 'tests'

export const DATASET_SCOPES: readonly DatasetScope[] = ['all', 'mine', 'shared']
export const DETECTED_FORMATS: readonly DetectedFormat[] = [
  'alpaca',
  'sharegpt',
  'openai',
  'preference',
  'kto',
  'text',
  'unknown',
]
export const DATASET_STATUSES: readonly DatasetStatus[] = ['ready', 'invalid']
/** The file types the server accepts (UnsupportedDataset otherwise). */
export const DATASET_EXTENSIONS = ['.json', '.jsonl', '.csv', '.txt'] as const
/** The backend's limits (models/dataset.py, schemas/dataset.py, schemas/chat.py). */
export const DATASET_NAME_MAX = 100
export const DATASET_DESCRIPTION_MAX = 2000
export const PREVIEW_LIMIT_MAX = 100
export const FROM_CHAT_SESSIONS_MAX = 100

export interface OwnerRef {
  id: number
  nickname: string
}

export interface Dataset {
  id: number
  name: string
  description: string
  is_shared: boolean
  owner: OwnerRef
  can_edit: boolean
  file_name: string
  file_format: FileFormat
  detected_format: DetectedFormat
  status: DatasetStatus
  rows: number
  valid_rows: number
  invalid_rows: number
  error_count: number
  size_bytes: number
  source: DatasetSource
  created_at: string
  updated_at: string
}

/** One problem found by validation, on a 1-based line. */
export interface DatasetError {
  line: number
  message: string
}

/** Characters per record of one part. */
export interface LengthStats {
  min: number
  max: number
  mean: number
  p50: number
  p95: number
}

/** How many valid records of a KTO dataset have `kto_tag` true (desirable) or false. */
export interface KtoLabels {
  desirable: number
  undesirable: number
}

export interface DatasetStats {
  prompt: LengthStats | null
  response: LengthStats | null
  rejected: LengthStats | null
  total_chars: number
  /** Only for `kto` datasets; null or absent otherwise. */
  labels?: KtoLabels | null
}

export interface DatasetDetail extends Dataset {
  errors: DatasetError[]
  stats: DatasetStats
  llamafactory: Record<string, unknown> | null
}

/** One record of the file (clipped by the server), or why it cannot be read. */
export interface PreviewRow {
  line: number
  record: unknown
  error: string | null
}

export interface DatasetPreview {
  items: PreviewRow[]
  offset: number
  limit: number
  has_more: boolean
  rows: number
}

export interface DatasetQuery {
  page: number
  size: number
  scope?: DatasetScope
  q?: string
  status?: DatasetStatus | ''
  detected_format?: DetectedFormat | ''
}

/** What the user says about a new dataset (all optional: the file name gives a name). */
export interface DatasetFields {
  name?: string | null
  description?: string
  is_shared?: boolean
}

export interface DatasetUpdate {
  name?: string
  description?: string
  is_shared?: boolean
}

export interface CallOptions {
  form?: FormErrorTarget
  silent?: boolean
  signal?: AbortSignal
}

export interface UploadOptions {
  signal?: AbortSignal
  silent?: boolean
  /** 422 errors on name / description land here. */
  form?: FormErrorTarget
  /** 0..1 of the bytes sent; the server validates after the last byte. */
  onProgress?: (fraction: number) => void
}

export interface DownloadedFile {
  blob: Blob
  filename: string
}

export interface DownloadOptions {
  signal?: AbortSignal
  /** 0..1 when the server says how large the answer is. */
  onProgress?: (fraction: number) => void
}

const BASE = '/training/datasets'

/** Drop empty filters so the URL carries only what narrows the list. */
function listParams(query: DatasetQuery): Record<string, string | number> {
  const params: Record<string, string | number> = { page: query.page, size: query.size }
  if (query.scope && query.scope !== 'all') params.scope = query.scope
  if (query.q?.trim()) params.q = query.q.trim()
  if (query.status) params.status = query.status
  if (query.detected_format) params.detected_format = query.detected_format
  return params
}

export async function listDatasets(
  query: DatasetQuery,
  options: CallOptions = {},
): Promise<Page<Dataset>> {
  const { data } = await api.get<Page<Dataset>>(`${BASE}/`, {
    params: listParams(query),
    ...options,
  })
  return data
}

export async function getDataset(id: number, options: CallOptions = {}): Promise<DatasetDetail> {
  const { data } = await api.get<DatasetDetail>(`${BASE}/${id}`, options)
  return data
}

export async function previewDataset(
  id: number,
  offset: number,
  limit: number,
  options: CallOptions = {},
): Promise<DatasetPreview> {
  const { data } = await api.get<DatasetPreview>(`${BASE}/${id}/preview`, {
    params: { offset, limit },
    ...options,
  })
  return data
}

/** The multipart body of an upload: the file plus the optional form fields. */
export function uploadBody(file: File, fields: DatasetFields): FormData {
  const body = new FormData()
  const name = fields.name?.trim()
  if (name) body.append('name', name)
  if (fields.description?.trim()) body.append('description', fields.description.trim())
  body.append('is_shared', fields.is_shared ? 'true' : 'false')
  body.append('file', file, file.name)
  return body
}

/** Upload and validate a file; answers with the report once the server has read it all. */
export async function uploadDataset(
  file: File,
  fields: DatasetFields,
  options: UploadOptions = {},
): Promise<DatasetDetail> {
  const { data } = await api.post<DatasetDetail>(`${BASE}/upload`, uploadBody(file, fields), {
    signal: options.signal,
    silent: options.silent,
    form: options.form,
    // A large file takes as long as the line allows, and validating it takes more.
    timeout: 0,
    onUploadProgress: (event) => {
      if (options.onProgress && event.total) options.onProgress(event.loaded / event.total)
    },
  })
  return data
}

export async function datasetFromChat(
  body: DatasetFields & { session_ids: number[] },
  options: CallOptions = {},
): Promise<DatasetDetail> {
  const { data } = await api.post<DatasetDetail>(`${BASE}/from-chat`, body, options)
  return data
}

export async function updateDataset(
  id: number,
  changes: DatasetUpdate,
  options: CallOptions = {},
): Promise<DatasetDetail> {
  const { data } = await api.patch<DatasetDetail>(`${BASE}/${id}`, changes, options)
  return data
}

export async function deleteDataset(id: number, options: CallOptions = {}): Promise<void> {
  await api.delete(`${BASE}/${id}`, options)
}

/**
 * GET `path` (under /api) as a file through the authenticated axios instance (a plain link
 * would not carry the Bearer token). An error's JSON arrives as a blob too: it is parsed back
 * before rethrowing, so `errorMessage` can read its code. Errors are not shown here (silent).
 */
export async function downloadFile(
  path: string,
  fallbackName: string,
  options: DownloadOptions = {},
): Promise<DownloadedFile> {
  let response: AxiosResponse<Blob>
  try {
    response = await api.get<Blob>(path, {
      responseType: 'blob',
      silent: true,
      signal: options.signal,
      timeout: 0,
      onDownloadProgress: (event) => {
        if (options.onProgress && event.total) options.onProgress(event.loaded / event.total)
      },
    })
  } catch (error) {
    if (error instanceof AxiosError && error.response?.data instanceof Blob) {
      try {
        error.response.data = JSON.parse(await error.response.data.text()) as unknown
      } catch {
        // not JSON: errorMessage falls back to the status
      }
    }
    throw error
  }
  return {
    blob: response.data,
    filename: attachmentName(response.headers['content-disposition'], fallbackName),
  }
}

export function downloadDataset(
  dataset: Pick<Dataset, 'id' | 'file_name'>,
  options: DownloadOptions = {},
): Promise<DownloadedFile> {
  return downloadFile(`${BASE}/${dataset.id}/download`, dataset.file_name, options)
}

/** Hand a downloaded blob to the browser as a file. */
export function saveBlob(blob: Blob, filename: string): void {
  const url = URL.createObjectURL(blob)
  const link = document.createElement('a')
  link.href = url
  link.download = filename
  link.style.display = 'none'
  document.body.appendChild(link)
  link.click()
  link.remove()
  // Revoking at once can cancel the download in some browsers.
  setTimeout(() => URL.revokeObjectURL(url), 10_000)
}
