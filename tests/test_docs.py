"""Tests for the offline docs site built by `tools/build_docs.py` (nbdev processing + Sphinx/myst-nb) into `docs/`.

- fast: structure of docs/ (local assets only), the API entries (docments table, nbdev anchors), the link checker
  (on docs/ and on a deliberately broken site), page naming and slugs, the Quarto -> MyST translation, README rules;
- browser (playwright + Debian chromium, skipped if either is missing): every page in docs/ loads with no console
  error, no failed or external request, has a title and a sidebar that marks (and shows) the current page; widgets
  render; math is typeset by the vendored MathJax; search finds a documented function and lands on its anchor; the
  index's tab set, callout and cross-reference work;
- a self-contained round trip: a scratch notebook (ipywidgets slider + Output(figure), show_doc, Quarto callout,
  code-fold, fig-cap, asis Markdown, MyST tabs, math, flagged cells) is executed by the `--execute` machinery, built
  by `build_site` and checked in the HTML and in the browser.

`SPARSEFACE_DOCS_DIR=/some/site pytest tests/test_docs.py` runs the page tests against another built site.
"""
from __future__ import annotations

import functools, http.server, json, os, re, sys, threading
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO/'tools'))
import build_docs, docs_myst  # noqa: E402
from cell_needs import missing_needs  # noqa: E402
from docs_links import check_links  # noqa: E402
from execute_nbs import execute_notebooks  # noqa: E402

SITE_URL = build_docs.site_url(build_docs.get_cfg())   # https://sparseface.github.io/sparseface/

DOCS = Path(os.environ.get('SPARSEFACE_DOCS_DIR') or REPO/'docs').resolve()
PAGES = sorted(p.relative_to(DOCS).as_posix() for p in DOCS.rglob('*.html')) if DOCS.exists() else []
CHROMIUM = '/usr/bin/chromium'   # the `browser` fixture (Debian chromium via playwright, never downloaded) is in conftest.py
VIEW = 'application/vnd.jupyter.widget-view+json'
MATHJAX = '_static/mathjax/startup.js'

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
    for f in ('.nojekyll', 'search.html', 'searchindex.js', MATHJAX, '_static/html-manager/embed.js', '_static/sparseface.js'):
        assert (DOCS/f).is_file(), f"{DOCS/f} missing"
    assert not (DOCS/'_sources').exists() and not (DOCS/'.buildinfo').exists()


def test_only_local_assets():
    "No page loads a script, stylesheet, image or font from outside the site (no CDN, no web fonts)"
    for name in PAGES:
        h = (DOCS/name).read_text(encoding='utf-8')
        for tag, url in re.findall(r'<(script|link|img|iframe|source)\b[^>]*?\s(?:src|href)="([^"]+)"', h):
            if tag == 'link' and re.search(rf'<link\b[^>]*href="{re.escape(url)}"[^>]*rel="(?:canonical|prev|next|index|search)"', h): continue
            assert not re.match(r'(https?:)?//', url), f'{name}: <{tag}> loads {url}'
    for css in DOCS.glob('_static/**/*.css'):
        assert not re.search(r'@import\s+url\((["\']?)(https?:)?//|url\((["\']?)(https?:)?//', css.read_text(errors='ignore')), css


def test_every_notebook_has_a_page():
    if DOCS != (REPO/'docs').resolve(): pytest.skip('SPARSEFACE_DOCS_DIR is not the repo docs/')
    nbs = REPO/'nbs'
    for nb in build_docs.find_notebooks(nbs):
        assert (DOCS/build_docs.page_path(nb, nbs)).is_file(), f"no page for {nb.relative_to(REPO)}"


def test_api_entries():
    "show_doc entries carry nbdev's docments table and the anchors nbdev's doc links use (`core.html#check_type`)"
    h = (DOCS/'core.html').read_text(encoding='utf-8')
    assert 'id="check_type"' in h and 'id="registry"' in h
    i = h.index('id="check_range"')                   # check_range(value, name:str, lo=None, ...): every column
    table = h[i:h.index('</table>', i)]
    for col in ('Type', 'Default', 'Details'): assert f'<strong>{col}</strong>' in table
    assert '<code class="docutils literal notranslate"><span class="pre">value</span></code>' in table
    assert '<span class="pre">None</span>' in table and 'Smallest allowed value' in table
    assert 'class="sf-source reference external"' in h[i - 300:i + 2000]


