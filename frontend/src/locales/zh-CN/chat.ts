export default {
  title: '对话',
}
