"""Tests for the offline docs site built by `tools/build_docs.py` into `docs/`.

- fast: structure of docs/, the link checker (on docs/ and on a deliberately broken site), page naming, slugs;
- browser (playwright + Debian chromium, skipped if either is missing): every page in docs/ loads with no console
  error, no failed or external request, a title and a sidebar; widgets render; search finds a function;
- a self-contained widget round trip: a scratch notebook with an ipywidgets slider + Output(figure) is executed by
  `--execute` machinery, rendered, and checked in the browser (so widget embedding is tested even before the
  project's own notebooks save widget outputs).

`SPARSEFACE_DOCS_DIR=/some/site pytest tests/test_docs.py` runs the page tests against another built site.
"""
from __future__ import annotations

import functools, http.server, json, os, re, sys, threading
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO/'tools'))
import build_docs  # noqa: E402

DOCS = Path(os.environ.get('SPARSEFACE_DOCS_DIR') or REPO/'docs').resolve()
PAGES = sorted(p.relative_to(DOCS).as_posix() for p in DOCS.rglob('*.html')) if DOCS.exists() else []
CHROMIUM = '/usr/bin/chromium'   # the `browser` fixture (Debian chromium via playwright, never downloaded) is in conftest.py
VIEW = 'application/vnd.jupyter.widget-view+json'

try:
    import playwright.sync_api  # noqa: F401
    _no_browser = None if os.path.exists(CHROMIUM) else f'{CHROMIUM} not found (apt-get install chromium)'
except ImportError:
    _no_browser = 'the playwright Python package is not installed'
def needs_browser(f):
    "Mark a test as a browser test, skipped with a clear reason when chromium or playwright is missing"
    f = pytest.mark.skipif(_no_browser is not None, reason=f'browser tests need chromium + playwright: {_no_browser}')(f)
    return pytest.mark.browser(f)


# ---------------------------------------------------------------------------------------------------------------
# Fast tests (no browser)
# ---------------------------------------------------------------------------------------------------------------
def test_docs_built():
    assert (DOCS/'index.html').is_file(), f"{DOCS}/index.html missing: run `python tools/build_docs.py`"
    for f in ('.nojekyll', 'search.json', '_static/site.css', '_static/search.js', '_static/pygments.css'):
        assert (DOCS/f).is_file(), f"{DOCS/f} missing"
    idx = json.loads((DOCS/'search.json').read_text())
    assert idx and {'p', 's', 'u', 't'} <= set(idx[0])
    for e in idx: assert (DOCS/e['u'].partition('#')[0]).is_file(), e['u']


def test_every_notebook_has_a_page():
    if DOCS != (REPO/'docs').resolve(): pytest.skip('SPARSEFACE_DOCS_DIR is not the repo docs/')
    nbs = REPO/'nbs'
    for nb in build_docs.find_notebooks(nbs):
        assert (DOCS/build_docs.page_path(nb, nbs)).is_file(), f"no page for {nb.relative_to(REPO)}"


def test_links():
    errs = build_docs.check_links(DOCS)
    assert not errs, 'broken links:\n' + '\n'.join(errs)


def test_link_checker_finds_problems(tmp_path):
    (tmp_path/'sub').mkdir()
    (tmp_path/'a.html').write_text('<h2 id="x">X</h2><a href="sub/b.html#y">ok</a><a href="#x">ok</a>'
                                   '<a href="missing.html">bad</a><a href="sub/b.html#nope">bad</a>'
                                   '<img src="img.png"><a href="https://sparseface.github.io/sparseface/a.html">abs</a>'
                                   '<a href="https://example.org/x.html">external</a>')
    (tmp_path/'sub'/'b.html').write_text('<p id="y"></p><a href="../a.html#x">ok</a><script src="/root.js"></script>')
    errs = build_docs.check_links(tmp_path, base='https://sparseface.github.io/sparseface/')
    assert len(errs) == 5, errs
    for s in ('missing.html', '#nope', 'img.png', 'absolute link to the site itself', 'root-absolute'):
        assert any(s in e for e in errs), (s, errs)


