import 'element-plus/theme-chalk/dark/css-vars.css'
import './styles/main.css'

import { createPinia } from 'pinia'
import { createApp } from 'vue'

import App from './App.vue'
import { i18n } from './locales'
import { router } from './router'
import { setAuthFailureHandler } from './utils/api'

const app = createApp(App)
app.use(createPinia())
app.use(i18n)
app.use(router)

// When a session cannot be refreshed any more: back to the login page, then back here.
setAuthFailureHandler(() => {
  const current = router.currentRoute.value
  if (current.meta.public) return
  void router.replace({ name: 'login', query: { redirect: current.fullPath } })
})

app.mount('#app')
