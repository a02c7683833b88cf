import { reactive } from 'vue'

import type { FormErrorTarget } from '@/utils/api'

/**
 * Server-side field errors for an Element Plus form: bind `errors.<field>` to
 * `<el-form-item :error>` and pass `target` as the `form` of the API call.
 */
export function useFormErrors<F extends string>(fields: readonly F[]) {
  const errors = reactive<Record<string, string>>(
    Object.fromEntries(fields.map((field) => [field, ''])),
  ) as Record<F, string>

  function clear(): void {
    for (const field of fields) errors[field] = ''
  }

  const target: FormErrorTarget = {
    setFieldErrors(found) {
      clear()
      for (const [field, message] of Object.entries(found)) {
        if ((fields as readonly string[]).includes(field)) errors[field as F] = message
      }
    },
  }

  return { errors, clear, target }
}
