/**
 * The runtime page's pure parts: the create / edit form and the request bodies it becomes (the
 * engine arguments that apply to each engine, mirroring backend/app/engines/serving.py
 * ENGINE_ARGS), where server field errors land, and how a runtime's state is shown.
 */
import type { FormItemRule } from 'element-plus'

import {
  RUNTIME_NAME_MAX,
  RUNTIME_NAME_PATTERN,
  type EngineArgs,
  type JobArtifact,
  type Runtime,
  type RuntimeBackend,
  type RuntimeCreate,
  type RuntimeDtype,
  type RuntimeEngine,
  type RuntimeStatus,
  type RuntimeUpdate,
  type ServingEngineInfo,
  type SourceKind,
} from '@/api/runtime'
import type { ValidationIssue } from '@/api/types'

export { formatDateTime } from '@/utils/format'

type Translate = (key: string, named?: Record<string, unknown>) => string

/** List refresh while a runtime is loading or unloading: loading takes seconds to minutes. */
export const POLL_BUSY_MS = 1500
/** List refresh otherwise: another user's runtime may come up, or one may crash. */
export const POLL_IDLE_MS = 10_000
/** How often the logs dialog asks for new lines while the runtime is loading. */
export const LOG_POLL_MS = 1500
/** Lines kept in the logs dialog. */
export const LOG_LINES_MAX = 2000

// --------------------------------------------------------------------------- engine args

/** 'vllm', 'llamafactory+huggingface' or 'llamafactory+vllm' (serving.engine_key). */
export type EngineKey = 'vllm' | 'llamafactory+huggingface' | 'llamafactory+vllm'

export function engineKey(engine: RuntimeEngine, backend: RuntimeBackend): EngineKey {
  return engine === 'vllm' ? 'vllm' : `llamafactory+${backend}`
}

export type EngineArgKey = keyof EngineArgs

export interface EngineArgSpec {
  key: EngineArgKey
  kind: 'float' | 'int' | 'dtype' | 'bool'
  min?: number
  max?: number
  step?: number
  precision?: number
  engines: readonly EngineKey[]
  /** vLLM's max_loras only means something when an adapter is served. */
  adapterOnly?: boolean
}

const VLLM_ENGINES: readonly EngineKey[] = ['vllm', 'llamafactory+vllm']
const ALL_ENGINES: readonly EngineKey[] = ['vllm', 'llamafactory+vllm', 'llamafactory+huggingface']

/** In form order. Ranges as the server checks them (gpu_memory_utilization is (0, 1]). */
export const ENGINE_ARG_SPECS: readonly EngineArgSpec[] = [
  {
    key: 'gpu_memory_utilization',
    kind: 'float',
    min: 0.05,
    max: 1,
    step: 0.05,
    precision: 2,
    engines: VLLM_ENGINES,
  },
  {
    key: 'max_model_len',
    kind: 'int',
    min: 16,
    max: 16_777_216,
    step: 1024,
    engines: VLLM_ENGINES,
  },
  { key: 'tensor_parallel_size', kind: 'int', min: 1, max: 64, step: 1, engines: VLLM_ENGINES },
  { key: 'dtype', kind: 'dtype', engines: ALL_ENGINES },
  {
    key: 'max_loras',
    kind: 'int',
    min: 1,
    max: 256,
    step: 1,
    engines: ['vllm'],
    adapterOnly: true,
  },
  { key: 'trust_remote_code', kind: 'bool', engines: ALL_ENGINES },
  { key: 'enforce_eager', kind: 'bool', engines: VLLM_ENGINES },
]

export const ENGINE_ARG_KEYS: readonly EngineArgKey[] = ENGINE_ARG_SPECS.map((spec) => spec.key)

/** The arguments a form shows for this engine; others the server would refuse. */
export function engineArgSpecs(
  engine: RuntimeEngine,
  backend: RuntimeBackend,
  servesAdapter: boolean,
): EngineArgSpec[] {
  const key = engineKey(engine, backend)
  return ENGINE_ARG_SPECS.filter(
    (spec) => spec.engines.includes(key) && (!spec.adapterOnly || servesAdapter),
  )
}

