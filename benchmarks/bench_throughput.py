"""Training throughput on one GPU: our DDPM CIFAR-10 U-Net against diffusers' ``UNet2DModel``.

Run: ``python benchmarks/bench_throughput.py`` on a CUDA machine (``benchmarks/gpu_check.sh``
calls it), or ``python benchmarks/bench_throughput.py --device cpu --batch 4 --steps 3
--configs none/nchw/fp32`` as a CPU smoke test (``tests/test_bench_throughput.py``). Writes
``benchmarks/gpu_results.json`` (``--out``) and the same run as a Markdown table next to it
(``gpu_results.md``).

Both networks are built with DDPM's CIFAR-10 configuration (Ho et al. 2020, App. B): widths
128/256/256/256, 2 residual blocks per resolution, one attention head at 16x16, additive time
embedding, GroupNorm with 32 groups, dropout 0.1; both have the same parameter count (about
35.7M, ``tests/test_nets.py``). One training step is the same on both sides: t ~ U{1..1000},
x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps on DDPM's linear schedule (computed on the
device, no host synchronisation), the network predicts eps, mean-squared error in float32, AdamW
(fused on CUDA). A *config* ``mode/layout/dtype`` names the ``torch.compile`` mode (``none`` for
eager), the memory layout (``nchw`` or ``nhwc`` = channels-last) and the precision (``bf16``
autocast, ``tf32`` or ``fp32``); every config runs on both sides, so the peer gets every setting
ours gets. Warm-up steps (compilation included) are excluded; each timed step is bracketed by CUDA
events and the median step time gives images per second.

The headline ratio compares each side's best *compiled bf16* config (the issue's bar: both sides
bf16 + ``torch.compile``); when no compiled bf16 config was run (the CPU smoke test) it compares
the best of all configs. FLOPs per image (forward + backward) come from
``torch.utils.flop_counter.FlopCounterMode`` on an eager step; MFU is the achieved FLOP rate over
the device's *measured* dense matmul rate in the same precision (not a datasheet peak).
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import statistics
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

from diffnotes.chain import DiscreteSchedule, random_steps  # noqa: E402
from diffnotes.nets import UNet, count_parameters  # noqa: E402

MODES = ("none", "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
LAYOUTS = ("nchw", "nhwc")
DTYPES = ("bf16", "tf32", "fp32")
# Eager TF32 vs bf16 (the first H200 measurement's question), then compiled bf16 with and without
# CUDA graphs. ``max-autotune`` may win more but compiles for minutes; pass it with --configs.
GPU_CONFIGS = "none/nchw/tf32,none/nchw/bf16,default/nhwc/bf16,reduce-overhead/nhwc/bf16"
DIFFUSERS_DDPM_CIFAR10 = dict(
    sample_size=32, in_channels=3, out_channels=3, block_out_channels=(128, 256, 256, 256),
    layers_per_block=2, down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"), dropout=0.1,
    attention_head_dim=256,  # one head of 256 channels, as DDPM (and our AttnBlock)
)


def parse_config(text: str) -> tuple[str, str, str]:
    """``"mode/layout/dtype"`` checked against the valid names; one clear error line otherwise."""
    parts = text.strip().split("/")
    if (len(parts) != 3 or parts[0] not in MODES or parts[1] not in LAYOUTS or parts[2] not in DTYPES):
        raise ValueError(f"bad config {text!r}: expected mode/layout/dtype with mode in {', '.join(MODES)}, "
                         f"layout in {', '.join(LAYOUTS)}, dtype in {', '.join(DTYPES)}")
    return parts[0], parts[1], parts[2]


def build(side: str, device: torch.device, layout: str):
    """The network and its ``forward(x, t) -> eps_hat`` for ``side`` (ours or diffusers)."""
    torch.manual_seed(0)
    if side == "ours":
        net = UNet.ddpm_cifar10()
        forward = net  # F(x, c_noise) with c_noise = t: DDPM's sinusoidal embedding of the step
    else:
        from diffusers import UNet2DModel

        net = UNet2DModel(**DIFFUSERS_DDPM_CIFAR10)

        def forward(x, t):
            return net(x, t, return_dict=False)[0]
    net = net.to(device).train()
    if layout == "nhwc":
        net = net.to(memory_format=torch.channels_last)
    return net, forward


class Step:
    """One training step of eps-prediction MSE with AdamW; returns the loss without a host sync."""

    def __init__(self, net, forward, device, batch, layout, dtype, compile_mode):
        self.net, self.device, self.dtype = net, device, dtype
        self.forward = forward if compile_mode == "none" else torch.compile(forward, mode=compile_mode)
        fused = device.type == "cuda"
        self.opt = torch.optim.AdamW(net.parameters(), lr=2e-4, fused=fused or None)
        betas = DiscreteSchedule.linear().betas.to(device)  # alpha_bar is then computed on the device
        self.schedule = DiscreteSchedule(betas)
        gen = torch.Generator(device=device).manual_seed(0)
        x0 = torch.rand(batch, 3, 32, 32, device=device, generator=gen) * 2 - 1  # images in [-1, 1]
        self.x0 = x0.contiguous(memory_format=torch.channels_last) if layout == "nhwc" else x0

    def loss(self):
        t = random_steps(self.x0.shape[0], self.schedule.T, self.device)
        noise = torch.randn_like(self.x0)
        x_t = self.schedule.q_sample(self.x0, t, noise)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.dtype == "bf16"):
            eps_hat = self.forward(x_t, t)
        return (eps_hat.float() - noise).square().mean()

    def __call__(self):
        self.opt.zero_grad(set_to_none=True)
        loss = self.loss()
        loss.backward()
        self.opt.step()
        return loss.detach()


def set_precision(dtype: str) -> None:
    """TF32 for float32 matmuls and convolutions only in the ``tf32`` (and bf16's fp32 parts)."""
    allow = dtype in ("tf32", "bf16")
    if torch.cuda.is_available():
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = allow


def _synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(step: Step, device, warmup: int, steps: int) -> list[float]:
    """Seconds of each of ``steps`` timed steps after ``warmup`` untimed ones."""
    for _ in range(warmup):
        step()
    _synchronize(device)
    times = []
    if device.type == "cuda":  # events: no host sync between steps, one at the end
        events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
                  for _ in range(steps)]
        for start, end in events:
            start.record()
            step()
            end.record()
        torch.cuda.synchronize(device)
        times = [start.elapsed_time(end) / 1000 for start, end in events]
    else:
        for _ in range(steps):
            t0 = time.perf_counter()
            step()
            times.append(time.perf_counter() - t0)
    last = step()
    if not torch.isfinite(last).item():
        raise FloatingPointError(f"loss is {last.item()} after the timed steps")
    return times


