"""Shared pytest fixtures: project paths, the shared data root, a free port, and a headless Chromium."""
import os, socket, shutil
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = '/usr/bin/chromium'
CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
                 '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage']


def data_root():
    "SPARSEFACE_DATA, else ../shared/data next to the project, else None"
    for p in (os.environ.get('SPARSEFACE_DATA'), ROOT.parent / 'shared' / 'data'):
        if p and Path(p).is_dir(): return Path(p)
    return None


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


# Flags of notebook cells that need something optional (settings.ini `tst_flags`), and how to tell it is there
PEERS = ('lassonet', 'imagecorruptions')      # peer libraries of the dev extra that benchmarks compare against


def _has(*mods):
    import importlib.util
    return all(importlib.util.find_spec(m) is not None for m in mods)


def missing_needs() -> dict:
    "{flag: what is missing} for the cell flags `face`, `robust`, `peers`, `data` whose needs are not met here"
    res = {}
    if not _has('dlib', 'face_recognition_models'): res['face'] = 'the face extra (pip install "sparseface[face]")'
    if not _has('imagecorruptions'): res['robust'] = 'the robust extra (pip install "sparseface[robust]")'
    if not _has(*PEERS): res['peers'] = f'the peer libraries of the dev extra ({", ".join(PEERS)}; pip install "sparseface[dev]")'
    if data_root() is None: res['data'] = 'the data folder (set SPARSEFACE_DATA; CI uses ../shared/data)'
    return res
