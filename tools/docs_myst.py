"""nbdev-processed notebooks -> MyST notebooks for Sphinx/myst-nb (step 2 of tools/build_docs.py).

- `api_markdown`: `show_doc` as a Quarto nbdev site shows it (signature, docstring, nbdev's docments table);
- Quarto cell options (`#| echo/output/include/code-fold/fig-cap`, `output: asis`) -> myst-nb tags and metadata;
- Quarto fenced divs (callouts, `.panel-tabset`, others) -> MyST admonitions, sphinx-design tab sets, containers;
- nbdev's absolute doc links, `.ipynb` links and `NN_name` references -> MyST links between pages (MyST checks
  them: a target that does not exist fails the strict build);
- the sidebar (toctrees in nbdev's order) and, for the README, MyST directives back to plain Markdown.
"""
from __future__ import annotations

import inspect, posixpath, re
from itertools import groupby
from pathlib import Path
from urllib.parse import unquote, urlsplit

STATE_MIME = 'application/vnd.jupyter.widget-state+json'
VIEW_MIME = 'application/vnd.jupyter.widget-view+json'
_CALLOUTS = {'note', 'tip', 'warning', 'important', 'caution'}
_re_ansi = re.compile(r'\x1B(?:[@-Z\\-_]|\[[0-?]*[ -/]*[@-~])')
_re_addr = re.compile(r'(?<= at 0x)[0-9a-fA-F]{6,}')
_re_fence = re.compile(r'^\s*(`{3,}|~{3,})')
_re_colon = re.compile(r'^(:{3,})\s*(.*?)\s*$')
_re_heading = re.compile(r'^(#{1,6})\s+(.*?)\s*$')
_re_code_span = re.compile(r'(?<!`)(`+)(?!`)([\s\S]*?[^`])\1(?!`)')
_re_link = re.compile(r'(!?)\[((?:[^\[\]]|\[[^\[\]]*\])*)\]\(([^()\s]+)((?:\s+"[^"]*")?)\)')


def _src(x) -> str: return ''.join(x) if isinstance(x, list) else (x or '')


def slugify(text: str) -> str:
    "Pandoc's auto-identifier algorithm (what Quarto and nbdev's doc links use); conf.py gives it to MyST for headings"
    s = re.sub(r'\s+', '-', re.sub(r'[^\w\s.\-]', '', text).strip()).lower()
    return re.sub(r'^[^a-zA-Z\u00C0-\uFFFF]+', '', s) or 'section'


# ---------------------------------------------------------------------------------------------------------------
# show_doc
# ---------------------------------------------------------------------------------------------------------------
def _anno(a) -> str: return a if isinstance(a, str) else getattr(a, '__name__', None) or str(a).replace('typing.', '')
def _md_cell(s) -> str: return str(s).replace('|', '\\|').replace('\n', '<br>')


def _api_table(sym) -> str:
    "nbdev's docments table (parameter | type | default | details), with types and defaults as code, `|` escaped"
    from fastcore.docments import DocmentTbl
    t = DocmentTbl(sym)
    if not t.has_docment: return ''
    fmt = {'anno': lambda v: f'`{_md_cell(_anno(v))}`', 'docment': _md_cell,
           'default': lambda v: f'`{_md_cell(getattr(v, "__name__", None) or repr(v))}`'}
    row = lambda nm, p: '| ' + ' | '.join([nm] + ['' if p.get(c, inspect._empty) is inspect._empty else fmt[c](p[c]) for c in t._columns]) + ' |'
    rows = [t.hdr_str] + [row(f'`{r[0]}`', t.dm[r[0]]) for r in t._row_list]
    return '\n'.join(rows + ([row('**Returns**', t.dm['return'])] if t.has_return else []))