/** The form's arguments: null / '' / false leave the engine's default (nothing is sent). */
export interface ArgsForm {
  gpu_memory_utilization: number | null
  max_model_len: number | null
  tensor_parallel_size: number | null
  dtype: RuntimeDtype | ''
  max_loras: number | null
  trust_remote_code: boolean
  enforce_eager: boolean
}

export function blankArgs(): ArgsForm {
  return {
    gpu_memory_utilization: null,
    max_model_len: null,
    tensor_parallel_size: null,
    dtype: '',
    max_loras: null,
    trust_remote_code: false,
    enforce_eager: false,
  }
}

function setNumber(value: number | null | undefined): number | null {
  return typeof value === 'number' && Number.isFinite(value) ? value : null
}

export function argsFrom(args: EngineArgs): ArgsForm {
  return {
    gpu_memory_utilization: setNumber(args.gpu_memory_utilization),
    max_model_len: setNumber(args.max_model_len),
    tensor_parallel_size: setNumber(args.tensor_parallel_size),
    dtype: args.dtype ?? '',
    max_loras: setNumber(args.max_loras),
    trust_remote_code: args.trust_remote_code === true,
    enforce_eager: args.enforce_eager === true,
  }
}

/** Only the set arguments that apply to the engine: switching engines leaves nothing stale. */
export function engineArgsBody(args: ArgsForm, specs: readonly EngineArgSpec[]): EngineArgs {
  const body: EngineArgs = {}
  for (const spec of specs) {
    const value = args[spec.key]
    if (spec.kind === 'bool') {
      if (value === true) (body as Record<string, unknown>)[spec.key] = true
    } else if (spec.kind === 'dtype') {
      if (value) body.dtype = value as RuntimeDtype
    } else if (typeof value === 'number' && Number.isFinite(value)) {
      ;(body as Record<string, unknown>)[spec.key] = value
    }
  }
  return body
}

// --------------------------------------------------------------------------------- form

export interface RuntimeForm {
  name: string
  description: string
  source_kind: SourceKind
  /** path / hub: the model. */
  source: string
  /** job: the succeeded training job and which artifact ('' lets the server pick). */
  job_id: number | null
  artifact: JobArtifact | ''
  /** '' leaves the server's choice (`default`, or the job's template). */
  template: string
  engine: RuntimeEngine
  backend: RuntimeBackend
  args: ArgsForm
  port: number | null
}

export function defaultForm(): RuntimeForm {
  return {
    name: '',
    description: '',
    source_kind: 'path',
    source: '',
    job_id: null,
    artifact: '',
    template: '',
    engine: 'llamafactory',
    backend: 'huggingface',
    args: blankArgs(),
    port: null,
  }
}

/** What the create form needs to know of a succeeded training job. */
export interface JobChoice {
  id: number
  name: string
  kind: 'train' | 'export'
  base_model: string
  template: string
  /** Artifact kinds the job has; null until its detail is fetched. */
  artifacts: JobArtifact[] | null
}

/** The artifact the server serves when none is chosen (runtime_service._job_source). */
export function resolvedArtifact(
  artifact: JobArtifact | '',
  job: Pick<JobChoice, 'kind' | 'artifacts'> | undefined,
): JobArtifact | null {
  if (artifact) return artifact
  if (!job) return null
  if (job.kind === 'export') return 'merged'
  if (job.artifacts === null) return null
  return job.artifacts.includes('adapter') ? 'adapter' : 'model'
}

/** Whether the form's model is a LoRA adapter served on its base model. */
export function formServesAdapter(form: RuntimeForm, job: JobChoice | undefined): boolean {
  return form.source_kind === 'job' && resolvedArtifact(form.artifact, job) === 'adapter'
}

export function formArgSpecs(form: RuntimeForm, job: JobChoice | undefined): EngineArgSpec[] {
  return engineArgSpecs(form.engine, form.backend, formServesAdapter(form, job))
}

