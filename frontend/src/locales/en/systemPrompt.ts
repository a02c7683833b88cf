export default {
  title: 'Prompt library',
}
