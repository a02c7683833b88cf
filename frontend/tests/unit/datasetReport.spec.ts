import { mount, type VueWrapper } from '@vue/test-utils'
import { afterEach, beforeAll, describe, expect, it } from 'vitest'

import type { DatasetDetail, KtoLabels } from '@/api/datasets'
import { i18n, loadPageMessages } from '@/locales'
import DatasetReport from '@/views/model-training/modules/DatasetReport.vue'

import { makeDatasetDetail } from './trainingFixtures'

beforeAll(async () => {
  await loadPageMessages('training')
})

let wrapper: VueWrapper | undefined

afterEach(() => {
  wrapper?.unmount()
  wrapper = undefined
  i18n.global.locale.value = 'zh-CN'
})

function mountReport(dataset: DatasetDetail): VueWrapper {
  wrapper = mount(DatasetReport, { props: { dataset }, global: { plugins: [i18n] } })
  return wrapper
}

function kto(labels: KtoLabels | null): DatasetDetail {
  const base = makeDatasetDetail({ detected_format: 'kto' })
  return { ...base, stats: { ...base.stats, labels } }
}

describe('the dataset report', () => {
  it('names the KTO format', () => {
    const report = mountReport(kto({ desirable: 6, undesirable: 4 }))
    expect(report.find('[data-testid="dataset-report-format"]').text()).toBe('KTO 数据')
  })

  it('counts a KTO dataset’s desirable and undesirable answers', () => {
    const report = mountReport(kto({ desirable: 6, undesirable: 4 }))
    expect(report.find('[data-testid="dataset-report-labels"]').text()).toBe(
      'KTO 标签：可取 6 条，不可取 4 条',
    )
    expect(report.find('[data-testid="dataset-report-one-label"]').exists()).toBe(false)
  })

  it('says so in English too', () => {
    i18n.global.locale.value = 'en'
    const report = mountReport(kto({ desirable: 1, undesirable: 2 }))
    expect(report.find('[data-testid="dataset-report-labels"]').text()).toBe(
      'KTO labels: 1 desirable, 2 undesirable',
    )
    expect(report.find('[data-testid="dataset-report-format"]').text()).toBe('KTO')
  })

  it.each([
    { desirable: 10, undesirable: 0 },
    { desirable: 0, undesirable: 10 },
  ])('warns when every answer has the same label (%o)', (labels) => {
    const report = mountReport(kto(labels))
    expect(report.find('[data-testid="dataset-report-labels"]').exists()).toBe(true)
    expect(report.find('[data-testid="dataset-report-one-label"]').text()).toContain(
      i18n.global.t('training.datasets.report.oneLabel'),
    )
  })

  it('has no labels line for other formats (labels null or absent)', () => {
    const report = mountReport(makeDatasetDetail())
    expect(report.find('[data-testid="dataset-report-labels"]').exists()).toBe(false)
    expect(report.find('[data-testid="dataset-report-one-label"]').exists()).toBe(false)
    expect(report.find('[data-testid="dataset-report-stats"]').exists()).toBe(true)

    const older = makeDatasetDetail()
    delete older.stats.labels
    expect(mountReport(older).find('[data-testid="dataset-report-labels"]').exists()).toBe(false)
  })
})
