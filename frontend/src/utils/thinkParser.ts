/**
 * Split inline `<think>…</think>` reasoning out of model output, incrementally. The same
 * semantics as the backend's `app/llm_core/think_parser.py` (ThinkParser / split_think):
 *
 * - `<think>` switches to reasoning, `</think>` back to content. Either tag may be split across
 *   chunks at any character position: a possible tag prefix at the end of a chunk (at most
 *   7 characters, "</think") is held back until the next chunk or `flush()` decides.
 *   Anything that does not complete a tag ("a < b", "<thinking>", "</thin") is plain text.
 * - An unclosed `<think>` at the end: the rest is reasoning.
 * - Several think blocks: every block is reasoning (as in the backend), so their texts are
 *   joined in order, each trimmed, with nothing between them; the content between them is
 *   content. A repeated `<think>` inside a block just continues the block.
 * - Whitespace: leading whitespace of reasoning and of the content after `</think>` is dropped
 *   ("<think>\nWhy…\n</think>\n\nAnswer" -> reasoning "Why…", content "Answer"), trailing
 *   whitespace of reasoning is dropped, and whitespace before an opening `<think>` at the very
 *   start is dropped. Whitespace anywhere else is kept as sent (a plain answer that starts with
 *   indentation keeps it). "Whitespace" is Python's `str.isspace()` set, so both ends agree.
 * - A missing opening tag (DeepSeek-R1 distills, whose chat template already opened `<think>`):
 *   `splitThink()` on a complete text treats everything before a `</think>` that has no
 *   `<think>` before it as reasoning. A stream cannot take back what it has already emitted,
 *   so `ThinkParser` only knows this when told: `new ThinkParser({ thinkOpen: true })` starts
 *   in reasoning. Without it, a stray `</think>` is dropped and the text before it has already
 *   gone out as content.
 * - A UTF-16 high surrogate at the end of a chunk (half an emoji) is held back too, so every
 *   delta is well-formed text.
 *
 * Work per `feed()` is proportional to the chunk (plus at most the held-back partial tag and
 * whitespace that is waiting for its fate); nothing received earlier is scanned again.
 */

export type ThinkKind = 'reasoning' | 'content'

export interface ThinkDelta {
  kind: ThinkKind
  text: string
}

export interface ThinkParserOptions {
  /** The output starts inside a think block whose `<think>` the chat template already sent. */
  thinkOpen?: boolean
}

export const OPEN_TAG = '<think>'
export const CLOSE_TAG = '</think>'
const LONGEST = CLOSE_TAG.length

/** Python's str.isspace() set (JS's \s differs: it has U+FEFF and lacks U+001C–U+001F, U+0085). */
function isSpace(code: number): boolean {
  if (code <= 0x20) return code === 0x20 || (code >= 0x09 && code <= 0x0d) || code >= 0x1c
  if (code < 0x85) return false
  return (
    code === 0x85 ||
    code === 0xa0 ||
    code === 0x1680 ||
    (code >= 0x2000 && code <= 0x200a) ||
    code === 0x2028 ||
    code === 0x2029 ||
    code === 0x202f ||
    code === 0x205f ||
    code === 0x3000
  )
}

function trimStart(text: string): string {
  let i = 0
  while (i < text.length && isSpace(text.charCodeAt(i))) i++
  return i === 0 ? text : text.slice(i)
}

function trimEnd(text: string): string {
  let end = text.length
  while (end > 0 && isSpace(text.charCodeAt(end - 1))) end--
  return end === text.length ? text : text.slice(0, end)
}

function isHighSurrogate(code: number): boolean {
  return code >= 0xd800 && code <= 0xdbff
}

function push(kind: ThinkKind, text: string, out: ThinkDelta[]): void {
  const last = out[out.length - 1]
  if (last && last.kind === kind) last.text += text
  else out.push({ kind, text })
}

/** Feed text deltas, get reasoning/content deltas; call `flush()` once at the end. */
export class ThinkParser {
  private state: ThinkKind
  /** A possible partial tag (and/or half a surrogate pair) at the end of the last chunk. */
  private pending = ''
  /** Whitespace not yet known to be worth emitting. */
  private hold = ''
  /** Drop the leading whitespace of the current section. */
  private lstrip: boolean
  /** Nothing but whitespace seen yet, in content. */
  private atStart: boolean
  /** In the assumed-open block, nothing emitted yet. */
  private assumed: boolean

  constructor(options: ThinkParserOptions = {}) {
    const thinkOpen = options.thinkOpen ?? false
    this.state = thinkOpen ? 'reasoning' : 'content'
    this.lstrip = thinkOpen
    this.atStart = !thinkOpen
    this.assumed = thinkOpen
  }

  /** Whether the text fed so far ends inside a think block. */
  get inThink(): boolean {
    return this.state === 'reasoning'
  }

  /**
   * The provider sends reasoning in a field of its own: an assumed-open think block (thinkOpen)
   * is not there after all, provided nothing has come out of it yet. An explicit `<think>` in
   * the content still counts.
   */
  providerSeparatesReasoning(): void {
    if (!this.assumed) return
    this.assumed = false
    this.state = 'content'
    this.lstrip = false
    this.atStart = true
    this.hold = ''
  }

