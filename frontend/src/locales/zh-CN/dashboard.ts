export default {
  welcome: '欢迎回来，{name}',
  roleLabel: '你的身份：{role}',
  stats: {
    title: '用户概览',
    total: '用户总数',
    active: '已启用',
    admins: '管理员',
    unavailable: '—',
  },
  account: {
    title: '我的账号',
    nickname: '昵称',
    email: '邮箱',
    role: '角色',
    memberSince: '注册时间',
  },
  quick: {
    title: '快捷入口',
    admin: '用户管理',
    adminDesc: '搜索用户，调整角色，启用或禁用账号，生成密码重置链接',
    changePassword: '修改密码',
    changePasswordDesc: '更新你的登录密码',
    apiDocs: 'API 文档',
    apiDocsDesc: '在新标签页中打开交互式接口文档',
  },
}
