"""Train the grader, not only heads on it: fine-tune the top K layers below the read-out layer + the heads.

The shipped heads are logistic regressions (one per proposition) on the mean and max of the grader LLM's
hidden states over the completion's tokens at read-out layers 8, 12, 16, 20 (frozen LLM). Here the K
transformer layers that produce the deepest read-out state (layers 20-K .. 19, 0-indexed modules) are trained
together with a multi-label linear head on the same pooled features, BCE on the same rows the shipped heads
are fitted on (+jbb0.3 in research/grader_real.py: gold + data/grader_aug + the JBB fit split, each JBB row
weighted 0.3). peft is not installed, so the K layers are trained in full (3.5 M parameters per layer).

  * The frozen layers below run once per row: the hidden state entering layer 20-K (conversation +
    completion tokens, the grader prompt without questions) is cached in --cache in the model's bfloat16
    (2 bytes/value, lossless: the frozen layers compute in bfloat16; ~0.8 GB for all sets).
  * Pooled states of read-out layers at or below 20-K come from the grader's readout cache (unchanged by
    training); those above are pooled from the trained layers' outputs.
  * The head starts as the logistic-regression heads fitted (per proposition, its own standardisation,
    C from head_spec.json) on the fold's training rows: at step 0 the model IS the +jbb0.3 heads, so their
    predictions (printed as "heads") come from the same run and fits. The loss is each proposition's
    logistic-regression objective (row-weighted mean BCE over the rows labelling it + its L2 term), summed
    over the propositions, now also minimised over the K layers' weights (AdamW, bf16 autocast, warm-up +
    linear decay, batch of --bs rows).

Evaluated like grader_real.py: gold 5-fold CV grouped by prompt (the same fold_indices; each fold also fits
on aug + JBB fit), acc at 0.5 and AUROC per proposition, macro AUROC over all counted gold propositions
(reward_service.offline.evaluation), and the JBB dev split (277 rows, 18 behaviours never fitted on), scored by a
fit on all gold + aug + JBB fit rows. Nothing is fitted on the dev split or on a fold's test rows (the second
run's lr below was chosen after seeing the first run's numbers, dev split included).

Measured 2026-11-28, when the JBB fit and dev rows' fully_complies label was still the benchmark's `jailbroken`
(the script now reads data/jbb_labels.jsonl, so a rerun fits and scores our reading; numbers will differ)
(K=2: layers 18 and 19, 7.1 M parameters; 2 epochs; lr 5e-5 layers / 1e-5 head; bs 16;
bf16 autocast; 1 torch thread on 2 cores shared with another job): 265 s per epoch (230-299), gold 5-fold CV
45 min, full fit + JBB dev 9 min; caching the states entering layer 18 took ~4 min. acc@0.5 / AUROC, the
+jbb0.3 heads (= step 0, the shipped recipe, fitted in the same run) -> fine-tuned:

    gold macro AUROC (20 props) 0.915 -> 0.917
    gold fully_complies       0.829/0.916 -> 0.838/0.917    gold inability_to_comply 0.960/0.919 -> 0.960/0.932
    gold disallowed_content   0.952/0.925 -> 0.952/0.927    gold apology             0.903/0.950 -> 0.912/0.949
    gold judgement            0.892/0.827 -> 0.895/0.829
    JBB dev disallowed_content 0.884/0.958 -> 0.877/0.958   JBB dev fully_complies   0.895/0.920 -> 0.888/0.920

so at this step size the fine-tuned grader stays where the heads are: +0.001 gold macro AUROC (0.013 on
inability_to_comply, 15 positives), the same JBB dev AUROC and 0.007 less JBB dev accuracy. The issue's
targets (gold macro AUROC >= 0.93) are not reached.

A 6x larger step (lr 3e-4 layers / 1e-4 head, otherwise the same; 246 s per epoch), time-boxed to gold fold 0
only (71 rows, 14 counted propositions) + the full fit: gold fold 0 macro AUROC 0.918 -> 0.925 (fully_complies
0.859/0.935 -> 0.873/0.935, inability_to_comply, 1 positive, 0.900 -> 0.843, judgement 0.812 -> 0.828), JBB dev
disallowed_content 0.884/0.958 -> 0.874/0.955, fully_complies 0.895/0.920 -> 0.884/0.919: it moves more, and
still not on the JBB dev split. Not shipped; larger K, LoRA (peft is not installed) and more epochs are untried.
All five folds at that step (2026-11-29, 2 threads, epochs 195-386 s) took 45 min; the run was stopped in its
full fit to free the CPU, before it printed anything, so the gold tables now print as soon as the CV is done.

    PYTHONPATH=. OMP_NUM_THREADS=1 .venv/bin/python research/grader_finetune.py --k 2 --epochs 2
    PYTHONPATH=. OMP_NUM_THREADS=1 .venv/bin/python research/grader_finetune.py --k 2 --epochs 2 \
        --lr 3e-4 --head-lr 1e-4 --folds 0
    # --epochs 0: step 0 only (checks that the model reproduces the heads: it does, to bf16 rounding)
"""

