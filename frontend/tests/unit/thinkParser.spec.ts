import { describe, expect, it } from 'vitest'
import { computed, reactive } from 'vue'

import {
  ThinkAccumulator,
  ThinkParser,
  splitThink,
  type ThinkDelta,
  type ThinkParserOptions,
} from '@/utils/thinkParser'

const REASONING = 'The user greets me. I should greet back.'
const ANSWER = 'Hello there! The answer is 42.'
const INLINE = `<think>\n${REASONING}\n</think>\n\n${ANSWER}`

interface Sample {
  name: string
  text: string
  options?: ThinkParserOptions
  reasoning: string
  content: string
}

/** Texts whose streamed split must equal splitThink() and the literals, however they are cut. */
const SAMPLES: Sample[] = [
  { name: 'a think block then the answer', text: INLINE, reasoning: REASONING, content: ANSWER },
  {
    name: 'whitespace around the tags',
    text: '\n\n<think>\n\n  why  \n\n</think>\n\n\nanswer\n',
    reasoning: 'why',
    content: 'answer\n',
  },
  {
    name: 'whitespace inside reasoning is kept',
    text: '<think>a\n\nb   \n</think>c',
    reasoning: 'a\n\nb',
    content: 'c',
  },
  {
    name: 'no tags',
    text: 'Hello, world!\n  x = 1',
    reasoning: '',
    content: 'Hello, world!\n  x = 1',
  },
  {
    name: 'indented plain answer',
    text: '    indented code',
    reasoning: '',
    content: '    indented code',
  },
  {
    name: 'look-alike tags stay content',
    text: 'a < b and <b>bold</b> and <thinking> and </thin x <th <</ <thin',
    reasoning: '',
    content: 'a < b and <b>bold</b> and <thinking> and </thin x <th <</ <thin',
  },
  {
    name: 'look-alike tags inside reasoning',
    text: '<think>if a < b then <thinking> </thin</think>ok',
    reasoning: 'if a < b then <thinking> </thin',
    content: 'ok',
  },
  {
    name: 'unclosed think block',
    text: '<think>still thinking about it\n',
    reasoning: 'still thinking about it',
    content: '',
  },
  {
    name: 'empty think block',
    text: '<think>\n\n</think>\n\nAnswer',
    reasoning: '',
    content: 'Answer',
  },
  {
    name: 'several think blocks: all reasoning, joined',
    text: '<think>first</think>\nA <think>\nsecond\n</think>\n B<think>third',
    reasoning: 'firstsecondthird',
    content: 'A B',
  },
  {
    name: 'a repeated <think> continues the block',
    text: '<think>one \n<think> two</think>x',
    reasoning: 'onetwo',
    content: 'x',
  },
  {
    name: 'CJK and emoji',
    text: '<think>\n用户在打招呼🤔，我应该回应。👨‍👩‍👧\n</think>\n\n你好！😀答案是 42。🎉',
    reasoning: '用户在打招呼🤔，我应该回应。👨‍👩‍👧',
    content: '你好！😀答案是 42。🎉',
  },
  {
    name: 'missing opening tag, thinkOpen',
    text: `${REASONING}\n</think>\n\n${ANSWER}`,
    options: { thinkOpen: true },
    reasoning: REASONING,
    content: ANSWER,
  },
  {
    name: 'thinkOpen with an explicit <think> too',
    text: `<think>\n${REASONING}</think>${ANSWER}`,
    options: { thinkOpen: true },
    reasoning: REASONING,
    content: ANSWER,
  },
  {
    name: 'thinkOpen and no tag at all: all reasoning',
    text: '  just thoughts 🤔 ',
    options: { thinkOpen: true },
    reasoning: 'just thoughts 🤔',
    content: '',
  },
  { name: 'empty text', text: '', reasoning: '', content: '' },
]

interface Run {
  reasoning: string
  content: string
  deltas: ThinkDelta[]
}

function run(pieces: readonly string[], options?: ThinkParserOptions): Run {
  const parser = new ThinkParser(options)
  const deltas: ThinkDelta[] = []
  for (const piece of pieces) deltas.push(...parser.feed(piece))
  deltas.push(...parser.flush())
  const join = (kind: ThinkDelta['kind']) =>
    deltas
      .filter((d) => d.kind === kind)
      .map((d) => d.text)
      .join('')
  return { reasoning: join('reasoning'), content: join('content'), deltas }
}

