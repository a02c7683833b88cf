import Schema, { type Rules } from 'async-validator'
import { describe, expect, it } from 'vitest'

import type { SwanlabConfig, SwanlabProject } from '@/api/swanlab'
import {
  buildUpdate,
  configRules,
  dashboardActions,
  dashboardState,
  formFromConfig,
  hostChangeDropsKey,
  hostProblem,
  isDirty,
  jobsForRun,
  keyAfterSave,
  keyState,
  lastStep,
  mergePoints,
  parseJobQuery,
  runsForJob,
  type JobLike,
  type SwanlabForm,
} from '@/views/swanlab/data'

import { makeConfig, makeStatus } from './swanlabFixtures'

// async-validator prints each failure to the console; the tests read them from the result.
Schema.warning = () => undefined

function job(id: number, swanlab: Partial<JobLike['swanlab']> = {}): JobLike {
  return {
    id,
    name: `job ${id}`,
    swanlab: {
      enabled: true,
      project: 'modeltrain',
      run_name: `run-${id}`,
      mode: 'local',
      ...swanlab,
    },
  }
}

function project(name: string, runNames: string[]): SwanlabProject {
  return {
    name,
    created_at: null,
    updated_at: null,
    runs: runNames.map((runName, i) => ({
      run_id: `${name}-${i}`,
      name: runName,
      status: 'finished',
      created_at: null,
      finished_at: null,
    })),
  }
}

/** Run the form's rules the way Element Plus does (it validates with async-validator). */
async function problems(form: SwanlabForm, config: SwanlabConfig): Promise<Record<string, string>> {
  const rules = configRules(
    (key, named) => (named ? `${key} ${JSON.stringify(named)}` : key),
    () => ({
      form,
      config,
    }),
  )
  const found: Record<string, string> = {}
  try {
    await new Schema(rules as Rules).validate({ ...form })
  } catch (error) {
    const { errors } = error as { errors: { field: string; message: string }[] }
    for (const item of errors) found[item.field] ??= item.message
  }
  return found
}

describe('SwanLab config form -> PUT body', () => {
  it('shows defaults as empty fields and sends them back as null', () => {
    const form = formFromConfig(makeConfig())
    expect(form).toMatchObject({ logdir: '', host: '', workspace: '', api_key: '', port: 5092 })
    expect(buildUpdate(form)).toEqual({
      mode: 'local',
      project: 'modeltrain',
      workspace: null,
      logdir: null,
      host: null,
      port: 5092,
    })
  })

  it('keeps a chosen log folder, trims values and drops a trailing slash of the host', () => {
    const config = makeConfig({ logdir: '/data/runs', logdir_is_default: false })
    const form = {
      ...formFromConfig(config),
      project: ' demo ',
      host: 'https://swan.example.com/ ',
    }
    expect(form.logdir).toBe('/data/runs')
    expect(buildUpdate({ ...form, workspace: ' team ' })).toMatchObject({
      project: 'demo',
      workspace: 'team',
      logdir: '/data/runs',
      host: 'https://swan.example.com',
    })
  })

  it('keeps the stored key when the key field is left empty (no api_key at all)', () => {
    const config = makeConfig({ mode: 'cloud', has_api_key: true, api_key_masked: '…a1b2' })
    const body = buildUpdate(formFromConfig(config))
    expect('api_key' in body).toBe(false)
    expect(keyAfterSave(formFromConfig(config), config)).toBe(true)
  })

  it('replaces the key with what was typed, trimmed', () => {
    const config = makeConfig({ has_api_key: true, api_key_masked: '…a1b2' })
    const form = { ...formFromConfig(config), api_key: '  new-key-123 ' }
    expect(buildUpdate(form).api_key).toBe('new-key-123')
  })

  it("removes the stored key with '' when asked to", () => {
    const config = makeConfig({ has_api_key: true, api_key_masked: '…a1b2' })
    const form = { ...formFromConfig(config), removeKey: true }
    expect(buildUpdate(form).api_key).toBe('')
    expect(keyAfterSave(form, config)).toBe(false)
    expect(keyState(form, config)).toBe('removing')
  })

  it('a typed key wins over the remove box', () => {
    const form = { ...formFromConfig(makeConfig()), removeKey: true, api_key: 'k' }
    expect(buildUpdate(form).api_key).toBe('k')
  })

  it('leaves out a cleared port rather than sending null', () => {
    const form = { ...formFromConfig(makeConfig()), port: null }
    expect('port' in buildUpdate(form)).toBe(false)
  })

  it('warns that a host change drops the stored key unless a key is typed', () => {
    const config = makeConfig({ mode: 'cloud', has_api_key: true, api_key_masked: '…a1b2' })
    const same = { ...formFromConfig(config), host: 'https://api.swanlab.cn' }
    expect(hostChangeDropsKey({ ...formFromConfig(config) }, config)).toBe(false)
    expect(hostChangeDropsKey(same, config)).toBe(true)
    expect(keyAfterSave(same, config)).toBe(false)
    expect(hostChangeDropsKey({ ...same, api_key: 'again' }, config)).toBe(false)
    // Only a trailing slash differs: the same host.
    const stored = makeConfig({ host: 'https://h.example', has_api_key: true, api_key_masked: 'x' })
    expect(
      hostChangeDropsKey({ ...formFromConfig(stored), host: 'https://h.example/' }, stored),
    ).toBe(false)
  })

  it('tells the key states apart for the placeholder', () => {
    const none = makeConfig()
    expect(keyState(formFromConfig(none), none)).toBe('none')
    const stored = makeConfig({ has_api_key: true, api_key_masked: '…a1b2' })
    expect(keyState(formFromConfig(stored), stored)).toBe('stored')
    const unreadable = makeConfig({ has_api_key: true, api_key_masked: null })
    expect(keyState(formFromConfig(unreadable), unreadable)).toBe('unreadable')
  })

  it('is dirty only when the body would change', () => {
    const config = makeConfig({ has_api_key: true, api_key_masked: 'x' })
    const form = formFromConfig(config)
    expect(isDirty(form, config)).toBe(false)
    expect(isDirty({ ...form, project: ' modeltrain ' }, config)).toBe(false)
    expect(isDirty({ ...form, port: 6000 }, config)).toBe(true)
    expect(isDirty({ ...form, api_key: 'k' }, config)).toBe(true)
    expect(isDirty({ ...form, removeKey: true }, config)).toBe(true)
  })
})

