"""``uniwav serve [--asr RUN] [--tts RUN] [--tokenizer RUN] [--vocoder RUN] [--port 7860] [--host 127.0.0.1]``."""

from __future__ import annotations

import argparse


def port_number(text: str) -> int:
    """argparse type: a TCP port, 1-65535."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is a number from 1 to 65535, got {value}")
    return value


def credentials(text: str) -> tuple[str, str]:
    """argparse type: USER:PASSWORD."""
    user, sep, password = text.partition(":")
    if not (sep and user and password):
        raise argparse.ArgumentTypeError("give USER:PASSWORD")
    return user, password


def check_port_free(host: str, port: int) -> None:
    """Refuse, before anything is announced, a port that another program listens on (or that cannot be had)."""
    import socket

    from uniwav.config import ConfigError

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise ConfigError(f"--host {host}: not an address of this machine ({e.strerror})") from None
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(address)
        except OSError as e:
            raise ConfigError(f"cannot listen on {host}:{port} ({e.strerror}): another program (another uniwav serve?) uses it, "
                              "or the port needs privileges; choose another --port") from None


def add_arguments(p):
    p.add_argument("--asr", default=None, help="a CTC model (run or export): the Transcribe tab")
    p.add_argument("--tts", default=None, help="a TTS model (run or export): the Speak tab")
    p.add_argument("--tokenizer", default=None, help="a speech tokenizer (run or export): the Tokens tab")
    p.add_argument("--vocoder", default=None, help="our vocoder run/export or a public Vocos folder (default: Griffin-Lim)")
    p.add_argument("--lm", default=None, help="word n-gram LM (ARPA, `uniwav build-lm`) offered in the Transcribe tab")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface of this machine)")
    p.add_argument("--port", type=port_number, default=7860, help="port to listen on")
    p.add_argument("--auth", type=credentials, default=None, help="USER:PASSWORD: ask for a login (use it with --host 0.0.0.0)")


def run(args):
    import importlib.util

    from uniwav.config import ConfigError

    if importlib.util.find_spec("gradio") is None:
        raise ConfigError("the web page needs Gradio: pip install 'uniwav[app]'")
    from uniwav.app.serve import Models, serve

    import ipaddress
    import sys

    check_port_free(args.host, args.port)
    models = Models(args.asr, args.tts, args.tokenizer, args.vocoder, args.lm)
    try:
        local = args.host == "localhost" or ipaddress.ip_address(args.host).is_loopback
    except ValueError:
        local = False
    if not local and args.auth is None:
        print(f"warning: --host {args.host} listens beyond this machine: anyone who can reach it on port {args.port} can use these "
              "models (and your CPU/GPU); --auth USER:PASSWORD asks for a login", file=sys.stderr, flush=True)
    print(f"serving on http://{args.host}:{args.port} (Ctrl-C stops it)", flush=True)
    serve(models, args.host, args.port, auth=args.auth)
