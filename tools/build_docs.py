#!/usr/bin/env python
"""Build the sparseface documentation site offline, from the notebooks in `nbs/`, into `docs/`.

Quarto cannot run here, so this replaces the Quarto render of `nbdev_docs` with Sphinx + myst-nb, keeping nbdev's own
notebook processing. The steps (tools/README.md says why these tools):

1. nbdev: `nbdev.serve_drv` + `nbdev.processors.FilterDefaults` on every notebook (show_doc, `#| hide/export/echo`,
   frontmatter, doc links), in spawned workers; `show_doc` renders nbdev's docments table (`api_markdown`).
2. translate each processed notebook into a MyST notebook named like its nbdev page (`00_core.ipynb` -> `core`):
   Quarto cell options -> myst-nb tags/metadata, Quarto callouts/tabsets -> MyST directives, nbdev's absolute doc
   links and `.ipynb`/`NN_name` references -> links between pages, `#| output: asis` -> Markdown cells;
3. Sphinx (`tools/sphinx/conf.py`: furo, myst-nb, sphinx-design, vendored MathJax and widget JS) builds HTML from the
   SAVED outputs with warnings as errors; `check_links` checks every internal href/src/#anchor of the result.

    python tools/build_docs.py                 # rebuild docs/ (and README.md from nbs/index.ipynb)
    python tools/build_docs.py --check         # rebuild into a temp folder, diff against docs/, check links
    python tools/build_docs.py --links         # only run the link checker on docs/
    python tools/build_docs.py --execute [NB ...]  # refresh saved outputs in nbs/ (nbclient), then nbdev_clean

The output is deterministic: rebuilding unchanged notebooks gives byte-identical files.
"""
from __future__ import annotations

import argparse, hashlib, html, inspect, json, os, posixpath, re, shutil, sys, tempfile, time, warnings
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

# This module is imported again by the spawned nbdev worker processes: keep the top level cheap.
REPO = Path(__file__).resolve().parents[1]
TOOLS = Path(__file__).resolve().parent
CONF = TOOLS/'sphinx'                       # Sphinx configuration (conf.py, _static/)
STATE_MIME = 'application/vnd.jupyter.widget-state+json'
VIEW_MIME = 'application/vnd.jupyter.widget-view+json'
PRESERVE = {'CNAME'}          # files in docs/ that the build never deletes
DROP = {'.buildinfo', 'objects.inv'}        # Sphinx outputs the site does not need (.buildinfo holds a config hash)
NB_SIZE_WARN = 1_000_000      # bytes: warn when a notebook is bigger than this
_re_ansi = re.compile(r'\x1B(?:[@-Z\\-_]|\[[0-?]*[ -/]*[@-~])')
_re_addr = re.compile(r'(?<= at 0x)[0-9a-fA-F]{6,}')


def log(*a): print(*a, file=sys.stderr, flush=True)
def _src(x) -> str: return ''.join(x) if isinstance(x, list) else (x or '')


# ----------------------------------------------------------------------------------------------------------
# Configuration and notebook discovery
# ----------------------------------------------------------------------------------------------------------
def get_cfg():
    from nbdev.config import get_config
    return get_config(path=REPO)


def site_url(cfg) -> str:
    "Absolute URL of the published site, ending in '/', e.g. https://sparseface.github.io/sparseface/"
    host, base = cfg.get('doc_host', '').rstrip('/'), cfg.get('doc_baseurl', '').strip('/')
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


def slugify(text: str) -> str:
    "Pandoc's auto-identifier algorithm (what Quarto and nbdev's doc links use); conf.py gives it to MyST for headings"
    s = re.sub(r'[^\w\s.\-]', '', text, flags=re.UNICODE)
    s = re.sub(r'\s+', '-', s.strip()).lower()
    s = re.sub(r'^[^a-zA-Z\u00C0-\uFFFF]+', '', s)
    return s or 'section'


# ----------------------------------------------------------------------------------------------------------
# 1. nbdev processing (show_doc, directives, frontmatter, links) in spawned worker processes
# ----------------------------------------------------------------------------------------------------------
def _anno(a) -> str:
    return a if isinstance(a, str) else getattr(a, '__name__', None) or str(a).replace('typing.', '')


def _md_cell(s) -> str: return str(s).replace('|', '\\|').replace('\n', '<br>')


