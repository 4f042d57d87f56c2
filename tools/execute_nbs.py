"""`tools/build_docs.py --execute`: refresh the notebooks' saved outputs with nbclient (widget state kept), then
`nbdev_clean`. Flagged cells run as in the notebook tests (tools/cell_needs.py)."""
from __future__ import annotations

import hashlib, os, re, shutil, sys, tempfile, time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STATE_MIME = 'application/vnd.jupyter.widget-state+json'
NB_SIZE_WARN = 1_000_000      # bytes: warn when a notebook is bigger than this
_re_ansi = re.compile(r'\x1B(?:[@-Z\\-_]|\[[0-?]*[ -/]*[@-~])')


def log(*a): print(*a, file=sys.stderr, flush=True)


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


def kernel_manager(folder:str):
    """A kernel manager whose kernel talks over Unix sockets in `folder` (a fresh temporary folder) instead of TCP.

    With TCP, every kernel picks five free ports by binding port 0 and releasing it, then the kernel binds them:
    two kernels starting at the same moment in different processes (pytest workers, a Voila server, the docs
    execution) can be given the same port, and then one kernel receives the other's messages ("Invalid message",
    signed with another key) and is reported dead (`DeadKernelError: Kernel died`). This is the failure seen under
    load: 2 of 36 runs of the docs' scratch notebook with 8 kernels starting at once on 2 busy cores. Sockets in a
    folder of its own cannot collide (0 of 64 in the same test)."""
    from jupyter_client.manager import KernelManager
    return KernelManager(kernel_name='python3', transport='ipc', ip=os.path.join(folder, 'kernel'))


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
    from nbdev.config import get_config
    from cell_needs import forced_flags
    skip = set(get_config(path=REPO).get('tst_flags', '').split()) - set(forced_flags(run_flags))
    kenv = dict(os.environ, PYTHONHASHSEED='0', OMP_WAIT_POLICY=os.environ.get('OMP_WAIT_POLICY', 'PASSIVE'),  # no spinning threads (06_cli)
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
        ipc = tempfile.mkdtemp(prefix='sf-kernel-')
        client = NotebookClient(nb, km=kernel_manager(ipc), timeout=timeout, store_widget_state=True, record_timing=False,
                                allow_errors=allow_errors, resources={'metadata': {'path': str(p.parent)}})
        try: _run_in_thread(lambda: asyncio.run(asyncio.wait_for(client.async_execute(env=kenv), timeout)))
        except asyncio.TimeoutError:
            log(f"FAILED {p.name}: timed out after {timeout}s; notebook left unchanged"); failed += 1; continue
        except Exception as e:
            log(f"FAILED {p.name}: {type(e).__name__}: {_re_ansi.sub('', str(e))[-3000:]}\nnotebook left unchanged"); failed += 1; continue
        finally: shutil.rmtree(ipc, ignore_errors=True)
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