def flops_per_image(side: str, device, batch: int) -> float:
    """Forward + backward FLOPs of one image, counted on an eager fp32 step."""
    from torch.utils.flop_counter import FlopCounterMode

    net, forward = build(side, device, "nchw")
    step = Step(net, forward, device, batch, "nchw", "fp32", "none")
    with FlopCounterMode(display=False) as counter:
        step.loss().backward()
    return counter.get_total_flops() / batch


def matmul_tflops(device, dtype: str, size: int, reps: int = 20) -> float:
    """The measured dense matmul rate (median of ``reps``) in ``dtype``: the MFU denominator."""
    set_precision(dtype)
    torch_dtype = torch.bfloat16 if dtype == "bf16" else torch.float32
    a = torch.randn(size, size, device=device, dtype=torch_dtype)
    b = torch.randn(size, size, device=device, dtype=torch_dtype)
    for _ in range(3):
        a @ b
    _synchronize(device)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        a @ b
        _synchronize(device)
        times.append(time.perf_counter() - t0)
    return 2 * size**3 / statistics.median(times) / 1e12


def run_config(side, config, device, batch, warmup, steps) -> dict:
    mode, layout, dtype = config
    set_precision(dtype)
    net, forward = build(side, device, layout)
    step = Step(net, forward, device, batch, layout, dtype, mode)
    t0 = time.perf_counter()
    times = time_steps(step, device, warmup, steps)
    median = statistics.median(times)
    row = dict(side=side, config="/".join(config), img_s=batch / median, median_step_s=median,
               steps_timed=len(times), warmup_and_compile_s=time.perf_counter() - t0 - sum(times))
    del step, net, forward
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    torch._dynamo.reset()
    return row


def best(rows, side, compiled_bf16_only):
    pool = [r for r in rows if r["side"] == side and "img_s" in r
            and (not compiled_bf16_only or (not r["config"].startswith("none/") and r["config"].endswith("/bf16")))]
    return max(pool, key=lambda r: r["img_s"]) if pool else None


