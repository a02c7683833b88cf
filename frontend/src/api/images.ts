/**
 * Images for vision models (`/api/model/upload-image`, `/api/model/images/{id}`). The files are
 * served to their owner only, with Bearer auth, so an `<img src>` cannot load them directly:
 * `imageObjectUrl()` fetches one as a blob through the authenticated axios instance and hands
 * out an object URL, shared by every thumbnail of that image.
 */
import { api } from '@/utils/api'

/** The backend's limits (IMAGE_MAX_BYTES and the accepted formats). */
export const IMAGE_MAX_BYTES = 10 * 1024 * 1024
export const IMAGE_TYPES = ['image/png', 'image/jpeg', 'image/webp', 'image/gif'] as const

export interface UploadedImage {
  id: string
  mime_type: string
  size_bytes: number
  width: number
  height: number
  url: string
}

export interface ImageCallOptions {
  silent?: boolean
  signal?: AbortSignal
  onProgress?: (fraction: number) => void
}

/** Why a file is refused before uploading it, or null when it may go. */
export function imageProblem(file: File): 'type' | 'size' | null {
  if (!(IMAGE_TYPES as readonly string[]).includes(file.type)) return 'type'
  if (file.size > IMAGE_MAX_BYTES) return 'size'
  return null
}

export async function uploadImage(
  file: File,
  options: ImageCallOptions = {},
): Promise<UploadedImage> {
  const form = new FormData()
  form.append('file', file, file.name)
  const { data } = await api.post<UploadedImage>('/model/upload-image', form, {
    silent: options.silent,
    signal: options.signal,
    timeout: 120_000,
    onUploadProgress: (event) => {
      if (options.onProgress && event.total) options.onProgress(event.loaded / event.total)
    },
  })
  return data
}

export async function deleteImage(id: string, options: ImageCallOptions = {}): Promise<void> {
  await api.delete(`/model/images/${encodeURIComponent(id)}`, {
    silent: options.silent,
    signal: options.signal,
  })
}

export async function fetchImageBlob(id: string, options: ImageCallOptions = {}): Promise<Blob> {
  const { data } = await api.get<Blob>(`/model/images/${encodeURIComponent(id)}`, {
    responseType: 'blob',
    silent: options.silent ?? true,
    signal: options.signal,
  })
  return data
}

// One object URL per image id for the page's lifetime (images never change once uploaded).
const objectUrls = new Map<string, Promise<string>>()

/** An object URL showing image `id`; rejects when it cannot be fetched (gone, not ours). */
export function imageObjectUrl(id: string): Promise<string> {
  let url = objectUrls.get(id)
  if (!url) {
    url = fetchImageBlob(id).then((blob) => URL.createObjectURL(blob))
    // A failure is not remembered: the next thumbnail may try again.
    url.catch(() => objectUrls.delete(id))
    objectUrls.set(id, url)
  }
  return url
}

/** Give an image's object URL back (e.g. after deleting the image). */
export async function releaseImageUrl(id: string): Promise<void> {
  const url = objectUrls.get(id)
  if (!url) return
  objectUrls.delete(id)
  try {
    URL.revokeObjectURL(await url)
  } catch {
    // it never loaded
  }
}

/** Seed the cache with a local file that was just uploaded as `id` (no download needed). */
export function rememberLocalImage(id: string, file: Blob): string {
  const url = URL.createObjectURL(file)
  objectUrls.set(id, Promise.resolve(url))
  return url
}
