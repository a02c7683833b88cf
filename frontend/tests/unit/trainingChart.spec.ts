import { describe, expect, it } from 'vitest'

import { buildMetricsOption, formatMetric, type MetricPoint } from '@/components/MetricsChart.vue'

interface Series {
  name: string
  yAxisIndex: number
  data: [number, number][]
}
interface Axis {
  name: string
  position: string
}

const POINTS: MetricPoint[] = [
  { step: 5, loss: 2.5, lr: 1e-4, eval_loss: null },
  { step: 10, loss: 2.1, lr: 8e-5, eval_loss: 2.4 },
  // the last trainer_log line has no loss
  { step: 12, loss: null, lr: 7e-5 },
]

function parts(metrics: Parameters<typeof buildMetricsOption>[1]) {
  const option = buildMetricsOption(POINTS, metrics) as { series: Series[]; yAxis: Axis[] }
  return { series: option.series, yAxis: option.yAxis }
}

describe('MetricsChart option', () => {
  it('puts loss on the left axis and lr on a right one', () => {
    const { series, yAxis } = parts(['loss', 'lr'])
    expect(yAxis.map((axis) => [axis.name, axis.position])).toEqual([
      ['loss', 'left'],
      ['lr', 'right'],
    ])
    expect(series.map((line) => [line.name, line.yAxisIndex])).toEqual([
      ['loss', 0],
      ['lr', 1],
    ])
  })

  it('leaves out the steps a metric was not logged at', () => {
    const { series } = parts(['loss', 'eval_loss', 'lr'])
    const byName = Object.fromEntries(series.map((line) => [line.name, line.data]))
    expect(byName.loss).toEqual([
      [5, 2.5],
      [10, 2.1],
    ])
    expect(byName.eval_loss).toEqual([[10, 2.4]])
    expect(byName.lr).toHaveLength(3)
  })

  it('draws lr alone on a single left axis', () => {
    const { series, yAxis } = parts(['lr'])
    expect(yAxis).toHaveLength(1)
    expect(yAxis[0]).toMatchObject({ name: 'lr', position: 'left' })
    expect(series[0]!.yAxisIndex).toBe(0)
  })

  it('writes tiny rates in e-notation with enough digits to tell ticks apart', () => {
    expect(formatMetric(0.0001)).toBe('1e-4')
    expect(formatMetric(0.000099)).toBe('9.9e-5')
    expect(formatMetric(0.0000988)).toBe('9.88e-5')
    expect(formatMetric(2.34567)).toBe('2.346')
    expect(formatMetric(0)).toBe('0')
  })
})
