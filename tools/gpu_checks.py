#!/usr/bin/env python
"""The GPU checks in one prepared run: every `#| cuda` cell of the notebooks, then the headline GPU timings.

The lent GPU machine has PyTorch, NumPy, SciPy, scikit-learn, scikit-image, pandas, matplotlib and pytest, but
not nbdev's test machinery or ipywidgets, and it cannot reach a package registry. So the run has two halves:

    python tools/gpu_checks.py prepare          # HERE: download the missing pure-Python wheels into .whl/
    # THERE (the device tool, carry ['.whl'], one call of about 10 minutes):
    python3 tools/gpu_checks.py run --out $OUT

`run` installs the wheels into /tmp/site, runs `pytest tests/test_notebooks.py` on the notebooks that have `#| cuda`
cells with SPARSEFACE_TEST_FLAGS=cuda (8 notebooks at a time), then times
- CIFAR-10-C generated in full on the GPU (`robust.corruptions_bench.time_cifar10c`; target < 60 s),
- the full rank DFM of a CIFAR-10 ResNet-18 (`freq.shortcuts_bench.time_full_dfm`; target < 60 s),
- the PyTorch dlib ResNet's descriptor throughput (`face.recognition_bench.descriptor_throughput`, needs the face extra),
- BIM images/s of `sparseface.attacks` vs torchattacks on `small-cnn` and on the dlib ResNet (`attacks_bench.attack_benchmarks`),
and writes `gpu_checks.json` and the logs to --out. Without the data folder the timings run on random images of
the same size (the cost does not depend on the pixels; the JSON says which). Cells flagged `face`/`data` whose
needs are missing there are skipped and reported so by the notebook tests.
"""
from __future__ import annotations

import argparse, json, os, re, subprocess, sys, time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WHEELS = REPO / '.whl'
# pure-Python packages the notebook tests need that the GPU image lacks (versions as in the dev extra)
PACKAGES = ['nbdev==2.4.14', 'execnb==0.1.18', 'fastcore==1.14.5', 'ghapi==2.0.3', 'astunparse==1.6.3', 'watchdog==7.1.0',
            'ipython==9.18.1', 'ipython_pygments_lexers==1.1.1', 'traitlets==5.16.1', 'jedi==0.20.1', 'parso==0.8.7',
            'prompt_toolkit==3.0.53', 'pexpect==4.9.0', 'ptyprocess==0.7.0', 'decorator==5.2.1', 'matplotlib-inline==0.2.2',
            'stack_data==0.6.3', 'asttokens==3.0.2', 'executing==2.3.0', 'pure_eval==0.2.4', 'wcwidth==0.9.4',
            'ipywidgets==8.1.9', 'comm==0.2.3', 'widgetsnbextension==4.0.16', 'jupyterlab_widgets==3.0.17',
            'nbformat==5.11.1', 'fastjsonschema==2.22.3', 'jupyter_core==5.9.1', 'platformdirs', 'jsonschema==4.26.0',
            'jsonschema-specifications', 'referencing', 'rpds-py', 'attrs',
            'torchattacks==3.5.1']   # the oracle of sparseface.attacks (its torchvision requirement is not needed: --no-deps)


def cuda_notebooks() -> list[str]:
    "Notebooks (relative to nbs/) with at least one `#| cuda` cell"
    res = []
    for nb in sorted((REPO / 'nbs').rglob('*.ipynb')):
        if any(part.startswith(('_', '.')) for part in nb.relative_to(REPO / 'nbs').parts): continue
        cells = json.loads(nb.read_text(encoding='utf-8'))['cells']
        if any(c['cell_type'] == 'code' and re.search(r'^#\|\s*(\w+\s+)*cuda\b', ''.join(c['source']), re.M) for c in cells):
            res.append(nb.relative_to(REPO / 'nbs').as_posix())
    return res


