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

import argparse, json, os, re, shutil, sys, tempfile, time, warnings
from pathlib import Path

from docs_links import check_links
from docs_myst import Site, api_markdown, myst_to_gfm, page_anchors, toctrees, translate_notebook

# This module is imported again by the spawned nbdev worker processes: keep the top level cheap.
REPO = Path(__file__).resolve().parents[1]
TOOLS = Path(__file__).resolve().parent
CONF = TOOLS/'sphinx'                       # Sphinx configuration (conf.py, _static/)
PRESERVE = {'CNAME'}          # files in docs/ that the build never deletes
DROP = {'.buildinfo', 'objects.inv'}        # Sphinx outputs the site does not need (.buildinfo holds a config hash)
NB_SIZE_WARN = 1_000_000      # bytes: warn when a notebook is bigger than this


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


# ----------------------------------------------------------------------------------------------------------
# 1. nbdev processing (show_doc, directives, frontmatter, links) in spawned worker processes
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
    keys = ('PYTHONPATH', 'PYTHONHASHSEED', 'SPARSEFACE_DATA', 'CUDA_VISIBLE_DEVICES')
    old_path, old_env = list(sys.path), {k: os.environ.get(k) for k in keys}
    try:
        # spawned workers inherit sys.path: the repo (to import the library) and the entry point for doc links;
        # they must find the worker function by module name (not `__main__`), so import this file as a module
        for p in map(str, (TOOLS, ep, REPO)):
            if p not in sys.path: sys.path.insert(0, p)
        os.environ['PYTHONPATH'] = os.pathsep.join([str(ep), str(REPO)] + [p for p in (old_env['PYTHONPATH'] or '').split(os.pathsep) if p])
        os.environ['PYTHONHASHSEED'] = '0'   # stable set/dict reprs in show_doc output
        # the same pages on every machine: nbdev runs import cells (and cells mixing imports with code, see its FAQ),
        # which must not find the data folder or a GPU (defaults such as `device=default_device()` show in signatures)
        os.environ.pop('SPARSEFACE_DATA', None); os.environ['CUDA_VISIBLE_DEVICES'] = ""
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
# 2-3. MyST notebooks, Sphinx build, site assembly
# ----------------------------------------------------------------------------------------------------------
def build_site(out: Path, nbs: Path = None, n_workers: int = 2, quiet=False) -> dict:
    "Build the whole site into the empty folder `out`; return {'pages': n, 'notes': [...]}"
    cwd = os.getcwd()
    os.chdir(REPO)
    try: return _build_site(Path(out), nbs, n_workers, quiet)
    finally: os.chdir(cwd)


def _write(path: Path, text: str): path.parent.mkdir(parents=True, exist_ok=True); path.write_text(text, encoding='utf-8')
def _copy(f: Path, dst: Path): dst.parent.mkdir(parents=True, exist_ok=True); shutil.copyfile(f, dst)


