"""Training throughput of our U-Net against diffusers' UNet2DModel, and peak memory of a digits run.

Run: ``python benchmarks/bench_train.py`` (or ``python -m diffnotes bench train``); about 2-3 min
on 2 CPU threads. Writes ``benchmarks/results_train.md``.

1. Steps per second (AdamW step on an MSE loss, forward + backward) of ``diffnotes.nets.UNet``
   and ``diffusers.UNet2DModel`` built with the same architecture: DDPM-style additive time
   embedding, the same widths, blocks per level, attention resolutions (one head) and GroupNorm
   groups, no dropout. Two configurations: the 8x8 digits net and a small CIFAR-like 32x32 net.
   The two models run in alternating rounds so that load from other processes hits both alike;
   the median round is reported. Goal: ours / diffusers >= 1.0.
2. Peak resident memory (``resource.getrusage``, in a fresh subprocess) of ``diffnotes.train.fit``
   training the digits U-Net with EDM's loss at the full-profile batch size. Goal: <= 2 GB.
"""

from __future__ import annotations

import datetime
import os
import platform
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import torch

torch.set_num_threads(2)
HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "src"))

from diffnotes.nets import UNet, count_parameters  # noqa: E402

CONFIGS = {
    # name: (our UNet kwargs, diffusers kwargs, batch size, steps per round, rounds)
    "digits 8x8 (32/64, 1 block, attn 4x4), batch 128": (
        dict(img_resolution=8, in_channels=1, ch=32, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(4,),
             dropout=0.0, scale_shift=False, groups=8),
        dict(sample_size=8, in_channels=1, out_channels=1, block_out_channels=(32, 64), layers_per_block=1,
             down_block_types=("DownBlock2D", "AttnDownBlock2D"), up_block_types=("AttnUpBlock2D", "UpBlock2D"),
             norm_num_groups=8, attention_head_dim=64),
        128, 4, 7,
    ),
    "CIFAR-like 32x32 (32/64/64, 1 block, attn 16x16), batch 16": (
        dict(img_resolution=32, in_channels=3, ch=32, ch_mult=(1, 2, 2), num_res_blocks=1, attn_resolutions=(16,),
             dropout=0.0, scale_shift=False, groups=8),
        dict(sample_size=32, in_channels=3, out_channels=3, block_out_channels=(32, 64, 64), layers_per_block=1,
             down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D"),
             up_block_types=("UpBlock2D", "AttnUpBlock2D", "UpBlock2D"), norm_num_groups=8, attention_head_dim=64),
        16, 2, 7,
    ),
}
FULL_PROFILE_DIGITS_BATCH = 128  # diffnotes.presets.train_budget(full, "digits")


def _train_step_fn(model, forward, batch, res, channels):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, channels, res, res, generator=gen)
    t = torch.rand(batch, generator=gen) * 999
    target = torch.randn(batch, channels, res, res, generator=gen)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = (forward(x, t) - target).square().mean()
        loss.backward()
        opt.step()

    return step


def bench_throughput():
    from diffusers import UNet2DModel

    rows = []
    for name, (ours_kw, theirs_kw, batch, steps, rounds) in CONFIGS.items():
        torch.manual_seed(0)
        ours = UNet(**ours_kw)
        theirs = UNet2DModel(**theirs_kw)
        res, ch = ours_kw["img_resolution"], ours_kw["in_channels"]
        step_ours = _train_step_fn(ours, lambda x, t: ours(x, t), batch, res, ch)
        step_theirs = _train_step_fn(theirs, lambda x, t: theirs(x, t).sample, batch, res, ch)
        for fn in (step_ours, step_theirs):  # warm-up: allocator, first-call paths
            fn()
            fn()
        rates = {"ours": [], "diffusers": []}
        for _ in range(rounds):
            for key, fn in (("ours", step_ours), ("diffusers", step_theirs)):
                t0 = time.perf_counter()
                for _ in range(steps):
                    fn()
                rates[key].append(steps / (time.perf_counter() - t0))
        ours_rate, theirs_rate = statistics.median(rates["ours"]), statistics.median(rates["diffusers"])
        rows.append(dict(name=name, params_ours=count_parameters(ours), params_theirs=count_parameters(theirs),
                         ours=ours_rate, theirs=theirs_rate, ratio=ours_rate / theirs_rate,
                         ratio_rounds=[a / b for a, b in zip(rates["ours"], rates["diffusers"])]))
        print(f"{name}: ours {ours_rate:.2f} steps/s, diffusers {theirs_rate:.2f} steps/s, "
              f"ratio {ours_rate / theirs_rate:.2f}", flush=True)
    return rows