def api_markdown(self) -> str:
    """`show_doc` output as a Quarto nbdev site shows it: heading (the doc links' anchor), source link, signature,
    docstring, docments table. Replaces `nbdev.showdoc.BasicMarkdownRenderer._repr_markdown_` in the docs workers."""
    from nbdev.doclinks import NbdevLookup
    out = [f"{'#' * self.title_level} {self.nm}", '']
    src = re.sub(r'#LNone$', '', NbdevLookup().code(self.fn) or '')       # nbdev has no line number for methods
    if src: out += [f'[source]({src}){{.sf-source}}', '']
    if self.sig is not None:
        ps, is_cls = [f for f, _ in self.dm.params], inspect.isclass(self.sym)
        ret = inspect._empty if is_cls else self.sig.return_annotation
        lines, cur = [], f"{'class ' if is_cls else ''}{self.nm}("
        for i, p in enumerate(ps):                                     # wrap between parameters, at ~100 characters
            p += ', ' if i < len(ps) - 1 else ''
            if len(cur) + len(p) > 100 and cur.strip(): lines.append(cur.rstrip()); cur = '    '
            cur += p
        out += ['```python', *lines, cur + ')' + ('' if ret is inspect._empty else f' -> {_anno(ret)}'), '```', '']
    if self.docs: out += [re.sub(r'^(\s*)(.+)', r'\1*\2*', self.docs, count=1), '']
    return '\n'.join(out) + '\n' + _api_table(self.sym)


# ---------------------------------------------------------------------------------------------------------------
# Markdown: Quarto divs and heading ids -> MyST; links between pages
# ---------------------------------------------------------------------------------------------------------------
def _scan(lines):
    "(line, in_code) for each line, `in_code` for the lines of fenced code blocks (fences included)"
    fence = None
    for line in lines:
        m = _re_fence.match(line)
        if fence is None and m: fence = m.group(1)
        elif fence is not None and line.strip().startswith(fence) and not line.strip().strip(fence[0]): fence = None; m = True
        yield line, bool(fence or m)


def parse_attrs(s: str):
    "Pandoc attributes `{#id .class key=val}` -> (id, classes, dict)"
    ident, classes, kv = None, [], {}
    for m in re.finditer(r'''([.#])([\w\-:.]+)|([\w\-]+)=(?:"((?:[^"\\]|\\.)*)"|'([^']*)'|(\S+))''', s.strip().strip('{}')):
        if m.group(1) == '#': ident = m.group(2)
        elif m.group(1): classes.append(m.group(2))
        else: kv[m.group(3)] = next(g for g in m.group(4, 5, 6) if g is not None)
    return ident, classes, kv


def _fence_tree(lines):
    "Lines -> tree of colon-fenced divs (pandoc `::: {.x}` and MyST `:::{name}` alike); fenced code stays whole"
    root = []; stack = [root]
    for line, code in _scan(lines):
        m = None if code else _re_colon.match(line)
        if m and not m.group(2) and len(stack) > 1: stack.pop()
        elif m and m.group(2) and (m.group(2)[0] == '{' or re.fullmatch(r'[\w.-]+', m.group(2))):
            stack[-1].append({'spec': m.group(2), 'body': []}); stack.append(stack[-1][-1]['body'])
        else: stack[-1].append(line)
    return root


def _render_divs(items):
    "Tree -> (MyST lines, nesting height): every fence gets more colons than the fences inside it"
    out, height = [], 0
    for it in items:
        if isinstance(it, str): out.append(it); continue
        lines, h = _render_div(it['spec'], it['body']); out += lines; height = max(height, h)
    return out, height


