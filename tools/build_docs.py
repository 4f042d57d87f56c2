#!/usr/bin/env python
"""Build the sparseface documentation site offline, from the notebooks in `nbs/`, into `docs/`.

Quarto cannot run here, so this replaces the last step of `nbdev_docs` (the Quarto render) with a small
Python renderer, while keeping nbdev's own notebook processing (`nbdev.serve_drv` + `nbdev.processors`:
`show_doc`, `#| hide`, `#| export`, `#| echo: false`, frontmatter, doc links, ...).

    python tools/build_docs.py                 # rebuild docs/ from the notebooks' SAVED outputs
    python tools/build_docs.py --check         # rebuild into a temp folder, diff against docs/, check links
    python tools/build_docs.py --links         # only run the link checker on docs/
    python tools/build_docs.py --execute [NB ...]  # refresh saved outputs in nbs/ (nbclient), then nbdev_clean

The output is deterministic: rebuilding unchanged notebooks gives byte-identical files.
"""
from __future__ import annotations

import argparse, base64, hashlib, html, json, os, posixpath, re, shutil, sys, tempfile, time, warnings
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

# This module is imported again by the spawned nbdev worker processes: keep the top level cheap.
REPO = Path(__file__).resolve().parents[1]
TOOLS = Path(__file__).resolve().parent
ASSETS = TOOLS/'docs_assets'
VENDOR = TOOLS/'vendor'/'html-manager'
STATE_MIME = 'application/vnd.jupyter.widget-state+json'
VIEW_MIME = 'application/vnd.jupyter.widget-view+json'
TEMPLATE_IDS = {'sidebar', 'toc', 'content', 'search-input', 'search-results'}   # ids used by page.html
PRESERVE = {'CNAME'}          # files in docs/ that the build never deletes
NB_SIZE_WARN = 1_000_000      # bytes: warn when a notebook is bigger than this
IMG_SIZE_WARN = 200_000       # bytes: warn when one saved image is bigger than this
_re_ansi = re.compile(r'\x1B(?:[@-Z\\-_]|\[[0-?]*[ -/]*[@-~])')
_re_addr = re.compile(r'(?<= at 0x)[0-9a-fA-F]{6,}')


