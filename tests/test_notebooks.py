"""Run every notebook through nbdev's test machinery, one test per notebook, each in its own process.

Cells flagged with a flag of settings.ini `tst_flags` (slow, cuda, notest) are skipped unless the
flag is listed in the environment variable SPARSEFACE_TEST_FLAGS (e.g. "slow cuda").
"""
import os, sys, subprocess
from pathlib import Path
import pytest
from conftest import ROOT

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


def test_found_notebooks():
    assert len(NOTEBOOKS) >= 7, NOTEBOOKS


@pytest.mark.parametrize('nb', NOTEBOOKS, ids=[p.relative_to(NBS).as_posix() for p in NOTEBOOKS])
def test_notebook(nb):
    # one torch thread per notebook: pytest runs two notebooks at once on small machines, and two
    # multi-threaded torch processes on two cores slow each other down by up to 100x
    env = {'OMP_NUM_THREADS': '1', **os.environ, 'MPLBACKEND': 'Agg', 'PYTHONWARNINGS': 'ignore'}
    r = subprocess.run([sys.executable, '-c', RUNNER, str(nb), os.environ.get('SPARSEFACE_TEST_FLAGS', '')],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
    assert r.returncode == 0, f"notebook {nb.relative_to(ROOT)} failed:\n{r.stdout[-2000:]}\n{r.stderr[-10000:]}"
