export default {
  title: '模型对比',
}
