"""The public API as users import it: curated subpackage namespaces, light imports, no private names across modules."""
import ast, json, subprocess, sys
from pathlib import Path
import pytest
from conftest import ROOT

PKG = ROOT / 'sparseface'
# What a user writes (issue 12 §1); every subpackage namespace holds methods, not reproductions or demos
PUBLIC = {
    'sparseface.featsel': ['SparseFeatureSelector', 'NeuroFS'],
    'sparseface.robust': ['corrupt', 'get_corruption_names', 'corrupt_batch', 'mce'],
    'sparseface.freq': ['dfm', 'adcs', 'filter_images'],
    'sparseface.sparse': ['DSTEngine', 'MaskedLinear', 'SparseLinear'],
    'sparseface.face': ['load_recognizer', 'face_chips', 'detect_faces'],
    'sparseface.timeseries': ['create_forecaster', 'make_forecast_data', 'PALS', 'pals_status', 'fit_forecaster'],
    'sparseface.micro': ['synthetic_focal_stack', 'ten_crop', 'center_crop', 'triplet_batch', 'TRAIN_TRIPLETS', 'BBBC006Stacks'],
}
HEAVY = ('matplotlib', 'ipywidgets', 'IPython')
_IMPORT = """
import sys, json, importlib
mod = importlib.import_module(sys.argv[1])
names = json.loads(sys.argv[2])
missing = [n for n in names if not hasattr(mod, n)]
print(json.dumps({'missing': missing, 'all': list(getattr(mod, '__all__', [])),
                  'heavy': sorted(m for m in sys.modules if m.split('.')[0] in %r)}))
""" % (HEAVY,)


def _import(mod, names=()):
    r = subprocess.run([sys.executable, '-c', _IMPORT, mod, json.dumps(list(names))], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.splitlines()[-1])


@pytest.mark.parametrize('mod', sorted(PUBLIC))
def test_subpackage_namespace(mod):
    "The documented names import from the subpackage, are in its `__all__`, and importing it loads no plotting/widget library"
    res = _import(mod, PUBLIC[mod])
    assert not res['missing'], f"{mod} lacks {res['missing']}"
    assert set(PUBLIC[mod]) <= set(res['all']), f"{mod}.__all__ lacks {set(PUBLIC[mod]) - set(res['all'])}"
    assert not res['heavy'], f"importing {mod} imports {res['heavy'][:5]}: plots and demos must import them lazily"
    for n in res['all']:
        assert not any(w in n.lower() for w in ('reproduce', 'demo', 'bench')), f"{mod}.__all__ exports {n}: methods only"


def _modules():
    return sorted(p for p in PKG.rglob('*.py') if p.name != '_modidx.py')


def _rel(p): return p.relative_to(ROOT).as_posix()


def test_no_private_imports_across_modules():
    "No module imports a private name (`_x`) of another module, and no `import *` inside the package"
    bad = []
    for p in _modules():
        for node in ast.walk(ast.parse(p.read_text(encoding='utf-8'))):
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or '').startswith('sparseface')):
                for a in node.names:
                    if a.name == '*': bad.append(f'{_rel(p)}: from {node.module} import *')
                    elif a.name.startswith('_') and not a.name.startswith('__'): bad.append(f'{_rel(p)}: imports {a.name} from {node.module}')
    assert not bad, '\n'.join(bad)


def test_public_names_are_unique():
    "A public name (in a module's `__all__`) is defined by one module only, so namespaces never collide"
    seen, dup = {}, []
    for p in _modules():
        if p.name == '__init__.py': continue   # curated namespaces re-export
        tree = ast.parse(p.read_text(encoding='utf-8'))
        for node in tree.body:
            if isinstance(node, ast.Assign) and any(getattr(t, 'id', None) == '__all__' for t in node.targets):
                for n in ast.literal_eval(node.value):
                    if n in seen: dup.append(f'{n}: {seen[n]} and {_rel(p)}')
                    seen[n] = _rel(p)
    assert not dup, 'public names defined twice:\n' + '\n'.join(dup)


SUBPACKAGES = sorted(p.name for p in PKG.iterdir() if p.is_dir() and (p / '__init__.py').exists())