describe('SwanLab config form rules', () => {
  it('accepts the stored defaults', async () => {
    const config = makeConfig()
    expect(await problems(formFromConfig(config), config)).toEqual({})
  })

  it('refuses what the server refuses', async () => {
    const config = makeConfig()
    const found = await problems(
      {
        ...formFromConfig(config),
        project: 'my project',
        workspace: 'a/b',
        logdir: 'relative/dir',
        host: 'ftp://h',
        port: 80,
        api_key: 'has space',
      },
      config,
    )
    expect(Object.keys(found).sort()).toEqual([
      'api_key',
      'host',
      'logdir',
      'port',
      'project',
      'workspace',
    ])
    expect(found.project).toBe('swanlab.rules.name')
    expect(found.port).toContain('swanlab.rules.port')
  })

  it('requires a project and a port', async () => {
    const config = makeConfig()
    const found = await problems({ ...formFromConfig(config), project: '  ', port: null }, config)
    expect(found.project).toBe('swanlab.rules.projectRequired')
    expect(found.port).toContain('swanlab.rules.port')
  })

  it("refuses '..' in the log folder and credentials or a query in the host", async () => {
    const config = makeConfig()
    const found = await problems({ ...formFromConfig(config), logdir: '/data/../etc' }, config)
    expect(found.logdir).toBe('swanlab.rules.logdirAbsolute')
    expect(hostProblem('https://user:pw@h.example')).toBe('swanlab.rules.hostCredentials')
    expect(hostProblem('https://h.example/?a=1')).toBe('swanlab.rules.hostQuery')
    expect(hostProblem('https://h.example:8443/api')).toBe('')
    expect(hostProblem('')).toBe('')
  })

  it('asks for a key in cloud mode unless one is stored and kept', async () => {
    const bare = makeConfig()
    const cloud = { ...formFromConfig(bare), mode: 'cloud' as const }
    expect((await problems(cloud, bare)).api_key).toBe('swanlab.rules.apiKeyRequired')
    expect(await problems({ ...cloud, api_key: 'key' }, bare)).toEqual({})

    const withKey = makeConfig({ mode: 'cloud', has_api_key: true, api_key_masked: '…a1b2' })
    expect(await problems(formFromConfig(withKey), withKey)).toEqual({})
    const removing = { ...formFromConfig(withKey), removeKey: true }
    expect((await problems(removing, withKey)).api_key).toBe('swanlab.rules.apiKeyRequired')
    // Local mode needs no key.
    expect(await problems({ ...removing, mode: 'local' }, withKey)).toEqual({})
  })
})

