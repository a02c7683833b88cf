export default {
  title: '提示词库',
}
