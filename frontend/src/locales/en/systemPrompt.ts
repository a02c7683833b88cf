import type m from '../zh-CN/systemPrompt'

const en: typeof m = {
  title: 'Prompt library',
  new: 'New prompt',
  refresh: 'Refresh',
  summary: '{total} in all',
  empty: 'No prompts yet',
  emptyFiltered: 'No prompt matches these filters',
  filter: {
    search: 'Search name or content',
    scope: 'Scope',
    category: 'Filter by category',
    allCategories: 'All categories',
    tag: 'Filter by tag',
    allTags: 'All tags',
  },
  scope: {
    all: 'All',
    mine: 'Mine',
    shared: 'Shared',
    builtin: 'Built-in',
  },
  columns: {
    name: 'Name',
    format: 'Format',
    category: 'Category',
    tags: 'Tags',
    variables: 'Variables',
    owner: 'Owner · updated',
  },
  badge: {
    builtin: 'Built-in',
    shared: 'Shared',
    readOnly: 'Read-only',
  },
  format: {
    text: 'Plain text',
    markdown: 'Markdown',
    json: 'JSON',
    yaml: 'YAML',
    'openai-messages': 'OpenAI messages',
  },
  actions: {
    view: 'View',
    edit: 'Edit',
    delete: 'Delete',
    useInChat: 'Use in chat',
    import: 'Copy to my prompts',
    importSelected: 'Import selected built-ins ({n})',
    importHint: 'Tick built-in templates in the list to copy them into your own private prompts',
  },
  importing: {
    done: 'Imported {n} prompt | Imported {n} prompts',
    failed: '{n} could not be imported: {names}',
    one: 'Copied “{name}” to your prompts',
  },
  delete: {
    title: 'Delete prompt',
    confirm: 'Delete the prompt “{name}”? This cannot be undone.',
    button: 'Delete',
    done: 'Deleted “{name}”',
  },
  dialog: {
    createTitle: 'New prompt',
    editTitle: 'Edit prompt',
    viewTitle: 'View prompt',
    readOnly:
      'Only admins can change built-in templates and prompts shared by others; copy it to your prompts to change your own copy.',
    saved: 'Saved “{name}”',
    fields: {
      name: 'Name',
      format: 'Format',
      category: 'Category',
      tags: 'Tags',
      variables: 'Variables',
      content: 'Content',
      shared: 'Share with the team',
    },
    placeholders: {
      name: 'e.g. Support agent',
      category: 'Pick or type a category (default: general)',
      tags: 'Pick or type tags, Enter adds one',
      variables: 'Left empty: found in the content',
      content:
        "You are a …\nVariables look like {'{{'} name {'}}'}; write {'{{{{'} for a literal {'{{'}",
    },
    hints: {
      shared: 'Team members can see and use it; only you and admins can change it',
      variables: 'Variables found: {names}',
      noVariables: 'The content has no variables',
      useDetected: 'Use these',
    },
  },
  validation: {
    checking: 'Checking…',
    valid: 'Well-formed',
    invalid: '{n} problem found | {n} problems found',
    failed: 'The content cannot be checked right now',
    at: 'Line {line}, column {column}',
    warnings: 'Notes',
  },
  tools: {
    preview: 'Preview',
    convert: 'Convert',
  },
  preview: {
    noVariables: 'The content has no variables: the preview is the text itself.',
    valuePlaceholder: 'Value of {name} (empty keeps the marker)',
    render: 'Render preview',
    result: 'Rendered',
    missing: 'Variables without a value stay as markers: {names}',
    escaped: 'Values are escaped in JSON / YAML, so the result stays a valid document.',
  },
  convert: {
    target: 'Target format',
    run: 'Convert',
    result: 'Converted',
    failed: 'Cannot convert',
    apply: 'Apply to editor',
    applied: 'Applied to the editor; save to keep it',
    same: 'Already in this format',
  },
  rules: {
    nameRequired: 'Enter a name',
    nameLength: 'At most {max} characters',
    contentRequired: 'Enter the content',
    categoryLength: 'At most {max} characters',
    tagsCount: 'At most {max} tags',
    tagInvalid:
      'Tags have at most {max} characters and no quotes, backslashes or control characters',
    variablesCount: 'At most {max} variables',
    variableInvalid:
      'Variable names use letters, digits and _, do not start with a digit, at most {max} characters',
  },
}

export default en