def test_links():
    errs = check_links(DOCS, SITE_URL)
    assert not errs, 'broken links:\n' + '\n'.join(errs)


def test_link_checker_finds_problems(tmp_path):
    (tmp_path/'sub').mkdir()
    (tmp_path/'a.html').write_text('<h2 id="x">X</h2><a href="sub/b.html#y">ok</a><a href="#x">ok</a>'
                                   '<a href="missing.html">bad</a><a href="sub/b.html#nope">bad</a>'
                                   '<img src="img.png"><a href="https://sparseface.github.io/sparseface/a.html">abs</a>'
                                   '<a href="https://example.org/x.html">external</a>')
    (tmp_path/'sub'/'b.html').write_text('<p id="y"></p><a href="../a.html#x">ok</a><script src="/root.js"></script>')
    errs = check_links(tmp_path, base='https://sparseface.github.io/sparseface/')
    assert len(errs) == 5, errs
    for s in ('missing.html', '#nope', 'img.png', 'absolute link to the site itself', 'root-absolute'):
        assert any(s in e for e in errs), (s, errs)


def test_page_names_and_slugs():
    nbs = Path('/x/nbs')
    assert build_docs.page_path(nbs/'00_core.ipynb', nbs) == 'core.html'
    assert build_docs.page_path(nbs/'index.ipynb', nbs) == 'index.html'
    assert build_docs.page_path(nbs/'12_featsel.attribution.ipynb', nbs) == 'featsel.attribution.html'
    assert build_docs.page_path(nbs/'50_face.ipynb', nbs) == 'face.html'
    assert build_docs.page_path(nbs/'tutorials'/'01_intro.ipynb', nbs) == 'tutorials/intro.html'
    # pandoc/Quarto identifiers, which nbdev's doc links (`core.html#registry.create`) rely on
    assert docs_myst.slugify('Registry.create') == 'registry.create'
    assert docs_myst.slugify('check_range') == 'check_range'
    assert docs_myst.slugify('1. Argument checks!') == 'argument-checks'


def _site(tmp_path, names=('00_core', '11_sparse.dst', 'index')):
    nbs = tmp_path/'nbs'; (nbs/'tutorials').mkdir(parents=True)
    for n in names: (nbs/f'{n}.ipynb').write_text('{}')
    (nbs/'tutorials'/'01_intro.ipynb').write_text('{}'); (nbs/'fig.png').write_bytes(b'png')
    site = docs_myst.Site(nbs, {nb: build_docs.page_path(nb, nbs) for nb in build_docs.find_notebooks(nbs)}, SITE_URL)
    site.anchors = {'core.html': {'check_type', 'registry'}, 'sparse.dst.html': set(), 'index.html': set(), 'tutorials/intro.html': set()}
    return nbs, site


def test_markdown_translation(tmp_path):
    "Quarto callouts/tabsets/heading ids, nbdev doc links, `.ipynb` links and `NN_name` references -> MyST"
    nbs, site = _site(tmp_path)
    md = ('::: {.callout-warning}\n## Careful\nSee [`check_type`](https://sparseface.github.io/sparseface/core.html#check_type),\n'
          '[the `dst`\nengine](../11_sparse.dst.ipynb) and `11_sparse.dst`; `Registry.create` stays code.\n:::\n\n'
          '[[`Registry`](https://sparseface.github.io/sparseface/core.html#registry)](https://sparseface.github.io/sparseface/core.html#registry)\n\n'
          '::: {.panel-tabset}\n## One\nfirst\n## Two\n::: {.callout-tip title="Hint"}\nnested\n:::\n:::\n\n'
          '## Results {#sec-results .unnumbered}\n\n```python\n::: {.callout-note}\n[x](00_core.ipynb)\n```\n\n'
          '![a figure](../fig.png) [up](../index.ipynb) [missing](00_core.ipynb) [gone](https://sparseface.github.io/sparseface/core.html#registry.nope)')
    out = docs_myst.translate_markdown(md, nbs/'tutorials'/'01_intro.ipynb', 'tutorials/intro.html', site)
    assert ':::{admonition} Careful\n:class: warning\n' in out and '## Careful' not in out
    assert '[`check_type`](../core.ipynb#check_type)' in out and '[the `dst`\nengine](../sparse.dst.ipynb)' in out
    assert '[`11_sparse.dst`](../sparse.dst.ipynb)' in out and '`Registry.create` stays' in out
    assert '\n[`Registry`](../core.ipynb#registry)\n' in out                # nbdev's link inside a link's text goes
    assert re.search(r'^(:{4,})\{tab-set\}\n(:{3,})\{tab-item\} One\n\nfirst\n\2\n\2\{tab-item\} Two\n\n:::\{admonition\} Hint\n:class: tip\n\nnested\n:::\n\2\n\1$', out, re.M), out
    assert '(sec-results)=\n## Results\n' in out
    assert '```python\n::: {.callout-note}\n[x](00_core.ipynb)\n```' in out      # code is left alone
    assert '[up](../index.ipynb)' in out and '[gone](../core.ipynb#registry)' in out
    assert '[missing](00_core.ipynb)' in out                         # no such notebook next to it: MyST reports it
    assert site.files == {'fig.png': (nbs/'fig.png').resolve()}       # local files are copied along
    assert any('registry.nope' in n for n in site.notes)


