"""Table and plot of bench/ddp_compare.sh's runs: ddp_plot.py DIR STEPS.

Reads DIR/<preset>.<config>.jsonl (examples/ddp_train.py's records) and DIR/wan.tsv (bytes the
emulator delivered per run); prints one row per preset and configuration and writes
DIR/ddp_train.png (loss and step time per step, one row of plots per preset)."""
import json
import os
import sys
from collections import OrderedDict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

WARMUP = 3  # steps left out of the mean step time (connection set-up, first buckets)


def main():
    out, steps = sys.argv[1], int(sys.argv[2])
    wan = {}
    with open(os.path.join(out, "wan.tsv")) as f:
        for line in f:
            preset, config, nbytes = line.split()
            wan[(preset, config)] = int(nbytes)
    runs = OrderedDict()
    for (preset, config) in wan:
        with open(os.path.join(out, "%s.%s.jsonl" % (preset, config))) as f:
            records = [json.loads(l) for l in f if l.strip()]
        runs[(preset, config)] = ([r for r in records if "step" in r],
                                  next(r for r in records if "final_eval_loss" in r))
    print("%-8s %-11s %10s %8s %12s %9s %13s" % ("preset", "config", "step (s)", "vs gloo",
                                                 "final loss", "vs gloo", "WAN MB/step"))
    presets = list(OrderedDict.fromkeys(p for p, _ in runs))
    for preset in presets:
        base_steps, base_final = runs[(preset, "gloo")]
        base_t = mean([r["seconds"] for r in base_steps[WARMUP:]])
        for (p, config), (recs, final) in runs.items():
            if p != preset:
                continue
            t = mean([r["seconds"] for r in recs[WARMUP:]])
            loss = final["final_eval_loss"]
            rel = 100.0 * (loss - base_final["final_eval_loss"]) / base_final["final_eval_loss"]
            print("%-8s %-11s %10.3f %7.2fx %12.6f %+8.3f%% %13.1f" % (
                preset, config, t, t / base_t, loss, rel, wan[(preset, config)] / steps / 1e6))
    fig, axes = plt.subplots(len(presets), 2, figsize=(11, 3.6 * len(presets)), squeeze=False)
    for row, preset in enumerate(presets):
        for (p, config), (recs, _) in runs.items():
            if p != preset:
                continue
            axes[row][0].plot([r["step"] for r in recs], [r["loss"] for r in recs], label=config)
            axes[row][1].plot([r["step"] for r in recs], [r["seconds"] for r in recs], label=config)
        axes[row][0].set_title("%s: training loss (mean over the ranks' batches)" % preset)
        axes[row][1].set_title("%s: step time (s)" % preset)
        for ax in axes[row]:
            ax.set_xlabel("step")
            ax.legend()
    fig.tight_layout()
    path = os.path.join(out, "ddp_train.png")
    fig.savefig(path, dpi=90)
    print("# plot: %s" % path)


def mean(xs):
    return sum(xs) / len(xs) if xs else float("nan")


if __name__ == "__main__":
    main()
