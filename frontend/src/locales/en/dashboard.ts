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
  mine: {
    title: 'My activity',
    sessions: 'Chat sessions',
    messages: 'Chat messages',
    modelTests: 'Model comparisons',
    images: 'Uploaded images',
    datasets: 'Datasets',
    jobs: 'Training jobs',
  },
  team: {
    title: 'Team totals',
    sessions: 'All sessions',
    messages: 'All messages',
    modelTests: 'All comparisons',
    images: 'All images',
    datasets: 'All datasets',
    jobs: 'All training jobs',
  },
  jobs: {
    status: {
      created: 'Not started',
      queued: 'Queued',
      running: 'Running',
      succeeded: 'Succeeded',
      failed: 'Failed',
      cancelled: 'Cancelled',
    },
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
    chat: 'Chat',
    chatDesc: 'Talk to the configured models; sessions are saved',
    modelTest: 'Compare models',
    modelTestDesc: 'Send one prompt to up to 3 models side by side, rate them, pick the best',
    prompts: 'Prompt library',
    promptsDesc: 'Manage reusable system prompt templates',
    admin: 'User management',
    adminDesc: 'Search users, change roles, enable or disable accounts, create reset links',
    changePassword: 'Change password',
    changePasswordDesc: 'Update the password you sign in with',
    apiDocs: 'API docs',
    apiDocsDesc: 'Open the interactive API reference in a new tab',
  },
}
export default en