def test_readme_rules(tmp_path):
    "README.md: markdown cells as they are (MyST directives made plain), shown code + text output, hidden cells left out"
    import nbformat
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell('#| hide\nsecret = 1'),
                nbformat.v4.new_markdown_cell('(lbl)=\n## Section A\n\n:::{note}\nSee {ref}`lbl`.\n:::\n\n::::{tab-set}\n:::{tab-item} One\nx\n:::\n::::'),
                nbformat.v4.new_code_cell('1 + 1', outputs=[nbformat.v4.new_output('execute_result', {'text/plain': '2'})]),
                nbformat.v4.new_code_cell('#| echo: false\nprint("hi")', outputs=[nbformat.v4.new_output('stream', text='hi\n')])]
    nbformat.write(nb, tmp_path/'index.ipynb')
    r = build_docs.readme_markdown(tmp_path/'index.ipynb')
    assert 'secret' not in r and '(lbl)=' not in r and '{ref}' not in r and ':::' not in r
    assert '> **Note**\n> See [Section A](#section-a).' in r and '**One**\nx' in r
    assert '```python\n1 + 1\n```\n\n```\n2\n```' in r and 'print' not in r and '```\nhi\n```' in r


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
    ctx = browser.new_context(viewport={'width': 1280, 'height': 800})
    pg = ctx.new_page()
    problems = []
    pg.on('console', lambda m: m.type == 'error' and problems.append(f'console error: {m.text} @ {m.location}'))
    pg.on('pageerror', lambda e: problems.append(f'page error: {e}'))
    # A request cancelled because the page navigated away is not a site problem: Sphinx's search fetches each hit's page
    # for its summary (clicking a hit aborts the rest), and the browser's own favicon fetch (type 'other') is aborted by
    # a quick `goto`. A missing file still fails: `test_page_loads` sees its 4xx answer. Every other failed request fails.
    pg.on('requestfailed', lambda r: not (r.failure == 'net::ERR_ABORTED' and r.resource_type in ('fetch', 'xhr', 'other'))
          and problems.append(f'request failed: {r.url} ({r.failure}, {r.resource_type})'))
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


