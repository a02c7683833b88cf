import type zhCN from '../zh-CN'
import admin from './admin'
import auth from './auth'
import common from './common'
import dashboard from './dashboard'

const en: typeof zhCN = { ...common, auth, admin, dashboard }
export default en
