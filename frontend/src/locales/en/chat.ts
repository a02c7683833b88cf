export default {
  title: 'Chat',
}