from __future__ import annotations

import argparse
import copy
import hashlib
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

from propositions import PropositionSpec, load_policy  # noqa: E402
from reward_service.config import load_settings  # noqa: E402
from reward_service.grader import GradeItem, Grader  # noqa: E402
from reward_service.grader._engine import _read_layers  # noqa: E402
from reward_service.grader.heads import FeatureSpec, GraderHeads, load_head_specs  # noqa: E402
from reward_service.offline.evaluation import fold_indices  # noqa: E402
from reward_service.offline.jbb import jbb_rows  # noqa: E402

FIT_SETS = ("gold", "aug", "jbb-fit")


def token_states(grader: Grader, rows, start: int, desc: str) -> list[tuple[torch.Tensor, tuple[int, int]]]:
    """Per row: the hidden state entering layer `start`, (T, H) bf16 over prompt + completion tokens, and the span."""
    out = []
    for r in tqdm(rows, desc=f"states {desc}", file=sys.stderr):
        enc = grader.fmt.encode(list(r.conversation), r.completion, [])
        a, b = enc.completion_span
        end = max(b, a + 1)  # an empty completion reads the next position (as the engine's pooling)
        with torch.inference_mode():
            hs = _read_layers(grader.engine.base, (start,), input_ids=torch.tensor([enc.prefix_ids[:end]]))[start]
        out.append((hs[0].to(torch.bfloat16).clone(), (a, b)))  # later tokens never reach the completion's
    return out


class TopGrader(nn.Module):
    """The grader's layers [start, deepest read-out) and a multi-label head on pooled (mean, max) states.

    Features are ordered as `Readout.pooled.ravel()`: (mean, max) x read-out layers x H; read-out layers at
    or below `start` are given (frozen), the others are pooled from the trained layers.
    """

    def __init__(self, base, start: int, readout_layers: tuple[int, ...], heads: list) -> None:
        super().__init__()
        self.start, self.readout_layers = start, readout_layers
        self.layers = nn.ModuleList([copy.deepcopy(m).float() for m in base.layers[start : max(readout_layers)]])
        self.rotary = copy.deepcopy(base.rotary_emb)
        self.config = base.config
        self.register_buffer("mu", torch.tensor(np.stack([h.mean for h in heads]), dtype=torch.float32))  # (P, D)
        self.register_buffer("sd", torch.tensor(np.stack([h.scale for h in heads]), dtype=torch.float32))  # (P, D)
        self.coef = nn.Parameter(torch.tensor(np.stack([h.coef for h in heads]), dtype=torch.float32))  # (P, D)
        self.bias = nn.Parameter(torch.tensor([h.intercept for h in heads], dtype=torch.float32))  # (P,)

    def pooled(self, x: torch.Tensor, span: tuple[int, int], frozen: torch.Tensor) -> torch.Tensor:
        """x: (T, H) state entering layer `start`; frozen: (2, L, H) the readout's pooled states -> (2*L*H,)."""
        from transformers.masking_utils import create_causal_mask

        h = x.float()[None]  # (1, T, H)
        pos = torch.arange(h.shape[1])[None]
        pe = self.rotary(h, position_ids=pos)
        mask = create_causal_mask(config=self.config, inputs_embeds=h, attention_mask=None, cache=None,
                                  position_ids=pos)  # fmt: skip
        outs = {}
        for i, layer in enumerate(self.layers):
            h = layer(h, attention_mask=mask, position_embeddings=pe, position_ids=pos)
            outs[self.start + i + 1] = h
        a, b = span
        b = max(b, a + 1)  # an empty completion still reads one position
        means, maxes = [], []
        for j, layer in enumerate(self.readout_layers):
            if layer <= self.start:
                means.append(frozen[0, j])
                maxes.append(frozen[1, j])
            else:
                t = outs[layer][0, a:b].float()  # (n, H)
                means.append(t.mean(0))
                maxes.append(t.max(0).values)
        return torch.cat([torch.stack(means).ravel(), torch.stack(maxes).ravel()])  # (2*L*H,)

    def logits(self, f: torch.Tensor) -> torch.Tensor:
        """f: (B, D) -> (B, P): each proposition's standardised logistic regression."""
        return (((f[:, None, :] - self.mu) / self.sd) * self.coef).sum(-1) + self.bias


