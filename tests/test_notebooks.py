"""Run every notebook through nbdev's test machinery, one test per notebook, each in its own process.

Cells flagged with a flag of settings.ini `tst_flags` are skipped unless the flag is forced:
- `slow`, `cuda`, `notest`: forced only when listed in the environment variable SPARSEFACE_TEST_FLAGS
  (e.g. "slow cuda");
- `face`, `robust`, `peers`, `data`: forced automatically when what they need is there (the `face` or
  `robust` extra, the peer libraries of the dev extra, the data folder `SPARSEFACE_DATA` or ../shared/data).
  When it is missing, the rest of the notebook still runs, and the test is reported as *skipped*, with the
  reason and how many cells did not run, instead of passing silently.
"""
import os, re, sys, json, subprocess
from pathlib import Path
import pytest
from conftest import ROOT, missing_needs, forced_flags, data_root

NBS = ROOT / 'nbs'
NOTEBOOKS = sorted(p for p in NBS.rglob('*.ipynb')
                   if not any(part.startswith(('_', '.')) for part in p.relative_to(NBS).parts))

RUNNER = """
import sys
from pathlib import Path
from nbdev.test import test_nb
from nbdev.config import get_config
skip = get_config().get('tst_flags', '').split()
ok, secs = test_nb(Path(sys.argv[1]), skip_flags=skip, force_flags=sys.argv[2].split(), showerr=True)
print(f'{Path(sys.argv[1]).name}: {"ok" if ok else "FAILED"} in {secs:.1f} s')
sys.exit(0 if ok else 1)
"""
_re_flags = re.compile(r'^\s*#\|\s*(.*)$')
# every tutorial states its run time in its first Markdown cells as `**Run time:** about N s` (default path, 2-core CPU)
_re_runtime = re.compile(r'\*\*Run time:?\*\*:?\s*about\s+(\d+(?:\.\d+)?)\s*(s|min)\b', re.I)
RUNTIME_SLACK = 3.0   # a shared 2-core CI machine running two notebooks at once: allow 3x the stated time


def stated_runtime(nb: Path) -> float | None:
    "Seconds a notebook says it takes (`**Run time:** about N s|min` in a Markdown cell), or None"
    for c in json.loads(nb.read_text(encoding='utf-8'))['cells']:
        if c['cell_type'] != 'markdown': continue
        m = _re_runtime.search(''.join(c['source']))
        if m: return float(m.group(1)) * (60 if m.group(2).lower() == 'min' else 1)
    return None


def cell_flags(nb: Path) -> list[set]:
    "The bare `#| flag` directives of every code cell of `nb`"
    res = []
    for c in json.loads(nb.read_text(encoding='utf-8'))['cells']:
        if c['cell_type'] != 'code': continue
        flags = set()
        for line in ''.join(c['source']).splitlines():
            m = _re_flags.match(line)
            if not m: break
            if ':' not in m.group(1): flags |= set(m.group(1).split())
        res.append(flags)
    return res


def test_found_notebooks():
    assert len(NOTEBOOKS) >= 7, NOTEBOOKS


def test_stated_runtime(tmp_path):
    nb = tmp_path/'t.ipynb'
    cell = lambda t: {'cell_type': 'markdown', 'metadata': {}, 'source': [t]}
    for text, want in [('**Run time:** about 25 s on a 2-core CPU.', 25), ('**Run time**: about 2 min', 120), ('no time', None)]:
        nb.write_text(json.dumps({'cells': [cell('# T'), cell(text)]}))
        assert stated_runtime(nb) == want, text


@pytest.mark.parametrize('nb', NOTEBOOKS, ids=[p.relative_to(NBS).as_posix() for p in NOTEBOOKS])
def test_notebook(nb):
    missing = missing_needs()                 # {flag: reason} for the extras/data that are not here
    force = forced_flags(os.environ.get('SPARSEFACE_TEST_FLAGS', '').split())
    # one torch thread per notebook: pytest runs two notebooks at once on small machines, and two
    # multi-threaded torch processes on two cores slow each other down by up to 100x
    env = {'OMP_NUM_THREADS': '1', **os.environ, 'MPLBACKEND': 'Agg', 'PYTHONWARNINGS': 'ignore'}
    # the `data` cells run when tools/cell_needs finds a data folder (SPARSEFACE_DATA or ../shared/data); the package
    # itself reads only SPARSEFACE_DATA, so hand the folder that was found to the notebook
    if 'data' in force and data_root() is not None: env['SPARSEFACE_DATA'] = str(data_root())
    r = subprocess.run([sys.executable, '-c', RUNNER, str(nb), ' '.join(force)],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
    assert r.returncode == 0, f"notebook {nb.relative_to(ROOT)} failed:\n{r.stdout[-2000:]}\n{r.stderr[-10000:]}"
    if nb.relative_to(NBS).parts[0] == 'tutorials' and not {'slow', 'cuda'} & set(force):   # the default path of a tutorial runs within the time it states
        stated, m = stated_runtime(nb), re.search(r': ok in ([\d.]+) s', r.stdout)
        assert stated, f"{nb.name} does not state its run time ('**Run time:** about N s' in a Markdown cell)"
        assert m and float(m.group(1)) <= RUNTIME_SLACK * stated, \
            f"{nb.name} took {m and m.group(1)} s; it states about {stated:g} s (allowed {RUNTIME_SLACK:g}x)"
    skipped = {}
    for flags in cell_flags(nb):
        for f in flags & set(missing): skipped[f] = skipped.get(f, 0) + 1
    if skipped:
        pytest.skip('; '.join(f"{n} cell(s) need {missing[f]}" for f, n in skipped.items()) + ' — skipped (the rest of the notebook passed)')
