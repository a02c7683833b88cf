import { flushPromises, mount } from '@vue/test-utils'
import { createPinia, setActivePinia } from 'pinia'
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { defineComponent } from 'vue'
import { createMemoryHistory, createRouter } from 'vue-router'

import type { DashboardStats } from '@/api/dashboard'
import { i18n, loadPageMessages } from '@/locales'
import { useAuthStore } from '@/store'
import { api } from '@/utils/api'
import { clearSession, setSession } from '@/utils/tokenManager'
import Dashboard from '@/views/Dashboard.vue'

import { makeSession, reply, scriptedAdapter, type SeenRequest } from './helpers'

const originalAdapter = api.defaults.adapter

const MINE = {
  sessions: 4,
  messages: 37,
  model_tests: 2,
  images: 1,
  datasets: 3,
  jobs: { created: 1, queued: 0, running: 2, succeeded: 5, failed: 1, cancelled: 0 },
}
const TEAM = {
  sessions: 40,
  messages: 512,
  model_tests: 9,
  images: 6,
  datasets: 14,
  jobs: { created: 2, queued: 3, running: 1, succeeded: 20, failed: 4, cancelled: 6 },
  users: { total: 12, active: 11, admins: 2 },
}

const Blank = defineComponent({ render: () => null })

function makeRouter() {
  const names = [
    'dashboard',
    'model-chat',
    'model-test',
    'system-prompts',
    'model-config',
    'admin',
    'change-password',
    'training',
  ]
  return createRouter({
    history: createMemoryHistory(),
    routes: names.map((name, i) => ({ path: i === 0 ? '/' : `/${name}`, name, component: Blank })),
  })
}

async function mountAs(
  role: 'user' | 'admin',
  answer: DashboardStats | Record<string, unknown> | number,
): Promise<{ wrapper: ReturnType<typeof mount>; requests: SeenRequest[] }> {
  // The auth store follows sessions set after it exists.
  const auth = useAuthStore()
  setSession(makeSession('token', { user: { role, nickname: 'alice' } }))
  expect(auth.user?.role).toBe(role)
  const { adapter, requests } = scriptedAdapter((config) =>
    typeof answer === 'number'
      ? reply(config, answer, { detail: 'boom', code: 'internal_error' })
      : reply(config, 200, answer),
  )
  api.defaults.adapter = adapter
  const router = makeRouter()
  await router.push('/')
  const wrapper = mount(Dashboard, { global: { plugins: [i18n, router] } })
  await flushPromises()
  return { wrapper, requests }
}

function value(wrapper: ReturnType<typeof mount>, testId: string): string | undefined {
  return wrapper.find(`[data-testid="${testId}"]`).attributes('data-value')
}

function href(wrapper: ReturnType<typeof mount>, testId: string): string | undefined {
  return wrapper.find(`[data-testid="${testId}"]`).attributes('href')
}

beforeAll(async () => {
  await Promise.all(['dashboard', 'admin', 'modelConfig'].map(loadPageMessages))
})

beforeEach(() => {
  setActivePinia(createPinia())
})

afterEach(() => {
  api.defaults.adapter = originalAdapter
  clearSession()
  document.body.innerHTML = ''
})