/** Deterministic PRNG (mulberry32) so random chunkings are the same on every run. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

function randomChunks(text: string, random: () => number, maxLength = 12): string[] {
  const chunks: string[] = []
  let i = 0
  while (i < text.length) {
    const length = Math.floor(random() * (maxLength + 1)) // empty chunks included
    chunks.push(text.slice(i, i + length))
    i += length
  }
  return chunks
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/

function expectWellFormed(deltas: readonly ThinkDelta[]): void {
  for (const delta of deltas) {
    expect(delta.text).not.toBe('')
    expect(delta.text).not.toMatch(LONE_SURROGATE)
  }
}

describe('splitThink', () => {
  it.each(SAMPLES)('$name', ({ text, options, reasoning, content }) => {
    expect(splitThink(text, options)).toEqual({ reasoning, content })
  })

  it('treats text before a </think> with no <think> before it as reasoning', () => {
    const text = `${REASONING}\n</think>\n\n${ANSWER}`
    expect(splitThink(text)).toEqual({ reasoning: REASONING, content: ANSWER })
    // A <think> after the </think> does not count as its opening tag.
    expect(splitThink('why</think>answer<think>more')).toEqual({
      reasoning: 'whymore',
      content: 'answer',
    })
  })
})

describe('ThinkParser', () => {
  describe.each(SAMPLES)('$name', ({ text, options, reasoning, content }) => {
    const expected = { reasoning, content }

    it('whole text in one chunk', () => {
      const result = run([text], options)
      expect({ reasoning: result.reasoning, content: result.content }).toEqual(expected)
      expect(splitThink(text, options)).toEqual(expected)
    })

    it('split into two chunks at every position', () => {
      for (let cut = 0; cut <= text.length; cut++) {
        const result = run([text.slice(0, cut), text.slice(cut)], options)
        expect({ reasoning: result.reasoning, content: result.content }, `cut ${cut}`).toEqual(
          expected,
        )
        expectWellFormed(result.deltas)
      }
    })

    it('split into three chunks around every position', () => {
      for (let i = 0; i <= text.length; i++) {
        for (let j = i; j <= Math.min(i + 9, text.length); j++) {
          const result = run([text.slice(0, i), text.slice(i, j), text.slice(j)], options)
          expect({ reasoning: result.reasoning, content: result.content }, `${i}/${j}`).toEqual(
            expected,
          )
        }
      }
    })

    it('one UTF-16 code unit at a time', () => {
      const result = run(text.split(''), options)
      expect({ reasoning: result.reasoning, content: result.content }).toEqual(expected)
      expectWellFormed(result.deltas)
    })

    it('random chunkings (fixed seed)', () => {
      const random = mulberry32(20240605)
      for (let round = 0; round < 200; round++) {
        const chunks = randomChunks(text, random)
        const result = run(chunks, options)
        expect(
          { reasoning: result.reasoning, content: result.content },
          JSON.stringify(chunks),
        ).toEqual(expected)
        expectWellFormed(result.deltas)
      }
    })
  })

  it('streams all reasoning before the content of a single block', () => {
    const { deltas } = run(INLINE.split(''))
    const kinds = deltas.map((d) => d.kind)
    const firstContent = kinds.indexOf('content')
    expect(firstContent).toBeGreaterThan(0)
    expect(kinds.slice(firstContent).every((k) => k === 'content')).toBe(true)
  })

  it('emits plain text at once and merges adjacent deltas of one kind', () => {
    const parser = new ThinkParser()
    expect(parser.feed('Hello ')).toEqual([{ kind: 'content', text: 'Hello ' }])
    expect(parser.feed('world')).toEqual([{ kind: 'content', text: 'world' }])
    expect(parser.flush()).toEqual([])
    expect(new ThinkParser().feed('<think>a</think>b<think>c')).toEqual([
      { kind: 'reasoning', text: 'a' },
      { kind: 'content', text: 'b' },
      { kind: 'reasoning', text: 'c' },
    ])
  })

  it('holds back a partial tag until it is decided', () => {
    const parser = new ThinkParser()
    expect(parser.feed('answer <thi')).toEqual([{ kind: 'content', text: 'answer ' }])
    expect(parser.feed('nking>')).toEqual([{ kind: 'content', text: '<thinking>' }])
    expect(parser.feed(' </thin')).toEqual([{ kind: 'content', text: ' ' }])
    expect(parser.flush()).toEqual([{ kind: 'content', text: '</thin' }])
  })

  it('reports whether it is inside a think block', () => {
    const parser = new ThinkParser()
    expect(parser.inThink).toBe(false)
    parser.feed('<thi')
    expect(parser.inThink).toBe(false)
    parser.feed('nk>why')
    expect(parser.inThink).toBe(true)
    parser.feed('</think>answer')
    expect(parser.inThink).toBe(false)
    expect(new ThinkParser({ thinkOpen: true }).inThink).toBe(true)
  })

  it('without thinkOpen drops a stray </think> and keeps the earlier text as content', () => {
    const text = `${REASONING}\n</think>\n\n${ANSWER}`
    const expected = { reasoning: '', content: `${REASONING}\n${ANSWER}` }
    for (let cut = 0; cut <= text.length; cut++) {
      const result = run([text.slice(0, cut), text.slice(cut)])
      expect({ reasoning: result.reasoning, content: result.content }, `cut ${cut}`).toEqual(
        expected,
      )
    }
    const result = run(text.split(''))
    expect({ reasoning: result.reasoning, content: result.content }).toEqual(expected)
  })

  it('providerSeparatesReasoning cancels an assumed-open block', () => {
    const parser = new ThinkParser({ thinkOpen: true })
    parser.providerSeparatesReasoning()
    expect(parser.inThink).toBe(false)
    expect(parser.feed('plain answer')).toEqual([{ kind: 'content', text: 'plain answer' }])
    // Once reasoning has come out of the assumed block, it stays.
    const late = new ThinkParser({ thinkOpen: true })
    expect(late.feed('why')).toEqual([{ kind: 'reasoning', text: 'why' }])
    late.providerSeparatesReasoning()
    expect(late.inThink).toBe(true)
  })

  it('holds half a surrogate pair back so every delta is well-formed', () => {
    const parser = new ThinkParser()
    const [high, low] = '😀'.split('')
    expect(parser.feed(`hi ${high}`)).toEqual([{ kind: 'content', text: 'hi ' }])
    expect(parser.feed(`${low}!`)).toEqual([{ kind: 'content', text: '😀!' }])
    expect(parser.feed(`<${high}`)).toEqual([])
    expect(parser.flush()).toEqual([{ kind: 'content', text: `<${high}` }])
  })

  it('is linear: 10,000 one-character chunks, each feed returns only new text', () => {
    const body = 'Lorem ipsum dolor sit amet, 模型训练 a<b. '.repeat(200)
    const text = `<think>${body}</think>${body}`.slice(0, 10_000)
    const chunks = text.split('')
    expect(chunks).toHaveLength(10_000)
    const parser = new ThinkParser()
    let reasoning = ''
    let content = ''
    const started = performance.now()
    for (const chunk of chunks) {
      const deltas = parser.feed(chunk)
      // Only the new character, plus at most a held-back partial tag / whitespace run.
      expect(deltas.reduce((n, d) => n + d.text.length, 0)).toBeLessThanOrEqual(8)
      for (const d of deltas) {
        if (d.kind === 'reasoning') reasoning += d.text
        else content += d.text
      }
    }
    for (const d of parser.flush()) {
      if (d.kind === 'reasoning') reasoning += d.text
      else content += d.text
    }
    const elapsed = performance.now() - started
    expect({ reasoning, content }).toEqual(splitThink(text))
    expect(reasoning.length + content.length).toBeGreaterThan(9_000)
    expect(elapsed).toBeLessThan(1_000)
  })

  it('keeps per-feed work bounded for a huge stream', () => {
    // 200,000 characters in 2-character chunks: quadratic work would take far longer.
    const parser = new ThinkParser({ thinkOpen: true })
    const piece = 'ab<'
    const started = performance.now()
    let total = 0
    for (let i = 0; i < 100_000; i++) {
      for (const d of parser.feed(piece.slice(i % 3) + piece.slice(0, i % 3)))
        total += d.text.length
    }
    for (const d of parser.flush()) total += d.text.length
    expect(total).toBe(300_000)
    expect(performance.now() - started).toBeLessThan(2_000)
  })
})

describe('ThinkAccumulator', () => {
  it('keeps running reasoning and content strings', () => {
    const acc = new ThinkAccumulator()
    acc.feed('\n<thi')
    expect(acc).toMatchObject({ reasoning: '', content: '', inThink: false })
    acc.feed('nk>\n用户')
    expect(acc).toMatchObject({ reasoning: '用户', content: '', inThink: true })
    acc.feed('问好🤔\n</th')
    expect(acc).toMatchObject({ reasoning: '用户问好🤔', content: '' })
    acc.feed('ink>\n\n你好')
    expect(acc).toMatchObject({ reasoning: '用户问好🤔', content: '你好', inThink: false })
    acc.feed('！')
    acc.flush()
    expect({ reasoning: acc.reasoning, content: acc.content }).toEqual({
      reasoning: '用户问好🤔',
      content: '你好！',
    })
  })

  it('matches splitThink for every sample in random chunkings', () => {
    const random = mulberry32(7)
    for (const { text, options, reasoning, content } of SAMPLES) {
      const acc = new ThinkAccumulator(options)
      for (const chunk of randomChunks(text, random, 5)) acc.feed(chunk)
      acc.flush()
      expect({ reasoning: acc.reasoning, content: acc.content }).toEqual({ reasoning, content })
    }
  })

  it('works wrapped in Vue reactive()', () => {
    const acc = reactive(new ThinkAccumulator())
    const shown = computed(() => `${acc.reasoning}|${acc.content}|${acc.inThink}`)
    expect(shown.value).toBe('||false')
    acc.feed('<think>why')
    expect(shown.value).toBe('why||true')
    acc.feed('</think>answer')
    acc.flush()
    expect(shown.value).toBe('why|answer|false')
  })
})
