export default {
  filter: {
    search: '搜索邮箱或昵称',
    role: '按角色筛选',
    allRoles: '全部角色',
  },
  refresh: '刷新',
  columns: {
    nickname: '昵称',
    email: '邮箱',
    role: '角色',
    status: '状态',
    createdAt: '注册时间',
    lastLoginAt: '最近登录',
  },
  role: {
    admin: '管理员',
    user: '普通用户',
  },
  status: {
    active: '启用',
    disabled: '禁用',
  },
  never: '从未登录',
  empty: '暂无用户',
  emptyFiltered: '没有符合条件的用户',
  lock: {
    protected: '内置管理员',
    self: '当前账号',
    protectedHint: '内置管理员账号不能被降级、禁用、删除或重置密码',
    selfHint: '不能在这里修改、禁用或删除你自己的账号',
  },
  messages: {
    promoted: '已将 {name} 设为管理员',
    demoted: '已将 {name} 设为普通用户',
    enabled: '已启用 {name}',
    disabled: '已禁用 {name}，其登录会话已失效',
    deleted: '已删除 {name}',
  },
  delete: {
    button: '删除',
    title: '删除用户',
    confirm: '确定删除用户“{name}”（{email}）吗？该用户拥有的数据会一并删除，且无法恢复。',
  },
  reset: {
    button: '重置链接',
    title: '密码重置链接',
    description:
      '把这个链接发给 {name}，对方打开后即可设置新密码。链接只能使用一次，之前生成的链接已失效。',
    copy: '复制',
    copied: '链接已复制到剪贴板',
    copyFailed: '无法自动复制，请手动选中链接复制',
    expires: '有效期至 {time}',
    close: '完成',
  },
}