describe('Dashboard', () => {
  it("shows a user's own counts from /dashboard/stats and no team figures", async () => {
    const { wrapper, requests } = await mountAs('user', { mine: MINE, team: null })
    expect(wrapper.find('[data-testid="dashboard-welcome"]').text()).toContain('alice')
    expect(requests.map((r) => [r.method, r.url])).toEqual([['GET', '/dashboard/stats']])
    expect(value(wrapper, 'stat-mine-sessions')).toBe('4')
    expect(value(wrapper, 'stat-mine-messages')).toBe('37')
    expect(value(wrapper, 'stat-mine-model-tests')).toBe('2')
    expect(value(wrapper, 'stat-mine-images')).toBe('1')
    expect(wrapper.find('[data-testid="stat-mine-messages"]').text()).toContain('37')
    expect(wrapper.find('[data-testid="dashboard-users"]').exists()).toBe(false)
    expect(wrapper.find('[data-testid="dashboard-team"]').exists()).toBe(false)
    expect(wrapper.find('[data-testid="quick-admin"]').exists()).toBe(false)
    // The own counts lead to their pages.
    expect(wrapper.find('[data-testid="stat-mine-model-tests-link"]').attributes('href')).toBe(
      '/model-test',
    )
    expect(wrapper.find('[data-testid="stat-mine-sessions-link"]').attributes('href')).toBe(
      '/model-chat',
    )
    expect(wrapper.find('[data-testid="quick-model-test"]').attributes('href')).toBe('/model-test')
    wrapper.unmount()
  })

  it('shows datasets and training jobs by status, each leading to the training page', async () => {
    const { wrapper } = await mountAs('user', { mine: MINE, team: null })
    expect(value(wrapper, 'stat-mine-datasets')).toBe('3')
    expect(wrapper.find('[data-testid="stat-mine-datasets"]').text()).toContain('3')
    expect(href(wrapper, 'stat-mine-datasets-link')).toBe('/training')
    // The total is the sum of the statuses.
    expect(value(wrapper, 'stat-mine-jobs')).toBe('9')
    const expected = { created: 1, queued: 0, running: 2, succeeded: 5, failed: 1, cancelled: 0 }
    for (const [status, count] of Object.entries(expected)) {
      expect(value(wrapper, `stat-mine-jobs-${status}`)).toBe(String(count))
      const tag = wrapper.find(`[data-testid="stat-mine-jobs-${status}"]`).text()
      expect(tag).toContain(i18n.global.t(`dashboard.jobs.status.${status}`))
      expect(tag).toContain(String(count))
      expect(href(wrapper, `stat-mine-jobs-${status}-link`)).toBe(`/training?status=${status}`)
    }
    expect(href(wrapper, 'stat-mine-jobs-link')).toBe('/training?tab=jobs')
    expect(wrapper.find('[data-testid="stat-team-jobs"]').exists()).toBe(false)
    wrapper.unmount()
  })

  it('shows dashes for datasets and jobs when the server does not count them', async () => {
    const { sessions, messages, model_tests, images } = MINE
    const { wrapper } = await mountAs('user', {
      mine: { sessions, messages, model_tests, images },
      team: null,
    })
    expect(value(wrapper, 'stat-mine-sessions')).toBe('4')
    expect(value(wrapper, 'stat-mine-datasets')).toBe('')
    const dash = i18n.global.t('dashboard.stats.unavailable')
    expect(wrapper.find('[data-testid="stat-mine-datasets"]').text()).toContain(dash)
    expect(wrapper.find('[data-testid="stat-mine-datasets"]').text()).not.toMatch(/\b0\b/)
    expect(value(wrapper, 'stat-mine-jobs')).toBe('')
    expect(value(wrapper, 'stat-mine-jobs-running')).toBe('')
    expect(wrapper.find('[data-testid="stat-mine-jobs"]').text()).not.toMatch(/\b0\b/)
    wrapper.unmount()
  })

  it('shows admins their own counts, the accounts and the team totals', async () => {
    const { wrapper } = await mountAs('admin', { mine: MINE, team: TEAM })
    expect(value(wrapper, 'stat-mine-sessions')).toBe('4')
    expect(value(wrapper, 'stat-users-total')).toBe('12')
    expect(value(wrapper, 'stat-users-active')).toBe('11')
    expect(value(wrapper, 'stat-users-admins')).toBe('2')
    expect(value(wrapper, 'stat-team-sessions')).toBe('40')
    expect(value(wrapper, 'stat-team-messages')).toBe('512')
    expect(value(wrapper, 'stat-team-model-tests')).toBe('9')
    expect(value(wrapper, 'stat-team-images')).toBe('6')
    expect(value(wrapper, 'stat-mine-datasets')).toBe('3')
    expect(value(wrapper, 'stat-team-datasets')).toBe('14')
    expect(value(wrapper, 'stat-team-jobs')).toBe('36')
    expect(value(wrapper, 'stat-team-jobs-queued')).toBe('3')
    expect(value(wrapper, 'stat-team-jobs-cancelled')).toBe('6')
    expect(href(wrapper, 'stat-team-jobs-failed-link')).toBe('/training?status=failed')
    expect(wrapper.find('[data-testid="dashboard-team"]').text()).toContain(
      i18n.global.t('dashboard.team.title'),
    )
    expect(wrapper.find('[data-testid="quick-admin"]').exists()).toBe(true)
    wrapper.unmount()
  })

  it('shows dashes, not zeros, when the counts cannot be had', async () => {
    const { wrapper } = await mountAs('admin', 500)
    expect(value(wrapper, 'stat-mine-sessions')).toBe('')
    expect(value(wrapper, 'stat-users-total')).toBe('')
    expect(value(wrapper, 'stat-mine-datasets')).toBe('')
    expect(value(wrapper, 'stat-team-jobs')).toBe('')
    expect(value(wrapper, 'stat-team-jobs-running')).toBe('')
    const card = wrapper.find('[data-testid="stat-mine-sessions"]').text()
    expect(card).toContain(i18n.global.t('dashboard.stats.unavailable'))
    expect(card).not.toMatch(/\b0\b/)
    wrapper.unmount()
  })
})
