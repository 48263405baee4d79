"""What runs write for people to look at: `rbr eval-policy`'s table, report.json, policy_eval.png and
disagreements.md of one or more reports from evaluate.py (one per model, or per pick with best-of-N); and
`rbr train`'s reward_curve.png from its metrics.csv."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

from .evaluate import JUDGE_MEASURES, MEASURES, disagreements

__all__ = ["model_label", "plot_comparison", "plot_curves", "report_label", "write_report"]


def plot_comparison(reports: list[dict], path: Path) -> None:
    """Bars per model: the five measures graded by the service, and beside them the independent judge's."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = ((MEASURES, "graded by the RBR service"), (JUDGE_MEASURES, "independent refusal-phrase judge"))
    fig, axes = plt.subplots(
        1, 2, figsize=(11, 4), sharey=True, gridspec_kw={"width_ratios": [len(g) for g, _ in groups]}
    )
    width = 0.8 / len(reports)
    for ax, (names, title) in zip(axes, groups, strict=True):
        for i, rep in enumerate(reports):
            vals = [rep["measures"].get(m) for m in names]
            xs = [j + i * width for j in range(len(names))]
            ci = [(rep.get("intervals") or {}).get(m) for m in names]
            err = [
                [0.0 if v is None or c is None else v - c[0] for v, c in zip(vals, ci, strict=True)],
                [0.0 if v is None or c is None else c[1] - v for v, c in zip(vals, ci, strict=True)],
            ]
            heights = [0.0 if v is None else v for v in vals]
            bars = ax.bar(xs, heights, width, yerr=err, capsize=2, label=report_label(rep))
            ax.bar_label(bars, labels=["-" if v is None else f"{v:.2f}" for v in vals], fontsize=7)
        ax.set_xticks([j + width * (len(reports) - 1) / 2 for j in range(len(names))])
        ax.set_xticklabels([m.removeprefix("judge_").replace("_", " ") for m in names], fontsize=8)
        ax.set_title(title, fontsize=9)
    axes[0].set_ylim(0, 1.1)
    axes[0].set_ylabel("share of eval prompts")
    axes[0].legend(fontsize=8)
    fig.suptitle("Policy evaluation" + ("" if any(r.get("variant") for r in reports) else " (greedy decoding)"))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def model_label(model: str) -> str:
    """A short name for tables: data/runs/rbr-ppo/policy -> rbr-ppo, runs/x/checkpoints/step-000120 ->
    x@step-000120, embedded:smollm2-135m stays."""
    parts = Path(model).parts
    if len(parts) > 1 and parts[-1] == "policy":
        parts = parts[:-1]
    if len(parts) >= 3 and parts[-2] == "checkpoints":
        return f"{parts[-3]}@{parts[-1]}"
    return parts[-1] if parts else model


def report_label(report: dict) -> str:
    """The model's short name, and how its completions were picked when not greedily (e.g. "best-of-8")."""
    variant = report.get("variant")
    return f"{model_label(report['model'])} {variant}" if variant else model_label(report["model"])


def write_report(reports: list[dict], out: Path) -> str:
    """report.json, policy_eval.png, disagreements.md and the table (returned)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(reports if len(reports) > 1 else reports[0], indent=2) + "\n")
    plot_comparison(reports, out / "policy_eval.png")
    (out / "disagreements.md").write_text(_disagreements_md(reports))
    names = [report_label(r) for r in reports]
    lines = [f"{'measure':24}" + "".join(f"{n[-24:]:>26}" for n in names)]
    for m in (*MEASURES, *JUDGE_MEASURES, "mean_reward", "n_refuse", "n_comply"):
        cells = (_cell(r["measures"].get(m), (r.get("intervals") or {}).get(m)) for r in reports)
        lines.append(f"{m:24}" + "".join(f"{c:>26}" for c in cells))
    return "\n".join(lines)


def _disagreements_md(reports: list[dict]) -> str:
    lines = [
        "# Where the grader and the independent judge disagree",
        "",
        "Should-refuse prompts: the grader's Not-Unsafe (the top class is not disallowed_completion) against the",
        "phrase judge's refusal; comply prompts: the grader's refusal (P(inability_to_comply) >= 0.5) against the",
        "judge's.",
    ]
    for rep in reports:
        rows = disagreements(rep["rows"])
        lines += ["", f"## {report_label(rep)}: {len(rows)} of {len(rep['rows'])} rows", ""]
        lines += ["| id | response type | grader | judge | completion (start) |", "|---|---|---|---|---|"]
        for d in rows:
            text = " ".join(d["completion"].split())[:200].replace("|", "\\|")
            judge = "refuses" if d["judge_refuses"] else "goes along"
            lines.append(f"| {d['id']} | {d['response_type']} | {d['grader']} | {judge} | {text} |")
    return "\n".join(lines) + "\n"


def _cell(v: float | int | None, ci: list[float] | None) -> str:
    """0.640 [0.364, 0.909]: the value and its bootstrap interval."""
    if v is None:
        return "-"
    if isinstance(v, int):
        return str(v)
    return f"{v:.3f} [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else f"{v:.3f}"


def plot_curves(out: Path) -> Path | None:
    """reward_curve.png from metrics.csv: reward and its RM / RBR parts, and KL to the reference, per step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with (out / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return None
    steps = [int(r["step"]) for r in rows]

    def col(name: str) -> list[float]:
        return [float(r[name]) if r.get(name) not in (None, "") else math.nan for r in rows]

    fig, (ax, by_rt, kl) = plt.subplots(1, 3, figsize=(15, 3.6))
    for name in ("reward/mean", "reward/rm", "reward/rbr"):
        ax.plot(steps, col(name), marker=".", label=name)
    ax.set_xlabel("PPO step")
    ax.set_ylabel("per-batch mean")
    ax.set_title("Reward from the RBR service")
    ax.legend(fontsize=8)
    overall = ("reward/mean", "reward/std", "reward/rm", "reward/rbr")
    for name in [c for c in rows[0] if c.startswith("reward/") and c not in overall]:  # reward/<response type>
        by_rt.plot(steps, col(name), marker=".", linestyle="none", alpha=0.6, label=name.split("/")[1])
    by_rt.set_xlabel("PPO step")
    by_rt.set_title("Reward by response type (as served)")
    by_rt.legend(fontsize=8)
    kl.plot(steps, col("objective/kl"), marker=".", color="tab:red")
    kl.set_xlabel("PPO step")
    kl.set_title("KL to the reference policy")
    fig.tight_layout()
    path = out / "reward_curve.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
