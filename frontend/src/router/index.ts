import { createRouter, createWebHistory, type RouteRecordRaw } from 'vue-router'

import { i18n, loadPageMessages } from '@/locales'
import { useAuthStore } from '@/store'

import { resolveNavigation } from './guards'

export const routes: RouteRecordRaw[] = [
  {
    path: '/login',
    name: 'login',
    component: () => import('@/views/Login.vue'),
    meta: { public: true, guestOnly: true, title: 'auth.login.title' },
  },
  {
    path: '/register',
    name: 'register',
    component: () => import('@/views/Register.vue'),
    meta: { public: true, guestOnly: true, title: 'auth.register.title' },
  },
  {
    path: '/reset-password',
    name: 'reset-password',
    component: () => import('@/views/ResetPassword.vue'),
    meta: { public: true, title: 'auth.reset.title' },
  },
  {
    path: '/change-password',
    name: 'change-password',
    component: () => import('@/views/ChangePassword.vue'),
    meta: { title: 'auth.change.title' },
  },
  {
    path: '/',
    component: () => import('@/components/Layout.vue'),
    children: [
      {
        path: '',
        name: 'dashboard',
        component: () => import('@/views/Dashboard.vue'),
        meta: { title: 'nav.dashboard', i18n: ['dashboard', 'admin', 'modelConfig'] },
      },
      {
        path: 'models',
        name: 'model-config',
        component: () => import('@/views/ModelConfig.vue'),
        meta: { title: 'nav.modelConfig', i18n: ['modelConfig'] },
      },
      {
        path: 'chat',
        name: 'model-chat',
        component: () => import('@/views/ModelChat.vue'),
        meta: { title: 'nav.chat', i18n: ['chat'] },
      },
      {
        path: 'prompts',
        name: 'system-prompts',
        component: () => import('@/views/SystemPrompt.vue'),
        meta: { title: 'nav.prompts', i18n: ['systemPrompt'] },
      },
      {
        path: 'model-test',
        name: 'model-test',
        component: () => import('@/views/ModelTest.vue'),
        meta: { title: 'nav.modelTest', i18n: ['modelTest'] },
      },
      {
        path: 'training',
        name: 'model-training',
        component: () => import('@/views/ModelTraining.vue'),
        meta: { title: 'nav.training', i18n: ['training', 'runtime'] },
      },
      {
        path: 'swanlab',
        name: 'swanlab',
        component: () => import('@/views/SwanLabViz.vue'),
        meta: { title: 'nav.swanlab', i18n: ['swanlab', 'training'] },
      },
      {
        path: 'runtimes',
        name: 'model-runtime',
        component: () => import('@/views/ModelRuntime.vue'),
        meta: { title: 'nav.runtime', i18n: ['runtime', 'training'] },
      },
      {
        path: 'admin',
        name: 'admin',
        component: () => import('@/views/AdminPanel.vue'),
        meta: { admin: true, title: 'nav.admin', i18n: ['admin'] },
      },
    ],
  },
  {
    path: '/:pathMatch(.*)*',
    name: 'not-found',
    component: () => import('@/views/NotFound.vue'),
    meta: { public: true, title: 'notFound.title' },
  },
]

export const router = createRouter({
  history: createWebHistory(import.meta.env.BASE_URL),
  routes,
})

router.beforeEach(async (to) => {
  const auth = useAuthStore()
  await auth.restore()
  const verdict = resolveNavigation(to, auth)
  if (verdict === true && to.meta.i18n) await Promise.all(to.meta.i18n.map(loadPageMessages))
  return verdict
})

router.afterEach((to) => {
  const { t } = i18n.global
  document.title = to.meta.title ? `${t(to.meta.title)} · ModelTrain` : 'ModelTrain'
})

export default router