def fit_heads(feats: np.ndarray, y: np.ndarray, m: np.ndarray, w: np.ndarray, C: float) -> list:
    """One logistic-regression head per proposition column (rows that label it), as grader_real fits them."""
    return [
        GraderHeads.fit_head(feats[m[:, j]], y[m[:, j], j], FeatureSpec(C=C), w[m[:, j]]) for j in range(y.shape[1])
    ]


def predict(model: TopGrader, states, frozen: np.ndarray, autocast: bool) -> np.ndarray:
    model.eval()
    out = []
    with torch.inference_mode():
        for (x, span), fz in zip(states, frozen, strict=True):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                f = model.pooled(x, span, torch.from_numpy(fz))
            out.append(torch.sigmoid(model.logits(f.float()[None])).numpy()[0])
    return np.stack(out)  # (n, P)


def train(model: TopGrader, states, frozen: np.ndarray, y: np.ndarray, m: np.ndarray, w: np.ndarray, C: float,
          args, desc: str) -> list[float]:  # fmt: skip
    """Minimise sum over propositions of (weighted mean BCE over its rows + |coef|^2 / (2 C W_p)); -> s per epoch."""
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    n = len(states)
    yt, mt, wt = (torch.tensor(a, dtype=torch.float32) for a in (y, m, w))
    per_prop = (mt * wt[:, None]).sum(0).clamp(min=1e-6)  # (P,) W_p: total weight of the rows labelling p
    groups = [
        {"params": model.layers.parameters(), "lr": args.lr, "weight_decay": args.wd},
        {"params": [model.coef, model.bias], "lr": args.head_lr, "weight_decay": 0.0},
    ]
    opt = torch.optim.AdamW(groups)
    steps = args.epochs * math.ceil(n / args.bs)
    warm = max(1, int(0.1 * steps))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warm, max(0.0, (steps - s) / (steps - warm)))
    )
    times: list[float] = []
    if args.epochs == 0:
        return times
    for ep in range(args.epochs):
        model.train()
        t0 = time.perf_counter()
        order = rng.permutation(n)
        bar = tqdm(range(0, n, args.bs), desc=f"{desc} epoch {ep + 1}/{args.epochs}", file=sys.stderr)
        run = 0.0
        for k, s in enumerate(bar):
            idx = order[s : s + args.bs]
            opt.zero_grad()
            total = 0.0
            for i in idx:
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.autocast):
                    f = model.pooled(states[i][0], states[i][1], torch.from_numpy(frozen[i]))
                z = model.logits(f.float()[None])[0]  # (P,)
                bce = nn.functional.binary_cross_entropy_with_logits(z, yt[i], reduction="none")
                loss = (n / len(idx)) * (bce * mt[i] * wt[i] / per_prop).sum()
                loss.backward()
                total += float(loss)
            pen = ((model.coef**2).sum(-1) / (2 * C * per_prop)).sum()
            pen.backward()
            total += float(pen)
            nn.utils.clip_grad_norm_(model.layers.parameters(), args.clip)
            opt.step()
            sched.step()
            run = total if k == 0 else 0.9 * run + 0.1 * total
            bar.set_postfix(loss=f"{run:.3f}")
        bar.close()
        times.append(time.perf_counter() - t0)
    model.eval()
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--k", type=int, default=2, help="train the K layers below the deepest read-out layer")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--lr", type=float, default=5e-5, help="AdamW lr of the K layers")
    ap.add_argument("--head-lr", type=float, default=1e-5, help="AdamW lr of the head (starts at the LR fit)")
    ap.add_argument("--wd", type=float, default=0.0, help="weight decay of the K layers")
    ap.add_argument("--bs", type=int, default=16)
    ap.add_argument("--clip", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jbb-weight", type=float, default=0.3)
    ap.add_argument("--no-autocast", dest="autocast", action="store_false", help="train in float32 (2x slower)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--cache", default="runs/ft_cache", help="token-state cache folder (not in git)")
    ap.add_argument("--folds", default="0,1,2,3,4", help="gold CV folds to run ('' = none)")
    ap.add_argument("--no-dev", action="store_true", help="skip the full fit and the JBB dev split")
    ap.add_argument("--subsample", type=int, default=0, help="smoke test: train on this many random rows")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    settings = load_settings().model_copy(update={"readout_cache": True, "grader_threads": args.threads})
    base_policy = load_policy(settings.policy_file)
    asked = {**base_policy.propositions, gr.ASK_NAME: PropositionSpec(question=gr.ASK_QUESTION)}
    policy = base_policy.model_copy(update={"propositions": asked})  # as grader_real: its readouts are cached
    grader = Grader.from_settings(settings, "prompted", policy)
    gr.truncate_to_readout_layers(grader)
    ro_layers = grader.engine.layers
    start = max(ro_layers) - args.k
    C = load_head_specs(__import__("json").loads((gr.ROOT / "data/grader/head_spec.json").read_text()))[0].C

    sets = {"gold": gr.read(gr.GOLD), "aug": gr.aug_rows(), "jbb-fit": jbb_rows(gr.JBB_FILE, "fit")}
    if not args.no_dev:
        sets["jbb-dev"] = jbb_rows(gr.JBB_FILE, "dev")
    rows = {k: [gr._row(o, policy, base_policy, k, i) for i, o in enumerate(v)] for k, v in sets.items()}
    names = [p for p in base_policy.propositions if any(p in r.labels for r in rows["gold"])]
    pooled, states = {}, {}
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    tag = hashlib.sha256(f"{grader.engine_id}|{grader.fmt.version}".encode()).hexdigest()[:10]
    for k, rs in rows.items():
        items = [GradeItem(r.conversation, r.completion, "comply") for r in rs]
        ros = grader.readouts(items, [list(gr.ASKED)] * len(items), progress=True)  # cached by grader_real
        pooled[k] = np.stack([ro.pooled[:2] for ro in ros]).astype(np.float32)  # (n, 2, L, H): mean, max
        path = cache / f"{k}-in{start}-{tag}.pt"
        if path.exists():
            states[k] = torch.load(path)
        else:
            states[k] = token_states(grader, rs, start, k)
            torch.save(states[k], path)

    def labels(k: str, idx) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rs = [rows[k][i] for i in idx]
        y = np.array([[r.labels.get(p, False) for p in names] for r in rs], dtype=bool)
        m = np.array([[p in r.labels for p in names] for r in rs], dtype=bool)
        w = np.full(len(rs), args.jbb_weight if k == "jbb-fit" else 1.0)
        return y, m, w

    def fit(parts: list[tuple[str, list[int]]], desc: str):
        """(LR heads fitted on parts = step 0, fine-tuned model, seconds per epoch)."""
        st = [states[k][i] for k, idx in parts for i in idx]
        fz = np.concatenate([pooled[k][idx] for k, idx in parts])
        y, m, w = (np.concatenate(a) for a in zip(*[labels(k, idx) for k, idx in parts], strict=True))
        t0 = time.perf_counter()
        heads = fit_heads(fz.reshape(len(fz), -1), y, m, w, C)
        t_lr = time.perf_counter() - t0
        model = TopGrader(grader.engine.base, start, ro_layers, heads)
        if args.subsample:
            sel = np.random.default_rng(args.seed).choice(len(st), min(args.subsample, len(st)), replace=False)
            st, fz, y, m, w = [st[i] for i in sel], fz[sel], y[sel], m[sel], w[sel]
        times = train(model, st, fz, y, m, w, C, args, desc)
        return heads, model, times, t_lr

    n_params = sum(p.numel() for p in grader.engine.base.layers[start : max(ro_layers)].parameters())
    print(f"# fine-tune layers {start}..{max(ro_layers) - 1} (K={args.k}, {n_params / 1e6:.1f} M params) + "
          f"{len(names)} heads on pooled mean/max at read-out layers {ro_layers}; epochs {args.epochs}, "
          f"lr {args.lr} (head {args.head_lr}), bs {args.bs}, wd {args.wd}, C {C}, jbb weight {args.jbb_weight}, "
          f"autocast bf16 {args.autocast}, torch threads {torch.get_num_threads()}; {grader.engine_id}")  # fmt: skip
    print("# rows: " + ", ".join(f"{k} {len(v)}" for k, v in rows.items()))
    sys.stdout.flush()
    epoch_times: list[float] = []
    before: dict = {}
    after: dict = {}
    folds = [int(f) for f in args.folds.split(",") if f != ""]
    gold = rows["gold"]
    if folds:
        t_cv = time.perf_counter()
        p_lr = np.full((len(gold), len(names)), np.nan)
        p_ft = np.full((len(gold), len(names)), np.nan)
        allf = fold_indices([r.group for r in gold], 5)
        for f in folds:
            tr, te = allf[f]
            parts = [("gold", list(tr)), ("aug", list(range(len(rows["aug"])))),
                     ("jbb-fit", list(range(len(rows["jbb-fit"]))))]  # fmt: skip
            heads, model, times, t_lr = fit(parts, f"fold {f}")
            epoch_times += times
            x_te = pooled["gold"][te].reshape(len(te), -1)
            p_lr[te] = np.stack([h.predict(x_te) for h in heads], 1)
            p_ft[te] = predict(model, [states["gold"][i] for i in te], pooled["gold"][te], args.autocast)
            print(f"# fold {f}: LR heads {t_lr:.0f} s, epochs " + ", ".join(f"{t:.0f}" for t in times) + " s",
                  file=sys.stderr, flush=True)  # fmt: skip
        t_cv = time.perf_counter() - t_cv
        done = ~np.isnan(p_lr[:, 0])
        sub = [gold[i] for i in np.flatnonzero(done)]
        before["gold"] = gr._methods(sub, names, {p: p_lr[done, j] for j, p in enumerate(names)},
                                     {p: p_lr[done, j] for j, p in enumerate(names)})  # fmt: skip
        after["gold"] = gr._methods(sub, names, {p: p_ft[done, j] for j, p in enumerate(names)},
                                    {p: p_ft[done, j] for j, p in enumerate(names)})  # fmt: skip
        print(f"# gold CV ({len(folds)} folds, {int(done.sum())} rows scored): {t_cv:.0f} s")
        compare({"gold": before["gold"]}, {"gold": after["gold"]})  # now: the full fit below takes a while
        sys.stdout.flush()
    if not args.no_dev:
        t_full = time.perf_counter()
        parts = [(k, list(range(len(rows[k])))) for k in FIT_SETS]
        heads, model, times, _ = fit(parts, "full")
        epoch_times += times
        dev = rows["jbb-dev"]
        ns = [p for p in gr.TARGETS if any(p in r.labels for r in dev)]
        x = pooled["jbb-dev"].reshape(len(dev), -1)
        p_lr = {p: heads[names.index(p)].predict(x) for p in ns}
        pf = predict(model, states["jbb-dev"], pooled["jbb-dev"], args.autocast)
        before["jbb-dev"] = gr._methods(dev, ns, p_lr, p_lr)
        after["jbb-dev"] = gr._methods(dev, ns, {p: pf[:, names.index(p)] for p in ns}, p_lr)
        print(f"# full fit + JBB dev: {time.perf_counter() - t_full:.0f} s")
    if epoch_times:
        print(
            f"# seconds per epoch: mean {np.mean(epoch_times):.0f} (" + ", ".join(f"{t:.0f}" for t in epoch_times) + ")"
        )
    compare({k: v for k, v in before.items() if k != "gold"}, {k: v for k, v in after.items() if k != "gold"})
    gr.summary({"heads +jbb0.3": before, f"finetune K={args.k}": after})


def compare(before: dict, after: dict) -> None:
    for ds in after:
        print(f"\n## {ds}: acc@0.5 / AUROC, +jbb0.3 heads (step 0) -> fine-tuned")
        print(
            f"{'proposition':22s} {'n':>4s} {'pos':>4s} | {'heads':>11s} | {'fine-tuned':>11s} | "
            f"{'Δacc':>6s} {'ΔAUC':>6s}"
        )
        for p in gr.TARGETS:
            if p not in after[ds]["heads"]:
                continue
            y, q0 = before[ds]["heads"][p]
            q1 = after[ds]["heads"][p][1]
            a0, u0, a1, u1 = gr._acc(y, q0), gr._auc(y, q0), gr._acc(y, q1), gr._auc(y, q1)
            print(f"{p:22s} {len(y):4d} {int(y.sum()):4d} | {a0:.3f}/{u0:.3f} | {a1:.3f}/{u1:.3f} | "
                  f"{a1 - a0:+6.3f} {u1 - u0:+6.3f}")  # fmt: skip
        if len(after[ds]["heads"]) > len(gr.TARGETS):
            r0, r1 = gr._report(before[ds]["heads"]), gr._report(after[ds]["heads"])
            print(f"{'macro AUROC (' + str(len(r1.counted)) + ' props)':32s} | {r0.macro_auroc:.3f} -> "
                  f"{r1.macro_auroc:.3f} ({r1.macro_auroc - r0.macro_auroc:+.3f})")  # fmt: skip


if __name__ == "__main__":
    main()