/** POST /api/model. */
export function toCreateBody(
  form: RuntimeForm,
  job: JobChoice | undefined,
  load: boolean,
): RuntimeCreate {
  const body: RuntimeCreate = {
    name: form.name.trim(),
    source_kind: form.source_kind,
    engine: form.engine,
    // The server refuses any backend but huggingface beside the vllm engine.
    backend: form.engine === 'vllm' ? 'huggingface' : form.backend,
    engine_args: engineArgsBody(form.args, formArgSpecs(form, job)),
    port: setNumber(form.port),
    load,
  }
  const description = form.description.trim()
  if (description) body.description = description
  if (form.source_kind === 'job') {
    if (form.job_id !== null) body.job_id = form.job_id
    if (form.artifact) body.artifact = form.artifact
  } else {
    body.source = form.source.trim()
  }
  const template = form.template.trim()
  if (template) body.template = template
  return body
}

export function formFromRuntime(runtime: Runtime): RuntimeForm {
  return {
    name: runtime.name,
    description: runtime.description,
    source_kind: runtime.source_kind,
    source: runtime.source_kind === 'job' ? '' : runtime.source,
    job_id: runtime.job_id,
    artifact: '',
    template: runtime.template,
    engine: runtime.engine,
    backend: runtime.backend,
    args: argsFrom(runtime.engine_args),
    port: runtime.requested_port,
  }
}

/**
 * PATCH /api/model/{id}. The serving fields are sent only when the runtime is not loaded (the
 * server refuses them then with invalid_state); the description always may change.
 */
export function toUpdateBody(form: RuntimeForm, runtime: Runtime): RuntimeUpdate {
  const body: RuntimeUpdate = { description: form.description.trim() }
  if (!isLoaded(runtime.status)) {
    const template = form.template.trim()
    if (template) body.template = template
    body.engine_args = engineArgsBody(
      form.args,
      engineArgSpecs(runtime.engine, runtime.backend, runtime.adapter_path !== null),
    )
    body.port = setNumber(form.port)
  }
  return body
}

/** A name to offer from the model: the hub id's or folder's last part, made a served name. */
export function suggestName(source: string): string {
  const last =
    source
      .trim()
      .replace(/[/\\]+$/, '')
      .split(/[/\\]/)
      .pop() ?? ''
  const name = last
    .replace(/[^A-Za-z0-9_.-]+/g, '-')
    .replace(/^[^A-Za-z0-9]+/, '')
    .slice(0, RUNTIME_NAME_MAX)
  return RUNTIME_NAME_PATTERN.test(name) ? name : ''
}

export function isLocalPath(value: string): boolean {
  return /^[/~.]/.test(value.trim())
}

const HUB_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]*(\/[A-Za-z0-9_.-]+)?$/

export type RuntimeFormField =
  | 'name'
  | 'description'
  | 'source'
  | 'job_id'
  | 'artifact'
  | 'template'
  | 'engine'
  | 'backend'
  | 'port'
  | EngineArgKey
  /** Not about one field: shown above the form. */
  | 'form'

export const RUNTIME_FORM_FIELDS: readonly RuntimeFormField[] = [
  'name',
  'description',
  'source',
  'job_id',
  'artifact',
  'template',
  'engine',
  'backend',
  'port',
  ...ENGINE_ARG_KEYS,
  'form',
]

/** Body fields (and the service's spec names) whose errors belong under another form item. */
const BODY_TO_FORM: Record<string, RuntimeFormField> = {
  source_kind: 'source',
  model: 'source',
  adapter: 'source',
  engine_args: 'form',
}

/**
 * FastAPI's 422 list as {form item: message}. `loc` is ["body", field] or, for an engine
 * argument, ["body", "engine_args", key]; unknown fields go to 'form' with their name.
 */