def log(*a): print(*a, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------------------------------
# Configuration and notebook discovery
# ----------------------------------------------------------------------------------------------------------
def get_cfg():
    from nbdev.config import get_config
    return get_config(path=REPO)


def site_url(cfg) -> str:
    "Absolute URL of the published site, ending in '/', e.g. https://sparseface.github.io/sparseface/"
    host = cfg.get('doc_host', '').rstrip('/')
    base = cfg.get('doc_baseurl', '').strip('/')
    return f"{host}/{base}/" if base else f"{host}/"


def find_notebooks(nbs: Path) -> list[Path]:
    "Notebooks in `nbs` (recursively, skipping names starting with '_' or '.'), in nbdev's sidebar order"
    from nbdev.doclinks import nbglob
    from nbdev.quarto import _sort
    files = nbglob(nbs, func=lambda d, n: (Path(d), n), skip_folder_re=r'^[_.]', skip_file_re=r'^[_.]')
    return [d/n for d, n in sorted(files, key=_sort)]


def page_path(nb: Path, nbs: Path) -> str:
    "Site-relative output path of notebook `nb`, named as nbdev/Quarto do (`00_core.ipynb` -> `core.html`)"
    from nbdev.doclinks import _nbpath2html
    return _nbpath2html(nb.relative_to(nbs)).as_posix()


# ----------------------------------------------------------------------------------------------------------
# nbdev processing (show_doc, directives, frontmatter, links) in spawned worker processes
# ----------------------------------------------------------------------------------------------------------
def _make_entry_point(tmp: Path, cfg) -> Path:
    """nbdev's doc-link lookup finds libraries through the `nbdev` entry point group. Provide one for this repo's
    `_modidx` so links work (and use the repo's current index) whether or not the package is pip-installed."""
    lib = cfg.lib_path.name
    d = tmp/'_ep'/f'{lib}_docs_ep-0.0.dist-info'
    d.mkdir(parents=True, exist_ok=True)
    (d/'METADATA').write_text(f'Metadata-Version: 2.1\nName: {lib}\nVersion: 0.0\n')
    (d/'entry_points.txt').write_text(f'[nbdev]\n{lib} = {lib}._modidx:d\n')
    return tmp/'_ep'


def _proc_one(item):
    "Worker: run nbdev's docs processors on one notebook (as `nbdev_proc_nbs`/`nbdev_docs` do)"
    import traceback
    src, dst = item
    try:
        import nbdev.serve_drv
        from nbdev.processors import FilterDefaults
        with warnings.catch_warnings(record=True) as ws:
            warnings.simplefilter('always')
            nbdev.serve_drv.main((Path(src), Path(dst), FilterDefaults))
        return None, [str(w.message).strip().splitlines()[0] for w in ws]
    except BaseException:
        return traceback.format_exc(), []


def process_notebooks(nbs_list, nbs: Path, proc: Path, tmp: Path, cfg, n_workers: int = 2):
    "Write nbdev-processed copies of `nbs_list` under `proc` (nbdev's `serve_drv.main` in spawned workers)"
    from fastcore.parallel import parallel
    ep = _make_entry_point(tmp, cfg)
    items = []
    for nb in nbs_list:
        dst = proc/nb.relative_to(nbs)
        dst.parent.mkdir(parents=True, exist_ok=True)
        items.append((str(nb), str(dst)))
    n = max(1, min(n_workers, len(items)))
    old_path, old_env = list(sys.path), {k: os.environ.get(k) for k in ('PYTHONPATH', 'PYTHONHASHSEED')}
    try:
        # spawned workers inherit sys.path: the repo (to import the library) and the entry point for doc links;
        # they must find the worker function by module name (not `__main__`), so import this file as a module
        for p in map(str, (TOOLS, ep, REPO)):
            if p not in sys.path: sys.path.insert(0, p)
        os.environ['PYTHONPATH'] = os.pathsep.join([str(ep), str(REPO)] + [p for p in (old_env['PYTHONPATH'] or '').split(os.pathsep) if p])
        os.environ['PYTHONHASHSEED'] = '0'   # stable set/dict reprs in show_doc output
        import build_docs
        res = parallel(build_docs._proc_one, items, n_workers=n, method='spawn', pause=0.01, progress=False)
    finally:
        sys.path[:] = old_path
        for k, v in old_env.items():
            if v is None: os.environ.pop(k, None)
            else: os.environ[k] = v
    errs, seen = [], {}
    for (src, _), (err, ws) in zip(items, res):
        rel = Path(src).relative_to(nbs).as_posix()
        for w in ws: seen.setdefault(w, []).append(rel)
        if err: errs.append(f"nbdev processing failed for {rel}:\n{err}")
    for w, where in seen.items(): log(f"  nbdev warning ({', '.join(where)}): {w}")
    if errs: raise SystemExit('\n'.join(errs))


# ----------------------------------------------------------------------------------------------------------
# Markdown (markdown-it-py + plugins), math (latex2mathml), code (pygments)
# ----------------------------------------------------------------------------------------------------------
_lexers = {}
_re_md_code_link = re.compile(r'\[`([^`\]<>]+)`\]\((https?://[^)\s"<>]+)\)')


def highlight(code: str, lang: str = 'python') -> str:
    from pygments import highlight as _hl
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import get_lexer_by_name
    from pygments.util import ClassNotFound
    lang = (lang or 'text').strip().split()[0].lower() if (lang or '').strip() else 'text'
    if lang not in _lexers:
        try: _lexers[lang] = get_lexer_by_name(lang, stripnl=False, ensurenl=False)
        except ClassNotFound: _lexers[lang] = get_lexer_by_name('text', stripnl=False, ensurenl=False)
    body = _hl(code.rstrip('\n'), _lexers[lang], HtmlFormatter(nowrap=True))
    # nbdev links `names` in show_doc signatures (docments comments) with markdown syntax: make those real links
    body = _re_md_code_link.sub(r'`<a href="\2">\1</a>`', body)
    return f'<pre class="highlight"><code class="language-{html.escape(lang)}">{body}</code></pre>\n'


def math_html(tex: str, display: bool) -> str:
    from latex2mathml.converter import convert
    # latex2mathml keeps `\_` literally inside text groups (`\text{win\_size}`)
    tex = re.sub(r'\\(text|textrm|mathrm|operatorname)\{([^{}]*)\}', lambda m: f'\\{m.group(1)}{{{m.group(2).replace(chr(92)+"_", "_")}}}', tex.strip())
    try: return convert(tex, display='block' if display else 'inline')
    except Exception as e:
        log(f"  warning: could not convert LaTeX to MathML ({type(e).__name__}): {tex[:60]!r}")
        return f'<code class="math-error">{html.escape(tex)}</code>'


def slugify(text: str) -> str:
    "Pandoc's auto-identifier algorithm (what Quarto and nbdev's doc links use)"
    s = re.sub(r'[^\w\s.\-]', '', text, flags=re.UNICODE)
    s = re.sub(r'\s+', '-', s.strip()).lower()
    s = re.sub(r'^[^a-zA-Z\u00C0-\uFFFF]+', '', s)
    return s or 'section'


_CALLOUTS = {'note': 'Note', 'tip': 'Tip', 'warning': 'Warning', 'important': 'Important', 'caution': 'Caution'}
_re_attr_item = re.compile(r'''([.#][\w\-:.]+)|([\w\-]+)=(?:"((?:[^"\\]|\\.)*)"|'([^']*)'|(\S+))|(\S+)''')


def parse_attrs(s: str):
    "Parse pandoc attributes `{#id .class key=val}` into (id, classes, dict)"
    s = s.strip()
    if s.startswith('{') and s.endswith('}'): s = s[1:-1]
    ident, classes, kv = None, [], {}
    for m in _re_attr_item.finditer(s):
        if m.group(1):
            if m.group(1)[0] == '#': ident = m.group(1)[1:]
            else: classes.append(m.group(1)[1:])
        elif m.group(2): kv[m.group(2)] = next(g for g in m.group(3, 4, 5) if g is not None)
        elif m.group(6): classes.append(m.group(6))
    return ident, classes, kv


def make_markdown():
    from markdown_it import MarkdownIt
    from mdit_py_plugins.amsmath import amsmath_plugin
    from mdit_py_plugins.attrs import attrs_plugin
    from mdit_py_plugins.container import container_plugin
    from mdit_py_plugins.dollarmath import dollarmath_plugin

    md = MarkdownIt('commonmark', {'html': True, 'highlight': lambda code, lang, attrs: highlight(code, lang)})
    md.enable(['table', 'strikethrough'])
    dollarmath_plugin(md, allow_space=False, allow_digits=False, double_inline=True,
                      renderer=lambda tex, o: math_html(tex, o.get('display_mode', False)))
    amsmath_plugin(md, renderer=lambda tex: math_html(tex, True))
    attrs_plugin(md)   # `[source](url){target="_blank" style=...}` in show_doc output

    def render_div(self, tokens, idx, options, env):
        tok = tokens[idx]
        if tok.nesting != 1: return '</div>\n'
        ident, classes, kv = parse_attrs(tok.info.strip())
        title = kv.pop('title', None)
        cls = [c for c in classes]
        co = next((c for c in classes if c.startswith('callout-') and c[8:] in _CALLOUTS), None)
        if co: cls = ['callout'] + cls
        attrs = f' class="{html.escape(" ".join(cls))}"' if cls else ''
        if ident: attrs += f' id="{html.escape(ident)}"'
        res = f'<div{attrs}>\n'
        if co: res += f'<div class="callout-title">{html.escape(title or _CALLOUTS[co[8:]])}</div>\n'
        return res
    container_plugin(md, 'div', validate=lambda params, *a: True, render=render_div)

    def heading_ids(state):
        env = state.env
        ids, heads = env.setdefault('ids', set()), env.setdefault('headings', [])
        toks = state.tokens
        for i, tok in enumerate(toks):
            if tok.type != 'heading_open': continue
            inline = toks[i+1]
            ident, classes = None, []
            kids = inline.children or []
            if kids and kids[-1].type == 'text':   # trailing `{#id .class}` (pandoc heading attributes)
                m = re.search(r'\s*(\{[^{}]*\})\s*$', kids[-1].content)
                if m:
                    ident, classes, _ = parse_attrs(m.group(1))
                    kids[-1].content = kids[-1].content[:m.start()]
            text = ''.join(k.content for k in kids if k.type in ('text', 'code_inline', 'math_inline', 'softbreak'))
            text = text.strip()
            if not ident:
                base = slugify(text); ident, n = base, 0
                while ident in ids: n += 1; ident = f'{base}-{n}'
            ids.add(ident)
            tok.attrSet('id', ident)
            if classes: tok.attrSet('class', ' '.join(classes))
            heads.append((int(tok.tag[1]), ident, text))
    md.core.ruler.push('sf_heading_ids', heading_ids)
    return md


# ----------------------------------------------------------------------------------------------------------
# Notebook -> HTML fragment
# ----------------------------------------------------------------------------------------------------------
def _src(x) -> str: return ''.join(x) if isinstance(x, list) else (x or '')


def split_directives(source: str):
    "Leading `#| key: value` / `#| flag` lines -> (dict, remaining source)"
    import yaml
    lines, dirs, i = source.splitlines(), {}, 0
    while i < len(lines) and re.match(r'^\s*#\|', lines[i]):
        body = re.sub(r'^\s*#\|\s?', '', lines[i]).strip()
        i += 1
        if not body: continue
        m = re.match(r'^([\w\-]+)\s*:\s*(.*)$', body)
        if m:
            try: v = yaml.safe_load(m.group(2)) if m.group(2) else ''
            except Exception: v = m.group(2)
            dirs[m.group(1)] = v
        else:
            for w in body.split(): dirs[w] = True
    return dirs, '\n'.join(lines[i:])


def _false(v): return v is False or str(v).lower() == 'false'


class Page:
    "One notebook rendered to an HTML fragment plus what the site needs to know about it"
    def __init__(self, nb_path: Path, path: str):
        self.nb_path, self.path = nb_path, path            # source notebook, site-relative output path
        self.title, self.subtitle, self.fm = None, None, {}
        self.title_html = self.subtitle_html = None          # inline markdown (e.g. `code`) rendered
        self.parts = []                                   # (html, searchable)
        self.files = {}                                   # site-relative path -> bytes (figures)
        self.env = {'ids': set(TEMPLATE_IDS)}             # markdown-it env: ids (unique per page) + headings
        self.widget_state, self.views = {}, []
        self.ids = set()

    @property
    def stem(self): return posixpath.splitext(self.path)[0]

    def add_file(self, name: str, data: bytes) -> str:
        "Store a figure next to the page (Quarto-like `<page>_files/`); return its URL relative to the page"
        rel = f'{posixpath.basename(self.stem)}_files/{name}'
        self.files[posixpath.join(posixpath.dirname(self.path), rel)] = data
        if len(data) > IMG_SIZE_WARN: log(f"  warning: {self.nb_path.name}: output image {name} is {len(data)//1024} KB")
        return rel


def render_output(o, page: Page, md, cell_no: int, out_no: int, dirs) -> str:
    ot = o.get('output_type')
    if ot == 'stream':
        txt = _re_ansi.sub('', _src(o.get('text')))
        if not txt.strip(): return ''
        return f'<pre class="output stream {html.escape(o.get("name", "stdout"))}">{html.escape(txt)}</pre>\n'
    if ot == 'error':
        tb = _re_ansi.sub('', '\n'.join(o.get('traceback') or [f"{o.get('ename')}: {o.get('evalue')}"]))
        return f'<pre class="output error">{html.escape(tb)}</pre>\n'
    if ot not in ('execute_result', 'display_data'): return ''
    data, meta = o.get('data', {}), o.get('metadata', {})
    if VIEW_MIME in data:
        mid = data[VIEW_MIME].get('model_id')
        if mid in page.widget_state:
            page.views.append(mid)
            view = json.dumps(data[VIEW_MIME], sort_keys=True).replace('</', '<\\/')
            return f'<div class="output widget"><script type="{VIEW_MIME}">{view}</script></div>\n'
    plain = _re_addr.sub('', _src(data.get('text/plain', '')))
    if 'text/markdown' in data and dirs.get('output') == 'asis':
        return f'<div class="output markdown">{md.render(_src(data["text/markdown"]), page.env)}</div>\n'
    if 'text/html' in data:
        return f'<div class="output html">{_src(data["text/html"])}</div>\n'
    cap = dirs.get('fig-cap')
    def fig(img):
        if cap: return f'<figure class="output image">{img}<figcaption>{html.escape(str(cap))}</figcaption></figure>\n'
        return f'<div class="output image">{img}</div>\n'
    alt = html.escape(str(cap or plain or 'figure'), quote=True)
    if 'image/svg+xml' in data:
        url = page.add_file(f'cell-{cell_no}-output-{out_no}.svg', _src(data['image/svg+xml']).encode())
        return fig(f'<img src="{url}" alt="{alt}">')
    for mime, ext in (('image/png', 'png'), ('image/jpeg', 'jpg'), ('image/gif', 'gif')):
        if mime in data:
            raw = base64.b64decode(_src(data[mime]))
            url = page.add_file(f'cell-{cell_no}-output-{out_no}.{ext}', raw)
            m = meta.get(mime, {}) if isinstance(meta.get(mime), dict) else {}
            wh = ''.join(f' {k}="{int(m[k])}"' for k in ('width', 'height') if isinstance(m.get(k), (int, float)))
            return fig(f'<img src="{url}" alt="{alt}"{wh}>')
    if 'text/markdown' in data:
        return f'<div class="output markdown">{md.render(_src(data["text/markdown"]), page.env)}</div>\n'
    if 'text/latex' in data:
        tex = _src(data['text/latex']).strip()
        m = re.fullmatch(r'\$\$?(.*?)\$?\$', tex, flags=re.S)
        if m: return f'<div class="output math">{math_html(m.group(1), True)}</div>\n'
    if plain: return f'<pre class="output text">{html.escape(plain)}</pre>\n'
    return ''


def reachable_models(state: dict, roots) -> list[str]:
    "Model ids in widget `state` reachable from `roots` (views) through IPY_MODEL_ references"
    keep, stack = set(), list(roots)
    def walk(x):
        if isinstance(x, str):
            if x.startswith('IPY_MODEL_'): stack.append(x[10:])
        elif isinstance(x, dict):
            for k, v in x.items():
                if k == 'model_id' and isinstance(v, str): stack.append(v)
                walk(v)
        elif isinstance(x, list):
            for v in x: walk(v)
    while stack:
        m = stack.pop()
        if m in keep or m not in state: continue
        keep.add(m); walk(state[m])
    return sorted(keep)


def render_notebook(proc_nb: Path, page: Page, md, lang='python'):
    import yaml
    nb = json.loads(proc_nb.read_text(encoding='utf-8'))
    page.widget_state = (nb.get('metadata', {}).get('widgets', {}).get(STATE_MIME) or {}).get('state', {}) or {}
    lang = nb.get('metadata', {}).get('kernelspec', {}).get('language') or lang
    for i, cell in enumerate(nb.get('cells', []), 1):
        ct, src = cell.get('cell_type'), _src(cell.get('source'))
        if ct == 'raw':
            s = src.strip()
            if s.startswith('---') and not page.fm:
                m = re.match(r'^---\s*\n(.*?)\n---\s*$', s, flags=re.S)
                if m:
                    page.fm = yaml.safe_load(m.group(1)) or {}
                    continue
            fmt = cell.get('metadata', {}).get('format') or cell.get('metadata', {}).get('raw_mimetype') or ''
            if fmt in ('text/html', 'html'): page.parts.append((src, True))
            elif fmt in ('text/markdown', 'markdown'): page.parts.append((md.render(src, page.env), True))
            continue
        if ct == 'markdown':
            for name, att in (cell.get('attachments') or {}).items():
                for mime, b64 in att.items():
                    if mime.startswith('image/'):
                        url = page.add_file(f'cell-{i}-{re.sub(r"[^A-Za-z0-9._-]", "_", name)}', base64.b64decode(_src(b64)))
                        src = src.replace(f'attachment:{name}', url)
                        break
            page.parts.append((f'<div class="cell markdown">\n{md.render(src, page.env)}</div>\n', True))
            continue
        if ct != 'code': continue
        dirs, code = split_directives(src)
        if _false(dirs.get('include', True)): continue
        clang = cell.get('metadata', {}).get('language') or lang
        out = ''
        if not _false(dirs.get('output', True)):
            out = ''.join(render_output(o, page, md, i, j, dirs) for j, o in enumerate(cell.get('outputs', []), 1))
        inp = ''
        if not _false(dirs.get('echo', True)) and code.strip():
            inp = highlight(code, clang)
            fold = dirs.get('code-fold')
            if fold is not None and not _false(fold):
                summary = html.escape(str(dirs.get('code-summary') or 'Code'))
                inp = f'<details class="code-fold"{" open" if fold == "show" else ""}><summary>{summary}</summary>\n{inp}</details>\n'
        if not inp and not out: continue
        if inp: page.parts.append((f'<div class="cell code">\n<div class="cell-input">{inp}</div>\n', False))
        else: page.parts.append(('<div class="cell code">\n', False))
        page.parts.append((f'<div class="cell-output">\n{out}</div>\n' if out else '', dirs.get('output') == 'asis'))
        page.parts.append(('</div>\n', False))
    fm = page.fm
    page.title = str(fm.get('title') or posixpath.basename(page.stem))
    sub = fm.get('subtitle') or fm.get('description')
    page.subtitle = str(sub) if sub else None
    page.title_html = md.renderInline(page.title)
    page.subtitle_html = md.renderInline(page.subtitle) if page.subtitle else None
    page.ids = set(page.env.get('ids', set())) | set(_re_id.findall(''.join(h for h, _ in page.parts)))


# ----------------------------------------------------------------------------------------------------------
# Links: nbdev's absolute doc links -> relative; `.ipynb` links -> pages; local images -> copied
# ----------------------------------------------------------------------------------------------------------
_re_link_attr = re.compile(r'(\s(?:href|src)=")([^"]*)(")')
_re_id = re.compile(r'\sid="([^"]+)"')


def rel_url(target: str, from_page: str) -> str:
    "URL of site path `target` (may carry '#frag') relative to the page at site path `from_page`"
    path, _, frag = target.partition('#')
    r = posixpath.relpath(path, posixpath.dirname(from_page) or '.') if path else posixpath.basename(from_page)
    return r + (f'#{frag}' if frag else '')


class Linker:
    def __init__(self, base: str, pages: dict, nb2page: dict, nbs: Path, extra_files: dict):
        self.bases = {base, base.replace('https://', 'http://', 1)}
        self.pages, self.nb2page, self.nbs, self.extra = pages, nb2page, Path(nbs).resolve(), extra_files
        self.notes = []

    def _anchor(self, path, frag, page):
        "Keep `frag` if the target page has it, else fall back to its parent symbol (`a.b` -> `a`), else none"
        if not frag or path not in self.pages: return frag
        ids = self.pages[path].ids
        f = frag
        while f and f not in ids: f = f.rpartition('.')[0]
        if f != frag: self.notes.append(f"{page.path}: no anchor #{frag} on {path}; linking to {'#'+f if f else 'the page'}")
        return f

    def fix(self, html_s: str, page) -> str:
        def sub(m):
            url = html.unescape(m.group(2))
            new = self.resolve(url, page)
            return m.group(1) + html.escape(new, quote=True) + m.group(3) if new != url else m.group(0)
        return _re_link_attr.sub(sub, html_s)

    def resolve(self, url: str, page) -> str:
        for b in self.bases:
            if url.startswith(b) or url + '/' == b:
                rest = url[len(b):]
                path, _, frag = rest.partition('#')
                path = unquote(path) or 'index.html'
                if path.endswith('/'): path += 'index.html'
                frag = self._anchor(path, unquote(frag), page)
                return rel_url(path + (f'#{frag}' if frag else ''), page.path)
        sp = urlsplit(url)
        if sp.scheme or url.startswith(('//', '#')) or not url: return url
        path, frag = unquote(sp.path), unquote(sp.fragment)
        src_dir = page.nb_path.parent
        if path.endswith('.ipynb'):
            tgt = self.nb2page.get((src_dir/path).resolve())
            if tgt is None: return url
            frag = self._anchor(tgt, frag, page)
            return rel_url(tgt + (f'#{frag}' if frag else ''), page.path)
        site_path = posixpath.normpath(posixpath.join(posixpath.dirname(page.path), path))
        if site_path in self.pages or site_path in page.files or site_path in self.extra: return url
        f = (src_dir/path).resolve()
        if f.is_file() and not site_path.startswith('..') and (self.nbs in f.parents or REPO in f.parents):
            self.extra[site_path] = f.read_bytes()     # a local image/file referenced by the notebook
        return url


# ----------------------------------------------------------------------------------------------------------
# Site assembly
# ----------------------------------------------------------------------------------------------------------
def nav_groups(pages: list, nbs: Path):
    "Sidebar: top-level pages (numbered notebooks grouped by decade), then one section per folder"
    groups, cur = [], None
    for p in pages:
        rel = p.nb_path.relative_to(nbs)
        if len(rel.parts) > 1: key, label = ('dir', rel.parts[:-1]), ' / '.join(re.sub(r'^\d+_', '', s) for s in rel.parts[:-1])
        else:
            m = re.match(r'^(\d+)[a-zA-Z0-9]*_', rel.name)
            key, label = (('dec', int(m.group(1)) // 10), None) if m else (('top', 0), None)
        if cur is None or cur['key'] != key:
            cur = {'key': key, 'label': label, 'pages': []}; groups.append(cur)
        cur['pages'].append(p)
    for g in groups:   # label a decade group by its shared module prefix, e.g. `featsel` for featsel.*
        if g['key'][0] == 'dec' and len(g['pages']) > 1:
            heads = {posixpath.basename(p.stem).split('.')[0] for p in g['pages']}
            if len(heads) == 1: g['label'] = heads.pop()
    return groups


_INLINE_TAGS = 'a|abbr|b|code|em|i|kbd|mark|q|s|small|span|strong|sub|sup|u|var'


def strip_tags(s: str) -> str:
    "Plain text of an HTML fragment (for search and titles): inline tags vanish, block tags become spaces"
    s = re.sub(r'<(script|style|math)\b.*?</\1>', ' ', s, flags=re.S | re.I)
    s = re.sub(rf'</?(?:{_INLINE_TAGS})\b[^>]*>', '', s, flags=re.I)
    s = re.sub(r'<[^>]+>', ' ', s)
    return re.sub(r'\s+', ' ', html.unescape(s)).strip()


_re_heading = re.compile(r'<h([1-3])\b[^>]*\sid="([^"]+)"[^>]*>(.*?)</h\1>', flags=re.S)


def search_entries(page) -> list:
    "One search entry per section (h1-h3) of the page's prose and API docs (not its code)"
    s = ''.join(h if searchable else ' ' for h, searchable in page.parts)
    out, pos, sec, anchor = [], 0, '', ''
    title = strip_tags(page.title_html or page.title)
    def add(text, sec, anchor):
        text = strip_tags(text)
        if text or sec:
            out.append({'p': title, 's': sec, 'u': page.path + (f'#{anchor}' if anchor else ''), 't': text[:1500]})
    for m in _re_heading.finditer(s):
        add(s[pos:m.start()], sec, anchor)
        sec, anchor, pos = strip_tags(m.group(3)), m.group(2), m.end()
    add(s[pos:], sec, anchor)
    if page.subtitle: out[0:0] = [{'p': title, 's': '', 'u': page.path, 't': strip_tags(page.subtitle_html)}]
    return out


def pygments_css() -> str:
    from pygments.formatters import HtmlFormatter
    return HtmlFormatter(style='default').get_style_defs('.highlight')


def build_site(out: Path, nbs: Path = None, n_workers: int = 2, quiet=False) -> dict:
    "Build the whole site into the empty folder `out`; return {'pages': n, 'notes': [...]}"
    cwd = os.getcwd()
    os.chdir(REPO)
    try: return _build_site(Path(out), nbs, n_workers, quiet)
    finally: os.chdir(cwd)


def _build_site(out: Path, nbs, n_workers, quiet):
    import jinja2
    t0 = time.time()
    cfg = get_cfg()
    nbs = Path(nbs or cfg.nbs_path).resolve()
    base = site_url(cfg)
    nb_list = find_notebooks(nbs)
    if not nb_list: raise SystemExit(f"no notebooks found in {nbs}")
    for nb in nb_list:
        sz = nb.stat().st_size
        if sz > NB_SIZE_WARN: log(f"  warning: {nb.relative_to(nbs)} is {sz/1e6:.1f} MB (keep notebooks under ~1 MB: smaller figures)")
    md = make_markdown()
    with tempfile.TemporaryDirectory(prefix='sf_docs_') as tmp:
        tmp = Path(tmp)
        process_notebooks(nb_list, nbs, tmp/'_proc', tmp, cfg, n_workers=n_workers)
        t1 = time.time()
        pages = []
        for nb in nb_list:
            page = Page(nb, page_path(nb, nbs))
            render_notebook(tmp/'_proc'/nb.relative_to(nbs), page, md)
            pages.append(page)
    by_path = {p.path: p for p in pages}
    if len(by_path) != len(pages):
        raise SystemExit("two notebooks map to the same page: " + ', '.join(p.path for p in pages))
    extra = {}
    linker = Linker(base, by_path, {p.nb_path.resolve(): p.path for p in pages}, nbs, extra)
    files = {}
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(ASSETS)), autoescape=True,
                             keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True)
    tpl = env.get_template('page.html')
    groups = nav_groups(pages, nbs)
    any_widgets = False
    index = []
    git_url, branch = cfg.get('git_url', '').rstrip('/'), cfg.get('branch', 'main')
    for page in pages:
        content = linker.fix(''.join(h for h, _ in page.parts), page)
        root = '../' * page.path.count('/')
        state = None
        if page.views:
            any_widgets = True
            keep = reachable_models(page.widget_state, page.views)
            state = json.dumps({'version_major': 2, 'version_minor': 0, 'state': {k: page.widget_state[k] for k in keep}},
                               sort_keys=True, separators=(',', ':')).replace('</', '<\\/')
        nav = [{'label': g['label'], 'items': [{'title': strip_tags(p.title_html), 'href': rel_url(p.path, page.path), 'current': p is page}
                                               for p in g['pages']]} for g in groups]
        toc = [{'level': lvl, 'id': i, 'text': t} for lvl, i, t in page.env.get('headings', []) if lvl in (2, 3)]
        src_rel = page.nb_path.relative_to(REPO).as_posix() if REPO in page.nb_path.parents else None
        out_html = tpl.render(site_title=cfg.get('title', cfg.lib_name), site_desc=cfg.get('description', ''),
                              title=strip_tags(page.title_html), subtitle=strip_tags(page.subtitle_html or ''),
                              title_html=page.title_html, subtitle_html=page.subtitle_html, root=root, content=content, nav=nav, toc=toc,
                              widget_state=state, home=rel_url('index.html', page.path) if 'index.html' in by_path else None,
                              source_url=f'{git_url}/blob/{branch}/{src_rel}' if git_url and src_rel else None)
        files[page.path] = out_html.encode()
        files.update(page.files)
        index += search_entries(page)
    files.update(extra)
    files['search.json'] = (json.dumps(index, ensure_ascii=False, separators=(',', ':'))+'\n').encode()
    files['.nojekyll'] = b''
    for f in ('site.css', 'search.js', 'favicon.svg'): files[f'_static/{f}'] = (ASSETS/f).read_bytes()
    files['_static/pygments.css'] = pygments_css().encode()
    if any_widgets:
        for f in sorted(VENDOR.iterdir()):
            if f.is_file() and f.name != 'README.md': files[f'_static/widgets/{f.name}'] = f.read_bytes()
    for rel in sorted(files):
        dst = out/rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_bytes(files[rel])
    if not quiet:
        for n in linker.notes: log(f"  note: {n}")
        log(f"built {len(pages)} pages, {len(files)} files in {time.time()-t0:.1f}s (nbdev processing {t1-t0:.1f}s)")
    return {'pages': len(pages), 'files': sorted(files), 'notes': linker.notes}


def readme_markdown(nb_path: Path) -> str:
    """README.md from the home notebook, as `nbdev_readme` would make it without Quarto: markdown cells as they are,
    shown code cells as fenced Python followed by their text output; `#| hide` cells and `#| echo: false` sources left out"""
    nb = json.loads(nb_path.read_text())
    out = []
    for c in nb['cells']:
        src = _src(c['source'])
        if c['cell_type'] == 'markdown': out.append(src.strip()); continue
        if c['cell_type'] != 'code': continue
        lines = src.splitlines()
        dirs = {l[3:].strip().split(':')[0].split()[0] for l in lines if l.startswith('#| ') and l[3:].strip()}
        if 'hide' in dirs: continue
        code = '\n'.join(l for l in lines if not l.startswith('#|')).strip()
        if code and 'echo' not in dirs: out.append(f"```python\n{code}\n```")
        for o in c.get('outputs', []):
            data = o.get('data', {})
            if 'text/markdown' in data: out.append(_src(data['text/markdown']).strip())
            elif 'text/plain' in data or o.get('output_type') == 'stream':
                txt = _src(data.get('text/plain', o.get('text', ''))).rstrip()
                if txt: out.append(f"```\n{txt}\n```")
    body = '\n\n'.join(x for x in out if x)
    return '<!-- generated from nbs/index.ipynb by tools/build_docs.py: edit the notebook, not this file -->\n\n' + body + '\n'


def sync_dir(src: Path, dst: Path):
    "Make `dst` identical to `src`, rewriting only changed files (keeps PRESERVE files)"
    dst.mkdir(parents=True, exist_ok=True)
    new = {p.relative_to(src).as_posix() for p in src.rglob('*') if p.is_file()}
    old = {p.relative_to(dst).as_posix() for p in dst.rglob('*') if p.is_file()}
    for rel in sorted(old - new):
        if rel not in PRESERVE: (dst/rel).unlink()
    for rel in sorted(new):
        s, d = src/rel, dst/rel
        if d.exists() and d.read_bytes() == s.read_bytes(): continue
        d.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(s, d)
    for d in sorted((p for p in dst.rglob('*') if p.is_dir()), key=lambda p: -len(p.parts)):
        if not any(d.iterdir()): d.rmdir()


def compare_dirs(new: Path, old: Path) -> list[str]:
    a = {p.relative_to(new).as_posix() for p in new.rglob('*') if p.is_file()}
    b = {p.relative_to(old).as_posix() for p in old.rglob('*') if p.is_file()} - PRESERVE if old.exists() else set()
    res = [f"missing from {old.name}/: {r}" for r in sorted(a - b)]
    res += [f"extra in {old.name}/ (not built): {r}" for r in sorted(b - a)]
    res += [f"stale in {old.name}/: {r}" for r in sorted(a & b) if (new/r).read_bytes() != (old/r).read_bytes()]
    return res


# ----------------------------------------------------------------------------------------------------------
# Link checker
# ----------------------------------------------------------------------------------------------------------
class _LinkParser(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.ids, self.links = set(), []
    def handle_starttag(self, tag, attrs):
        d = dict(attrs)
        for k in ('id', 'name') if tag == 'a' else ('id',):
            if d.get(k): self.ids.add(d[k])
        for k in ('href', 'src'):
            if d.get(k) is not None and tag in ('a', 'link', 'img', 'script', 'iframe', 'source', 'video', 'audio', 'embed'):
                self.links.append((tag, k, d[k], self.getpos()[0]))


def check_links(site: Path, base: str = None) -> list[str]:
    """Every internal href/src in the HTML pages under `site` must resolve to a file there, and every `#anchor`
    must exist on its target page. Absolute links to the site's own URL (`base`) count as internal."""
    site = Path(site)
    if base is None:
        try: base = site_url(get_cfg())
        except Exception: base = None
    pages = {}
    for f in sorted(site.rglob('*.html')):
        p = _LinkParser(); p.feed(f.read_text(encoding='utf-8')); p.close()
        pages[f.relative_to(site).as_posix()] = p
    files = {p.relative_to(site).as_posix() for p in site.rglob('*') if p.is_file()}
    errs = []
    for rel, p in pages.items():
        for tag, attr, url, line in p.links:
            u = url
            if base and (u.startswith(base) or u.startswith(base.replace('https://', 'http://', 1))):
                errs.append(f"{rel}:{line}: absolute link to the site itself (should be relative): {url}")
                continue
            sp = urlsplit(u)
            if sp.scheme or u.startswith('//'):
                if sp.scheme in ('http', 'https', 'mailto', 'data', 'javascript'): continue
                errs.append(f"{rel}:{line}: unexpected URL scheme: {url}"); continue
            path, frag = unquote(sp.path), unquote(sp.fragment)
            if path.startswith('/'):
                errs.append(f"{rel}:{line}: root-absolute link breaks under a base URL: {url}"); continue
            tgt = posixpath.normpath(posixpath.join(posixpath.dirname(rel), path)) if path else rel
            if tgt.startswith('..'): errs.append(f"{rel}:{line}: link leaves the site: {url}"); continue
            if tgt in files or tgt == '.': pass
            elif posixpath.join(tgt, 'index.html') in files: tgt = posixpath.join(tgt, 'index.html')
            else: errs.append(f"{rel}:{line}: <{tag} {attr}> target not found: {url}"); continue
            if frag and tgt.endswith('.html') and frag not in pages[tgt].ids:
                errs.append(f"{rel}:{line}: anchor #{frag} not found in {tgt}: {url}")
    return errs


# ----------------------------------------------------------------------------------------------------------
# --execute: refresh saved outputs with nbclient
# ----------------------------------------------------------------------------------------------------------
def _stable_widget_ids(nb, name: str):
    "Replace random widget model ids by ids derived from the notebook name and their order (smaller git diffs)"
    state = (nb.metadata.get('widgets', {}).get(STATE_MIME) or {}).get('state')
    if not state: return
    order = []
    def collect(x):
        if isinstance(x, dict):
            if isinstance(x.get('model_id'), str): order.append(x['model_id'])
            for v in x.values(): collect(v)
        elif isinstance(x, list):
            for v in x: collect(v)
        elif isinstance(x, str) and x.startswith('IPY_MODEL_'): order.append(x[10:])
    collect([c.get('outputs', []) for c in nb.cells]); collect(state)
    order += list(state)
    mapping, seen = {}, set()
    for m in order:
        if m in state and m not in seen:
            seen.add(m); mapping[m] = hashlib.md5(f'{name}:{len(mapping)}'.encode()).hexdigest()
    def rep(x):
        if isinstance(x, dict): return type(x)({mapping.get(k, k) if x is state else k: rep(v) for k, v in x.items()})
        if isinstance(x, list): return [rep(v) for v in x]
        if isinstance(x, str):
            if x.startswith('IPY_MODEL_') and x[10:] in mapping: return 'IPY_MODEL_' + mapping[x[10:]]
            return mapping.get(x, x)
        return x
    for c in nb.cells:
        if 'outputs' in c: c['outputs'] = rep(c['outputs'])
    nb.metadata['widgets'][STATE_MIME]['state'] = {mapping.get(k, k): rep(v) for k, v in state.items()}


def _run_in_thread(f):
    "Run `f()` in its own thread (so `asyncio.run` works even when the caller already runs an event loop)"
    import threading
    res = {}
    def target():
        try: res['value'] = f()
        except BaseException as e: res['error'] = e
    t = threading.Thread(target=target, daemon=True); t.start(); t.join()
    if 'error' in res: raise res['error']
    return res.get('value')


def execute_notebooks(paths, timeout: int = 600, run_flags=(), allow_errors=False) -> int:
    "Execute notebooks in place with nbclient (saving widget state), skipping flagged cells, then `nbdev_clean` them"
    import asyncio, nbformat
    from nbclient import NotebookClient
    from nbdev.clean import nbdev_clean
    from nbdev.process import extract_directives
    cfg = get_cfg()
    skip = set(cfg.get('tst_flags', '').split()) - set(run_flags)
    kenv = dict(os.environ, PYTHONHASHSEED='0',
                # as `nbdev_test` does: IN_TEST makes `nbdev_export()` cells no-ops (no writes to the library)
                IN_TEST='1', PYTHONPATH=os.pathsep.join([str(REPO)] + [p for p in os.environ.get('PYTHONPATH', '').split(os.pathsep) if p]))
    failed = 0
    for p in map(Path, paths):
        p = p.resolve()
        t0 = time.time()
        nb = nbformat.read(p, as_version=4)
        added = []
        for c in nb.cells:
            if c.cell_type != 'code': continue
            d = extract_directives(c, remove=False)
            if (skip & set(d)) or str((d.get('eval:') or [''])[0]).lower() == 'false':
                tags = c.metadata.setdefault('tags', [])
                if 'skip-execution' not in tags: tags.append('skip-execution'); added.append(c)
        client = NotebookClient(nb, timeout=timeout, kernel_name='python3', store_widget_state=True, record_timing=False,
                                allow_errors=allow_errors, resources={'metadata': {'path': str(p.parent)}})
        try: _run_in_thread(lambda: asyncio.run(asyncio.wait_for(client.async_execute(env=kenv), timeout)))
        except asyncio.TimeoutError:
            log(f"FAILED {p.name}: timed out after {timeout}s; notebook left unchanged"); failed += 1; continue
        except Exception as e:
            log(f"FAILED {p.name}: {type(e).__name__}: {_re_ansi.sub('', str(e))[-3000:]}\nnotebook left unchanged"); failed += 1; continue
        for c in added:
            c.metadata['tags'].remove('skip-execution')
            if not c.metadata['tags']: del c.metadata['tags']
        _stable_widget_ids(nb, p.name)
        nbformat.write(nb, p)
        cwd = os.getcwd(); os.chdir(REPO)     # nbdev_clean reads settings.ini from the working directory
        try: nbdev_clean(fname=str(p))
        finally: os.chdir(cwd)
        sz = p.stat().st_size
        log(f"executed {p.name} in {time.time()-t0:.1f}s ({len(added)} cells skipped), {sz/1e3:.0f} KB")
        if sz > NB_SIZE_WARN: log(f"  warning: {p.name} is {sz/1e6:.1f} MB: keep figures small (lower dpi/figsize, fewer outputs)")
    return failed


# ----------------------------------------------------------------------------------------------------------
def _versions():
    from importlib.metadata import version, PackageNotFoundError
    res = []
    for p in ('nbdev', 'execnb', 'fastcore', 'markdown-it-py', 'mdit-py-plugins', 'latex2mathml', 'pygments', 'jinja2'):
        try: res.append(f'{p} {version(p)}')
        except PackageNotFoundError: res.append(f'{p} missing')
    return res


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--check', action='store_true', help='build into a temp folder, compare with docs/ and check links')
    ap.add_argument('--links', action='store_true', help='only check links in --out (default docs/)')
    ap.add_argument('--execute', nargs='*', metavar='NB', help='execute notebooks (default: all in nbs/) to refresh saved outputs')
    ap.add_argument('--flags', default='', help='with --execute: tst_flags to run anyway, e.g. "cuda slow"')
    ap.add_argument('--timeout', type=int, default=600, help='with --execute: seconds per notebook')
    ap.add_argument('--allow-errors', action='store_true', help='with --execute: keep going past cell errors')
    ap.add_argument('--out', default=None, help='output folder (default: doc_path from settings.ini, docs/)')
    ap.add_argument('--nbs', default=None, help='notebook folder (default: nbs_path from settings.ini, nbs/)')
    ap.add_argument('--workers', type=int, default=2, help='nbdev processing workers')
    a = ap.parse_args(argv)
    cfg = get_cfg()
    out = Path(a.out).resolve() if a.out else Path(cfg.doc_path).resolve()
    a.nbs = Path(a.nbs).resolve() if a.nbs else None
    if a.execute is not None:
        nbs = Path(a.nbs or cfg.nbs_path).resolve()
        paths = [Path(p).resolve() for p in a.execute] or find_notebooks(nbs)
        return 1 if execute_notebooks(paths, a.timeout, a.flags.split(), a.allow_errors) else 0
    if a.links:
        errs = check_links(out)
        for e in errs: print(e)
        print(f"link check: {len(errs)} problem(s) in {out}")
        return 1 if errs else 0
    with tempfile.TemporaryDirectory(prefix='sf_site_') as tmp:
        site = Path(tmp)/'site'
        info = build_site(site, a.nbs, a.workers)
        errs = check_links(site)
        for e in errs: print(f"broken link: {e}")
        cfg_nbs = Path(a.nbs or cfg.nbs_path).resolve()
        readme = readme_markdown(cfg_nbs/cfg.get('readme_nb', 'index.ipynb'))
        if a.check:
            diffs = compare_dirs(site, out)
            readme_file = REPO/'README.md'
            if not readme_file.exists() or readme_file.read_text() != readme: diffs.append('stale: README.md (generated from nbs/index.ipynb)')
            for d in diffs: print(d)
            if diffs:
                print(f"{out} is out of date: run `python tools/build_docs.py` and commit {out.name}/")
                print("(if the notebooks did not change, compare renderer versions with the ones that built docs/: "
                      + ', '.join(_versions()) + ")")
            print(f"check: {len(diffs)} difference(s), {len(errs)} broken link(s)")
            return 1 if (diffs or errs) else 0
        sync_dir(site, out)
        (REPO/'README.md').write_text(readme)
        print(f"wrote {info['pages']} pages to {out}" + (f"; {len(errs)} broken link(s)" if errs else ''))
        return 1 if errs else 0


if __name__ == '__main__':
    sys.exit(main())
