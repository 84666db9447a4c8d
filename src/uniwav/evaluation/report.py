"""A self-contained HTML report: sections of text, tables, pictures and audio players.

Pictures and audio live beside the HTML (``img/``, ``audio/``) and are referenced by relative
paths, so the folder can be copied or served as it is.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Optional

import numpy as np

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; color: #222; line-height: 1.45; }
h1 { border-bottom: 2px solid #444; } h2 { margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 1em 0; } td, th { border: 1px solid #bbb; padding: 4px 10px; text-align: right; }
th { background: #f0f0f0; } td:first-child, th:first-child { text-align: left; }
.clip { display: inline-block; vertical-align: top; margin: 0 1em 1em 0; width: 320px; }
.clip img { width: 320px; } .clip audio { width: 320px; } .note { color: #555; font-size: 0.92em; }
pre { background: #f6f6f6; padding: 0.6em; overflow-x: auto; font-size: 0.85em; }
"""


class Report:
    def __init__(self, out_dir, title: str):
        self.dir = Path(out_dir)
        (self.dir / "img").mkdir(parents=True, exist_ok=True)
        (self.dir / "audio").mkdir(parents=True, exist_ok=True)
        self.title = title
        self.parts: list[str] = []
        self.files: list[Path] = []

    # ------------------------------------------------------------------ blocks

    def section(self, title: str) -> None:
        self.parts.append(f"<h2>{html.escape(title)}</h2>")

    def text(self, text: str, note: bool = False) -> None:
        cls = ' class="note"' if note else ""
        self.parts.append(f"<p{cls}>{html.escape(text)}</p>")

    def code(self, text: str) -> None:
        self.parts.append(f"<pre>{html.escape(text)}</pre>")

    def table(self, rows: dict, columns: Optional[list] = None, fmt: str = "{:.3f}") -> None:
        """rows: name -> {column: value}."""
        if not rows:
            return
        columns = columns or list(dict.fromkeys(k for r in rows.values() for k in r))
        head = "".join(f"<th>{html.escape(str(c))}</th>" for c in ["", *columns])
        body = []
        for name, row in rows.items():
            cells = []
            for c in columns:
                v = row.get(c)
                cells.append("-" if v is None else fmt.format(v) if isinstance(v, float) else html.escape(str(v)))
            body.append(f"<tr><td>{html.escape(str(name))}</td>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
        self.parts.append(f"<table><tr>{head}</tr>{''.join(body)}</table>")

    def figure(self, fig, name: str, caption: str = "") -> Path:
        import matplotlib.pyplot as plt

        path = self.dir / "img" / f"{name}.png"
        fig.savefig(path, dpi=90, bbox_inches="tight")
        plt.close(fig)
        return self.image(path, caption)

    def image(self, path, caption: str = "") -> Path:
        path = Path(path)
        self.files.append(path)
        rel = path.relative_to(self.dir).as_posix()
        cap = f"<figcaption class='note'>{html.escape(caption)}</figcaption>" if caption else ""
        self.parts.append(f"<figure><img src='{rel}' style='max-width:100%'>{cap}</figure>")
        return path

    def clips(self, clips: list[tuple[str, np.ndarray]], sample_rate: int, prefix: str, features=None) -> None:
        """A row of (caption, waveform) players, each with its mel spectrogram when ``features`` (LogMel) is given."""
        from uniwav.data.audio import write_audio

        cells = []
        for i, (caption, wav) in enumerate(clips):
            name = f"{prefix}_{i}"
            wav_path = self.dir / "audio" / f"{name}.wav"
            write_audio(wav_path, np.clip(np.asarray(wav, dtype=np.float32), -1, 1), sample_rate)
            self.files.append(wav_path)
            img = ""
            if features is not None:
                img_path = self._mel_png(features, wav, name)
                img = f"<img src='{img_path.relative_to(self.dir).as_posix()}'>"
            cells.append(f"<div class='clip'><b>{html.escape(caption)}</b><br>{img}<br>"
                         f"<audio controls preload='none' src='audio/{name}.wav'></audio></div>")
        self.parts.append("<div>" + "".join(cells) + "</div>")

    def _mel_png(self, features, wav, name: str) -> Path:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import torch

        mel, _ = features.raw(torch.as_tensor(np.asarray(wav, dtype=np.float32))[None])
        fig, ax = plt.subplots(figsize=(4, 1.6))
        ax.imshow(mel[0].T.numpy(), origin="lower", aspect="auto", cmap="magma", vmin=-11, vmax=2)
        ax.set_axis_off()
        path = self.dir / "img" / f"{name}_mel.png"
        fig.savefig(path, dpi=80, bbox_inches="tight", pad_inches=0)
        plt.close(fig)
        self.files.append(path)
        return path

    # ------------------------------------------------------------------ output

    def write(self, name: str = "report.html") -> Path:
        from uniwav.utils import atomic_write_text

        doc = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(self.title)}</title>"
               f"<style>{STYLE}</style></head><body><h1>{html.escape(self.title)}</h1>{''.join(self.parts)}</body></html>")
        path = self.dir / name
        atomic_write_text(path, doc)
        return path


def scalar_curves(tb_dir, tags: list[str]) -> dict:
    """tag -> (steps, values) from a TensorBoard log folder (tags that are missing are left out)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tb_dir), size_guidance={"scalars": 0})
    events.Reload()
    have = set(events.Tags().get("scalars", []))
    return {t: ([e.step for e in events.Scalars(t)], [e.value for e in events.Scalars(t)]) for t in tags if t in have}


def curves_figure(runs: dict, title: str):
    """runs: label -> (steps, values). One axis, a line per run, lightly smoothed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3))
    for label, (steps, values) in runs.items():
        v = np.asarray(values, dtype=np.float64)
        k = max(1, len(v) // 50)
        smooth = np.convolve(v, np.ones(k) / k, mode="valid") if len(v) > k else v
        ax.plot(steps[len(steps) - len(smooth):], smooth, label=label)
    ax.set_xlabel("update")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
