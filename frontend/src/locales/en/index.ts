import type zhCN from '../zh-CN'
import auth from './auth'
import common from './common'

const en: typeof zhCN = { ...common, auth }
export default en