def _build_site(out: Path, nbs, n_workers, quiet):
    t0, cfg = time.time(), get_cfg()
    nbs = Path(nbs or cfg.nbs_path).resolve()
    nb_list = find_notebooks(nbs)
    if not nb_list: raise SystemExit(f"no notebooks found in {nbs}")
    pages = {nb: page_path(nb, nbs) for nb in nb_list}             # 00_core.ipynb -> core.html
    if len(set(pages.values())) != len(pages): raise SystemExit("two notebooks map to the same page: " + ', '.join(pages.values()))
    for nb in nb_list:
        if nb.stat().st_size > NB_SIZE_WARN: log(f"  warning: {nb.relative_to(nbs)} is {nb.stat().st_size/1e6:.1f} MB (keep notebooks under ~1 MB)")
    site = Site(nbs, pages, site_url(cfg))
    with tempfile.TemporaryDirectory(prefix='sf_docs_') as tmp:
        tmp = Path(tmp); src = tmp/'src'
        process_notebooks(nb_list, nbs, tmp/'proc', tmp, cfg, n_workers=n_workers)          # 1. nbdev
        t1 = time.time()
        procs = {nb: json.loads((tmp/'proc'/nb.relative_to(nbs)).read_text(encoding='utf-8')) for nb in nb_list}
        site.anchors = {pages[nb]: page_anchors(j) for nb, j in procs.items()}
        nav = toctrees([(nb.relative_to(nbs), p) for nb, p in pages.items()])
        for nb, j in procs.items():                                                           # 2. MyST notebooks
            myst = translate_notebook(j, nb, pages[nb], site)
            if pages[nb] == 'index.html': myst['cells'].append({'cell_type': 'markdown', 'id': 'toctree', 'metadata': {}, 'source': nav})
            _write(src/(pages[nb][:-5] + '.ipynb'), json.dumps(myst, indent=1, sort_keys=True, ensure_ascii=False))
        if 'index.html' not in pages.values(): _write(src/'index.md', f"# {cfg.get('title', cfg.lib_name)}\n\n{nav}")
        for rel, f in site.files.items(): _copy(f, src/rel)
        run_sphinx(src, out, tmp/'doctrees', n_workers)                                               # 3. Sphinx
    for rel, f in site.files.items():            # local files referenced from raw HTML (Markdown images go to _images/)
        if not (out/rel).exists(): _copy(f, out/rel)
    for f in DROP: (out/f).unlink(missing_ok=True)
    if (out/'_sources').is_dir() and not any((out/'_sources').iterdir()): (out/'_sources').rmdir()
    (out/'.nojekyll').write_text('')
    if not quiet:
        for n in site.notes: log(f"  note: {n}")
        log(f"built {len(nb_list)} pages in {time.time()-t0:.1f}s (nbdev processing {t1-t0:.1f}s)")
    return {'pages': len(nb_list), 'notes': site.notes}


def run_sphinx(src: Path, out: Path, doctrees: Path, jobs: int = 2):
    "Sphinx with tools/sphinx/conf.py: warnings are errors (all reported: --keep-going), nitpicky, reproducible"
    from sphinx.cmd.build import build_main
    env = {k: os.environ.get(k) for k in ('SOURCE_DATE_EPOCH', 'PYTHONHASHSEED')}
    os.environ.update(SOURCE_DATE_EPOCH='0', PYTHONHASHSEED='0')
    try: rc = build_main(['-b', 'html', '-c', str(CONF), '-d', str(doctrees), '-E', '-j', str(jobs), '-W', '--keep-going', '-n', '-q', str(src), str(out)])
    finally:
        for k, v in env.items(): os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
    if rc: raise SystemExit(f"sphinx-build failed (exit {rc}): see the warnings above")


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
    # links relative to the notebook (`12_featsel.attribution.ipynb`) become links relative to the README at the root
    nbs = nb_path.parent
    def rebase(m):
        target = m.group(2); path = re.split(r'[#?]', target)[0]
        if not path or re.match(r'^[a-z][a-z0-9+.-]*:|^[#/]', target) or not (nbs/path).exists(): return m.group(0)
        return f"{m.group(1)}({(nbs/path).resolve().relative_to(REPO).as_posix()}{target[len(path):]})"
    body = re.sub(r'(\]|\]\s*)\(([^)\s]+)\)', rebase, body)
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
        from execute_nbs import execute_notebooks
        paths = [Path(p).resolve() for p in a.execute] or find_notebooks(nbs)
        return 1 if execute_notebooks(paths, a.timeout, a.flags.split(), a.allow_errors) else 0
    if a.links:
        errs = check_links(out, site_url(cfg))
        for e in errs: print(e)
        print(f"link check: {len(errs)} problem(s) in {out}")
        return 1 if errs else 0
    with tempfile.TemporaryDirectory(prefix='sf_site_') as tmp:
        site = Path(tmp)/'site'
        info = build_site(site, nbs, a.workers)
        errs = check_links(site, site_url(cfg))
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