def _api_table(sym) -> str:
    "nbdev's docments table (parameter | type | default | details), with types and defaults as code, `|` escaped"
    from fastcore.docments import DocmentTbl
    t = DocmentTbl(sym)
    if not t.has_docment: return ''
    fmt = {'anno': lambda v: f'`{_md_cell(_anno(v))}`', 'default': lambda v: f'`{_md_cell(getattr(v, "__name__", None) or repr(v))}`',
           'docment': _md_cell}
    row = lambda nm, p: '| ' + ' | '.join([nm] + ['' if p.get(c, inspect._empty) is inspect._empty else fmt[c](p[c]) for c in t._columns]) + ' |'
    rows = [t.hdr_str] + [row(f'`{n}`', p) for n, p in t._row_list.map(lambda r: (r[0], t.dm[r[0]]))]
    if t.has_return: rows.append(row('**Returns**', t.dm['return']))
    return '\n'.join(rows)


def api_markdown(self) -> str:
    """`show_doc` output as a Quarto nbdev site shows it: heading (the doc links' anchor), source link, signature,
    docstring, docments table. Replaces `nbdev.showdoc.BasicMarkdownRenderer._repr_markdown_` in the docs workers."""
    from nbdev.doclinks import NbdevLookup
    out = [f"{'#' * self.title_level} {self.nm}", '']
    src = NbdevLookup().code(self.fn)
    if src: out += [f'[source]({src}){{.sf-source}}', '']
    if self.sig is not None:
        ps = [f for f, _ in self.dm.params]
        ret = self.sig.return_annotation
        lines, cur = [], f"{'class ' if inspect.isclass(self.sym) else ''}{self.nm}("
        for i, p in enumerate(ps):                       # wrap between parameters, at ~100 characters
            p += ', ' if i < len(ps) - 1 else ''
            if len(cur) + len(p) > 100 and cur.strip(): lines.append(cur.rstrip()); cur = '    '
            cur += p
        lines.append(cur + ')' + ('' if ret is inspect._empty else f' -> {_anno(ret)}'))
        out += ['```python', *lines, '```', '']
    if self.docs: out += [re.sub(r'^(\s*)(.+)', r'\1*\2*', self.docs, count=1), '']
    return '\n'.join(out) + _api_table(self.sym)


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
        import nbdev.serve_drv, nbdev.showdoc
        from nbdev.processors import FilterDefaults
        nbdev.showdoc.BasicMarkdownRenderer._repr_markdown_ = api_markdown
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
        (proc/nb.relative_to(nbs)).parent.mkdir(parents=True, exist_ok=True)
        items.append((str(nb), str(proc/nb.relative_to(nbs))))
    old_path, old_env = list(sys.path), {k: os.environ.get(k) for k in ('PYTHONPATH', 'PYTHONHASHSEED')}
    try:
        # spawned workers inherit sys.path: the repo (to import the library) and the entry point for doc links;
        # they must find the worker function by module name (not `__main__`), so import this file as a module
        for p in map(str, (TOOLS, ep, REPO)):
            if p not in sys.path: sys.path.insert(0, p)
        os.environ['PYTHONPATH'] = os.pathsep.join([str(ep), str(REPO)] + [p for p in (old_env['PYTHONPATH'] or '').split(os.pathsep) if p])
        os.environ['PYTHONHASHSEED'] = '0'   # stable set/dict reprs in show_doc output
        import build_docs
        res = parallel(build_docs._proc_one, items, n_workers=max(1, min(n_workers, len(items))), method='spawn',
                       pause=0.01, progress=False)
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
# 2. processed notebook -> MyST notebook (Quarto-isms -> MyST/myst-nb, links between pages)
# ----------------------------------------------------------------------------------------------------------
def split_directives(source: str):
    "Leading `#| key: value` / `#| flag` lines -> (dict, remaining source)"
    import yaml
    lines, dirs, i = source.splitlines(), {}, 0
    while i < len(lines) and re.match(r'^\s*#\|', lines[i]):
        body = re.sub(r'^\s*#\|\s?', '', lines[i]).strip()
        i += 1
        m = re.match(r'^([\w\-]+)\s*:\s*(.*)$', body)
        if m:
            try: dirs[m.group(1)] = yaml.safe_load(m.group(2)) if m.group(2) else ''
            except Exception: dirs[m.group(1)] = m.group(2)
        else: dirs.update((w, True) for w in body.split())
    return dirs, '\n'.join(lines[i:])


def _false(v): return v is False or str(v).lower() == 'false'


