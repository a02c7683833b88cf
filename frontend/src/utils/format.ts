/** Formatting shared by the pages. */

/** A timestamp from the API in the reader's language, to the minute; '' for none. */
export function formatDateTime(value: string | null | undefined, locale: string): string {
  if (!value) return ''
  const date = new Date(value)
  if (Number.isNaN(date.getTime())) return value
  // Minutes are precise enough for a table and keep the column on one line in every locale.
  return date.toLocaleString(locale, {
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
    hour: '2-digit',
    minute: '2-digit',
  })
}
