"""`sparseface demo` in a real browser: Voila serves the demo, a control is moved, the output changes to what Python computes."""
import shutil, subprocess, sys, time, urllib.request
from pathlib import Path
import pytest
from conftest import free_port

pytestmark = pytest.mark.browser


@pytest.fixture(scope='module')
def demo_server():
    pytest.importorskip('voila', reason='sparseface demo needs voila (the dev extra)')
    port = free_port(20000, 30000)  # outside the ephemeral range, so no other test's server can take it meanwhile
    exe = shutil.which('sparseface') or str(Path(sys.executable).with_name('sparseface'))
    proc = subprocess.Popen([exe, 'demo', 'noise-psnr', '--port', str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f'http://127.0.0.1:{port}'
    try:
        for _ in range(120):
            if proc.poll() is not None: pytest.fail(f'sparseface demo exited: {proc.stdout.read()}')
            try:
                if b'voila' in urllib.request.urlopen(url, timeout=2).read().lower(): break  # Voila itself answers, not another server
            except Exception: pass
            time.sleep(0.5)
        else: pytest.fail('Voila did not start within 60 s')
        yield url
    finally:
        proc.terminate()
        try: proc.wait(10)
        except subprocess.TimeoutExpired: proc.kill()


def test_demo_control_changes_output(demo_server, browser):
    from sparseface.widgets import NoisePSNRDemo
    demo = NoisePSNRDemo()
    page = browser.new_page()
    errors = []
    page.on('pageerror', lambda e: errors.append(str(e)))
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
