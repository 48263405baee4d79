"""A trained read-out that sees the request: attention-pooling probes on the grader LLM's token states.

The shipped heads are logistic regressions on mean/max-pooled completion states. Here a small network
(LayerNorm -> projection -> optional transformer layer over request + completion tokens -> one attention
query per proposition over the completion tokens, beside the mean) is trained on the frozen LLM's token
states at one or more layers, multi-label, on the same rows as the heads. Compared on the same splits as
research/grader_real.py: gold 5-fold CV grouped by prompt, the JBB dev split (never fitted), and the
team's check sets.

Token states are computed once (one prefix forward per row, the grader prompt without questions) and
cached in --cache as float16 (1.4 GB for layers 16,24; ~10 min at 1 thread); --pca projects them to 256
dims first so that a training step is cheap (~5 min per fit on 2 cores).

Measured 2026-11-28, when the JBB rows' fully_complies label was still the benchmark's `jailbroken` (a rerun now
fits and scores data/jbb_labels.jsonl; numbers will differ) (layers 16,24, PCA 256, d=128, one encoder layer,
10 epochs, JBB fit rows weighted 0.3), against the logistic heads on pooled states fitted on the same rows
(+jbb0.3 in grader_real.py), acc / AUROC:

    gold macro AUROC 0.883 (heads 0.915)   gold fully_complies 0.832/0.904 (0.829/0.915)
    gold disallowed_content 0.937/0.835 (0.952/0.925)   gold inability_to_comply 0.969/0.954 (0.960/0.919)
    JBB dev disallowed_content 0.809/0.935 (0.884/0.958)   JBB dev fully_complies 0.852/0.922 (0.895/0.920)

so the probe is not shipped: on ~1,800 rows it loses to the linear heads everywhere except
inability_to_comply.

    .venv/bin/python research/grader_probe.py --layers 16,24 --d 128 --enc-layers 1 --epochs 10
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
import grader_real as gr  # noqa: E402

from propositions import load_policy  # noqa: E402
from reward_service.config import load_settings  # noqa: E402
from reward_service.grader import Grader  # noqa: E402
from reward_service.offline.evaluation import fold_indices  # noqa: E402
from reward_service.offline.jbb import jbb_rows  # noqa: E402


def token_states(grader: Grader, rows, layers: tuple[int, ...], desc: str):
    """Per row: (T, len(layers)*H) float16 states of conversation + completion tokens, (T,) segment (1 = completion)."""
    fmt, base = grader.fmt, grader.engine.base
    out = []
    for r in tqdm(rows, desc=desc, file=sys.stderr):
        enc = fmt.encode(list(r.conversation), r.completion, [])
        a, b = enc.completion_span
        c0 = len(fmt._head)
        with torch.inference_mode():
            hs = base(input_ids=torch.tensor([enc.prefix_ids[:b]]), output_hidden_states=True).hidden_states
        x = torch.cat([hs[layer][0, c0:b] for layer in layers], -1).to(torch.float16)  # (T, L*H)
        seg = torch.zeros(b - c0, dtype=torch.long)
        seg[a - c0 :] = 1
        if b == a:  # empty completion: read the last position
            seg[-1] = 1
        out.append((x, seg))
    return out


class Probe(nn.Module):
    def __init__(self, h_in: int, n_props: int, d: int = 256, enc_layers: int = 1, dropout: float = 0.1) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(h_in)
        self.proj = nn.Linear(h_in, d)
        self.seg = nn.Embedding(2, d)
        self.drop = nn.Dropout(dropout)
        self.enc = (
            nn.TransformerEncoder(
                nn.TransformerEncoderLayer(d, 4, 2 * d, dropout, batch_first=True, norm_first=True), enc_layers
            )
            if enc_layers
            else None
        )
        self.query = nn.Parameter(torch.randn(n_props, d) * 0.02)
        self.w = nn.Parameter(torch.zeros(n_props, 2 * d))
        self.b = nn.Parameter(torch.zeros(n_props))

    def forward(self, x: torch.Tensor, seg: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        z = self.drop(self.proj(self.norm(x)) + self.seg(seg))  # (B, T, d)
        if self.enc is not None:
            z = self.enc(z, src_key_padding_mask=~mask)  # (B, T, d)
        comp = mask & (seg == 1)  # (B, T)
        att = torch.einsum("btd,pd->bpt", z, self.query) / math.sqrt(z.shape[-1])  # (B, P, T)
        att = att.masked_fill(~comp[:, None, :], -1e9).softmax(-1)
        pooled = torch.einsum("bpt,btd->bpd", att, z)  # (B, P, d)
        mean = (z * comp[..., None]).sum(1) / comp.sum(1, keepdim=True).clamp(min=1)  # (B, d)
        feats = torch.cat([pooled, mean[:, None, :].expand_as(pooled)], -1)  # (B, P, 2d)
        return (feats * self.w).sum(-1) + self.b  # (B, P)


def _batch(data, idx):
    xs = [data[i][0] for i in idx]
    t = max(x.shape[0] for x in xs)
    b, h = len(xs), xs[0].shape[1]
    x = torch.zeros(b, t, h)
    seg = torch.zeros(b, t, dtype=torch.long)
    mask = torch.zeros(b, t, dtype=torch.bool)
    for r, i in enumerate(idx):
        n = data[i][0].shape[0]
        x[r, :n] = data[i][0].float()
        seg[r, :n] = data[i][1]
        mask[r, :n] = True
    return x, seg, mask


def train_probe(data, y, m, w, args, seed: int = 0) -> Probe:
    """data: list of (states, seg); y, m: (N, P) labels and label mask; w: (N,) row weights."""
    torch.manual_seed(seed)
    probe = Probe(data[0][0].shape[1], y.shape[1], args.d, args.enc_layers, args.dropout)
    opt = torch.optim.AdamW(probe.parameters(), lr=args.lr, weight_decay=args.wd)
    n = len(data)
    steps = args.epochs * math.ceil(n / args.bs)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, args.lr, total_steps=steps, pct_start=0.1)
    rng = np.random.default_rng(seed)
    lengths = np.array([d[0].shape[0] for d in data])
    probe.train()
    for _ in range(args.epochs):
        order = rng.permutation(n)
        chunks = [order[i : i + args.bs * 8] for i in range(0, n, args.bs * 8)]  # length-bucketed batches
        batches = []
        for c in chunks:
            c = c[np.argsort(lengths[c])]
            batches += [c[i : i + args.bs] for i in range(0, len(c), args.bs)]
        rng.shuffle(batches)
        for idx in batches:
            x, seg, mask = _batch(data, idx)
            logits = probe(x, seg, mask)  # (B, P)
            loss = nn.functional.binary_cross_entropy_with_logits(logits, y[idx], reduction="none")
            wt = m[idx] * w[idx, None]
            loss = (loss * wt).sum() / wt.sum().clamp(min=1e-6)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    probe.eval()
    return probe


@torch.no_grad()
def predict(probe: Probe, data, bs: int = 16) -> np.ndarray:
    out = []
    for i in range(0, len(data), bs):
        idx = list(range(i, min(i + bs, len(data))))
        out.append(torch.sigmoid(probe(*_batch(data, idx))).numpy())
    return np.concatenate(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--layers", default="16,24", help="hidden-state layers read (0 = embeddings)")
    ap.add_argument("--cache", default="runs/probe_cache", help="token-state cache folder")
    ap.add_argument("--d", type=int, default=256)
    ap.add_argument("--enc-layers", type=int, default=1)
    ap.add_argument("--dropout", type=float, default=0.1)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--wd", type=float, default=0.05)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--bs", type=int, default=16)
    ap.add_argument("--jbb-weight", type=float, default=0.3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--pca", type=int, default=256, help="project token states to this many PCA dims (0: off)")
    ap.add_argument("--no-cv", action="store_true", help="skip gold CV (only the full fit and the dev sets)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    layers = tuple(int(x) for x in args.layers.split(","))

    settings = load_settings()
    policy = load_policy(settings.policy_file)
    grader = Grader.from_settings(settings, "prompted", policy)
    base = grader.engine.base
    keep = max(layers)
    if len(base.layers) > keep:
        base.layers = base.layers[:keep]
    sets = {
        "gold": gr.read(gr.GOLD),
        "aug": gr.aug_rows(),
        "jbb-fit": jbb_rows(gr.JBB_FILE, "fit"),
        "jbb-dev": jbb_rows(gr.JBB_FILE, "dev"),
        "check": gr.read(gr.CHECK),
        "contrast": gr.read(gr.CONTRAST),
    }
    rows = {k: [gr._row(o, policy, policy, k, i) for i, o in enumerate(v)] for k, v in sets.items()}
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    states = {}
    for k, rs in rows.items():
        path = cache / f"{k}-{'_'.join(map(str, layers))}-{grader.engine_id.replace('/', '_').replace('|', '_')}.pt"
        if path.exists():
            states[k] = torch.load(path)
        else:
            states[k] = token_states(grader, rs, layers, k)
            torch.save(states[k], path)
    names = [p for p in policy.propositions if any(p in r.labels for r in rows["gold"])]
    if args.pca:  # a fixed linear map (PCA of fit-set token states) makes every training step cheaper
        t0 = time.perf_counter()
        sample = torch.cat([x[::7].float() for k in ("gold", "aug", "jbb-fit") for x, _ in states[k]])  # (N, L*H)
        mu = sample.mean(0)
        _, _, v = torch.pca_lowrank(sample - mu, q=args.pca, center=False)  # v: (L*H, pca)
        for k in states:
            states[k] = [(((x.float() - mu) @ v).to(torch.float16), seg) for x, seg in states[k]]
        print(
            f"# PCA {sample.shape[1]} -> {args.pca} on {len(sample)} token states ({time.perf_counter() - t0:.0f} s)",
            file=sys.stderr,
        )

    def labels(rs):
        y = torch.tensor([[float(r.labels.get(p, False)) for p in names] for r in rs])
        m = torch.tensor([[float(p in r.labels) for p in names] for r in rs])
        return y, m

    def fit(parts: list[tuple[str, list[int] | None]]):
        data, ys, ms, ws = [], [], [], []
        for k, idx in parts:
            idx = list(range(len(rows[k]))) if idx is None else idx
            data += [states[k][i] for i in idx]
            y, m = labels([rows[k][i] for i in idx])
            ys.append(y)
            ms.append(m)
            ws.append(torch.full((len(idx),), args.jbb_weight if k == "jbb-fit" else 1.0))
        return train_probe(data, torch.cat(ys), torch.cat(ms), torch.cat(ws), args)

    print(
        f"# probe on layers {layers}, d={args.d}, enc_layers={args.enc_layers}, epochs={args.epochs}, "
        f"lr={args.lr}, wd={args.wd}, jbb weight {args.jbb_weight}; {grader.engine_id}"
    )
    results: dict = {}
    t0 = time.perf_counter()
    if not args.no_cv:
        probs = np.full((len(rows["gold"]), len(names)), np.nan)
        for tr, te in fold_indices([r.group for r in rows["gold"]], 5):
            probe = fit([("gold", list(tr)), ("aug", None), ("jbb-fit", None)])
            probs[te] = predict(probe, [states["gold"][i] for i in te])
            print(f"# fold done at {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
        bow = gr.bow_baseline(rows["gold"], names, 5, extra=rows["aug"] + rows["jbb-fit"])
        results["gold"] = gr._methods(rows["gold"], names, {p: probs[:, j] for j, p in enumerate(names)}, bow)
        print(f"# gold CV fitted in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    probe = fit([("gold", None), ("aug", None), ("jbb-fit", None)])
    for k in ("jbb-dev", "check", "contrast"):
        ns = [p for p in gr.TARGETS if any(p in r.labels for r in rows[k])]
        pr = predict(probe, states[k])
        bow = gr.bow_baseline(rows[k], ns, None, extra=rows["gold"] + rows["aug"] + rows["jbb-fit"])
        results[k] = gr._methods(rows[k], ns, {p: pr[:, names.index(p)] for p in ns}, bow)
    for k, res in results.items():
        gr.print_table(f"probe | {k}", res)
    gr.summary({"probe": results})


if __name__ == "__main__":
    main()
