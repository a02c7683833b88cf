import { mount } from '@vue/test-utils'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { defineComponent } from 'vue'

import type { MetricPoint, TrainingJob } from '@/api/training'
import { api } from '@/utils/api'
import { useJobCurves } from '@/views/swanlab/useJobCurves'

import { reply, scriptedAdapter, type SeenRequest } from './helpers'
import { makeJob, makePoint } from './swanlabFixtures'

const originalAdapter = api.defaults.adapter

/** The jobs and points the fake server holds. */
let jobs: TrainingJob[]
let points: Record<number, MetricPoint[]>
let requests: SeenRequest[]
/** `after_step` of each metrics request, in order. */
let metricsAfter: (number | undefined)[]

beforeEach(() => {
  jobs = []
  points = {}
  metricsAfter = []
  const scripted = scriptedAdapter((config) => {
    const url = config.url ?? ''
    if (url === '/training') {
      return reply(config, 200, { items: jobs, total: jobs.length, page: 1, size: 100 })
    }
    const detail = /^\/training\/(\d+)$/.exec(url)
    const job = detail && jobs.find((item) => item.id === Number(detail[1]))
    if (job) return reply(config, 200, { ...job, artifacts: [], exports: [] })
    const metrics = /^\/training\/(\d+)\/metrics$/.exec(url)
    if (metrics) {
      const afterStep = (config.params as { after_step?: number } | undefined)?.after_step
      metricsAfter.push(afterStep)
      const found = (points[Number(metrics[1])] ?? []).filter((p) => p.step > (afterStep ?? -1))
      return reply(config, 200, { progress: null, points: found })
    }
    return reply(config, 404, { detail: 'Not found', code: 'not_found' })
  })
  requests = scripted.requests
  api.defaults.adapter = scripted.adapter
})

afterEach(() => {
  api.defaults.adapter = originalAdapter
})

describe('useJobCurves', () => {
  function harness(pollMs: number) {
    let curves!: ReturnType<typeof useJobCurves>
    const wrapper = mount(
      defineComponent({
        setup() {
          curves = useJobCurves({ pollMs })
          return () => null
        },
      }),
    )
    return { wrapper, curves }
  }

  it('keeps fetching the new points of a running job, then stops when it ends', async () => {
    jobs = [makeJob(3, { status: 'running' })]
    points[3] = [makePoint(1, 3), makePoint(2, 2.5)]
    const { wrapper, curves } = harness(20)
    await curves.loadJobs()
    await curves.select(3)
    expect(curves.points.value.map((p) => p.step)).toEqual([1, 2])
    const metricCalls = () => requests.filter((r) => r.url === '/training/3/metrics').length

    points[3] = [...points[3]!, makePoint(3, 2.2)]
    await vi.waitFor(() => expect(curves.points.value.map((p) => p.step)).toEqual([1, 2, 3]))

    // The job ends: one more refresh sees it, then the refreshing stops.
    jobs = [makeJob(3, { status: 'succeeded' })]
    await vi.waitFor(() => expect(curves.job.value?.status).toBe('succeeded'))
    const calls = metricCalls()
    await new Promise((resolve) => setTimeout(resolve, 80))
    expect(metricCalls()).toBe(calls)
    // The picker shows the new status too.
    expect(curves.jobs.value[0]?.status).toBe('succeeded')
    wrapper.unmount()
  })

  it('asks only for the points after the last one it has', async () => {
    jobs = [makeJob(4, { status: 'running' })]
    points[4] = [makePoint(10, 1), makePoint(20, 0.9)]
    const { wrapper, curves } = harness(0)
    await curves.select(4)
    await curves.refresh()
    expect(metricsAfter).toEqual([undefined, 20])
    expect(curves.points.value.map((p) => p.step)).toEqual([10, 20])
    wrapper.unmount()
  })

  it('drops the answers for a job that is no longer selected', async () => {
    jobs = [makeJob(5), makeJob(6)]
    points[5] = [makePoint(1, 5)]
    points[6] = [makePoint(1, 6), makePoint(2, 6)]
    const { wrapper, curves } = harness(0)
    const first = curves.select(5)
    const second = curves.select(6)
    await Promise.all([first, second])
    expect(curves.selectedId.value).toBe(6)
    expect(curves.points.value.map((p) => p.loss)).toEqual([6, 6])
    wrapper.unmount()
  })
})
