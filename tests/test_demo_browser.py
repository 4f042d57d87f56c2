"""`sparseface demo` in a real browser: the gallery, every demo opened from its card, a control moved, an abandoned
page's kernel culled, and not one request off the machine. Waits follow the server's progress (its log lines, the
kernel's state), with generous caps, instead of fixed long timeouts."""
import json, os, re, shutil, subprocess, sys, threading, time, urllib.error, urllib.request
from pathlib import Path
import pytest
from conftest import free_port

pytestmark = pytest.mark.browser
ON_MACHINE = re.compile(r'^(https?://127\.0\.0\.1[:/]|data:|blob:|about:)')


def kernel_processes(root:int, kind:bytes=b'ipykernel') -> dict:
    "{pid: RSS in MB} of the processes below process `root` whose command line holds `kind` (Linux /proc; empty elsewhere)"
    parent, cmd = {}, {}
    for d in Path('/proc').glob('[0-9]*'):
        try:
            parent[int(d.name)] = int((d / 'stat').read_text().rsplit(')', 1)[1].split()[1])
            cmd[int(d.name)] = (d / 'cmdline').read_bytes()
        except (OSError, ValueError, IndexError): pass
    below, todo = set(), [root]
    while todo:
        p = todo.pop(); kids = [c for c, pp in parent.items() if pp == p and c not in below]; below.update(kids); todo += kids
    out = {}
    for p in below:
        if kind not in cmd.get(p, b''): continue
        try: out[p] = int(re.search(r'VmRSS:\s+(\d+)', Path(f'/proc/{p}/status').read_text()).group(1)) / 1024
        except (OSError, AttributeError): pass
    return out