def check_page(pg, url: str, html_text: str, in_nav=True):
    "Load `url` and check it as every page must be (returns the number of widget views rendered)"
    pg.goto(url, wait_until='load')
    n_views, png, slider = _widget_expectations(html_text)
    try:
        if n_views:
            pg.wait_for_function(f'document.querySelectorAll(".widget-subarea").length >= {n_views}', timeout=15000)
            pg.locator('.jupyter-widgets').first.wait_for(state='visible', timeout=10000)
            if slider: pg.locator('.widget-slider, .widget-hslider').first.wait_for(state='visible', timeout=10000)
            if png: pg.locator('.widget-subarea img[src^="data:image/png"]').first.wait_for(state='visible', timeout=10000)
        if 'class="math notranslate' in html_text:     # typeset by the vendored MathJax (SVG output)
            assert MATHJAX in html_text, 'math without the vendored MathJax'
            pg.wait_for_function('document.querySelectorAll(".math mjx-container svg").length >= document.querySelectorAll(".math").length', timeout=15000)
    except AssertionError: raise
    except Exception as e:
        raise AssertionError(f'page did not render on {url}: {str(e).splitlines()[0]}\n' + '\n'.join(pg.problems)) from None
    pg.wait_for_timeout(50)
    title, h1 = pg.title(), pg.locator('article[role=main] h1')
    assert title.strip(), 'page <title> missing'
    if in_nav:                                          # a notebook page (search.html is Sphinx's own)
        assert h1.count() >= 1 and h1.first.inner_text().strip(), 'page title heading missing'
        assert h1.first.inner_text().strip().rstrip('#').strip() in title
    assert pg.locator('.sidebar-tree a.reference').count() >= 2, 'sidebar missing'
    if in_nav:
        cur = pg.locator('.sidebar-tree li.current-page > a.current')
        assert cur.count() == 1, 'current page not marked in the sidebar'
        box = pg.locator('.sidebar-scroll').bounding_box(); r = cur.bounding_box()
        assert box['y'] <= r['y'] and r['y'] + r['height'] <= box['y'] + box['height'], 'current page not scrolled into view in the sidebar'
    assert pg.locator('.sidebar-search').first.is_visible()
    assert not pg.problems, '\n'.join(pg.problems)
    return n_views


@needs_browser
@pytest.mark.parametrize('name', PAGES or ['index.html'])
def test_page_loads(name, page, serve):
    assert (DOCS/name).is_file(), f'{DOCS/name} missing: build the docs first'
    check_page(page, serve(DOCS) + name, (DOCS/name).read_text(encoding='utf-8'), in_nav=name != 'search.html')
    if not PAGES: pytest.fail('no pages in docs/')


def _pick_symbol():
    "A documented function (show_doc heading with an nbdev anchor) and its page, preferring well-known ones"
    for name, page in (('default_device', 'core.html'), ('set_seed', 'core.html'), ('check_type', 'core.html')):
        if (DOCS/page).is_file() and f'id="{name}"' in (DOCS/page).read_text(encoding='utf-8'): return name, page
    return None, None


@needs_browser
def test_search(page, serve):
    name, pg_name = _pick_symbol()
    if name is None: pytest.skip('no documented symbols in the site')
    base = serve(DOCS)
    page.goto(base + 'index.html', wait_until='load')
    page.fill('.sidebar-search', name); page.press('.sidebar-search', 'Enter')    # furo's search box -> search.html
    page.wait_for_url('**/search.html?q=*')
    page.locator('#search-results li a').first.wait_for(state='visible', timeout=15000)
    hrefs = [a.get_attribute('href') for a in page.locator('#search-results li a').all()]
    hit = next((h for h in hrefs[:3] if re.split('[?#]', h)[0] == pg_name and '#' in h), None)
    assert hit, (name, hrefs[:5])
    page.locator(f'#search-results li a[href="{hit}"]').first.click()
    page.wait_for_url(f'**/{pg_name}*#*')
    page.wait_for_load_state('load')      # let the page finish loading: leaving it earlier aborts its requests
    anchor = page.url.partition('#')[2]
    assert page.locator(f'[id="{anchor}"]').count() == 1 and page.locator(f'[id="{name}"]').count() == 1
    page.goto(base + 'search.html?q=zzzqqqxxnotfound', wait_until='load')
    page.wait_for_function('document.querySelector("#search-results") && /did not match|no.*match/i.test(document.querySelector("#search-results").innerText)', timeout=15000)
    assert not page.problems, '\n'.join(page.problems)


TUTORIALS = sorted(p for p in PAGES if p.startswith('tutorials/'))