def _render_div(spec, body):
    "One div: MyST directives as they are; Quarto callouts -> admonitions, `.panel-tabset` -> tab-set, others -> container"
    if re.match(r'^\{[\w:-]+\}', spec):
        inner, h = _render_divs(body)
        return [':' * (3 + h) + spec, *inner, ':' * (3 + h)], h + 1
    ident, classes, kv = parse_attrs(spec) if spec[0] == '{' else (None, [spec], {})
    if 'panel-tabset' in classes:                                      # one tab per heading of the first level found
        lvl = next((len(m.group(1)) for x in body if isinstance(x, str) and (m := _re_heading.match(x))), 0)
        tabs, pre = [], []
        for x in body:
            m = _re_heading.match(x) if isinstance(x, str) else None
            if m and len(m.group(1)) == lvl: tabs.append((m.group(2), []))
            else: (tabs[-1][1] if tabs else pre).append(x)
        rendered = [(title, *_render_divs(b)) for title, b in tabs]
        h = 1 + max((r[2] for r in rendered), default=0)
        out = pre + [':' * (3 + h) + '{tab-set}']
        for title, lines, _ in rendered: out += [':' * (2 + h) + '{tab-item} ' + title, '', *lines, ':' * (2 + h)]
        return out + [':' * (3 + h)], h + 1
    co = next((c[8:] for c in classes if c.startswith('callout-') and c[8:] in _CALLOUTS), None)
    title = kv.get('title')
    first = next((i for i, x in enumerate(body) if not isinstance(x, str) or x.strip()), None)
    if co and not title and first is not None and isinstance(body[first], str) and (m := _re_heading.match(body[first])):
        title, body = m.group(2), body[:first] + body[first + 1:]      # Quarto: a callout's first heading is its title
    inner, h = _render_divs(body)
    w = ':' * (3 + h)
    if co: head = [f'{w}{{admonition}} {title}', f':class: {co}'] if title else [f'{w}{{{co}}}']
    else: head = [f"{w}{{container}} {' '.join(classes)}".rstrip()] + ([f':name: {ident}'] if ident else [])
    return head + [''] + inner + [w], h + 1


def _outside_code(s: str, f) -> str:
    "Apply `f(text, spans)` to Markdown text `s` whose code spans are placeholders `\\x00<i>\\x00` (`spans[i]`)"
    spans = []
    s = f(_re_code_span.sub(lambda m: spans.append(m.group(0)) or f'\x00{len(spans) - 1}\x00', s), spans)
    return re.sub(r'\x00(\d+)\x00', lambda m: spans[int(m.group(1))], s)


class Site:
    "What the translation needs to know about all pages: notebook -> page, anchors per page, the site URL"
    def __init__(self, nbs: Path, pages: dict, base: str):
        self.nbs, self.base = Path(nbs).resolve(), base
        self.page = {Path(nb).resolve(): p for nb, p in pages.items()}          # notebook -> 'core.html'
        self.by_stem = {nb.stem: nb for nb in self.page}                         # '11_sparse.dst' -> its notebook
        self.anchors, self.files, self.notes = {}, {}, []                        # page -> ids; local files to copy

    def anchor(self, page: str, frag: str, src_page: str) -> str:
        "`frag` if `page` has it, else its parent symbol (`a.b` -> `a`), else '' (link to the page)"
        if not frag or page not in self.anchors: return frag
        f = frag if frag in self.anchors[page] else slugify(frag)
        while f and f not in self.anchors[page]: f = f.rpartition('.')[0]
        if f != frag: self.notes.append(f"{src_page}: no anchor #{frag} on {page}; linking to {'#' + f if f else 'the page'}")
        return f

    def doc_link(self, page: str, frag: str, cur: str) -> str:
        "MyST link from page `cur` to `page` (`other.ipynb#anchor`): MyST resolves it and warns if it does not exist"
        frag = self.anchor(page, frag, cur)
        return posixpath.relpath(page[:-5] + '.ipynb', posixpath.dirname(cur) or '.') + (f'#{frag}' if frag else '')

    def link(self, url: str, nb: Path, cur: str) -> str:
        "Markdown link target `url` in notebook `nb` (page `cur`) -> what MyST resolves"
        for b in (self.base, self.base.replace('https://', 'http://', 1)):
            if url.startswith(b) or url + '/' == b:                           # nbdev's absolute doc links
                path, _, frag = url[len(b):].partition('#')
                path = (unquote(path) or 'index.html') + ('index.html' if path.endswith('/') else '')
                if path in self.anchors: return self.doc_link(path, unquote(frag), cur)
                return posixpath.relpath(path, posixpath.dirname(cur) or '.') + (f'#{frag}' if frag else '')
        sp = urlsplit(url)
        if sp.scheme or url.startswith('//') or not url: return url
        if url.startswith('#'): return '#' + (self.anchor(cur, unquote(url[1:]), cur) or url[1:])
        f = (nb.parent/unquote(sp.path)).resolve()
        if sp.path.endswith('.ipynb') and f in self.page: return self.doc_link(self.page[f], unquote(sp.fragment), cur)
        if f.is_file() and self.nbs.parent in f.parents:                        # a local image/file: copy it along
            self.files[posixpath.normpath(posixpath.join(posixpath.dirname(cur), unquote(sp.path)))] = f
        return url