class DemoServer:
    "`sparseface demo ARGS` on a free port: its log lines (read by a thread), the kernels API, and waits that follow progress"
    def __init__(self, *args, cache):
        pytest.importorskip('voila', reason='sparseface demo needs voila (the dev extra)')
        self.port = free_port(20000, 30000)  # outside the ephemeral range, so no other test's server can take it meanwhile
        self.url, self.lines = f'http://127.0.0.1:{self.port}', []
        exe = shutil.which('sparseface') or str(Path(sys.executable).with_name('sparseface'))
        self.proc = subprocess.Popen([exe, 'demo', *args, '--port', str(self.port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, env=dict(os.environ, SPARSEFACE_CACHE=str(cache)))
        threading.Thread(target=self._read, daemon=True).start()
        self.wait(lambda: 'sparseface-gallery' in self.get('/'), 'the gallery page', stall=120, cap=300)

    def _read(self):
        "Keep the server's log lines, except the ones our own polling of /api/kernels causes (they are not progress)"
        for l in self.proc.stdout:
            if not re.search(r'/api/kernels/[0-9a-f-]{36} \(127|Kernel does not exist|GET /voila/files/thumbnails/\S+\?try=', l):
                self.lines.append(l.rstrip('\n'))   # (nor are the open gallery's retries of a thumbnail not yet rendered)

    def get(self, path:str) -> str:
        "The body of `path`, or '' when the server does not answer"
        try: return urllib.request.urlopen(self.url + path, timeout=5).read().decode()
        except Exception: return ''

    def kernel(self, kid) -> dict|None:
        "The server's model of kernel `kid` (execution_state, connections, ...), None once it is gone"
        if not kid: return None
        try: return json.loads(urllib.request.urlopen(f'{self.url}/api/kernels/{kid}', timeout=5).read())
        except urllib.error.HTTPError as e:
            if e.code == 404: return None
            raise

    def started_kernels(self, since:int=0) -> list[str]:
        "Ids of the kernels the log says were started after log line `since`"
        return [m.group(1) for l in self.lines[since:] if (m := re.search(r'Kernel started: ([0-9a-f-]{36})', l))]

    def kernel_cpu(self) -> float:
        "CPU seconds used so far by the kernels and the thumbnail renderer below the server (progress made without a word)"
        total = 0
        for pid in [*kernel_processes(self.proc.pid), *kernel_processes(self.proc.pid, b'write_thumbnails')]:
            try: st = Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split(); total += (int(st[11]) + int(st[12])) / os.sysconf('SC_CLK_TCK')
            except (OSError, ValueError, IndexError): pass
        return total

    def wait(self, done, what:str, stall:float=120, cap:float=600, kernel=None, sleep=time.sleep):
        """Poll `done()` until it is true and return it. Progress is a new log line, the kernels using CPU, or `kernel()` (a
        kernel id) being busy; fail when the server exits, after `stall` s without progress, or after `cap` s in all"""
        t0 = last = time.time(); n, cpu = len(self.lines), self.kernel_cpu()
        while not (r := done()):
            now = time.time()
            if self.proc.poll() is not None: pytest.fail(f'sparseface demo exited while waiting for {what}:\n' + '\n'.join(self.lines[-60:]))
            if len(self.lines) != n: n, last = len(self.lines), now
            elif (c := self.kernel_cpu()) > cpu + 0.2: cpu, last = c, now  # (the server can miss a kernel's first 'busy')
            elif kernel and (k := self.kernel(kernel())) and k.get('execution_state') in ('busy', 'starting'): last = now
            if now - last > stall or now - t0 > cap:
                why = f'no progress for {now - last:.0f} s' if now - last > stall else f'not done after {cap:.0f} s'
                ks = {p: (Path(f'/proc/{p}/stat').read_text().rsplit(')', 1)[1].split()[0], Path(f'/proc/{p}/wchan').read_text())
                      for p in kernel_processes(self.proc.pid) if Path(f'/proc/{p}').exists()}
                pytest.fail(f"waiting for {what}: {why}; kernels (state, wchan): {ks}, {self.kernel_cpu():.1f} CPU s; the server's last lines:\n"
                            + '\n'.join(self.lines[-40:]))
            sleep(0.5)
        return r

    def stop(self):
        self.proc.terminate()
        try: self.proc.wait(20)
        except subprocess.TimeoutExpired: self.proc.kill()


def watch(page, requests, errors):
    "Record every request and page error of `page`; refuse off-machine requests at once (offline they would only stall)"
    page.on('request', lambda r: requests.append(r.url))
    page.on('pageerror', lambda e: errors.append(str(e)))
    page.route(re.compile(r'^https?://(?!127\.0\.0\.1[:/])'), lambda route: route.abort())


def kernel_id(page):
    "The id of the kernel a Voila page is connected to (its page config)"
    return page.evaluate("JSON.parse(document.getElementById('jupyter-config-data').textContent).kernelId")


def test_stopping_demo_stops_voila(tmp_path):
    "SIGTERM to `sparseface demo` stops its Voila server too (no orphan left listening)"
    srv = DemoServer('noise-psnr', '--no-thumbnails', cache=tmp_path)
    srv.proc.terminate(); srv.proc.wait(30)
    for _ in range(40):
        if not srv.get('/'): return
        time.sleep(0.5)
    pytest.fail(f'Voila still answers on port {srv.port} after sparseface demo was stopped')


@pytest.fixture
def gallery(tmp_path):
    "`sparseface demo` with every demo, thumbnails rendered into a fresh cache (a first run)"
    srv = DemoServer(cache=tmp_path)
    try: yield srv
    finally: srv.stop()


@pytest.fixture
def noise_demo(tmp_path):
    "`sparseface demo noise-psnr` alone (pytest-xdist may run each test of this file in another worker: one server each)"
    srv = DemoServer('noise-psnr', '--no-thumbnails', cache=tmp_path)
    try: yield srv
    finally: srv.stop()


def test_gallery_opens_every_demo(gallery, browser):
    "The gallery has a card per registered demo; each card's link opens the demo, which renders; thumbnails appear; all offline"
    from sparseface.repro import discover
    from sparseface.widgets import DEMOS
    discover()
    t_all, requests, errors, times, rss = time.time(), [], [], {}, {}
    page = browser.new_page()
    watch(page, requests, errors)
    page.goto(gallery.url + '/', timeout=60_000)
    cards = page.locator('a.sparseface-card')
    names = [cards.nth(i).get_attribute('data-demo') for i in range(cards.count())]
    assert sorted(names) == sorted(DEMOS.names()), names
    for i, n in enumerate(names):
        c = cards.nth(i)
        assert c.get_attribute('href') == f'/voila/render/{n}.ipynb'
        assert c.locator('h2').inner_text().strip() == DEMOS[n].title and c.locator('p').inner_text().strip() == DEMOS.meta(n)['description']
    for n in names:
        t0, since = time.time(), len(gallery.lines)
        if page.url.rstrip('/') != gallery.url: page.goto(gallery.url + '/', timeout=60_000)  # leaving a demo page shuts its kernel down
        page.locator(f'a.sparseface-card[data-demo="{n}"]').click(no_wait_after=True)  # Voila streams the page while the kernel runs
        summary = page.locator('.sparseface-summary')
        kid = lambda: (gallery.started_kernels(since) or [None])[0]
        gallery.wait(lambda: summary.count() and summary.first.is_visible() and summary.first.inner_text().strip(), f'the {n} demo',
                     stall=180, cap=900, kernel=kid, sleep=page.wait_for_timeout)
        times[n] = round(time.time() - t0, 1)
        assert kernel_id(page) == kid()
        rss[n] = round(sum(kernel_processes(gallery.proc.pid).values()))
    page.goto(gallery.url + '/', timeout=60_000)  # the last demo's kernel is shut down as its page unloads
    gallery.wait(lambda: kernel_processes(gallery.proc.pid) == {}, 'the kernels of the left pages to be shut down', stall=90, cap=120,
                 sleep=page.wait_for_timeout)
    # a first run: thumbnails are rendered in the background at low priority (on a busy machine they can take long:
    # wait for the first, cheap one only); the open gallery shows each when it is there and the title until then
    # (the renderer runs at nice 10: under a load of normal-priority work it gets a few percent of a core; its CPU time is the progress)
    gallery.wait(lambda: any('thumbnail noise-psnr:' in l for l in gallery.lines), 'the first thumbnail', stall=120, cap=900,
                 sleep=page.wait_for_timeout)
    assert any('thumbnail noise-psnr: rendered' in l for l in gallery.lines), [l for l in gallery.lines if 'thumbnail' in l]
    img = page.locator('a.sparseface-card[data-demo="noise-psnr"] img')
    gallery.wait(lambda: page.evaluate("i => i.complete && i.naturalWidth > 0", img.element_handle()), 'the thumbnail on the open page',
                 stall=30, cap=60, sleep=page.wait_for_timeout)
    for n in names:  # every card shows its thumbnail or, while it is not rendered yet, its title
        card = page.locator(f'a.sparseface-card[data-demo="{n}"]')
        assert card.locator('img').is_visible() or card.locator('.placeholder').inner_text().strip() == DEMOS[n].title, n
    off = sorted({u for u in requests if not ON_MACHINE.match(u)})
    assert not off, f'requests off the machine: {off}'
    assert not errors, errors
    page.close()
    repolled = sum('found only by the re-poll' in l for l in gallery.lines)  # lost ZeroMQ wake-ups (sparseface.demo_server)
    print(f"\ngallery test: {time.time() - t_all:.0f} s; first load of each demo (s): {times}; RSS of the open kernels (MB): {rss}; "
          f"replies recovered by the re-poll: {repolled}")


def test_demo_control_changes_output(noise_demo, browser):
    "A control moved in the browser changes the output to what Python computes"
    from sparseface.widgets import NoisePSNRDemo
    demo = NoisePSNRDemo()
    page, requests, errors = browser.new_page(), [], []
    watch(page, requests, errors)
    since = len(noise_demo.lines)
    page.goto(f'{noise_demo.url}/voila/render/noise-psnr.ipynb', wait_until='commit', timeout=60_000)
    summary = page.locator('.sparseface-summary')
    noise_demo.wait(lambda: summary.count() and summary.first.is_visible(), 'the noise-psnr demo', stall=180, cap=600,
                 kernel=lambda: (noise_demo.started_kernels(since) or [None])[0], sleep=page.wait_for_timeout)
    assert summary.inner_text().strip() == demo.summary(image='camera', sigma=0.1, seed=0)
    page.locator('.widget-output img, .jp-OutputArea-output img').first.wait_for(timeout=60_000)
    # a dropdown: choose another image
    page.locator('select').first.select_option('coins')
    expected = demo.summary(image='coins', sigma=0.1, seed=0)
    page.wait_for_function('e => document.querySelector(".sparseface-summary").innerText.trim() === e', arg=expected, timeout=60_000)
    # the slider: two steps to the right with the keyboard (step 0.02)
    page.locator('.noUi-handle').first.focus()
    page.keyboard.press('ArrowRight'); page.keyboard.press('ArrowRight')
    expected = demo.summary(image='coins', sigma=0.14, seed=0)
    page.wait_for_function('e => document.querySelector(".sparseface-summary").innerText.trim() === e', arg=expected, timeout=60_000)
    assert summary.inner_text().strip() == expected
    assert not errors, errors
    assert not [u for u in requests if not ON_MACHINE.match(u)]
    page.close(run_before_unload=True)


def test_abandoned_page_kernel_is_culled(browser, tmp_path):
    "A page that goes without saying so (a killed tab: no beforeunload, so no shutdown beacon) has its kernel culled once idle"
    # the server does not see a Voila kernel's status during its first execution (it culled kernels as 'idle' while they
    # rendered): the timeout must exceed a first render on a loaded machine
    srv = DemoServer('noise-psnr', '--cull-after', '60', '--no-thumbnails', cache=tmp_path)
    try:
        page, since = browser.new_page(), len(srv.lines)
        page.goto(f'{srv.url}/voila/render/noise-psnr.ipynb', wait_until='commit', timeout=60_000)
        summary = page.locator('.sparseface-summary')
        srv.wait(lambda: summary.count() and summary.first.is_visible(), 'the noise-psnr demo', stall=180, cap=600,
                 kernel=lambda: (srv.started_kernels(since) or [None])[0], sleep=page.wait_for_timeout)
        kid = kernel_id(page)
        srv.wait(lambda: (srv.kernel(kid) or {}).get('connections', 0) >= 1, 'the page to connect', stall=60, cap=120)
        assert srv.kernel(kid) is not None
        before = kernel_processes(srv.proc.pid)
        page.close(run_before_unload=False)
        t0 = time.time()
        srv.wait(lambda: srv.kernel(kid) is None, 'the idle kernel to be culled', stall=100, cap=120)
        t_cull = time.time() - t0
        assert any('Culling' in l and kid in l for l in srv.lines), srv.lines[-20:]
        srv.wait(lambda: not (set(kernel_processes(srv.proc.pid)) & set(before)), 'the kernel process to exit', stall=30, cap=30)
        print(f"\nculled {t_cull:.0f} s after the page went (cull after 60 s idle, checked every 15 s); kernel RSS before: "
              f"{sum(before.values()):.0f} MB, after: {sum(kernel_processes(srv.proc.pid).values()):.0f} MB")
    finally: srv.stop()