  /** The deltas that `chunk` (the next piece of text) completes; may be empty. */
  feed(chunk: string): ThinkDelta[] {
    let text = chunk
    if (this.pending) {
      text = this.pending + text
      this.pending = ''
    }
    if (text && isHighSurrogate(text.charCodeAt(text.length - 1))) {
      // Half an emoji: wait for the other half. It cannot be part of a tag.
      const out = this.scan(text.slice(0, -1))
      this.pending += text.slice(-1)
      return out
    }
    return this.scan(text)
  }

  /** Whatever is held back, at the end of the output. */
  flush(): ThinkDelta[] {
    const out: ThinkDelta[] = []
    if (this.pending) {
      const pending = this.pending
      this.pending = ''
      this.emit(pending, out) // never completed into a tag: it was literal text
    }
    if (this.state === 'content' && this.hold && !this.atStart) push('content', this.hold, out)
    this.hold = '' // trailing reasoning whitespace / a whitespace-only answer: dropped
    return out
  }

  private scan(text: string): ThinkDelta[] {
    const out: ThinkDelta[] = []
    let start = 0 // text.slice(start) not yet emitted
    let search = 0
    const length = text.length
    for (;;) {
      const lt = text.indexOf('<', search)
      if (lt < 0) {
        this.emit(start === 0 ? text : text.slice(start), out)
        return out
      }
      if (text.startsWith(OPEN_TAG, lt)) {
        this.emit(text.slice(start, lt), out)
        this.open()
        start = search = lt + OPEN_TAG.length
      } else if (text.startsWith(CLOSE_TAG, lt)) {
        this.emit(text.slice(start, lt), out)
        this.close()
        start = search = lt + CLOSE_TAG.length
      } else if (length - lt < LONGEST && this.isTagPrefix(text.slice(lt))) {
        this.emit(text.slice(start, lt), out)
        this.pending = text.slice(lt)
        return out
      } else {
        search = lt + 1 // a literal "<"
      }
    }
  }

  private isTagPrefix(tail: string): boolean {
    return OPEN_TAG.startsWith(tail) || CLOSE_TAG.startsWith(tail)
  }

  private open(): void {
    // Held whitespace is either leading content ("\n\n<think>") or trailing reasoning
    // (a repeated `<think>`): neither is worth emitting.
    this.hold = ''
    this.state = 'reasoning'
    this.lstrip = true
    this.atStart = false
    this.assumed = false
  }

  private close(): void {
    // Drops reasoning's held trailing whitespace (or a stray close's leading whitespace).
    this.hold = ''
    this.state = 'content'
    this.lstrip = true
    this.atStart = false
    this.assumed = false
  }

  private emit(input: string, out: ThinkDelta[]): void {
    let text = input
    if (!text) return
    if (this.lstrip) {
      text = trimStart(text)
      if (!text) return
      this.lstrip = false
    }
    if (this.state === 'content') {
      if (this.atStart) {
        // Hold leading whitespace until we know whether `<think>` follows it.
        if (!trimStart(text)) {
          this.hold += text
          return
        }
        this.atStart = false
      }
      if (this.hold) {
        text = this.hold + text
        this.hold = ''
      }
      push('content', text, out)
      return
    }
    // Reasoning: hold trailing whitespace, which `</think>` would drop.
    let body = trimEnd(text)
    if (!body) {
      this.hold += text
      return
    }
    const tail = text.slice(body.length)
    this.assumed = false
    if (this.hold) body = this.hold + body
    this.hold = tail
    push('reasoning', body, out)
  }
}

/**
 * Reasoning and content of a complete text. A `</think>` with no `<think>` before it means the
 * opening tag was omitted: everything before it is reasoning.
 */
export function splitThink(
  text: string,
  options: ThinkParserOptions = {},
): { reasoning: string; content: string } {
  let thinkOpen = options.thinkOpen ?? false
  const close = text.indexOf(CLOSE_TAG)
  if (close >= 0) {
    const open = text.indexOf(OPEN_TAG)
    if (open < 0 || open > close) thinkOpen = true
  }
  const parser = new ThinkParser({ thinkOpen })
  const result = { reasoning: '', content: '' }
  appendDeltas(result, parser.feed(text))
  appendDeltas(result, parser.flush())
  return result
}

/** Append deltas to running `reasoning` / `content` strings (e.g. a reactive message). */
export function appendDeltas(
  target: { reasoning: string; content: string },
  deltas: readonly ThinkDelta[],
): void {
  for (const delta of deltas) {
    if (delta.kind === 'reasoning') target.reasoning += delta.text
    else target.content += delta.text
  }
}

/**
 * A parser plus the running `reasoning` and `content` strings, for a view to bind to. Each
 * `feed()` only appends what the chunk completes. Plain fields (no `#private`), so it works
 * wrapped in Vue's `reactive()`.
 */
export class ThinkAccumulator {
  reasoning = ''
  content = ''
  private readonly parser: ThinkParser

  constructor(options: ThinkParserOptions = {}) {
    this.parser = new ThinkParser(options)
  }

  /** Whether the stream is inside a think block right now (reasoning is still coming). */
  get inThink(): boolean {
    return this.parser.inThink
  }

  feed(chunk: string): ThinkDelta[] {
    const deltas = this.parser.feed(chunk)
    appendDeltas(this, deltas)
    return deltas
  }

  flush(): ThinkDelta[] {
    const deltas = this.parser.flush()
    appendDeltas(this, deltas)
    return deltas
  }

  providerSeparatesReasoning(): void {
    this.parser.providerSeparatesReasoning()
  }
}