def prepare():
    "Download the wheels the GPU machine lacks into .whl/ (git-ignored through .git/info/exclude)"
    WHEELS.mkdir(exist_ok=True)
    excl = REPO / '.git' / 'info' / 'exclude'
    if (REPO / '.git').is_dir() and '/.whl/' not in (excl.read_text() if excl.exists() else ''):
        excl.parent.mkdir(exist_ok=True); excl.write_text((excl.read_text() if excl.exists() else '') + '/.whl/\n')
    plat = [a for p in ('manylinux_2_28_x86_64', 'manylinux_2_17_x86_64', 'manylinux2014_x86_64') for a in ('--platform', p)]
    cmd = [sys.executable, '-m', 'pip', 'download', '-q', '--no-deps', '--only-binary=:all:', '--python-version', '3.12',
           '--implementation', 'cp', *plat, '-d', str(WHEELS), *PACKAGES]
    subprocess.run(cmd, check=True)
    size = sum(f.stat().st_size for f in WHEELS.iterdir()) / 2**20
    print(f"{len(list(WHEELS.iterdir()))} wheels, {size:.1f} MiB in {WHEELS}; notebooks with cuda cells: {', '.join(cuda_notebooks())}")
    print("Then, through the device tool: run(command='python3 tools/gpu_checks.py run --out $OUT', carry=['.whl'], timeout_s=600)")


def _timed(label, f, results):
    t0 = time.perf_counter()
    try: results[label] = f()
    except Exception as e: results[label] = {'error': f'{type(e).__name__}: {e}'}
    print(f"{label}: {time.perf_counter() - t0:.1f} s wall: {json.dumps(results[label], default=str)[:400]}", flush=True)


def run(out: Path):
    "On the GPU machine: install the wheels, run the cuda cells, time the headline targets, write gpu_checks.json"
    out.mkdir(parents=True, exist_ok=True)
    site = Path('/tmp/site')
    if WHEELS.exists():
        subprocess.run([sys.executable, '-m', 'pip', 'install', '-q', '--no-index', '--no-deps', '--no-compile', '--target', str(site),
                        *map(str, sorted(WHEELS.glob('*.whl')))], check=True)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), str(site)]), SPARSEFACE_TEST_FLAGS='cuda', PYTHONUNBUFFERED='1')
    import torch
    results = {'torch': torch.__version__, 'device': torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
    nbs = cuda_notebooks()
    t0 = time.perf_counter()
    with open(out / 'notebooks.log', 'w') as log:
        r = subprocess.run([sys.executable, '-m', 'pytest', '-q', '-rA', '-p', 'no:cacheprovider', '-n', '8', '--timeout=540',
                            *[f'tests/test_notebooks.py::test_notebook[{n}]' for n in nbs]], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    summary = [l for l in (out / 'notebooks.log').read_text().splitlines() if re.match(r'^(PASSED|FAILED|SKIPPED|ERROR)|^=+ .* in ', l)]
    results['notebooks'] = {'exit_code': r.returncode, 'seconds': round(time.perf_counter() - t0, 1), 'summary': summary}
    print('\n'.join(summary), flush=True)
    sys.path[:0] = [str(REPO), str(site)]
    from sparseface.robust.corruptions_bench import time_cifar10c
    from sparseface.freq.shortcuts_bench import time_full_dfm
    _timed('cifar10c_full', lambda: time_cifar10c('cuda'), results)
    _timed('full_dfm_resnet18', lambda: time_full_dfm('cuda', progress=False), results)
    def face():
        from sparseface.face.recognition_bench import descriptor_throughput
        return descriptor_throughput(torch.rand(512, 3, 150, 150), device='cuda', with_dlib=False)
    _timed('dlib_descriptor_throughput', face, results)
    def attacks():   # BIM ours vs torchattacks (if carried in .whl) on small-cnn, and BIM on the dlib ResNet (untrained if no face extra)
        from sparseface.attacks_bench import attack_benchmarks
        return attack_benchmarks('cuda', quick=False, untrained_ok=True)
    _timed('attacks_bim_throughput', attacks, results)
    (out / 'gpu_checks.json').write_text(json.dumps(results, indent=1, default=str))
    return 0 if r.returncode == 0 else 1


if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('step', choices=['prepare', 'run', 'list'])
    ap.add_argument('--out', default='gpu-checks')
    a = ap.parse_args()
    if a.step == 'list': print('\n'.join(cuda_notebooks())); sys.exit(0)
    sys.exit(prepare() or 0 if a.step == 'prepare' else run(Path(a.out)))
