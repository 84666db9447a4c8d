"""The local web page (uniwav serve) through gradio_client against a real server on 127.0.0.1 with
tiny models: every tab with good and bad input, two requests at once; and the page in a headless
browser when one is installed."""

import shutil
import threading

import numpy as np
import pytest

from uniwav.utils import free_port

gradio_client = pytest.importorskip("gradio_client", reason="the app extra is not installed: pip install 'uniwav[app]'")

from conftest import tone, write_wav  # noqa: E402


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from uniwav.app.serve import Models, serve
    from uniwav.config import QuantizerConfig, TokenizerModelConfig, TTSModelConfig
    from uniwav.models.tokenizer import SpeechTokenizer
    from uniwav.models.tts import TTSModel
    from uniwav.models.uniwav import UniWav

    from conftest import small_model_config
    from test_asr import small_ctc

    root = tmp_path_factory.mktemp("app")
    small_ctc().save_pretrained(root / "asr")
    pre = UniWav(small_model_config())
    TTSModel.from_pretrained_backbone(pre, TTSModelConfig(vocab=list(" 'abcdefghijklmnopqrstuvwxyz"))).save_pretrained(root / "tts")
    tok = SpeechTokenizer.from_pretrained_backbone(pre, TokenizerModelConfig(quantizer=QuantizerConfig(2, 16)))
    tok.train()
    tok.quantizer(__import__("torch").randn(100, 32))
    tok.eval().save_pretrained(root / "tok")
    port = free_port()
    app = serve(Models(str(root / "asr"), str(root / "tts"), str(root / "tok")), port=port, block=False)
    write_wav(root / "speech.wav", tone(2.0))
    write_wav(root / "silence.wav", np.zeros(32000, dtype=np.float32))
    (root / "notes.wav").write_text("not audio at all")
    yield f"http://127.0.0.1:{port}/", root
    app.close()


def test_every_tab_answers(server):
    url, root = server
    client = gradio_client.Client(url, verbose=False)
    audio = gradio_client.handle_file(str(root / "speech.wav"))
    text, words = client.predict(audio, 3, False, api_name="/transcribe")
    assert isinstance(text, str) and set(words) >= {"headers", "data"}
    speech, mel = client.predict(audio, "", "a cab", 4, 1.0, 1.0, 0, api_name="/speak")
    assert speech and mel
    info, resynth, codes = client.predict(audio, "200", api_name="/tokens")
    assert "200 bit/s measured" in info and resynth and str(codes).endswith(".npz")


@pytest.mark.parametrize("name, message", [("silence.wav", "silent"), ("notes.wav", "not readable")])
def test_a_bad_upload_gets_the_clis_message_and_the_server_keeps_serving(server, name, message):
    url, root = server
    client = gradio_client.Client(url, verbose=False)
    with pytest.raises(Exception, match=message):
        client.predict(gradio_client.handle_file(str(root / name)), 1, False, api_name="/transcribe")
    with pytest.raises(Exception, match="cannot speak"):
        client.predict(gradio_client.handle_file(str(root / "speech.wav")), "", "東京", 4, 1.0, 1.0, 0, api_name="/speak")
    text, _ = client.predict(gradio_client.handle_file(str(root / "speech.wav")), 1, False, api_name="/transcribe")
    assert isinstance(text, str)


def test_two_requests_at_once(server):
    url, root = server
    client = gradio_client.Client(url, verbose=False)
    audio = gradio_client.handle_file(str(root / "speech.wav"))
    jobs = [client.submit(audio, 1, False, api_name="/transcribe"), client.submit(audio, "400", api_name="/tokens")]
    results = [job.result(timeout=120) for job in jobs]
    assert isinstance(results[0][0], str) and "400 bit/s measured" in results[1][0]


def browser():
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def test_the_page_in_a_headless_browser_shows_every_tab(server, tmp_path):
    if browser() is None:
        pytest.skip("no Chromium installed (apt-get install chromium) for the browser test")
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    url, _ = server
    from uniwav.app.screenshots import screenshot_tabs

    shots = screenshot_tabs(url, tmp_path, executable=browser())
    assert [p.stem for p in shots] == ["transcribe", "speak", "tokens"] and all(p.stat().st_size > 5000 for p in shots)
    assert playwright is not None and threading.active_count() >= 1


def test_serve_checks_its_port_before_announcing_and_warns_when_it_listens_beyond_this_machine(server, tmp_path):
    import socket
    import subprocess
    import sys
    import time

    _, root = server
    uniwav = [sys.executable, "-m", "uniwav", "serve", "--asr", str(root / "asr")]
    bad = subprocess.run([*uniwav, "--port", "70000"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "a port is a number from 1 to 65535" in bad.stderr and "Traceback" not in bad.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = subprocess.run([*uniwav, "--port", str(taken.getsockname()[1])], capture_output=True, text=True, timeout=120)
    assert busy.returncode == 2 and "cannot listen on 127.0.0.1" in busy.stderr and "serving on" not in busy.stdout
    assert "Traceback" not in busy.stderr
    port = free_port("0.0.0.0")
    proc = subprocess.Popen([*uniwav, "--host", "0.0.0.0", "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.5)
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=60)
    assert "anyone who can reach it" in err and "--auth USER:PASSWORD" in err
