"""Seconds per training step of the default recipe against the number of data-loader workers.

Each variant is a short real training run (``train()`` of ``configs/default_model.toml`` on a
prepared recipe folder, no validation, no checkpoints) of ``--steps`` steps; a round runs every
variant once, rotated (bench/_timing.py). The figure is wall seconds per step over the whole run,
start-up included (building the data set, forking the workers, the first batch), since a real run
pays those too, once per epoch for the workers. Ratios are paired per round against the first
variant. The samples, hence the trained weights, are the same in every variant: the workers
change only where the pixels are made.

    python bench/train_speed.py --prepared runs/recipe-arms/data --steps 40 --repeats 3
    python bench/train_speed.py --prepared runs/recipe-arms/data --variants w1,w2 --set data.size=288
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from importlib import resources
from pathlib import Path

from deepfake_attention.recipe.run import CONFIG, read_prepared
from deepfake_attention.train import load_config, train

from _timing import Verdict, add_arguments, legend, load_line, measure

VARIANTS = {"w1": ["data.workers=1"], "w2": ["data.workers=2"], "w0": ["data.workers=0"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prepared", type=Path, required=True, help="a recipe's prepared data folder (runs/default-model/data)")
    parser.add_argument("--variants", default="w1,w2", help=f"comma-separated, out of {','.join(VARIANTS)} (the first is the baseline)")
    parser.add_argument("--steps", type=int, default=40, help="training steps per timed run (default 40)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE", help="override the config of every variant")
    add_arguments(parser, repeats=3, warmup=1)
    args = parser.parse_args()
    names = [n for n in args.variants.split(",") if n]
    if not names or any(n not in VARIANTS for n in names):
        parser.error(f"--variants must name some of {list(VARIANTS)}")
    paths = read_prepared(args.prepared)["paths"]
    config_path = Path(str(resources.files("deepfake_attention.configs") / CONFIG))

    def run(name: str, scratch: Path) -> None:
        cfg = load_config(config_path, [f"run.out={json.dumps(str(scratch / name))}", f"data.real_faces={json.dumps([paths['faces_train']])}",
                                        f"optim.max_steps={args.steps}", "run.eval_every=0", f"run.checkpoint_every={10 * args.steps}",
                                        "run.tensorboard=false", "run.keep_checkpoints=1", *VARIANTS[name], *args.overrides])
        train(cfg, resume=False, progress=False)

    with tempfile.TemporaryDirectory(prefix="train-speed-") as scratch:
        timings = measure({name: (lambda name=name: run(name, Path(scratch))) for name in names}, repeats=args.repeats, warmup=args.warmup_rounds)
    verdict = Verdict()
    base = names[0]
    print(f"| variant | seconds per step | vs {base} |\n|---|---|---|")
    for name in names:
        per_step = timings[name].map(lambda seconds: seconds / args.steps)
        ratio = "1" if name == base else verdict.ratio(f"{name} / {base}", timings.ratio(name, base)).show_ratio()
        print(f"| {name} ({', '.join(VARIANTS[name])}) | {per_step.show(2)} | {ratio} |")
    settings = f" with {', '.join(args.overrides)}" if args.overrides else ""
    print(f"\n{args.steps} steps per run of the recipe's config{settings}; {legend(args.repeats, args.warmup_rounds)}")
    return verdict.report(args.strict, load=load_line())


if __name__ == "__main__":
    sys.exit(main())