@needs_browser
def test_tutorials_section(page, serve):
    "The sidebar has a Tutorials section listing every tutorial; each opens from it with its saved plots and run time"
    if DOCS != (REPO/'docs').resolve(): pytest.skip('SPARSEFACE_DOCS_DIR is not the repo docs/')
    want = sorted(build_docs.page_path(nb, REPO/'nbs') for nb in build_docs.find_notebooks(REPO/'nbs')
                  if nb.relative_to(REPO/'nbs').parts[0] == 'tutorials')
    if not want: pytest.fail('no tutorial notebooks in nbs/tutorials/')
    assert TUTORIALS == want, (TUTORIALS, want)
    base = serve(DOCS)
    page.goto(base + 'index.html', wait_until='load')
    cap = page.locator('.sidebar-tree p.caption', has_text='Tutorials')
    assert cap.count() == 1, 'no "Tutorials" caption in the sidebar'
    links = cap.locator('xpath=following-sibling::ul[1]').locator('a.reference')
    hrefs = [links.nth(i).get_attribute('href') for i in range(links.count())]
    assert sorted(h.split('#')[0] for h in hrefs) == want, hrefs
    for i, h in enumerate(hrefs):
        if i: page.goto(base + 'index.html', wait_until='load')
        page.locator('.sidebar-tree p.caption', has_text='Tutorials').locator('xpath=following-sibling::ul[1]') \
            .locator(f'a.reference[href="{h}"]').click()
        page.wait_for_url(f'**/{h}'); page.wait_for_load_state('load')
        main = page.locator('article[role=main]')
        assert main.locator('h1').count() == 1 and re.search(r'Run time:?\s*about \d', main.inner_text()), h
        assert main.locator('img[src$=".png"], img[src^="data:image"]').count() >= 1, f'{h}: no plot in the saved outputs'
        assert page.locator('.sidebar-tree li.current-page > a.current').count() == 1, f'{h}: not marked in the sidebar'
    assert not page.problems, '\n'.join(page.problems)


@needs_browser
def test_index_tabs_callout_xref(page, serve):
    "The index shows the writing features new papers use: a sphinx-design tab set, a callout, a cross-reference"
    h = (DOCS/'index.html').read_text(encoding='utf-8')
    if 'sd-tab-set' not in h: pytest.skip('the index has no tab set (nbs/index.ipynb, "Writing a notebook\'s prose")')
    page.goto(serve(DOCS) + 'index.html', wait_until='load')
    _check_tabs_callout_xref(page)


def _check_tabs_callout_xref(page):
    tabs = page.locator('.sd-tab-set').first
    labels, panels = tabs.locator('label.sd-tab-label'), tabs.locator('.sd-tab-content')
    assert labels.count() >= 2 and panels.nth(0).is_visible() and not panels.nth(1).is_visible()
    labels.nth(1).click()
    assert panels.nth(1).is_visible() and not panels.nth(0).is_visible()
    callout = page.locator('div.admonition').first
    assert callout.is_visible() and callout.locator('.admonition-title').inner_text().strip()
    xref = callout.locator('a.reference.internal').first
    target = xref.get_attribute('href')
    assert target and '#' in target and xref.inner_text().strip()
    xref.click(); page.wait_for_timeout(200)
    assert page.locator(f'[id="{target.partition("#")[2]}"]').count() == 1
    assert not page.problems, '\n'.join(page.problems)