def translate_markdown(text: str, nb: Path, cur: str, site: Site) -> str:
    "Quarto/nbdev Markdown -> MyST: divs, heading ids, links between pages, `NN_name` notebook references"
    lines, _ = _render_divs(_fence_tree(text.split('\n')))
    return '\n'.join('\n'.join(l for l, _ in g) if code else _translate_prose('\n'.join(l for l, _ in g), nb, cur, site)
                     for code, g in groupby(_scan(lines), key=lambda x: x[1]))


def _translate_prose(s: str, nb: Path, cur: str, site: Site) -> str:
    "Heading ids, links and `NN_name` references in Markdown without fenced code (code spans are left alone)"
    s = re.sub(r'^(#{1,6}\s.*?)\s*(\{[^{}]*\})[ \t]*$',                    # `## Heading {#id .class}` -> label + heading
               lambda m: (f'({i})=\n' if (i := parse_attrs(m.group(2))[0]) else '') + m.group(1), s, flags=re.M)
    def links(s, spans):
        s = re.sub(r'\[\[(\x00\d+\x00)\]\([^()\s]+\)\]\(', r'[\1](', s)  # nbdev links `name` inside link text: keep the outer link
        s = _re_link.sub(lambda m: f'{m.group(1)}[{m.group(2)}]({site.link(m.group(3), nb, cur)}{m.group(4)})', s)
        def ref(m):                                                      # a lone `11_sparse.dst` -> link to its page
            nbf = site.by_stem.get(spans[int(m.group(1))].strip('`'))
            return f'[{m.group(0)}]({site.doc_link(site.page[nbf], "", cur)})' if nbf else m.group(0)
        return re.sub(r'(?<!\[)\x00(\d+)\x00(?!\]\()', ref, s)
    return _outside_code(s, links)


# ---------------------------------------------------------------------------------------------------------------
# Notebooks
# ---------------------------------------------------------------------------------------------------------------
def split_directives(source: str):
    "Leading `#| key: value` / `#| flag` lines -> (dict, remaining source)"
    import yaml
    lines, dirs, i = source.splitlines(), {}, 0
    while i < len(lines) and re.match(r'^\s*#\|', lines[i]):
        body = re.sub(r'^\s*#\|\s?', '', lines[i]).strip(); i += 1
        m = re.match(r'^([\w\-]+)\s*:\s*(.*)$', body)
        if not m: dirs.update((w, True) for w in body.split()); continue
        try: dirs[m.group(1)] = yaml.safe_load(m.group(2)) if m.group(2) else ''
        except Exception: dirs[m.group(1)] = m.group(2)
    return dirs, '\n'.join(lines[i:])


def _false(v): return v is False or str(v).lower() == 'false'


def reachable_models(state: dict, roots) -> list[str]:
    "Model ids in widget `state` reachable from `roots` (views) through IPY_MODEL_ references"
    keep, stack = set(), list(roots)
    def walk(x):
        if isinstance(x, str) and x.startswith('IPY_MODEL_'): stack.append(x[10:])
        elif isinstance(x, dict):
            for k, v in x.items(): stack.append(v) if k == 'model_id' and isinstance(v, str) else walk(v)
        elif isinstance(x, list):
            for v in x: walk(v)
    while stack:
        m = stack.pop()
        if m not in keep and m in state: keep.add(m); walk(state[m])
    return sorted(keep)


def _clean_output(o, md):
    "An output without ANSI colours or object addresses (stable HTML); Markdown outputs translated like the prose"
    if o.get('output_type') == 'stream': o['text'] = _re_ansi.sub('', _src(o.get('text')))
    if o.get('output_type') == 'error': o['traceback'] = [_re_ansi.sub('', t) for t in o.get('traceback', [])]
    data = o.get('data', {})
    if 'text/plain' in data: data['text/plain'] = _re_addr.sub('', _src(data['text/plain']))
    if 'text/markdown' in data: data['text/markdown'] = md(_src(data['text/markdown']))
    return o


