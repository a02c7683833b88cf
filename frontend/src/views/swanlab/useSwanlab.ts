/**
 * The SwanLab page's server state: the stored config, the local dashboard and the projects of
 * the log folder, with the calls that change them. The dashboard's state refreshes on a timer
 * while the page is open (it may crash or be started by another administrator).
 */
import { onBeforeUnmount, ref, shallowRef } from 'vue'

import * as swanlabApi from '@/api/swanlab'
import type {
  SwanlabConfig,
  SwanlabConfigUpdate,
  SwanlabProjects,
  SwanlabStatus,
  SwanlabTestResult,
} from '@/api/swanlab'
import type { FormErrorTarget } from '@/utils/api'

import { STATUS_POLL_MS } from './data'

export function useSwanlab(options: { pollMs?: number } = {}) {
  const config = ref<SwanlabConfig | null>(null)
  const status = ref<SwanlabStatus | null>(null)
  const projects = ref<SwanlabProjects | null>(null)
  const testResult = ref<SwanlabTestResult | null>(null)

  const configLoading = ref(false)
  const statusLoading = ref(false)
  const projectsLoading = ref(false)
  const saving = ref(false)
  const testing = ref(false)
  /** 'start' or 'stop' while that call is in flight. */
  const dashboardBusy = ref<'start' | 'stop' | null>(null)

  /** Errors shown inside their card (the page does not pop them up). */
  const statusError = shallowRef<unknown>(null)
  const projectsError = shallowRef<unknown>(null)
  const dashboardError = shallowRef<unknown>(null)

  async function loadConfig(): Promise<void> {
    configLoading.value = true
    try {
      config.value = await swanlabApi.getConfig()
    } finally {
      configLoading.value = false
    }
  }

  /** `background`: a timer's refresh, quiet and without a spinner. */
  async function loadStatus(background = false): Promise<void> {
    if (!background) statusLoading.value = true
    try {
      status.value = await swanlabApi.dashboardStatus(true)
      statusError.value = null
    } catch (error) {
      statusError.value = error
    } finally {
      statusLoading.value = false
    }
  }

  async function loadProjects(): Promise<void> {
    projectsLoading.value = true
    try {
      projects.value = await swanlabApi.listProjects(true)
      projectsError.value = null
    } catch (error) {
      projects.value = null
      projectsError.value = error
    } finally {
      projectsLoading.value = false
    }
  }

  /** Store the form's body; the answer replaces the config. Throws what the server refused. */
  async function save(body: SwanlabConfigUpdate, form?: FormErrorTarget): Promise<SwanlabConfig> {
    saving.value = true
    try {
      const saved = await swanlabApi.updateConfig(body, form)
      config.value = saved
      // The test was of the previous config; the projects may come from another folder now.
      testResult.value = null
      void loadProjects()
      return saved
    } finally {
      saving.value = false
    }
  }

  async function runTest(): Promise<void> {
    testing.value = true
    testResult.value = null
    try {
      testResult.value = await swanlabApi.testConfig()
    } finally {
      testing.value = false
    }
  }

  async function changeDashboard(action: 'start' | 'stop'): Promise<boolean> {
    if (dashboardBusy.value) return false
    dashboardBusy.value = action
    dashboardError.value = null
    try {
      status.value = await (action === 'start'
        ? swanlabApi.startDashboard(true)
        : swanlabApi.stopDashboard(true))
      return true
    } catch (error) {
      dashboardError.value = error
      // The log tail tells why it did not start.
      await loadStatus(true)
      return false
    } finally {
      dashboardBusy.value = null
    }
  }

  const pollMs = options.pollMs ?? STATUS_POLL_MS
  const timer = pollMs > 0 ? setInterval(() => void loadStatus(true), pollMs) : undefined
  onBeforeUnmount(() => clearInterval(timer))

  return {
    config,
    status,
    projects,
    testResult,
    configLoading,
    statusLoading,
    projectsLoading,
    saving,
    testing,
    dashboardBusy,
    statusError,
    projectsError,
    dashboardError,
    loadConfig,
    loadStatus,
    loadProjects,
    save,
    runTest,
    start: () => changeDashboard('start'),
    stop: () => changeDashboard('stop'),
  }
}