def markdown(result: dict) -> str:
    """The run as a Markdown table (written next to the JSON, for ``benchmarks/RESULTS.md``)."""
    lines = [f"Training throughput, DDPM CIFAR-10 U-Net, batch {result['batch']} at 32x32, "
             f"{result['gpu']}, torch {result['torch']}, {result['date']}; median of "
             f"{result['steps_timed']} timed steps after {result['warmup_steps']} warm-up steps.", "",
             "| config (compile/layout/dtype) | ours img/s | diffusers img/s | ratio |", "|---|---:|---:|---:|"]
    by = {(r["side"], r["config"]): r.get("img_s") for r in result["rows"]}
    for config in dict.fromkeys(r["config"] for r in result["rows"]):
        ours, theirs = by[("ours", config)], by[("diffusers", config)]
        cells = [f"{v:.1f}" if v else "failed" for v in (ours, theirs)]
        ratio = f"{ours / theirs:.2f}" if ours and theirs else "-"
        lines.append(f"| {config} | {cells[0]} | {cells[1]} | {ratio} |")
    lines += ["", f"Headline ({result['headline']}): ours {result['ours_img_s']:.1f} img/s "
              f"({result['ours_best_config']}), diffusers {result['diffusers_img_s']:.1f} img/s "
              f"({result['diffusers_best_config']}), ratio {result['throughput_ratio_vs_diffusers']:.2f}; "
              f"{result['flops_per_image']['ours'] / 1e9:.1f} GFLOP per image (forward + backward), "
              f"{result['ours_tflop_s']:.1f} TFLOP/s of a measured {result['matmul_tflop_s']:.1f} "
              f"({result['matmul_dtype']} matmul): MFU {result['mfu']:.1%}.", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu for the smoke test")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=30, help="timed steps per config and side")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps (default 10 on CUDA, 1 on CPU)")
    parser.add_argument("--configs", default=None,
                        help=f"comma-separated mode/layout/dtype (default on CUDA: {GPU_CONFIGS})")
    parser.add_argument("--out", default=str(HERE / "gpu_results.json"))
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda but CUDA is not available (use --device cpu for the smoke test)",
              file=sys.stderr)
        return 2
    if args.batch < 1 or args.steps < 1:
        print(f"error: --batch and --steps must be >= 1, got {args.batch} and {args.steps}", file=sys.stderr)
        return 2
    try:
        configs = [parse_config(c) for c in (args.configs or (GPU_CONFIGS if device.type == "cuda"
                                                             else "none/nchw/fp32")).split(",")]
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    warmup = args.warmup if args.warmup is not None else (10 if device.type == "cuda" else 1)

    rows = []
    for config in configs:
        for side in ("ours", "diffusers"):
            try:
                r = run_config(side, config, device, args.batch, warmup, args.steps)
            except Exception as err:  # one failing config (e.g. a compiler error) must not hide the rest
                r = dict(side=side, config="/".join(config), error=f"{type(err).__name__}: {err}"[:500])
                print(f"{side:9s} {r['config']:32s} failed: {r['error']}", flush=True)
                torch._dynamo.reset()
            else:
                print(f"{side:9s} {r['config']:32s} {r['img_s']:9.1f} img/s "
                      f"(warm-up + compile {r['warmup_and_compile_s']:.0f} s)", flush=True)
            rows.append(r)
    compiled_bf16 = any(m != "none" and d == "bf16" for m, _, d in configs)
    ours, theirs = best(rows, "ours", compiled_bf16), best(rows, "diffusers", compiled_bf16)
    headline = "best compiled bf16 config per side"
    if compiled_bf16 and (ours is None or theirs is None):  # say so instead of comparing nothing
        headline = "best config per side (a side has no compiled bf16 config that ran)"
        compiled_bf16, ours, theirs = False, best(rows, "ours", False), best(rows, "diffusers", False)
    elif not compiled_bf16:
        headline = "best config per side"
    if ours is None or theirs is None:
        print("error: every config failed on one side; see the failures above", file=sys.stderr)
        return 1
    flops = {side: flops_per_image(side, device, min(args.batch, 8)) for side in ("ours", "diffusers")}
    headline_dtype = ours["config"].split("/")[2]
    peak = matmul_tflops(device, headline_dtype, 8192 if device.type == "cuda" else 512)
    achieved = ours["img_s"] * flops["ours"] / 1e12
    with torch.device("meta"):
        params = {"ours": count_parameters(UNet.ddpm_cifar10())}
    result = dict(
        gpu=torch.cuda.get_device_name(device) if device.type == "cuda" else "none (cpu smoke test)",
        torch=torch.__version__,
        ours_img_s=ours["img_s"],
        diffusers_img_s=theirs["img_s"],
        throughput_ratio_vs_diffusers=ours["img_s"] / theirs["img_s"],
        mfu=achieved / peak,
        ours_best_config=ours["config"], diffusers_best_config=theirs["config"],
        headline=headline,
        flops_per_image=flops, ours_tflop_s=achieved, matmul_tflop_s=peak, matmul_dtype=headline_dtype,
        params_ours=params["ours"], batch=args.batch, steps_timed=args.steps, warmup_steps=warmup,
        device=str(device), date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        rows=rows,
    )
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    Path(args.out).with_suffix(".md").write_text(markdown(result))
    print(f"ours {ours['img_s']:.1f} img/s ({ours['config']}), diffusers {theirs['img_s']:.1f} img/s "
          f"({theirs['config']}): ratio {result['throughput_ratio_vs_diffusers']:.2f}; "
          f"{achieved:.1f} TFLOP/s of a measured {peak:.1f} ({headline_dtype} matmul): MFU {result['mfu']:.1%}; "
          f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
