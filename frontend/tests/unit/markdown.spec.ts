import { mount } from '@vue/test-utils'
import { describe, expect, it, vi } from 'vitest'
import { nextTick } from 'vue'

import MarkdownView from '@/components/MarkdownView.vue'
import ThinkBlock from '@/components/ThinkBlock.vue'
import { i18n } from '@/locales'
import { highlightCode, render, renderCached } from '@/utils/markdown'

/** Parse rendered HTML so assertions look at the DOM a browser would build, not at strings. */
function dom(html: string): HTMLElement {
  const host = document.createElement('div')
  host.innerHTML = html
  return host
}

describe('render()', () => {
  it('renders common Markdown', () => {
    const host = dom(render('# Title\n\n**bold** and *em* and `code`\n\n- one\n- two\n\n> quote'))
    expect(host.querySelector('h1')?.textContent).toBe('Title')
    expect(host.querySelector('strong')?.textContent).toBe('bold')
    expect(host.querySelector('em')?.textContent).toBe('em')
    expect(host.querySelector('p > code')?.textContent).toBe('code')
    expect(host.querySelectorAll('li')).toHaveLength(2)
    expect(host.querySelector('blockquote')?.textContent?.trim()).toBe('quote')
  })

  it('renders tables', () => {
    const host = dom(render('| a | b |\n|---|---|\n| 1 | 2 |'))
    expect([...host.querySelectorAll('th')].map((th) => th.textContent)).toEqual(['a', 'b'])
    expect([...host.querySelectorAll('td')].map((td) => td.textContent)).toEqual(['1', '2'])
  })

  it('returns an empty string for empty input', () => {
    expect(render('')).toBe('')
  })

  describe('XSS', () => {
    it('shows raw HTML as text, never as elements', () => {
      const host = dom(render('<script>alert(1)</script>\n\n<b onclick="x()">hi</b>'))
      expect(host.querySelector('script')).toBeNull()
      expect(host.querySelector('b')).toBeNull()
      expect(host.textContent).toContain('<script>alert(1)</script>')
    })

    it('strips inline script, onerror and iframes', () => {
      const html = render(
        'a <img src=x onerror="alert(1)"> <iframe src="https://evil.example"></iframe> <svg onload=alert(1)>',
      )
      const host = dom(html)
      expect(host.querySelector('img')).toBeNull()
      expect(host.querySelector('iframe')).toBeNull()
      expect(host.querySelector('svg')).toBeNull()
      expect(host.querySelector('[onerror], [onload]')).toBeNull()
    })

    it('never produces javascript:, vbscript: or data:text/html links', () => {
      for (const href of [
        'javascript:alert(1)',
        'JaVaScRiPt:alert(1)',
        'javascript&#58;alert(1)',
        '  javascript:alert(1)',
        'vbscript:msgbox(1)',
        'data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==',
      ]) {
        const host = dom(render(`[click](${href}) <${href}>`))
        for (const a of host.querySelectorAll('a')) {
          const value = (a.getAttribute('href') ?? '').replace(/\s/g, '').toLowerCase()
          expect(value, href).not.toMatch(/^(javascript|vbscript|data):/)
        }
      }
    })

    it('keeps a safe image but drops its event handler attributes', () => {
      const host = dom(render('![cat](https://example.com/cat.png "a cat")'))
      const img = host.querySelector('img')
      expect(img?.getAttribute('src')).toBe('https://example.com/cat.png')
      expect(img?.getAttribute('alt')).toBe('cat')
      expect([...(img?.attributes ?? [])].map((a) => a.name).sort()).toEqual([
        'alt',
        'src',
        'title',
      ])
    })

    it('escapes HTML inside code blocks, highlighted or not', () => {
      for (const lang of ['', 'html', 'nosuchlang', 'python']) {
        const host = dom(render(`\`\`\`${lang}\n<script>alert(1)</script>\n\`\`\``))
        expect(host.querySelector('script'), lang).toBeNull()
        expect(host.querySelector('pre code')?.textContent, lang).toBe(
          '<script>alert(1)</script>\n',
        )
      }
    })

    it('cannot break out of the code block header with a hostile info string', () => {
      const host = dom(render('```"><img src=x onerror=alert(1)>\nx\n```'))
      expect(host.querySelector('img')).toBeNull()
      expect(host.querySelector('[onerror]')).toBeNull()
      expect(host.querySelector('pre code')?.textContent).toBe('x\n')
    })
  })

  it('opens links in a new tab with rel="noopener noreferrer", also linkified URLs', () => {
    const host = dom(render('[docs](https://example.com/docs) and https://example.org/x'))
    const links = [...host.querySelectorAll('a')]
    expect(links.map((a) => a.getAttribute('href'))).toEqual([
      'https://example.com/docs',
      'https://example.org/x',
    ])
    for (const a of links) {
      expect(a.getAttribute('target')).toBe('_blank')
      expect(a.getAttribute('rel')).toBe('noopener noreferrer')
    }
  })

  it('highlights registered languages and their aliases, leaves others plain', () => {
    const py = dom(render('```python\ndef f():\n    return 1\n```'))
    expect(py.querySelector('code')?.className).toBe('hljs language-python')
    expect(py.querySelector('.hljs-keyword')?.textContent).toBe('def')
    expect(py.querySelector('.mt-code-lang')?.textContent).toBe('python')

    const sh = dom(render('```sh\necho "hi"\n```'))
    expect(sh.querySelector('.hljs-built_in, .hljs-string')).not.toBeNull()

    const unknown = dom(render('```brainfuck\n+++.\n```'))
    expect(unknown.querySelector('code')?.className).toBe('hljs')
    expect(unknown.querySelector('code')?.children).toHaveLength(0)
    expect(unknown.querySelector('code')?.textContent).toBe('+++.\n')

    expect(highlightCode('a < b', '')).toBe('a &lt; b')
  })

  it('puts a labelled copy button on each code block', () => {
    const host = dom(render('```json\n{"a": 1}\n```\n\n```\nplain\n```', { copyLabel: '复制' }))
    const buttons = host.querySelectorAll('button[data-mt-copy]')
    expect(buttons).toHaveLength(2)
    expect(buttons[0].textContent).toBe('复制')
    expect(buttons[0].getAttribute('type')).toBe('button')
  })

  it('renders an unclosed fence (a streaming answer) as a code block', () => {
    const host = dom(render('Here:\n\n```python\nprint(1)\n'))
    expect(host.querySelector('pre code')?.textContent).toBe('print(1)\n')
  })

  it('renderCached returns the same HTML and keeps working past its size limit', () => {
    expect(renderCached('**x**')).toBe(render('**x**'))
    for (let i = 0; i < 400; i++) renderCached(`item ${i}`)
    expect(renderCached('**x**')).toBe(render('**x**'))
  })
})