export function runtimeFieldErrors(
  detail: readonly ValidationIssue[],
): Partial<Record<RuntimeFormField, string>> {
  const errors: Partial<Record<RuntimeFormField, string>> = {}
  for (const issue of detail) {
    if (issue.loc[0] !== 'body') continue
    let raw = issue.loc[1]
    if (raw === 'engine_args' && typeof issue.loc[2] === 'string') {
      const arg = issue.loc[2]
      raw = (ENGINE_ARG_KEYS as readonly string[]).includes(arg) ? arg : `engine_args.${arg}`
    }
    let field: RuntimeFormField
    if (raw === undefined) field = 'form'
    else if (typeof raw !== 'string') continue
    else
      field =
        BODY_TO_FORM[raw] ??
        ((RUNTIME_FORM_FIELDS as readonly string[]).includes(raw)
          ? (raw as RuntimeFormField)
          : 'form')
    if (errors[field]) continue
    const message = issue.msg.replace(/^Value error, /, '')
    errors[field] =
      field === 'form' && typeof raw === 'string' && raw !== 'form' ? `${raw}: ${message}` : message
  }
  return errors
}

/** The form item a 409 is about, so the message also sits where the user fixes it. */
export function conflictField(
  code: string | null,
  backend: RuntimeBackend,
): RuntimeFormField | null {
  if (code === 'name_taken') return 'name'
  if (code === 'port_in_use') return 'port'
  if (code === 'engine_unavailable') return backend === 'vllm' ? 'backend' : 'engine'
  return null
}

/** The client-side rules; the server checks the rest (and answers 422 on the field). */
export function runtimeFormRules(
  t: Translate,
  form: RuntimeForm,
): Partial<Record<RuntimeFormField, FormItemRule[]>> {
  return {
    name: [
      { required: true, whitespace: true, message: t('runtime.rules.name'), trigger: 'blur' },
      {
        max: RUNTIME_NAME_MAX,
        message: t('runtime.rules.nameMax', { n: RUNTIME_NAME_MAX }),
        trigger: 'blur',
      },
      {
        pattern: RUNTIME_NAME_PATTERN,
        message: t('runtime.rules.namePattern'),
        trigger: 'blur',
      },
    ],
    source: [
      {
        trigger: 'blur',
        validator: (_rule, value: string, callback) => {
          if (form.source_kind === 'job') return callback()
          const text = (value ?? '').trim()
          if (!text) return callback(new Error(t(`runtime.rules.source.${form.source_kind}`)))
          if (form.source_kind === 'path' && !/^[/~]/.test(text))
            return callback(new Error(t('runtime.rules.pathAbsolute')))
          if (form.source_kind === 'hub' && (isLocalPath(text) || !HUB_ID.test(text)))
            return callback(new Error(t('runtime.rules.hubId')))
          return callback()
        },
      },
    ],
    job_id: [
      {
        trigger: 'change',
        validator: (_rule, value: number | null, callback) =>
          form.source_kind !== 'job' || typeof value === 'number'
            ? callback()
            : callback(new Error(t('runtime.rules.job'))),
      },
    ],
  }
}

// ------------------------------------------------------------------------------ engines

export interface EngineChoice {
  engine: RuntimeEngine
  available: boolean
  /** Why not, and how to fix it; '' when available or unknown. */
  reason: string
}

/** Each engine with whether it can run here (unknown engines are offered: load will tell). */
export function engineChoices(engines: readonly ServingEngineInfo[] | null): EngineChoice[] {
  return (['llamafactory', 'vllm'] as const).map((engine) => {
    const info = engines?.find((item) => item.engine === engine)
    if (!info || info.available) return { engine, available: true, reason: '' }
    const reason = [info.missing, info.install_hint].filter(Boolean).join(' — ')
    return { engine, available: false, reason }
  })
}

// ------------------------------------------------------------------------------ display

type TagType = 'primary' | 'success' | 'info' | 'warning' | 'danger'

export const STATUS_TAGS: Record<
  RuntimeStatus,
  { type: TagType; effect: 'light' | 'plain' | 'dark' }
> = {
  stopped: { type: 'info', effect: 'plain' },
  loading: { type: 'warning', effect: 'light' },
  ready: { type: 'success', effect: 'dark' },
  failed: { type: 'danger', effect: 'light' },
}

/** A process is (or is coming) up. */
export function isLoaded(status: RuntimeStatus): boolean {
  return status === 'loading' || status === 'ready'
}

