import admin from './admin'
import auth from './auth'
import common from './common'
import dashboard from './dashboard'

export default { ...common, auth, admin, dashboard }