def test_page_names_and_slugs():
    nbs = Path('/x/nbs')
    assert build_docs.page_path(nbs/'00_core.ipynb', nbs) == 'core.html'
    assert build_docs.page_path(nbs/'index.ipynb', nbs) == 'index.html'
    assert build_docs.page_path(nbs/'12_featsel.attribution.ipynb', nbs) == 'featsel.attribution.html'
    assert build_docs.page_path(nbs/'tutorials'/'01_intro.ipynb', nbs) == 'tutorials/intro.html'
    # pandoc/Quarto identifiers, which nbdev's doc links (`core.html#registry.create`) rely on
    assert build_docs.slugify('Registry.create') == 'registry.create'
    assert build_docs.slugify('check_range') == 'check_range'
    assert build_docs.slugify('1. Argument checks!') == 'argument-checks'


def test_markdown_rendering():
    md = build_docs.make_markdown()
    env = {}
    h = md.render('## Math $x^2$\n\n$$\\frac{1}{2}$$\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n::: {.callout-note}\nHi\n:::\n\n'
                  '```python\nx = 1\n```\n\n[source](https://x.org){target="_blank"}\n', env)
    assert '<h2 id="math-x2">' in h and '<math' in h and '<table>' in h and 'class="callout callout-note"' in h
    assert 'class="highlight"' in h and 'target="_blank"' in h and 'MathJax' not in h
    assert env['headings'] == [(2, 'math-x2', 'Math x^2')]


# ---------------------------------------------------------------------------------------------------------------
# Browser tests
# ---------------------------------------------------------------------------------------------------------------
class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *a): pass


@pytest.fixture(scope='module')
def serve():
    "serve(folder) -> base URL of an http.server on a free 127.0.0.1 port (one per folder, for the module)"
    servers = {}
    def _serve(folder):
        folder = str(Path(folder).resolve())
        if folder not in servers:
            srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), functools.partial(_Quiet, directory=folder))
            threading.Thread(target=srv.serve_forever, daemon=True).start()
            servers[folder] = srv
        return f'http://127.0.0.1:{servers[folder].server_address[1]}/'
    yield _serve
    for s in servers.values(): s.shutdown(); s.server_close()


@pytest.fixture
def page(browser):
    "A fresh page that records console errors, page errors, failed/4xx/external requests in `page.problems`"
    ctx = browser.new_context(viewport={'width': 1280, 'height': 900})
    pg = ctx.new_page()
    problems = []
    pg.on('console', lambda m: m.type == 'error' and problems.append(f'console error: {m.text} @ {m.location}'))
    pg.on('pageerror', lambda e: problems.append(f'page error: {e}'))
    pg.on('requestfailed', lambda r: problems.append(f'request failed: {r.url} ({r.failure})'))
    pg.on('response', lambda r: r.status >= 400 and problems.append(f'HTTP {r.status}: {r.url}'))
    pg.on('request', lambda r: not r.url.startswith(('http://127.0.0.1:', 'data:', 'blob:', 'about:'))
          and problems.append(f'request outside the site: {r.url}'))
    pg.problems = problems
    yield pg
    ctx.close()


def _widget_expectations(html_text: str):
    "(number of widget views, whether an Output widget holds a PNG, whether there is a slider) in a page"
    n = html_text.count(f'<script type="{VIEW}">')
    m = re.search(r'<script type="application/vnd.jupyter.widget-state\+json">(.*?)</script>', html_text, flags=re.S)
    state = json.loads(m.group(1).replace('<\\/', '</'))['state'] if m else {}
    png = any(v.get('model_name') == 'OutputModel' and 'image/png' in json.dumps(v.get('state', {})) for v in state.values())
    slider = any('Slider' in v.get('model_name', '') for v in state.values())
    return n, png, slider