def parse_attrs(s: str):
    "Pandoc attributes `{#id .class key=val}` -> (id, classes, dict)"
    ident, classes, kv = None, [], {}
    for m in re.finditer(r'''([.#])([\w\-:.]+)|([\w\-]+)=(?:"((?:[^"\\]|\\.)*)"|'([^']*)'|(\S+))''', s.strip().strip('{}')):
        if m.group(1) == '#': ident = m.group(2)
        elif m.group(1): classes.append(m.group(2))
        else: kv[m.group(3)] = next(g for g in m.group(4, 5, 6) if g is not None)
    return ident, classes, kv


_CALLOUTS = {'note', 'tip', 'warning', 'important', 'caution'}
_re_fence = re.compile(r'^\s*(`{3,}|~{3,})')
_re_colon = re.compile(r'^(:{3,})\s*(.*?)\s*$')
_re_myst_dir = re.compile(r'^\{[\w:-]+\}')
_re_heading = re.compile(r'^(#{1,6})\s+(.*?)\s*$')
_re_code_span = re.compile(r'(?<!`)(`+)(?!`)([\s\S]*?[^`])\1(?!`)')
_re_link = re.compile(r'(!?)\[((?:[^\[\]]|\[[^\[\]]*\])*)\]\(([^()\s]+)((?:\s+"[^"]*")?)\)')


def _fence_tree(lines):
    "Lines -> tree of colon-fenced divs (pandoc `::: {.x}` and MyST `:::{name}` alike); code fences are left whole"
    root, stack, fence = [], [], None
    stack.append(root)
    for line in lines:
        m = _re_fence.match(line)
        if fence or m:
            if fence is None: fence = m.group(1)
            elif line.strip().startswith(fence) and not line.strip().strip(fence[0]): fence = None
            stack[-1].append(line); continue
        m = _re_colon.match(line)
        if m and not m.group(2) and len(stack) > 1: stack.pop(); continue
        if m and m.group(2) and (m.group(2)[0] == '{' or re.fullmatch(r'[\w.-]+', m.group(2))):
            node = {'spec': m.group(2), 'body': []}
            stack[-1].append(node); stack.append(node['body']); continue
        stack[-1].append(line)
    return root


def _render_divs(items):
    "Tree -> MyST lines and nesting height: every fence gets more colons than the fences inside it"
    out, height = [], 0
    for it in items:
        if isinstance(it, str): out.append(it); continue
        lines, h = _render_div(it['spec'], it['body']); out += lines; height = max(height, h)
    return out, height


def _render_div(spec, body):
    "One div: MyST directives as they are; Quarto callouts -> admonitions, `.panel-tabset` -> tab-set, others -> container"
    if _re_myst_dir.match(spec):
        inner, h = _render_divs(body)
        return [':' * (3 + h) + spec, *inner, ':' * (3 + h)], h + 1
    ident, classes, kv = parse_attrs(spec) if spec[0] == '{' else (None, [spec], {})
    if 'panel-tabset' in classes:                       # tabs: split at the first heading level found
        heads = [_re_heading.match(x) for x in body if isinstance(x, str)]
        lvl = next((len(m.group(1)) for m in heads if m), 0)
        tabs, pre = [], []
        for x in body:
            m = _re_heading.match(x) if isinstance(x, str) else None
            if m and len(m.group(1)) == lvl: tabs.append((m.group(2), []))
            else: (tabs[-1][1] if tabs else pre).append(x)
        rendered = [_render_divs(b) for _, b in tabs]
        h = 1 + max((hh for _, hh in rendered), default=0)
        out = pre + [':' * (3 + h) + '{tab-set}']
        for (title, _), (lines, _) in zip(tabs, rendered): out += [':' * (2 + h) + '{tab-item} ' + title, '', *lines, ':' * (2 + h)]
        return out + [':' * (3 + h)], h + 1
    co = next((c[8:] for c in classes if c.startswith('callout-') and c[8:] in _CALLOUTS), None)
    title = kv.get('title')
    if co and not title:                                # Quarto: a callout's first heading is its title
        first = next((i for i, x in enumerate(body) if not (isinstance(x, str) and not x.strip())), None)
        m = _re_heading.match(body[first]) if first is not None and isinstance(body[first], str) else None
        if m: title, body = m.group(2), body[:first] + body[first+1:]
    inner, h = _render_divs(body)
    w = ':' * (3 + h)
    if co: head = [f'{w}{{admonition}} {title}', f':class: {co}'] if title else [f'{w}{{{co}}}']
    else: head = [f"{w}{{container}} {' '.join(classes)}".rstrip()] + ([f':name: {ident}'] if ident else [])
    return head + [''] + inner + [w], h + 1


