import type m from '../zh-CN/auth'

const en: typeof m = {}
export default en