def check_page(pg, url: str, html_text: str):
    pg.goto(url, wait_until='load')
    n_views, png, slider = _widget_expectations(html_text)
    if n_views:
        try:
            pg.wait_for_function(f'document.querySelectorAll(".widget-subarea").length >= {n_views}', timeout=15000)
            pg.locator('.jupyter-widgets').first.wait_for(state='visible', timeout=10000)
            if slider: pg.locator('.widget-slider, .widget-hslider').first.wait_for(state='visible', timeout=10000)
            if png: pg.locator('.widget-subarea img[src^="data:image/png"]').first.wait_for(state='visible', timeout=10000)
        except Exception as e:
            raise AssertionError(f'widgets did not render on {url}: {str(e).splitlines()[0]}\n' + '\n'.join(pg.problems)) from None
    else:
        pg.wait_for_timeout(50)
    title = pg.title()
    h1 = pg.locator('main h1.title')
    assert h1.count() == 1 and h1.inner_text().strip(), 'page title heading missing'
    assert h1.inner_text().strip() in title
    assert pg.locator('#sidebar a').count() >= 1, 'sidebar missing'
    assert pg.locator('#sidebar a[aria-current="page"]').count() == 1, 'current page not marked in the sidebar'
    assert pg.locator('#search-input').is_visible()
    assert not pg.problems, '\n'.join(pg.problems)
    return n_views


@needs_browser
@pytest.mark.parametrize('name', PAGES or ['index.html'])
def test_page_loads(name, page, serve):
    assert (DOCS/name).is_file(), f'{DOCS/name} missing: build the docs first'
    check_page(page, serve(DOCS) + name, (DOCS/name).read_text(encoding='utf-8'))
    if not PAGES: pytest.fail('no pages in docs/')


def _pick_symbol(index):
    "A documented symbol (show_doc heading) and its URL from search.json, preferring well-known ones"
    cands = [e for e in index if re.fullmatch(r'[A-Za-z_][\w.]*', e['s']) and '#' in e['u'] and e['u'] != 'index.html']
    for pref in ('default_device', 'set_seed', 'Registry'):
        for e in cands:
            if e['s'] == pref: return e
    return cands[0] if cands else None


@needs_browser
def test_search(page, serve):
    index = json.loads((DOCS/'search.json').read_text())
    e = _pick_symbol(index)
    if e is None: pytest.skip('no documented symbols in the site')
    base = serve(DOCS)
    page.goto(base + 'index.html', wait_until='load')
    page.fill('#search-input', e['s'])
    first = page.locator('#search-results a').first
    first.wait_for(state='visible', timeout=5000)
    hrefs = [a.get_attribute('href') for a in page.locator('#search-results a').all()]
    assert e['u'] in hrefs[:3], (e, hrefs)
    page.locator(f'#search-results a[href="{e["u"]}"]').first.click()
    page.wait_for_url('**/' + e['u'])
    anchor = e['u'].partition('#')[2]
    assert page.locator(f'[id="{anchor}"]').count() == 1
    page.fill('#search-input', 'zzzqqqxxnotfound')
    page.locator('#search-results .empty').wait_for(state='visible', timeout=5000)
    assert not page.problems, '\n'.join(page.problems)


def test_widget_pages_if_any():
    "Lists which pages embed widgets (informational; rendering is checked by test_page_loads)"
    pages = [p for p in PAGES if f'<script type="{VIEW}">' in (DOCS/p).read_text(encoding='utf-8')]
    for p in pages:
        html_text = (DOCS/p).read_text(encoding='utf-8')
        assert '_static/widgets/embed.js' in html_text and 'widget-state+json' in html_text, p
        assert (DOCS/p).parent.joinpath(*['..'] * p.count('/'), '_static', 'widgets', 'embed.js').resolve().is_file()


# ---------------------------------------------------------------------------------------------------------------
# Scratch notebook round trip: --execute (nbclient, widget state) -> build -> browser
# ---------------------------------------------------------------------------------------------------------------
_SCRATCH_CELLS = [
    ('markdown', '# Scratch widgets\n\n> A slider and an Output widget holding a small matplotlib figure.'),
    ('code', 'import ipywidgets as W\nimport matplotlib.pyplot as plt\nfrom IPython.display import display'),
    ('markdown', '## Demo\n\nSee [the other page](02_other.ipynb#section-two) and $\\alpha^2$.'),
    ('code', 's = W.IntSlider(value=3, min=1, max=9, description="n")\nout = W.Output()\n'
             'with out:\n    fig, ax = plt.subplots(figsize=(2, 1.5), dpi=50)\n    ax.plot(range(s.value))\n'
             '    display(fig); plt.close(fig)\nW.VBox([s, W.Button(description="go", icon="check"), out])'),
    ('code', '#| exports\ndef scratch_fn(x:int # The input\n              ):\n    "Return `x` unchanged"\n    return x'),
    ('code', '#| hide\nhidden_marker = 1'),
    ('code', '#| echo: false\nprint("echo-false-output")'),
    ('code', '#| output: false\nprint("output-false-source")'),
    ('code', '#| slow\nraise RuntimeError("slow cells must be skipped")'),
    ('code', '#| eval: false\nraise RuntimeError("eval: false cells must be skipped")'),
    ('code', 'print("done")'),
]