class Site:
    "What the translation needs to know about all pages: notebook -> page, anchors per page, the site URL"
    def __init__(self, nbs: Path, nb_list, base: str):
        self.nbs, self.base = nbs, base
        self.page = {nb.resolve(): page_path(nb, nbs) for nb in nb_list}        # notebook -> 'core.html'
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
            if url.startswith(b) or url + '/' == b:         # nbdev's absolute doc links -> links within the site
                path, _, frag = url[len(b):].partition('#')
                path = unquote(path) or 'index.html'
                if path.endswith('/'): path += 'index.html'
                if path in self.anchors: return self.doc_link(path, unquote(frag), cur)
                return posixpath.relpath(path, posixpath.dirname(cur) or '.') + (f'#{frag}' if frag else '')
        sp = urlsplit(url)
        if sp.scheme or url.startswith('//') or not url: return url
        if url.startswith('#'): return '#' + (self.anchor(cur, unquote(url[1:]), cur) or url[1:])
        path, frag = unquote(sp.path), unquote(sp.fragment)
        f = (nb.parent/path).resolve()
        if path.endswith('.ipynb') and f in self.page: return self.doc_link(self.page[f], frag, cur)
        if f.is_file() and (self.nbs in f.parents or REPO in f.parents):      # a local image/file: copy it along
            self.files[posixpath.normpath(posixpath.join(posixpath.dirname(cur), path))] = f
        return url


def translate_markdown(text: str, nb: Path, cur: str, site: Site) -> str:
    "Quarto/nbdev Markdown -> MyST: divs, heading ids, links between pages, `NN_name` notebook references"
    lines, _ = _render_divs(_fence_tree(text.split('\n')))
    out, prose, fence = [], [], None                 # prose is translated, fenced code left alone
    for line in lines:
        m = _re_fence.match(line)
        if fence is None and not m: prose.append(line); continue
        if fence is None:
            if prose: out.append(_translate_prose('\n'.join(prose), nb, cur, site)); prose = []
            fence = m.group(1)
        elif line.strip().startswith(fence) and not line.strip().strip(fence[0]): fence = None
        out.append(line)
    if prose: out.append(_translate_prose('\n'.join(prose), nb, cur, site))
    return '\n'.join(out)


def _translate_prose(s: str, nb: Path, cur: str, site: Site) -> str:
    "Heading ids, links and `NN_name` references in Markdown without fenced code (code spans are left alone)"
    def head(m):                                      # `## Heading {#id .class}` -> MyST label + heading
        ident = parse_attrs(m.group(2))[0]
        return (f'({ident})=\n' if ident else '') + m.group(1)
    s = re.sub(r'^(#{1,6}\s.*?)\s*(\{[^{}]*\})[ \t]*$', head, s, flags=re.M)
    def links(s, spans):
        s = _re_link.sub(lambda m: f'{m.group(1)}[{m.group(2)}]({site.link(m.group(3), nb, cur)}{m.group(4)})', s)
        def ref(m):                                   # a lone `11_sparse.dst` -> link to that notebook's page
            code = spans[int(m.group(1))]
            nbf = site.by_stem.get(code.strip('`'))
            return f'[{code}]({site.doc_link(site.page[nbf], "", cur)})' if nbf else m.group(0)
        return re.sub(r'(?<!\[)\x00(\d+)\x00(?!\]\()', ref, s)
    return _outside_code(s, links)


def reachable_models(state: dict, roots) -> list[str]:
    "Model ids in widget `state` reachable from `roots` (views) through IPY_MODEL_ references"
    keep, stack = set(), list(roots)
    def walk(x):
        if isinstance(x, str) and x.startswith('IPY_MODEL_'): stack.append(x[10:])
        elif isinstance(x, dict):
            for k, v in x.items(): (stack.append(v) if k == 'model_id' and isinstance(v, str) else walk(v))
        elif isinstance(x, list):
            for v in x: walk(v)
    while stack:
        m = stack.pop()
        if m not in keep and m in state: keep.add(m); walk(state[m])
    return sorted(keep)


def _clean_output(o):
    "Outputs without ANSI colours or object addresses (stable HTML)"
    if o.get('output_type') == 'stream': o['text'] = _re_ansi.sub('', _src(o.get('text')))
    if o.get('output_type') == 'error': o['traceback'] = [_re_ansi.sub('', t) for t in o.get('traceback', [])]
    if 'text/plain' in o.get('data', {}): o['data']['text/plain'] = _re_addr.sub('', _src(o['data']['text/plain']))
    return o


