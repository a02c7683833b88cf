export default {
  title: 'Compare models',
}