def _write_nb(path, cells):
    import nbformat
    nb = nbformat.v4.new_notebook(metadata={'kernelspec': {'name': 'python3', 'display_name': 'python3', 'language': 'python'}})
    nb.cells = [nbformat.v4.new_markdown_cell(s) if t == 'markdown' else nbformat.v4.new_code_cell(s) for t, s in cells]
    nbformat.write(nb, path)


@pytest.fixture(scope='module')
def scratch_site(tmp_path_factory):
    d = tmp_path_factory.mktemp('scratch')
    nbs = d/'nbs'; nbs.mkdir()
    _write_nb(nbs/'01_scratch.ipynb', _SCRATCH_CELLS)
    _write_nb(nbs/'index.ipynb', [('markdown', '# Scratch site\n\n> Index'), ('markdown', 'See [scratch](01_scratch.ipynb).')])
    _write_nb(nbs/'02_other.ipynb', [('markdown', '# Other\n\n> Another page'), ('markdown', '## Section two\n\nText.')])
    assert build_docs.execute_notebooks([nbs/'01_scratch.ipynb'], timeout=180) == 0
    build_docs.build_site(d/'site', nbs=nbs, quiet=True)
    return nbs, d/'site'


def test_execute_saves_widgets_and_skips_flagged_cells(scratch_site):
    nbs, _ = scratch_site
    nb = json.loads((nbs/'01_scratch.ipynb').read_text())
    cells = [c for c in nb['cells'] if c['cell_type'] == 'code']
    assert any(VIEW in o.get('data', {}) for o in cells[1]['outputs'])
    slow, noeval, last = cells[-3:]
    assert slow['outputs'] == [] and noeval['outputs'] == [], 'flagged cells were executed'
    assert 'tags' not in slow['metadata'] and slow['execution_count'] is None   # tags restored, nbdev_clean ran
    assert last['outputs'][0]['text'] == ['done\n']
    state = nb['metadata']['widgets']['application/vnd.jupyter.widget-state+json']['state']
    assert any(v['model_name'] == 'OutputModel' and 'image/png' in json.dumps(v) for v in state.values())
    import hashlib   # model ids are renumbered deterministically (no random UUIDs in git diffs)
    assert set(state) == {hashlib.md5(f'01_scratch.ipynb:{i}'.encode()).hexdigest() for i in range(len(state))}


def test_scratch_links(scratch_site):
    _, site = scratch_site
    assert not build_docs.check_links(site)
    html_text = (site/'scratch.html').read_text()
    assert 'href="other.html#section-two"' in html_text and '<math' in html_text
    # nbdev processing: show_doc for `#| exports`, folded exported source, hide / echo / output directives
    assert '<h3 id="scratch_fn">' in html_text and '<summary>Exported source</summary>' in html_text
    assert 'hidden_marker' not in html_text and 'echo-false-output' in html_text and 'print(&quot;echo' not in html_text
    assert html_text.count('output-false-source') == 1 and '#|' not in html_text


@needs_browser
def test_scratch_widget_renders(scratch_site, page, serve):
    _, site = scratch_site
    html_text = (site/'scratch.html').read_text()
    assert check_page(page, serve(site) + 'scratch.html', html_text) == 1
    assert page.locator('.widget-slider').first.is_visible()
    assert page.locator('.widget-button i.fa-check').first.is_visible()   # Font Awesome icon: fonts served locally
    assert page.evaluate('document.fonts.check("900 16px \'Font Awesome 5 Free\'")')
    img = page.locator('.widget-subarea img[src^="data:image/png"]').first
    assert img.is_visible() and img.evaluate('i => i.naturalWidth') > 0