def _registers(tree):
    "Registries a module registers into at import time (`@REPRODUCTIONS.register(...)` and the like)"
    res = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == 'register' \
           and isinstance(node.func.value, ast.Name) and node.func.value.id in ('REPRODUCTIONS', 'DEMOS', 'BENCHMARKS'):
            res.add(node.func.value.id)
    return res


@pytest.mark.parametrize('pkg', SUBPACKAGES)
def test_layout(pkg):
    """The layout of every paper (index notebook, "Contributing"): `<method>.py` the method alone, `<method>_repro.py`
    reproductions and demos, `<method>_bench.py` benchmarks, `core.py` what several methods share, a curated `__init__`"""
    bad = []
    for p in sorted((PKG / pkg).glob('*.py')):
        if p.name in ('__init__.py',): continue
        reg = _registers(ast.parse(p.read_text(encoding='utf-8')))
        stem = p.stem
        allowed = {'REPRODUCTIONS', 'DEMOS'} if stem.endswith('_repro') else {'BENCHMARKS'} if stem.endswith('_bench') else set()
        if reg - allowed: bad.append(f'{_rel(p)} registers {sorted(reg - allowed)}: that belongs in a _repro (reproductions, demos) or _bench (benchmarks) module')
        if stem.endswith(('_repro', '_bench')):
            method = stem.rsplit('_', 1)[0]
            if not (PKG / pkg / f'{method}.py').exists(): bad.append(f'{_rel(p)} has no method module {pkg}/{method}.py')
    init = (PKG / pkg / '__init__.py').read_text(encoding='utf-8')
    if '__all__' not in init: bad.append(f'sparseface/{pkg}/__init__.py has no curated __all__')
    assert not bad, '\n'.join(bad)


def test_notebook_per_module():
    "Every module comes from one notebook named `NN[letters]_<module path>.ipynb` whose `default_exp` is that module"
    import re
    bad = []
    for nb in sorted((ROOT / 'nbs').glob('*.ipynb')):
        if nb.name == 'index.ipynb': continue
        first = ''.join(json.loads(nb.read_text(encoding='utf-8'))['cells'][0]['source'])
        m = re.search(r'#\|\s*default_exp\s+(\S+)', first)
        if not m: continue
        exp = m.group(1).removesuffix('.__init__')
        want = re.sub(r'^\d+[a-z]*_', '', nb.stem)
        if exp != want: bad.append(f'{nb.name}: default_exp {m.group(1)} but the name says {want}')
    assert not bad, '\n'.join(bad)


def test_imports_in_their_own_cells():
    """nbdev's docs processing executes every cell that holds an import, so a cell mixing top-level imports with
    other code runs outside its notebook's context when the site is built (nbdev: "Found cells containing imports
    and other code"), and fails there or does work the docs never show: imports go in import-only cells"""
    import re
    bad = []
    for nb in sorted((ROOT / 'nbs').rglob('*.ipynb')):
        if any(p.startswith(('_', '.')) for p in nb.relative_to(ROOT / 'nbs').parts): continue
        for c in json.loads(nb.read_text(encoding='utf-8'))['cells']:
            if c['cell_type'] != 'code': continue
            src = '\n'.join(l for l in ''.join(c['source']).splitlines() if not l.lstrip().startswith(('%', '!')))
            try: body = ast.parse(src).body
            except SyntaxError: continue
            imports = [n for n in body if isinstance(n, (ast.Import, ast.ImportFrom))]
            if 'nbdev_export()' in src: continue      # nbdev's own closing cell, `import nbdev; nbdev.nbdev_export()`
            if not imports and not re.search(r'^#\|\s*export', src, re.M):   # nbdev also runs a cell whose import is indented (in a def)
                imports = [n for n in ast.walk(ast.Module(body=body, type_ignores=[])) if isinstance(n, (ast.Import, ast.ImportFrom))]
            if imports and len(imports) != len(body):
                bad.append(f"{nb.relative_to(ROOT)} cell {c.get('id')}: line {imports[0].lineno}: {src.splitlines()[imports[0].lineno - 1][:90]}")
    assert not bad, 'cells mixing imports with other code (move the imports to a cell of their own):\n' + '\n'.join(bad)
