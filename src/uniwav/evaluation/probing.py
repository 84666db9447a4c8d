"""What each encoder layer knows: frame-level linear probes and k-means mutual information.

Frame labels come from CTC forced alignments (``uniwav align``, read by ``data.alignments``,
whose ``frame_labels`` gives each frame its character or silence). Speaker labels come from the
alignment rows.

- ``linear_probe``: a softmax regression on standardised frozen features (full-batch L-BFGS),
  fitted on one set of speakers and scored on unseen ones: frame accuracy.
- ``kmeans_mutual_information``: k-means units per layer, and the mutual information (in bits)
  between units and characters and between units and speakers, normalised by the label entropy
  (the paper's layer analysis).
"""

from __future__ import annotations

from typing import Optional
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from uniwav.data.alignments import frame_labels, read_alignments


@torch.no_grad()
def layer_features(encoder_fn, cuts, alignments: dict, max_utterances: Optional[int] = None) -> tuple[list, list, list]:
    """encoder_fn(wav [S]) -> list of per-layer [T, D] tensors. Returns (per-layer frame features
    [N, D] list, character labels [N], speaker labels [N]) over cuts that have an alignment."""
    feats, chars, speakers = None, [], []
    n = 0
    for cut in cuts:
        row = alignments.get(cut.id)
        if row is None:
            continue
        layers = encoder_fn(torch.from_numpy(cut.load_audio()[0]))
        T = min(layers[0].shape[0], row["num_frames"])
        if feats is None:
            feats = [[] for _ in layers]
        for acc, h in zip(feats, layers):
            acc.append(h[:T].float().cpu())
        chars.extend(frame_labels(row)[:T])
        speakers.extend([row.get("speaker") or cut.supervisions[0].speaker] * T)
        n += 1
        if max_utterances is not None and n >= max_utterances:
            break
    if feats is None:
        raise ValueError("no cut has an alignment")
    return [torch.cat(f) for f in feats], chars, speakers


def _encode_labels(train: Sequence[str], test: Sequence[str]):
    vocab = {s: i for i, s in enumerate(sorted(set(train)))}
    y_train = torch.tensor([vocab[s] for s in train])
    y_test = torch.tensor([vocab.get(s, -1) for s in test])
    return y_train, y_test, len(vocab)


def linear_probe(x_train: torch.Tensor, labels_train, x_test: torch.Tensor, labels_test, iters: int = 100, l2: float = 1e-4) -> float:
    """Frame accuracy on the test frames of a softmax regression fitted on the train frames."""
    y_train, y_test, k = _encode_labels(labels_train, labels_test)
    mean, std = x_train.mean(0), x_train.std(0).clamp_min(1e-5)
    a, b = (x_train - mean) / std, (x_test - mean) / std
    w = torch.zeros(a.shape[1], k, requires_grad=True)
    bias = torch.zeros(k, requires_grad=True)
    opt = torch.optim.LBFGS([w, bias], lr=1.0, max_iter=iters, history_size=20, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(a @ w + bias, y_train) + l2 * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        pred = (b @ w + bias).argmax(-1)
    return float((pred == y_test).float().mean())


def mutual_information(units: np.ndarray, labels: Sequence[str]) -> tuple[float, float]:
    """(I(units; labels) in bits, I / H(labels))."""
    _, y = np.unique(np.asarray(labels), return_inverse=True)
    joint = np.zeros((units.max() + 1, y.max() + 1))
    np.add.at(joint, (units, y), 1.0)
    p = joint / joint.sum()
    pu, py = p.sum(1, keepdims=True), p.sum(0, keepdims=True)
    nz = p > 0
    mi = float((p[nz] * np.log2(p[nz] / (pu @ py)[nz])).sum())
    hy = float(-(py[py > 0] * np.log2(py[py > 0])).sum())
    return mi, mi / hy if hy > 0 else 0.0


def kmeans_mutual_information(x: torch.Tensor, chars, speakers, k: int = 100, iters: int = 20, seed: int = 0) -> dict:
    from uniwav.models.quantization import kmeans, nearest

    g = torch.Generator().manual_seed(seed)
    xs = (x - x.mean(0)) / x.std(0).clamp_min(1e-5)
    centres = kmeans(xs, k, iters, generator=g)
    units = nearest(xs, centres).numpy()
    mi_c, nmi_c = mutual_information(units, chars)
    mi_s, nmi_s = mutual_information(units, speakers)
    return {"mi_text_bits": mi_c, "nmi_text": nmi_c, "mi_speaker_bits": mi_s, "nmi_speaker": nmi_s}


def analyze_layers(model, data_dir, align_dir, train_split: str = "train", test_split: str = "test", max_train_utterances: int = 200,
                   max_test_utterances: Optional[int] = None, units: int = 100, probe_iters: int = 60) -> dict:
    """Per encoder layer of a UniWav (layer 0 = the normalised log-mel input): frame accuracy of a
    character probe fitted on ``train_split`` and scored on ``test_split`` (unseen speakers), and
    k-means units' normalised mutual information with characters and with speakers (``test_split``)."""
    from uniwav.data.manifests import load_cuts

    model.eval()

    def layers_of(wav):
        feats, _ = model.features.prepare(wav)
        return [feats[0]] + [h[0] for h in model.backbone.encoder(feats, None).hidden]

    x_tr, c_tr, _ = layer_features(layers_of, load_cuts(data_dir, train_split), read_alignments(align_dir, train_split), max_train_utterances)
    x_te, c_te, s_te = layer_features(layers_of, load_cuts(data_dir, test_split), read_alignments(align_dir, test_split), max_test_utterances)
    rows = []
    for i, (a, b) in enumerate(zip(x_tr, x_te)):
        row = {"layer": i, "probe_accuracy": linear_probe(a, c_tr, b, c_te, iters=probe_iters)}
        row.update(kmeans_mutual_information(b, c_te, s_te, k=units))
        rows.append(row)
    weights = torch.softmax(model.backbone.layer_weights.detach().float(), 0).tolist()
    first = next(iter(read_alignments(align_dir, test_split).values()), {})
    return {
        "unit": first.get("unit", "char"),  # what the text labels are: the alignments' characters or phones
        "layers": rows,
        "layer_mixer_weights": weights,
        "train_frames": len(c_tr),
        "test_frames": len(c_te),
        "majority_baseline": max(c_te.count(c) for c in set(c_te)) / len(c_te),
    }


def plot_layers(result: dict, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["layers"]
    x = [r["layer"] for r in rows]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    unit = {"char": "character", "phone": "phone"}.get(result.get("unit", "char"), "token")
    ax.plot(x, [r["probe_accuracy"] for r in rows], "o-", label=f"{unit} probe accuracy")
    ax.plot(x, [r["nmi_text"] for r in rows], "s-", label=f"NMI(units; {unit}s)")
    ax.plot(x, [r["nmi_speaker"] for r in rows], "^-", label="NMI(units; speakers)")
    ax.axhline(result["majority_baseline"], color="grey", ls=":", label="majority class")
    ax.set_xlabel("encoder layer (0 = log-mel input)")
    ax.set_xticks(x)
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    ax.set_title("what each layer knows")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
