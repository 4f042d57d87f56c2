"""Shared pytest fixtures: project paths, the shared data root, a free port, and a headless Chromium."""
import os, socket, shutil
from pathlib import Path
import pytest

# Idle OpenMP threads sleep instead of spinning: on a loaded 2-core machine a spinning second torch thread tripled the
# CPU time of a quick reproduction (frequency-shortcuts: 150 s of CPU spinning, 44 s passive, 42 s on one thread).
# Set before torch is imported anywhere in the test processes and the processes they start.
os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = '/usr/bin/chromium'
CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
                 '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage']


def free_port(lo=None, hi=None):
    "A free TCP port on 127.0.0.1: any (from the OS), or a random free one in [lo, hi)"
    import random
    for _ in range(200):
        with socket.socket() as s:
            try: s.bind(('127.0.0.1', random.randrange(lo, hi) if lo else 0)); return s.getsockname()[1]
            except OSError: continue
    raise RuntimeError('no free port found')


@pytest.fixture(scope='module')
def browser():
    "A headless Debian Chromium driven by playwright (never downloads a browser)"
    if not Path(CHROMIUM).exists(): pytest.skip(f'browser tests need Debian chromium at {CHROMIUM} (apt-get install chromium)')
    pw = pytest.importorskip('playwright.sync_api', reason='browser tests need the playwright package (pip install playwright)')
    with pw.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


# Flags of notebook cells that need something optional (settings.ini `tst_flags`), and how to tell it is there:
# one module (tools/cell_needs.py) answers for the notebook tests and for `tools/build_docs.py --execute`
import sys  # noqa: E402
sys.path.insert(0, str(ROOT / 'tools'))
from cell_needs import PEERS, data_root, missing_needs, forced_flags  # noqa: E402,F401
