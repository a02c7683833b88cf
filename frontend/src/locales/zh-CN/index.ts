import auth from './auth'
import common from './common'

export default { ...common, auth }