describe('MarkdownView', () => {
  it('renders the source and updates when it grows', async () => {
    const wrapper = mount(MarkdownView, {
      props: { source: 'Hello **wor', streaming: true },
      global: { plugins: [i18n] },
    })
    expect(wrapper.find('.mt-markdown').text()).toBe('Hello **wor')
    await wrapper.setProps({ source: 'Hello **world**' })
    expect(wrapper.find('strong').text()).toBe('world')
  })

  it('copies a code block and labels the button by locale', async () => {
    const writeText = vi.fn().mockResolvedValue(undefined)
    Object.defineProperty(navigator, 'clipboard', { value: { writeText }, configurable: true })
    Object.defineProperty(window, 'isSecureContext', { value: true, configurable: true })
    i18n.global.locale.value = 'en'
    try {
      const wrapper = mount(MarkdownView, {
        props: { source: '```python\nprint("hi")\n```' },
        global: { plugins: [i18n] },
        attachTo: document.body,
      })
      const button = wrapper.find('button[data-mt-copy]')
      expect(button.text()).toBe('Copy')
      await button.trigger('click')
      await vi.waitFor(() => expect(writeText).toHaveBeenCalledWith('print("hi")\n'))
      await vi.waitFor(() => expect(button.text()).toBe('Copied'))
      wrapper.unmount()
    } finally {
      i18n.global.locale.value = 'zh-CN'
    }
  })
})

describe('ThinkBlock', () => {
  it('is open while streaming, folds when done, and shows plain text', async () => {
    const wrapper = mount(ThinkBlock, {
      props: { text: '<b>not html</b>\nline 2', streaming: true },
      global: { plugins: [i18n] },
    })
    expect(wrapper.find('.mt-think-title').text()).toBe('思考过程')
    const body = wrapper.find('[data-testid="think-text"]')
    expect(body.isVisible()).toBe(true)
    expect(body.element.textContent).toBe('<b>not html</b>\nline 2')
    expect(body.find('b').exists()).toBe(false)
    expect(wrapper.find('.mt-think-live').exists()).toBe(true)

    await wrapper.setProps({ streaming: false })
    expect((body.element as HTMLElement).style.display).toBe('none')
    await wrapper.find('[data-testid="think-toggle"]').trigger('click')
    expect((body.element as HTMLElement).style.display).toBe('')
    expect(wrapper.find('[data-testid="think-toggle"]').attributes('aria-expanded')).toBe('true')
  })

  it('leaves the block as the user set it during a stream', async () => {
    const wrapper = mount(ThinkBlock, {
      props: { text: 'why', streaming: true },
      global: { plugins: [i18n] },
    })
    await wrapper.find('[data-testid="think-toggle"]').trigger('click')
    await nextTick()
    expect(wrapper.find('[data-testid="think-text"]').isVisible()).toBe(false)
    await wrapper.setProps({ text: 'why not' })
    expect(wrapper.find('[data-testid="think-text"]').isVisible()).toBe(false)
  })

  it('starts closed for finished reasoning and takes a label prop', () => {
    const wrapper = mount(ThinkBlock, {
      props: { text: 'done', label: 'Thoughts' },
      global: { plugins: [i18n] },
    })
    expect(wrapper.find('.mt-think-title').text()).toBe('Thoughts')
    expect(wrapper.find('[data-testid="think-text"]').isVisible()).toBe(false)
  })
})