def translate_notebook(nb_json: dict, nb: Path, cur: str, site: Site) -> dict:
    "A processed (nbdev) notebook -> the MyST notebook Sphinx renders"
    import yaml
    md = lambda s, **kw: {'cell_type': 'markdown', 'metadata': {}, 'source': translate_markdown(s, nb, cur, site), **kw}
    cells, fm = [], {}
    for i, c in enumerate(nb_json.get('cells', [])):
        ct, src = c.get('cell_type'), _src(c.get('source'))
        if ct == 'raw':
            m = re.match(r'^\s*---\s*\n(.*?)\n---\s*$', src, flags=re.S)
            if m and not fm and not cells: fm = yaml.safe_load(m.group(1)) or {}
            elif (c.get('metadata', {}).get('format') or c.get('metadata', {}).get('raw_mimetype') or '') in ('text/html', 'html'):
                cells.append({'cell_type': 'raw', 'metadata': {'format': 'text/html'}, 'source': src})
            continue
        if ct == 'markdown':
            cells.append(md(src, **({'attachments': c['attachments']} if c.get('attachments') else {}))); continue
        if ct != 'code': continue
        dirs, code = split_directives(src)
        if _false(dirs.get('include', True)): continue
        outs = [] if _false(dirs.get('output', True)) else [_clean_output(o) for o in c.get('outputs', [])]
        if dirs.get('output') == 'asis':               # Markdown output becomes part of the page, as in Quarto
            asis = [o for o in outs if 'text/markdown' in o.get('data', {})]
            outs = [o for o in outs if o not in asis]
        else: asis = []
        for o in outs:                                 # other Markdown outputs get the same links as the prose
            if 'text/markdown' in o.get('data', {}): o['data']['text/markdown'] = translate_markdown(_src(o['data']['text/markdown']), nb, cur, site)
        echo = not _false(dirs.get('echo', True)) and code.strip()
        fold = dirs.get('code-fold')
        if echo and fold is not None and not _false(fold):       # Quarto code-fold -> sphinx-design dropdown
            lang = c.get('metadata', {}).get('language') or 'python'
            cells.append({'cell_type': 'markdown', 'metadata': {}, 'source': f"::::{{dropdown}} {dirs.get('code-summary') or 'Code'}\n"
                          + (':open:\n' if fold == 'show' else '') + f":class-container: sf-code-fold\n```{lang}\n{code}\n```\n::::"})
            echo = False
        if echo or outs:
            meta = {'tags': [t for t, on in (('remove-input', not echo),) if on]}
            if dirs.get('fig-cap') is not None:
                meta['mystnb'] = {'figure': {'caption': str(dirs['fig-cap']), **({'name': dirs['label']} if dirs.get('label') else {})}}
            cells.append({'cell_type': 'code', 'execution_count': None, 'metadata': meta, 'outputs': outs, 'source': code})
        cells += [md(_src(o['data']['text/markdown'])) for o in asis]
    title, sub = str(fm.get('title') or posixpath.basename(cur)[:-5]), fm.get('subtitle') or fm.get('description')
    head = f"# {title}\n" + (f"\n{{.subtitle}}\n{str(sub).strip()}\n" if sub else '')
    cells.insert(0, {'cell_type': 'markdown', 'metadata': {}, 'source': translate_markdown(head, nb, cur, site)})
    meta = {k: v for k, v in nb_json.get('metadata', {}).items() if k in ('kernelspec', 'language_info')}
    state = (nb_json.get('metadata', {}).get('widgets', {}).get(STATE_MIME) or {}).get('state') or {}
    views = [o['data'][VIEW_MIME].get('model_id') for c in cells for o in c.get('outputs', []) if VIEW_MIME in o.get('data', {})]
    if views and state:
        meta['widgets'] = {STATE_MIME: {'version_major': 2, 'version_minor': 0, 'state': {k: state[k] for k in reachable_models(state, views)}}}
    for i, c in enumerate(cells): c['id'] = f'c{i}'
    return {'cells': cells, 'metadata': meta, 'nbformat': 4, 'nbformat_minor': 5}


def page_anchors(nb_json: dict) -> set:
    "Heading ids (pandoc slugs, what nbdev links to) of a processed notebook: markdown cells and asis outputs"
    text = []
    for c in nb_json.get('cells', []):
        if c.get('cell_type') == 'markdown': text.append(_src(c.get('source')))
        for o in c.get('outputs', []): text.append(_src(o.get('data', {}).get('text/markdown')))
    heads = re.findall(r'^#{1,6}\s+(.*?)\s*$', re.sub(r'^(```|~~~).*?^\1', '', '\n'.join(text), flags=re.M | re.S), flags=re.M)
    ids = {parse_attrs(m.group(2))[0] for h in heads if (m := re.search(r'(\{[^{}]*\})$', h))} - {None}
    return ids | {slugify(re.sub(r'\{[^{}]*\}$', '', h).replace('`', '')) for h in heads}


