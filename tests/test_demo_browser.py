"""`sparseface demo` in a real browser: Voila serves the demo, a control is moved, the output changes to what Python computes."""
import re, shutil, subprocess, sys, time, urllib.request
from pathlib import Path
import pytest
from conftest import free_port

pytestmark = pytest.mark.browser


def start_demo(port):
    "Start `sparseface demo noise-psnr` and wait until Voila itself answers; returns the process"
    exe = shutil.which('sparseface') or str(Path(sys.executable).with_name('sparseface'))
    proc = subprocess.Popen([exe, 'demo', 'noise-psnr', '--port', str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for _ in range(240):
        if proc.poll() is not None: pytest.fail(f'sparseface demo exited: {proc.stdout.read()}')
        try:
            if b'voila' in urllib.request.urlopen(f'http://127.0.0.1:{port}', timeout=2).read().lower(): return proc  # Voila itself, not another server
        except Exception: pass
        time.sleep(0.5)
    proc.kill(); pytest.fail('Voila did not start within 120 s')


def test_stopping_demo_stops_voila():
    "SIGTERM to `sparseface demo` stops its Voila server too (no orphan left listening)"
    pytest.importorskip('voila', reason='sparseface demo needs voila (the dev extra)')
    port = free_port(20000, 30000)
    proc = start_demo(port)
    proc.terminate(); proc.wait(30)
    for _ in range(40):
        try: urllib.request.urlopen(f'http://127.0.0.1:{port}', timeout=1)
        except Exception: return
        time.sleep(0.5)
    pytest.fail(f'Voila still answers on port {port} after sparseface demo was stopped')


@pytest.fixture(scope='module')
def demo_server():
    pytest.importorskip('voila', reason='sparseface demo needs voila (the dev extra)')
    port = free_port(20000, 30000)  # outside the ephemeral range, so no other test's server can take it meanwhile
    proc, url = start_demo(port), f'http://127.0.0.1:{port}'
    try:
        yield url
    finally:
        proc.terminate()
        try: proc.wait(20)
        except subprocess.TimeoutExpired: proc.kill()


def test_demo_control_changes_output(demo_server, browser):
    from sparseface.widgets import NoisePSNRDemo
    demo = NoisePSNRDemo()
    page = browser.new_page()
    errors = []
    page.on('pageerror', lambda e: errors.append(str(e)))
    # Voila's own template links Font Awesome from a CDN in <head>: a render-blocking stylesheet. Offline,
    # a slow DNS failure can stall the page, so off-site requests are refused at once (as they would fail anyway)
    page.route(re.compile(r'^https?://(?!127\.0\.0\.1[:/])'), lambda route: route.abort())
    page.goto(f'{demo_server}/voila/render/noise-psnr.ipynb', wait_until='commit', timeout=180_000)  # Voila streams the page while the kernel starts
    summary = page.locator('.sparseface-summary')
    summary.wait_for(timeout=240_000)
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
    page.close()