def translate_notebook(nb_json: dict, nb: Path, cur: str, site: Site) -> dict:
    "A processed (nbdev) notebook -> the MyST notebook Sphinx renders"
    import yaml
    md = lambda s: translate_markdown(s, nb, cur, site)
    mk = lambda ct, s, **kw: {'cell_type': ct, 'metadata': {}, 'source': s, **kw}
    cells, fm = [], {}
    for c in nb_json.get('cells', []):
        ct, src = c.get('cell_type'), _src(c.get('source'))
        if ct == 'raw':                                  # nbdev's frontmatter (title, description), raw HTML
            m = re.match(r'^\s*---\s*\n(.*?)\n---\s*$', src, flags=re.S)
            if m and not fm and not cells: fm = yaml.safe_load(m.group(1)) or {}
            elif c.get('metadata', {}).get('format') in ('text/html', 'html'): cells.append(mk('raw', src, metadata={'format': 'text/html'}))
        elif ct == 'markdown': cells.append(mk('markdown', md(src), **({'attachments': c['attachments']} if c.get('attachments') else {})))
        if ct != 'code': continue
        dirs, code = split_directives(src)
        if _false(dirs.get('include', True)): continue
        outs = [] if _false(dirs.get('output', True)) else [_clean_output(o, md) for o in c.get('outputs', [])]
        asis = [o for o in outs if 'text/markdown' in o.get('data', {})] if dirs.get('output') == 'asis' else []
        outs = [o for o in outs if o not in asis]        # asis Markdown becomes part of the page, as in Quarto
        echo, fold = not _false(dirs.get('echo', True)) and code.strip(), dirs.get('code-fold')
        if echo and fold is not None and not _false(fold):                # Quarto code-fold -> sphinx-design dropdown
            lang = c.get('metadata', {}).get('language') or 'python'
            cells.append(mk('markdown', f"::::{{dropdown}} {dirs.get('code-summary') or 'Code'}\n" + (':open:\n' if fold == 'show' else '')
                            + f":class-container: sf-code-fold\n```{lang}\n{code}\n```\n::::"))
            echo = False
        if echo or outs:
            meta = {'tags': [] if echo else ['remove-input']}
            if dirs.get('fig-cap') is not None:
                meta['mystnb'] = {'figure': {'caption': str(dirs['fig-cap']), **({'name': dirs['label']} if dirs.get('label') else {})}}
            cells.append(mk('code', code, metadata=meta, outputs=outs, execution_count=None))
        cells += [mk('markdown', _src(o['data']['text/markdown'])) for o in asis]
    title, sub = str(fm.get('title') or posixpath.basename(cur)[:-5]), fm.get('subtitle') or fm.get('description')
    cells.insert(0, mk('markdown', md(f"# {title}\n" + (f"\n{{.subtitle}}\n{str(sub).strip()}\n" if sub else ''))))
    meta = {k: v for k, v in nb_json.get('metadata', {}).items() if k in ('kernelspec', 'language_info')}
    state = (nb_json.get('metadata', {}).get('widgets', {}).get(STATE_MIME) or {}).get('state') or {}
    views = [o['data'][VIEW_MIME].get('model_id') for c in cells for o in c.get('outputs', []) if VIEW_MIME in o.get('data', {})]
    if views and state:                                  # only the widgets the page shows (smaller pages)
        meta['widgets'] = {STATE_MIME: {'version_major': 2, 'version_minor': 0, 'state': {k: state[k] for k in reachable_models(state, views)}}}
    return {'cells': [dict(c, id=f'c{i}') for i, c in enumerate(cells)], 'metadata': meta, 'nbformat': 4, 'nbformat_minor': 5}