describe('SwanLab dashboard states', () => {
  it('reads running, not answering, stopped and unavailable', () => {
    expect(dashboardState(null)).toBeNull()
    expect(dashboardState(makeStatus({ running: true, healthy: true }))).toBe('running')
    expect(dashboardState(makeStatus({ running: true, healthy: false }))).toBe('unhealthy')
    expect(dashboardState(makeStatus())).toBe('stopped')
    expect(dashboardState(makeStatus({ engine_available: false }))).toBe('unavailable')
    // A running dashboard stays running even if the engine check fails meanwhile.
    expect(
      dashboardState(makeStatus({ running: true, healthy: true, engine_available: false })),
    ).toBe('running')
  })

  it('lets only admins start and stop, and anyone open a running dashboard', () => {
    const running = makeStatus({ running: true, healthy: true, url: 'http://127.0.0.1:5092' })
    expect(dashboardActions(running, true)).toEqual({ start: false, stop: true, open: true })
    expect(dashboardActions(running, false)).toEqual({ start: false, stop: false, open: true })
    expect(dashboardActions(makeStatus(), true)).toEqual({ start: true, stop: false, open: false })
    expect(dashboardActions(makeStatus(), false).start).toBe(false)
    expect(dashboardActions(makeStatus({ engine_available: false }), true).start).toBe(false)
    expect(dashboardActions({ ...running, healthy: false }, true).open).toBe(true)
    expect(dashboardActions({ ...running, url: null }, true).open).toBe(false)
    expect(dashboardActions(null, true)).toEqual({ start: false, stop: false, open: false })
  })
})

describe('training jobs and SwanLab runs', () => {
  const projects = [project('modeltrain', ['run-1', 'run-2', 'run-1']), project('other', ['run-2'])]

  it("finds a job's runs by run name, its own project first", () => {
    const found = runsForJob(job(2, { project: 'other' }), projects)
    expect(found.map((m) => [m.project.name, m.sameProject])).toEqual([
      ['other', true],
      ['modeltrain', false],
    ])
    expect(runsForJob(job(1), projects)).toHaveLength(2)
    expect(runsForJob(job(3), projects)).toEqual([])
  })

  it('does not match a job that does not log to SwanLab or has no run name', () => {
    expect(runsForJob(job(1, { enabled: false }), projects)).toEqual([])
    expect(runsForJob(job(1, { run_name: null }), projects)).toEqual([])
  })

  it("finds a run's jobs, preferring the ones of the same project", () => {
    const jobs = [job(1), job(2, { project: 'other' }), job(5, { run_name: 'run-2' })]
    const [first, second] = projects
    const run2 = first!.runs[1]!
    expect(jobsForRun(run2, first!, jobs).map((j) => j.id)).toEqual([5])
    expect(jobsForRun(second!.runs[0]!, second!, jobs).map((j) => j.id)).toEqual([2])
    // No job of the same project: any job of that run name.
    expect(jobsForRun(run2, project('third', []), jobs).map((j) => j.id)).toEqual([2, 5])
    expect(jobsForRun(run2, first!, [job(5, { run_name: 'run-2', enabled: false })])).toEqual([])
  })
})

describe('curve points', () => {
  it('merges new points by step, in order, the newer winning', () => {
    const a = [
      { step: 1, loss: 2 },
      { step: 2, loss: 1.5 },
    ]
    const merged = mergePoints(a, [
      { step: 3, loss: 1 },
      { step: 2, loss: 1.4 },
    ])
    expect(merged).toEqual([
      { step: 1, loss: 2 },
      { step: 2, loss: 1.4 },
      { step: 3, loss: 1 },
    ])
    expect(lastStep(merged)).toBe(3)
    expect(lastStep([])).toBeUndefined()
    expect(mergePoints(a, [])).toBe(a)
  })

  it('reads ?job= as a positive id only', () => {
    expect(parseJobQuery('12')).toBe(12)
    expect(parseJobQuery(['7', '8'])).toBe(7)
    expect(parseJobQuery('0')).toBeNull()
    expect(parseJobQuery('-3')).toBeNull()
    expect(parseJobQuery('1e3')).toBeNull()
    expect(parseJobQuery(undefined)).toBeNull()
  })
})