PEAK_SCRIPT = textwrap.dedent("""
    import resource, sys, torch
    torch.set_num_threads(2)
    sys.path.insert(0, {src!r})
    from diffnotes.data import load_digits
    from diffnotes.methods.edm import EDMLoss
    from diffnotes.nets import UNet
    from diffnotes.precond import EDMPrecond
    from diffnotes.train import fit
    images = load_digits("train")[0]
    torch.manual_seed(0)
    model = EDMPrecond(UNet.digits(), sigma_data=0.5)
    fit(model, EDMLoss(), images, {steps}, batch_size={batch}, progress=False, device="cpu")
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)  # KiB on Linux
""")


def bench_peak_memory(steps: int = 8):
    script = PEAK_SCRIPT.format(src=str(ROOT / "src"), steps=steps, batch=FULL_PROFILE_DIGITS_BATCH)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    kib = int(out.stdout.strip().splitlines()[-1])
    mib = kib / 1024
    print(f"peak RSS training digits U-Net, batch {FULL_PROFILE_DIGITS_BATCH}: {mib:.0f} MiB", flush=True)
    return mib


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} logical CPUs, {platform.system()} {platform.release()}, Python {platform.python_version()}"


def main() -> int:
    import diffusers

    t_start = time.perf_counter()
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    rows = bench_throughput()
    peak = bench_peak_memory()
    load_after = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    seconds = time.perf_counter() - t_start

    lines = [
        "# Training benchmark: our U-Net vs diffusers, and peak memory",
        "",
        f"Written by `benchmarks/bench_train.py` on {datetime.date.today().isoformat()}.",
        "",
        f"* Machine: {_machine()}; `torch.set_num_threads(2)`.",
        f"* torch {torch.__version__}, diffusers {diffusers.__version__}.",
        f"* Load average (1 min) {load_before:.1f} before and {load_after:.1f} after"
        + (": other processes shared the CPUs, so absolute rates are low and noisy" if max(load_before, load_after)
           > 0.5 * (os.cpu_count() or 1) else ": the machine was otherwise quiet")
        + "; the two models alternate rounds and the median ratio is reported.",
        f"* Runtime {seconds:.0f} s.",
        "",
        "## Training steps per second (AdamW, forward + backward), same architecture",
        "",
        "| configuration | params (ours) | params (diffusers) | ours steps/s | diffusers steps/s | ours / diffusers "
        "(median) | per-round ratios | goal >= 1.0 |",
        "|---|---:|---:|---:|---:|---:|---|---|",
    ]
    for r in rows:
        spread = ", ".join(f"{x:.2f}" for x in r["ratio_rounds"])
        lines.append(f"| {r['name']} | {r['params_ours']:,} | {r['params_theirs']:,} | {r['ours']:.2f} | "
                     f"{r['theirs']:.2f} | {r['ratio']:.2f} | {spread} | {'met' if r['ratio'] >= 1.0 else 'NOT met'} |")
    lines += [
        "",
        "## Peak resident memory",
        "",
        "| run | peak RSS | goal <= 2 GB |",
        "|---|---:|---|",
        f"| `fit` on the digits U-Net (`UNet.digits()`, EDM loss), batch {FULL_PROFILE_DIGITS_BATCH} (full profile), "
        f"fresh process | {peak:.0f} MiB | {'met' if peak <= 2048 else 'NOT met'} |",
        "",
    ]
    path = HERE / "results_train.md"
    path.write_text("\n".join(lines))
    print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
