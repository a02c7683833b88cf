import type m from '../zh-CN/dashboard'

const en: typeof m = {
  welcome: 'Welcome back, {name}',
  roleLabel: 'Signed in as: {role}',
  stats: {
    title: 'Users at a glance',
    total: 'Total users',
    active: 'Active',
    admins: 'Admins',
    unavailable: '—',
  },
  account: {
    title: 'My account',
    nickname: 'Nickname',
    email: 'Email',
    role: 'Role',
    memberSince: 'Member since',
  },
  quick: {
    title: 'Quick links',
    admin: 'User management',
    adminDesc: 'Search users, change roles, enable or disable accounts, create reset links',
    changePassword: 'Change password',
    changePasswordDesc: 'Update the password you sign in with',
    apiDocs: 'API docs',
    apiDocsDesc: 'Open the interactive API reference in a new tab',
  },
}
export default en
