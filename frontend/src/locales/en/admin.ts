import type m from '../zh-CN/admin'

const en: typeof m = {}
export default en