/** Its state is about to change by itself: worth polling fast. */
export function isBusy(runtime: Pick<Runtime, 'status' | 'unload_requested'>): boolean {
  return runtime.status === 'loading' || runtime.unload_requested
}

export function pollDelay(
  runtimes: readonly Pick<Runtime, 'status' | 'unload_requested'>[],
): number {
  return runtimes.some(isBusy) ? POLL_BUSY_MS : POLL_IDLE_MS
}

/** The status label's key: an unload in progress reads as such rather than as "ready". */
export function statusKey(runtime: Pick<Runtime, 'status' | 'unload_requested'>): string {
  if (runtime.unload_requested && isLoaded(runtime.status)) return 'runtime.status.unloading'
  return `runtime.status.${runtime.status}`
}

/** Seconds from an API timestamp to `now` (ms); null when there is none. Never negative. */
export function secondsSince(value: string | null | undefined, now: number): number | null {
  if (!value) return null
  const at = Date.parse(value)
  if (Number.isNaN(at)) return null
  return Math.max(0, Math.floor((now - at) / 1000))
}

/** While loading: how long since the load was asked for. */
export function loadingSeconds(
  runtime: Pick<Runtime, 'status' | 'load_requested_at'>,
  now: number,
): number | null {
  return runtime.status === 'loading' ? secondsSince(runtime.load_requested_at, now) : null
}

/** While ready: the server's uptime, carried forward from when it was fetched. */
export function uptimeSeconds(
  runtime: Pick<Runtime, 'status' | 'uptime_s'>,
  fetchedAt: number,
  now: number,
): number | null {
  if (runtime.status !== 'ready' || runtime.uptime_s === null) return null
  return runtime.uptime_s + Math.max(0, Math.floor((now - fetchedAt) / 1000))
}

/** Seconds as H:MM:SS (M:SS under an hour, "Nd H:MM:SS" past a day); '' for none. */
export function formatDuration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds) || seconds < 0)
    return ''
  const total = Math.floor(seconds)
  const days = Math.floor(total / 86_400)
  const h = Math.floor((total % 86_400) / 3600)
  const m = Math.floor((total % 3600) / 60)
  const s = total % 60
  const hours = days > 0 || h > 0
  const clock = `${hours ? `${h}:` : ''}${String(m).padStart(hours ? 2 : 1, '0')}:${String(s).padStart(2, '0')}`
  return days > 0 ? `${days}d ${clock}` : clock
}

/** What a user may do with a runtime in its current state. */
export function runtimeActions(runtime: Runtime) {
  const manage = runtime.can_manage
  const loaded = isLoaded(runtime.status)
  const ready = runtime.status === 'ready' && runtime.model_config_id !== null
  return {
    load: manage && !loaded,
    unload: manage && loaded && !runtime.unload_requested,
    edit: manage,
    /** Only the description may change while loaded. */
    editServing: manage && !loaded,
    remove: manage,
    logs: manage,
    chat: ready && !runtime.unload_requested,
    compare: ready && !runtime.unload_requested,
  }
}

/** The engine as shown: "vLLM", "LLaMA-Factory", "LLaMA-Factory · vLLM". */
export function engineLabel(runtime: Pick<Runtime, 'engine' | 'backend'>): string {
  if (runtime.engine === 'vllm') return 'vLLM'
  return runtime.backend === 'vllm' ? 'LLaMA-Factory · vLLM' : 'LLaMA-Factory'
}

export type StatusFilter = RuntimeStatus | 'all'

/** Client-side filtering: the list is every runtime this user may see, newest first. */
export function filterRuntimes(
  runtimes: readonly Runtime[],
  status: StatusFilter,
  q: string,
): Runtime[] {
  const words = q.trim().toLowerCase().split(/\s+/).filter(Boolean)
  return runtimes.filter((runtime) => {
    if (status !== 'all' && runtime.status !== status) return false
    if (words.length === 0) return true
    const haystack = [runtime.name, runtime.description, runtime.source, runtime.owner.nickname]
      .join('\n')
      .toLowerCase()
    return words.every((word) => haystack.includes(word))
  })
}
