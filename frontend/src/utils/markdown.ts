/**
 * Markdown -> safe HTML for model output (chat messages, model-test answers).
 *
 * - markdown-it with `html: false`: raw HTML in the source is shown as text, never parsed.
 *   Its link validator already refuses `javascript:`, `vbscript:`, `file:` and most `data:` URLs.
 * - DOMPurify over the result as a second line of defence (a future plugin or option must not
 *   open an XSS hole), with one hook that makes every link open in a new tab with
 *   `rel="noopener noreferrer"`.
 * - Code blocks are highlighted by highlight.js's core with a handful of common languages
 *   registered (the full build is ~1 MB); other languages are shown escaped, unhighlighted.
 *   No auto-detection: it would run every registered grammar over each block on every chunk
 *   of a streaming message.
 * - Each code block gets a header with its language and a copy button carrying
 *   `data-mt-copy`; the component that shows the HTML handles its clicks (event delegation).
 *
 * `render()` is pure (same input, same output) and cheap to call again for a growing message:
 * markdown-it renders an unclosed fence as a code block up to the end.
 */
import DOMPurify from 'dompurify'
import hljs from 'highlight.js/lib/core'
import bash from 'highlight.js/lib/languages/bash'
import diff from 'highlight.js/lib/languages/diff'
import javascript from 'highlight.js/lib/languages/javascript'
import json from 'highlight.js/lib/languages/json'
import markdownLang from 'highlight.js/lib/languages/markdown'
import python from 'highlight.js/lib/languages/python'
import sql from 'highlight.js/lib/languages/sql'
import typescript from 'highlight.js/lib/languages/typescript'
import xml from 'highlight.js/lib/languages/xml'
import yaml from 'highlight.js/lib/languages/yaml'
import MarkdownIt from 'markdown-it'

hljs.registerLanguage('bash', bash)
hljs.registerLanguage('diff', diff)
hljs.registerLanguage('javascript', javascript)
hljs.registerLanguage('json', json)
hljs.registerLanguage('markdown', markdownLang)
hljs.registerLanguage('python', python)
hljs.registerLanguage('sql', sql)
hljs.registerLanguage('typescript', typescript)
hljs.registerLanguage('xml', xml)
hljs.registerLanguage('yaml', yaml)
// Common fence names the grammars do not declare as aliases themselves.
hljs.registerAliases(['shell', 'sh', 'zsh', 'console'], { languageName: 'bash' })
hljs.registerAliases(['html', 'vue', 'svg'], { languageName: 'xml' })

export interface RenderOptions {
  /** Accessible label / tooltip of the copy button on code blocks. */
  copyLabel?: string
}

/** What render() passes through markdown-it to the fence rule. */
type RenderEnv = {
  copyLabel?: string
}

const md = new MarkdownIt({ html: false, linkify: true, breaks: false, typographer: false })
const escapeHtml = md.utils.escapeHtml

/** Highlighted (or escaped) HTML of a code block's text; `lang` may be empty or unknown. */
export function highlightCode(code: string, lang: string): string {
  if (lang && hljs.getLanguage(lang)) {
    try {
      return hljs.highlight(code, { language: lang, ignoreIllegals: true }).value
    } catch {
      // A grammar error must not lose the message: fall back to plain text.
    }
  }
  return escapeHtml(code)
}

md.renderer.rules.fence = (tokens, idx, _options, env) => {
  const token = tokens[idx]
  const info = token.info ? md.utils.unescapeAll(token.info).trim() : ''
  const lang = (info.split(/\s+/)[0] ?? '').toLowerCase()
  const known = lang !== '' && hljs.getLanguage(lang) !== undefined
  const copyLabel: unknown = (env as RenderEnv | undefined)?.copyLabel
  const label = escapeHtml(typeof copyLabel === 'string' ? copyLabel : 'Copy')
  const langClass = known ? ` language-${escapeHtml(lang)}` : ''
  return (
    '<div class="mt-code">' +
    '<div class="mt-code-head">' +
    `<span class="mt-code-lang">${escapeHtml(lang)}</span>` +
    `<button type="button" class="mt-code-copy" data-mt-copy title="${label}" aria-label="${label}">${label}</button>` +
    '</div>' +
    `<pre><code class="hljs${langClass}">${highlightCode(token.content, lang)}</code></pre>` +
    '</div>\n'
  )
}

// A private DOMPurify instance so the link hook does not leak into other users of the library.
const purifier = DOMPurify(window)
purifier.addHook('afterSanitizeAttributes', (node) => {
  if (node.tagName === 'A' && node.hasAttribute('href')) {
    node.setAttribute('target', '_blank')
    node.setAttribute('rel', 'noopener noreferrer')
  }
})

const PURIFY_CONFIG = {
  // markdown-it never emits these; anything that does is not ours.
  FORBID_TAGS: ['style', 'form', 'input', 'textarea', 'select', 'iframe', 'object', 'embed'],
  FORBID_ATTR: ['style'],
}

/** Sanitised HTML for a Markdown source. */
export function render(source: string, options: RenderOptions = {}): string {
  if (!source) return ''
  const env: RenderEnv = { copyLabel: options.copyLabel }
  const html = md.render(source, env)
  return purifier.sanitize(html, PURIFY_CONFIG)
}

/** HTML-escape plain text (for callers that show text next to rendered Markdown). */
export { escapeHtml }

// Finished messages are rendered once: a small LRU keyed by label + source means reopening a
// session or remounting a list does not parse every message again.
const CACHE_LIMIT = 300
const cache = new Map<string, string>()

/** `render()` memoised for finished text; do not use it for a message still streaming. */
export function renderCached(source: string, options: RenderOptions = {}): string {
  const key = `${options.copyLabel ?? ''}\u0000${source}`
  const hit = cache.get(key)
  if (hit !== undefined) {
    cache.delete(key) // refresh its place in the LRU order
    cache.set(key, hit)
    return hit
  }
  const html = render(source, options)
  cache.set(key, html)
  if (cache.size > CACHE_LIMIT) cache.delete(cache.keys().next().value as string)
  return html
}

/**
 * Copy text to the clipboard (code blocks, whole messages). The async Clipboard API needs a
 * secure context; plain-HTTP deployments fall back to a hidden textarea. Resolves false when
 * neither works.
 */
export async function copyToClipboard(text: string): Promise<boolean> {
  try {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(text)
      return true
    }
  } catch {
    // Permission denied or unfocused document: try the old way.
  }
  const area = document.createElement('textarea')
  area.value = text
  area.setAttribute('readonly', '')
  area.style.position = 'fixed'
  area.style.opacity = '0'
  document.body.appendChild(area)
  area.select()
  let ok = false
  try {
    ok = document.execCommand('copy')
  } catch {
    ok = false
  }
  area.remove()
  return ok
}