def toctrees(nb_list, nbs: Path, site: Site) -> str:
    "Sidebar (hidden toctrees): numbered notebooks grouped by decade, labelled by their shared module prefix; folders"
    groups = []
    for nb in nb_list:
        rel, page = nb.relative_to(nbs), site.page[nb.resolve()]
        if page == 'index.html': continue
        m = re.match(r'^(\d+)', rel.name)
        key = rel.parts[:-1] if len(rel.parts) > 1 else (int(m.group(1)) // 10 if m else -1)
        if not groups or groups[-1][0] != key: groups.append((key, []))
        groups[-1][1].append(page[:-5])
    res = ['```{toctree}\n:hidden:\n\nHome <self>\n```']
    for key, docs in groups:
        heads = {posixpath.basename(d).split('.')[0] for d in docs}
        cap = (' / '.join(re.sub(r'^\d+_', '', s) for s in key) if isinstance(key, tuple)
               else heads.pop() if len(heads) == 1 and len(docs) > 1 else None)
        res.append('```{toctree}\n:hidden:\n' + (f':caption: {cap}\n' if cap else '') + '\n' + '\n'.join(docs) + '\n```')
    return '\n\n'.join(res)


# ----------------------------------------------------------------------------------------------------------
# 3. Sphinx build, site assembly
# ----------------------------------------------------------------------------------------------------------
def build_site(out: Path, nbs: Path = None, n_workers: int = 2, quiet=False) -> dict:
    "Build the whole site into the empty folder `out`; return {'pages': n, 'notes': [...]}"
    cwd = os.getcwd()
    os.chdir(REPO)
    try: return _build_site(Path(out), nbs, n_workers, quiet)
    finally: os.chdir(cwd)


def _build_site(out: Path, nbs, n_workers, quiet):
    t0 = time.time()
    cfg = get_cfg()
    nbs = Path(nbs or cfg.nbs_path).resolve()
    nb_list = find_notebooks(nbs)
    if not nb_list: raise SystemExit(f"no notebooks found in {nbs}")
    for nb in nb_list:
        if nb.stat().st_size > NB_SIZE_WARN: log(f"  warning: {nb.relative_to(nbs)} is {nb.stat().st_size/1e6:.1f} MB (keep notebooks under ~1 MB)")
    site = Site(nbs, nb_list, site_url(cfg))
    if len(set(site.page.values())) != len(nb_list): raise SystemExit("two notebooks map to the same page: " + ', '.join(site.page.values()))
    with tempfile.TemporaryDirectory(prefix='sf_docs_') as tmp:
        tmp = Path(tmp)
        process_notebooks(nb_list, nbs, tmp/'proc', tmp, cfg, n_workers=n_workers)
        t1 = time.time()
        procs = {nb: json.loads((tmp/'proc'/nb.relative_to(nbs)).read_text(encoding='utf-8')) for nb in nb_list}
        for nb, j in procs.items(): site.anchors[site.page[nb.resolve()]] = page_anchors(j)
        src = tmp/'src'
        for nb, j in procs.items():
            cur = site.page[nb.resolve()]
            myst = translate_notebook(j, nb, cur, site)
            if cur == 'index.html': myst['cells'].append({'cell_type': 'markdown', 'id': 'toctree', 'metadata': {}, 'source': toctrees(nb_list, nbs, site)})
            (src/cur).parent.mkdir(parents=True, exist_ok=True)
            (src/(cur[:-5] + '.ipynb')).write_text(json.dumps(myst, indent=1, sort_keys=True, ensure_ascii=False), encoding='utf-8')
        if 'index.html' not in site.page.values(): (src/'index.md').write_text(f"# {cfg.get('title', cfg.lib_name)}\n\n" + toctrees(nb_list, nbs, site))
        for rel, f in site.files.items(): (src/rel).parent.mkdir(parents=True, exist_ok=True); shutil.copyfile(f, src/rel)
        run_sphinx(src, out, tmp/'doctrees', cfg, quiet)
    for rel, f in site.files.items():            # local files referenced from raw HTML (Markdown images go to _images/)
        if not (out/rel).exists(): (out/rel).parent.mkdir(parents=True, exist_ok=True); shutil.copyfile(f, out/rel)
    for f in DROP: (out/f).unlink(missing_ok=True)
    (out/'.nojekyll').write_text('')
    if not quiet:
        for n in site.notes: log(f"  note: {n}")
        log(f"built {len(nb_list)} pages in {time.time()-t0:.1f}s (nbdev processing {t1-t0:.1f}s)")
    return {'pages': len(nb_list), 'notes': site.notes}


def run_sphinx(src: Path, out: Path, doctrees: Path, cfg, quiet=False):
    "Sphinx with tools/sphinx/conf.py, warnings as errors (all reported: --keep-going), nitpicky"
    from sphinx.cmd.build import build_main
    args = ['-b', 'html', '-c', str(CONF), '-d', str(doctrees), '-E', '-W', '--keep-going', '-n', '-q',
            '-D', f"project={cfg.get('title', cfg.lib_name)}", '-D', f"copyright={cfg.get('copyright', '')}", str(src), str(out)]
    env = {k: os.environ.get(k) for k in ('SOURCE_DATE_EPOCH', 'PYTHONHASHSEED')}
    os.environ.update(SOURCE_DATE_EPOCH='0', PYTHONHASHSEED='0')
    try: rc = build_main(args)
    finally:
        for k, v in env.items():
            if v is None: os.environ.pop(k, None)
            else: os.environ[k] = v
    if rc: raise SystemExit(f"sphinx-build failed (exit {rc}): see the warnings above")


def _outside_code(s: str, f) -> str:
    "Apply `f(text, spans)` to Markdown text `s` whose code spans are placeholders `\\x00<i>\\x00` (`spans[i]`)"
    spans = []
    s = f(_re_code_span.sub(lambda m: spans.append(m.group(0)) or f'\x00{len(spans) - 1}\x00', s), spans)
    return re.sub(r'\x00(\d+)\x00', lambda m: spans[int(m.group(1))], s)


def myst_to_gfm(md: str) -> str:
    "MyST that GitHub does not render -> plain Markdown (README): admonitions -> quotes, tabs -> bold titles, refs -> links"
    titles = {lbl: t for lbl, t in re.findall(r'^\(([\w.:-]+)\)=\s*\n#{1,6}\s+(.*?)\s*$', md, flags=re.M)}
    def refs(s, spans):                            # {ref}`label` / {ref}`text <label>` -> a link to the heading
        return re.sub(r'\{ref\}\x00(\d+)\x00', lambda m: ref(*re.fullmatch(r'(.*?)\s*(?:<([^<>]*)>)?', spans[int(m.group(1))].strip('`')).groups()), s)
    def ref(text, lbl):
        text, lbl = (text, lbl) if lbl else (None, text)
        t = titles.get(lbl)
        if not t: return text or lbl
        return f"[{text or t}](#" + re.sub(r'[^\w\- ]', '', t.lower()).replace(' ', '-') + ')'
    out, stack, fence, opened = [], [], None, False
    for line in md.split('\n'):
        q = '> ' * stack.count('quote')
        m = _re_fence.match(line)
        if fence or m:
            if fence is None: fence = m.group(1)
            elif line.strip().startswith(fence) and not line.strip().strip(fence[0]): fence = None
            out.append(q + line); opened = False; continue
        m = re.match(r'^:{3,}\{([\w-]+)\}\s*(.*)$', line)
        if m:
            name, arg = m.group(1), m.group(2).strip()
            if name in _CALLOUTS | {'admonition', 'seealso', 'danger', 'error', 'hint', 'attention'}:
                out.append(q + f"> **{arg or name.capitalize()}**"); stack.append('quote')
            else:
                if name == 'tab-item': out.append(q + f'**{arg}**')
                stack.append(name)
            opened = True; continue
        if re.match(r'^:{3,}\s*$', line) and stack: stack.pop(); out.append(''); continue
        if opened and re.match(r'^:[\w-]+:', line): continue          # directive options
        opened = False
        if re.match(r'^\([\w.:-]+\)=\s*$', line): continue             # MyST labels
        out.append(q + _outside_code(line, refs))
    return re.sub(r'\n{3,}', '\n\n', '\n'.join(out)).rstrip('\n')


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
    body = myst_to_gfm('\n\n'.join(x for x in out if x))
    return '<!-- generated from nbs/index.ipynb by tools/build_docs.py: edit the notebook, not this file -->\n\n' + body + '\n'


def sync_dir(src: Path, dst: Path):
    "Make `dst` identical to `src`, rewriting only changed files (keeps PRESERVE files)"
    dst.mkdir(parents=True, exist_ok=True)
    new = {p.relative_to(src).as_posix() for p in src.rglob('*') if p.is_file()}
    old = {p.relative_to(dst).as_posix() for p in dst.rglob('*') if p.is_file()}
    for rel in sorted(old - new):
        if rel not in PRESERVE: (dst/rel).unlink()
    for rel in sorted(new):
        if not (dst/rel).exists() or (dst/rel).read_bytes() != (src/rel).read_bytes():
            (dst/rel).parent.mkdir(parents=True, exist_ok=True); shutil.copyfile(src/rel, dst/rel)
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
            if base and (url.startswith(base) or url.startswith(base.replace('https://', 'http://', 1))):
                errs.append(f"{rel}:{line}: absolute link to the site itself (should be relative): {url}"); continue
            sp = urlsplit(url)
            if sp.scheme or url.startswith('//'):
                if sp.scheme in ('http', 'https', 'mailto', 'data', 'javascript'): continue
                errs.append(f"{rel}:{line}: unexpected URL scheme: {url}"); continue
            path, frag = unquote(sp.path), unquote(sp.fragment)
            if path.startswith('/'): errs.append(f"{rel}:{line}: root-absolute link breaks under a base URL: {url}"); continue
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
    mapping = {}
    for m in order:
        if m in state and m not in mapping: mapping[m] = hashlib.md5(f'{name}:{len(mapping)}'.encode()).hexdigest()
    def rep(x):
        if isinstance(x, dict): return type(x)({k: rep(v) for k, v in x.items()})
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
    """Execute notebooks in place with nbclient (saving widget state), then `nbdev_clean` them. Flagged cells are
    skipped, except `face robust peers data` cells whose needs are met here (tools/cell_needs.py, as in the notebook
    tests) and the flags in `run_flags` (e.g. 'slow cuda')."""
    import asyncio, nbformat
    from nbclient import NotebookClient
    from nbdev.clean import nbdev_clean
    from nbdev.process import extract_directives
    from cell_needs import forced_flags
    skip = set(get_cfg().get('tst_flags', '').split()) - set(forced_flags(run_flags))
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
        log(f"executed {p.name} in {time.time()-t0:.1f}s ({len(added)} cells skipped: {' '.join(sorted(skip)) or 'none'}), {sz/1e3:.0f} KB")
        if sz > NB_SIZE_WARN: log(f"  warning: {p.name} is {sz/1e6:.1f} MB: keep figures small (lower dpi/figsize, fewer outputs)")
    return failed


# ----------------------------------------------------------------------------------------------------------
def _versions():
    from importlib.metadata import version, PackageNotFoundError
    res = []
    for p in ('nbdev', 'fastcore', 'sphinx', 'myst-nb', 'myst-parser', 'sphinx-design', 'furo', 'docutils', 'pygments'):
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
    nbs = Path(a.nbs or cfg.nbs_path).resolve()
    if a.execute is not None:
        if str(TOOLS) not in sys.path: sys.path.insert(0, str(TOOLS))
        paths = [Path(p).resolve() for p in a.execute] or find_notebooks(nbs)
        return 1 if execute_notebooks(paths, a.timeout, a.flags.split(), a.allow_errors) else 0
    if a.links:
        errs = check_links(out)
        for e in errs: print(e)
        print(f"link check: {len(errs)} problem(s) in {out}")
        return 1 if errs else 0
    with tempfile.TemporaryDirectory(prefix='sf_site_') as tmp:
        site = Path(tmp)/'site'
        info = build_site(site, nbs, a.workers)
        errs = check_links(site)
        for e in errs: print(f"broken link: {e}")
        readme = readme_markdown(nbs/cfg.get('readme_nb', 'index.ipynb'))
        if a.check:
            diffs = compare_dirs(site, out)
            if not (REPO/'README.md').exists() or (REPO/'README.md').read_text() != readme: diffs.append('stale: README.md (generated from nbs/index.ipynb)')
            for d in diffs: print(d)
            if diffs:
                print(f"{out} is out of date: run `python tools/build_docs.py` and commit {out.name}/")
                print("(if the notebooks did not change, compare generator versions with the ones that built docs/: " + ', '.join(_versions()) + ")")
            print(f"check: {len(diffs)} difference(s), {len(errs)} broken link(s)")
            return 1 if (diffs or errs) else 0
        sync_dir(site, out)
        (REPO/'README.md').write_text(readme)
        print(f"wrote {info['pages']} pages to {out}" + (f"; {len(errs)} broken link(s)" if errs else ''))
        return 1 if errs else 0


if __name__ == '__main__':
    sys.exit(main())
