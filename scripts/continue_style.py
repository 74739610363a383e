"""Train bundled styles for longer: their last stage's loss again from the shipped weights (LONGER), on this CPU or
a lent GPU, all styles at once, stopped after a time limit with a saved model (issue 12).

    python scripts/continue_style.py mosaic candy --assets ../shared/assets --steps 2000 [--snapshots]
    python3 scripts/continue_style.py mosaic candy --assets .gpu-train --device cuda --seconds 330 --collect "$OUT"

Each style's command is `scripts/train_bundled_styles.py`'s LONGER stage (`longer`) after its last stage, started
from the bundled weights (`--init NAME`, the same weights as the last stage's run), into OUT/NAME-long, logging every
10 steps and saving every 100. The styles run as separate processes at the same time (on a CPU with the cores
shared out). With --seconds, each gets SIGINT (Ctrl-C) after that long: the loop finishes its step, saves
model.safetensors and stops; the learning rate's schedule counts steps, so a model stopped at step N is the one a run
with `--steps N` would have given. --snapshots copies model.safetensors to model-STEP.safetensors as the run goes
(to measure a few points of one run). --collect copies each NAME-long's model and log to DIR/NAME.safetensors and
DIR/NAME-log.jsonl and writes DIR/continue.md (steps reached, images/s, the commands): what comes back from a lent GPU
machine (benchmarks/prepare_gpu_carry.sh --train fills .gpu-train/ with what this needs there).
Then, here: `python docs/quality.py --assets ../shared/assets --no-peers --styles NAME --model NAME=FILE`.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from scripts.train_bundled_styles import STYLES, longer, plan, train_command, trained_steps, training_folder  # noqa: E402

CADENCE = ["--log-every", "10", "--sample-every", "100", "--checkpoint-every", "100"]  # the options' last value counts


def continuation(name: str, assets: Path, data: Path, out: Path, steps: int, device: str,
                 halving: int = 500) -> list[str]:  # fmt: skip
    """The LONGER command for bundled style `name`: its last stage's loss, from its shipped weights (a style whose last
    stage is LONGER already: the loss of that stage's own last stage)."""
    style = STYLES[name]
    stages = plan(name, style, out)
    before = stages[-2] if stages[-1].run_dir.name == f"{name}-long" else stages[-1]
    recipe = longer(before.recipe, halving)
    command = train_command(assets, data, out / f"{name}-long", style.image, steps, recipe, name)
    # on CUDA: the recipe's fp32 (a batch of 4 at 192 px keeps an H200 waiting on launches, not on arithmetic), and
    # enough loader processes for a few hundred crops a second
    on_gpu = ["--precision", "fp32", "--workers", "6"] if device == "cuda" else []
    return [sys.executable, "-m", "toolkit.cli", *command[1:], *CADENCE, *on_gpu, "--device", device]


def keep_snapshots(run_dirs: list[Path], seen: dict[Path, float]) -> None:
    """Copy each run's model.safetensors to model-STEP.safetensors when it has changed (it is renamed into place)."""
    for run_dir in run_dirs:
        model = run_dir / "model.safetensors"
        if model.is_file() and model.stat().st_mtime != seen.get(run_dir):
            seen[run_dir] = model.stat().st_mtime
            shutil.copy2(model, run_dir / f"model-{trained_steps(run_dir)}.safetensors")


def run_all(commands: list[list[str]], seconds: float | None, env: dict[str, str], grace: float = 300.0,
            snapshots: list[Path] | None = None) -> list[int]:  # fmt: skip
    """Run the commands at once; after `seconds` send each SIGINT and give it `grace` seconds to save and stop (a
    Ctrl-C here reaches them from the terminal too, and this waits for them in the same way). With `snapshots`
    (their run folders), keep each model they save as model-STEP.safetensors."""
    processes = [subprocess.Popen(c, env=env) for c in commands]
    start, stop_at, signalled = time.monotonic(), seconds, False
    seen: dict[Path, float] = {}
    while any(p.poll() is None for p in processes):
        try:
            time.sleep(0.2)
        except KeyboardInterrupt:
            stop_at, signalled = time.monotonic() - start, True  # the terminal has signalled them already
        keep_snapshots(snapshots or [], seen)
        elapsed = time.monotonic() - start
        if stop_at is not None and elapsed > stop_at and not signalled:
            signalled = True
            for p in processes:
                if p.poll() is None:
                    p.send_signal(signal.SIGINT)
        if stop_at is not None and elapsed > stop_at + grace:
            for p in processes:
                p.kill()
    keep_snapshots(snapshots or [], seen)
    return [p.wait() for p in processes]


def collect(names: list[str], out: Path, into: Path, commands: list[list[str]], codes: list[int]) -> str:
    """Copy each run's model and log into `into` and write into/continue.md; the summary's text."""
    into.mkdir(parents=True, exist_ok=True)
    lines = ["| style | exit | steps | images/s (last log line) | command |", "|---|---|---|---|---|"]
    for name, command, code in zip(names, commands, codes, strict=True):
        run_dir = out / f"{name}-long"
        log_path = run_dir / "log.jsonl"
        log = [json.loads(x) for x in log_path.read_text().splitlines() if x.strip()] if log_path.is_file() else []
        if (run_dir / "model.safetensors").is_file():
            shutil.copy2(run_dir / "model.safetensors", into / f"{name}.safetensors")
        if log_path.is_file():
            shutil.copy2(log_path, into / f"{name}-log.jsonl")
        speed = log[-1].get("images_per_s", "–") if log else "–"
        lines.append(f"| {name} | {code} | {trained_steps(run_dir)} | {speed} | `{shlex.join(command[1:])}` |")
    text = "\n".join(lines) + "\n"
    (into / "continue.md").write_text(text)
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("styles", nargs="+", choices=sorted(STYLES))
    where = "style/, content/ (the 16 training photos) and vgg/, as ../shared/assets has them"
    parser.add_argument("--assets", type=Path, default=REPO.parent / "shared" / "assets", help=where)
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "probe", help="the runs go to OUT/NAME-long")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--halve-every", type=int, default=500, help="LONGER's rate halves every this many steps")
    parser.add_argument("--seconds", type=float, default=None, help="stop each run (saved) after this long")
    parser.add_argument("--snapshots", action="store_true", help="keep model-STEP.safetensors at every save")
    parser.add_argument("--collect", type=Path, default=None, help="copy models, logs and continue.md here at the end")
    args = parser.parse_args()

    data = training_folder(args.assets, args.out / "train16")
    commands = [
        continuation(name, args.assets, data, args.out, args.steps, args.device, args.halve_every)
        for name in args.styles
    ]
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    if args.device == "cpu":  # one process per style: the cores shared out, not oversubscribed
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // len(commands)))
    for command in commands:
        print("+", shlex.join(command), flush=True)
    run_dirs = [args.out / f"{name}-long" for name in args.styles]
    codes = run_all(commands, args.seconds, env, snapshots=run_dirs if args.snapshots else None)
    if args.collect:
        print(collect(args.styles, args.out, args.collect, commands, codes), flush=True)
    if any(code not in (0, 130) for code in codes):  # 130: stopped by Ctrl-C (--seconds), saved
        raise SystemExit(f"exit codes {codes}")


if __name__ == "__main__":
    main()
