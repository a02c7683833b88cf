import type m from '../zh-CN/admin'

const en: typeof m = {
  filter: {
    search: 'Search email or nickname',
    role: 'Filter by role',
    allRoles: 'All roles',
  },
  refresh: 'Refresh',
  columns: {
    nickname: 'Nickname',
    email: 'Email',
    role: 'Role',
    status: 'Status',
    createdAt: 'Registered',
    lastLoginAt: 'Last sign-in',
  },
  role: {
    admin: 'Admin',
    user: 'User',
  },
  status: {
    active: 'On',
    disabled: 'Off',
  },
  never: 'Never',
  empty: 'No users yet',
  emptyFiltered: 'No users match these filters',
  lock: {
    protected: 'Built-in admin',
    self: 'You',
    protectedHint:
      'The built-in admin account cannot be demoted, disabled, deleted or sent a reset link',
    selfHint: 'You cannot change, disable or delete your own account here',
  },
  messages: {
    promoted: '{name} is now an admin',
    demoted: '{name} is now a regular user',
    enabled: '{name} is enabled',
    disabled: '{name} is disabled and has been signed out',
    deleted: '{name} was deleted',
  },
  delete: {
    button: 'Delete',
    title: 'Delete user',
    confirm:
      'Delete the user "{name}" ({email})? Everything this user owns is deleted with it; this cannot be undone.',
  },
  reset: {
    button: 'Reset link',
    title: 'Password reset link',
    description:
      'Send this link to {name}; opening it lets them set a new password. It works once, and any earlier link has stopped working.',
    copy: 'Copy',
    copied: 'Link copied to the clipboard',
    copyFailed: 'Could not copy automatically; select the link and copy it by hand',
    expires: 'Valid until {time}',
    close: 'Done',
  },
}
export default en