# ---------------------------------------------------------------------------------------------------------------
# Scratch notebook round trip: --execute (nbclient, widget state) -> build -> HTML and browser checks
# ---------------------------------------------------------------------------------------------------------------
_SCRATCH_CELLS = [
    ('markdown', '# Scratch widgets\n\n> A slider and an Output widget holding a small matplotlib figure.'),
    ('code', 'import ipywidgets as W\nimport matplotlib.pyplot as plt\nfrom IPython.display import display, Markdown'),
    ('markdown', '## Demo\n\nSee [the other page](02_other.ipynb#section-two), `02_other`, $\\alpha^2$ and\n\n$$\\sum_{i=1}^n x_i$$\n\n'
                 '::: {.callout-note}\nA Quarto callout; see {ref}`the tests <scratch-tests>`.\n:::\n\n::::{tab-set}\n:::{tab-item} First\nfirst tab\n:::\n'
                 ':::{tab-item} Second\nsecond tab\n:::\n::::'),
    ('code', 's = W.IntSlider(value=3, min=1, max=9, description="n")\nout = W.Output()\n'
             'with out:\n    fig, ax = plt.subplots(figsize=(2, 1.5), dpi=50)\n    ax.plot(range(s.value))\n'
             '    display(fig); plt.close(fig)\nW.VBox([s, W.Button(description="go", icon="check"), out])'),
    ('code', '#| exports\ndef scratch_fn(x:int, # The input\n               scale:float=2.0, # A | factor\n              ):\n'
             '    "Return `x` unchanged"\n    return x'),
    ('code', '#| hide\nhidden_marker = 1'),
    ('code', '#| echo: false\nprint("echo-false-output")'),
    ('code', '#| output: false\nprint("output-false-source")'),
    ('code', '#| code-fold: true\n#| code-summary: "Show the folded code"\nprint("folded-output")'),
    ('code', '#| fig-cap: "A small caption"\nfig, ax = plt.subplots(figsize=(2, 1.5), dpi=50); ax.plot([1, 2])'),
    ('code', '#| output: asis\ndisplay(Markdown("### Asis heading\\n\\nasis *markdown*"))'),
    ('code', '#| slow\nraise RuntimeError("slow cells must be skipped")'),
    ('code', '#| eval: false\nraise RuntimeError("eval: false cells must be skipped")'),
    ('code', '#| peers\nprint("peers-ran")'),
    ('markdown', '(scratch-tests)=\n## Tests'),
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
    assert execute_notebooks([nbs/'01_scratch.ipynb'], timeout=180) == 0
    build_docs.build_site(d/'site', nbs=nbs, quiet=True)
    return nbs, d/'site'


def test_execute_saves_widgets_and_skips_flagged_cells(scratch_site):
    nbs, _ = scratch_site
    nb = json.loads((nbs/'01_scratch.ipynb').read_text())
    cells = [c for c in nb['cells'] if c['cell_type'] == 'code']
    assert any(VIEW in o.get('data', {}) for o in cells[1]['outputs'])
    slow, noeval, peers, last = cells[-4:]
    assert slow['outputs'] == [] and noeval['outputs'] == [], 'flagged cells were executed'
    assert 'tags' not in slow['metadata'] and slow['execution_count'] is None   # tags restored, nbdev_clean ran
    # `face robust peers data` cells run when their needs are met (tools/cell_needs.py, as in the notebook tests)
    assert bool(peers['outputs']) == ('peers' not in missing_needs()), peers['outputs']
    assert last['outputs'][0]['text'] == ['done\n']
    state = nb['metadata']['widgets']['application/vnd.jupyter.widget-state+json']['state']
    assert any(v['model_name'] == 'OutputModel' and 'image/png' in json.dumps(v) for v in state.values())
    import hashlib   # model ids are renumbered deterministically (no random UUIDs in git diffs)
    assert set(state) == {hashlib.md5(f'01_scratch.ipynb:{i}'.encode()).hexdigest() for i in range(len(state))}


def test_scratch_html(scratch_site):
    _, site = scratch_site
    assert not check_links(site, SITE_URL)
    h = (site/'scratch.html').read_text()
    assert 'href="other.html#section-two"' in h and 'href="other.html"' in h     # .ipynb link and `02_other` reference
    # nbdev processing: show_doc for `#| exports` (heading anchor + docments table), folded exported source
    assert 'id="scratch_fn"' in h and '<strong>Details</strong>' in h and 'A | factor' in h and '2.0' in h
    assert re.search(r'<details[^>]*sd-dropdown[^>]*>\s*<summary[^>]*>\s*<span class="sd-summary-text">Exported source', h)
    assert re.search(r'<details[^>]*sd-dropdown[^>]*>\s*<summary[^>]*>\s*<span class="sd-summary-text">Show the folded code', h) and 'folded-output' in h
    assert 'hidden_marker' not in h and 'echo-false-output' in h and 'print(&quot;echo' not in h
    assert h.count('output-false-source') == 1 and '#|' not in h
    assert '<figcaption>' in h and 'A small caption' in h and re.search(r'<img[^>]+src="_images/[0-9a-f]+\.png"', h)
    assert 'id="asis-heading"' in h and '<em>markdown</em>' in h                   # asis Markdown is part of the page
    assert 'class="admonition note"' in h and 'sd-tab-set' in h and MATHJAX in h
    assert 'slow cells must be skipped' in h                                      # the code is shown, not run


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
    assert page.locator('figure img').first.evaluate('i => i.naturalWidth') > 0
    assert page.locator('.math mjx-container svg').count() >= 2
    _check_tabs_callout_xref(page)
