import type m from '../zh-CN/dashboard'

const en: typeof m = {}
export default en