def page_anchors(nb_json: dict) -> set:
    "Heading ids (pandoc slugs, what nbdev links to) of a processed notebook: markdown cells and Markdown outputs"
    text = [_src(c.get('source')) for c in nb_json.get('cells', []) if c.get('cell_type') == 'markdown']
    text += [_src(o.get('data', {}).get('text/markdown')) for c in nb_json.get('cells', []) for o in c.get('outputs', [])]
    heads = [m.group(2) for l, code in _scan('\n'.join(text).split('\n')) if not code and (m := _re_heading.match(l))]
    ids = {parse_attrs(m.group(1))[0] for h in heads if (m := re.search(r'(\{[^{}]*\})$', h))} - {None}
    return ids | {slugify(re.sub(r'\{[^{}]*\}$', '', h).replace('`', '')) for h in heads}


def toctrees(nbs_pages: list) -> str:
    """Sidebar: hidden toctrees from [(notebook path relative to nbs/, page)] in nbdev's order; numbered notebooks
    grouped by decade (labelled by their shared module prefix, e.g. `featsel`), after one group per folder (Tutorials)"""
    groups = []
    for rel, page in nbs_pages:
        if page == 'index.html': continue
        m = re.match(r'^(\d+)', rel.name)
        key = rel.parts[:-1] if len(rel.parts) > 1 else (int(m.group(1)) // 10 if m else -1)
        if not groups or groups[-1][0] != key: groups.append((key, []))
        groups[-1][1].append(page[:-5])
    groups.sort(key=lambda g: not isinstance(g[0], tuple))   # folders (Tutorials) first, after Home: where users start
    res = ['```{toctree}\n:hidden:\n\nHome <self>\n```']
    for key, docs in groups:
        heads = {posixpath.basename(d).split('.')[0] for d in docs}
        cap = (' / '.join(re.sub(r'^\d+_', '', s).replace('_', ' ').capitalize() for s in key) if isinstance(key, tuple)
               else heads.pop() if len(heads) == 1 and len(docs) > 1 else None)
        res.append('```{toctree}\n:hidden:\n' + (f':caption: {cap}\n' if cap else '') + '\n' + '\n'.join(docs) + '\n```')
    return '\n\n'.join(res)


# ---------------------------------------------------------------------------------------------------------------
# README
# ---------------------------------------------------------------------------------------------------------------
def myst_to_gfm(md: str) -> str:
    "MyST that GitHub does not render -> plain Markdown (README): admonitions -> quotes, tabs -> bold titles, refs -> links"
    titles = dict(re.findall(r'^\(([\w.:-]+)\)=\s*\n#{1,6}\s+(.*?)\s*$', md, flags=re.M))
    def ref(text, lbl):
        text, lbl = (text, lbl) if lbl else (None, text)
        t = titles.get(lbl)
        return f"[{text or t}](#" + re.sub(r'[^\w\- ]', '', t.lower()).replace(' ', '-') + ')' if t else text or lbl
    refs = lambda s, spans: re.sub(r'\{ref\}\x00(\d+)\x00', lambda m: ref(*re.fullmatch(r'(.*?)\s*(?:<([^<>]*)>)?', spans[int(m.group(1))].strip('`')).groups()), s)
    out, stack, opened = [], [], False
    for line, code in _scan(md.split('\n')):
        q = '> ' * stack.count('quote')
        m = None if code else re.match(r'^:{3,}\{([\w-]+)\}\s*(.*)$', line)
        if code: out.append(q + line)
        elif m and m.group(1) in _CALLOUTS | {'admonition', 'seealso', 'danger', 'error', 'hint', 'attention'}:
            out.append(q + f"> **{m.group(2).strip() or m.group(1).capitalize()}**"); stack.append('quote')
        elif m: stack.append(m.group(1)); out += [q + f'**{m.group(2).strip()}**'] if m.group(1) == 'tab-item' else []
        elif re.match(r'^:{3,}\s*$', line) and stack: stack.pop(); out.append('')
        elif not (opened and re.match(r'^:[\w-]+:', line)) and not re.match(r'^\([\w.:-]+\)=\s*$', line):   # options, labels
            out.append(q + _outside_code(line, refs))
        opened = bool(m) or (opened and re.match(r'^:[\w-]+:', line) is not None)
    return re.sub(r'\n{3,}', '\n\n', '\n'.join(out)).rstrip('\n')
