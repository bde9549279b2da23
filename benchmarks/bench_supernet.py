"""Supernet speed on CPU: forward+backward time per training step for the max, min and two random architectures,
and forward time of the extracted (folded) stand-alone models at batch 1; also parameter and MAC counts.

    python -m benchmarks.bench_supernet [--size 320] [--batch 4] [--reps 2] [--no-record]

Each step: supernet.train(), forward of the whole deep-supervision dict, mean of every map summed, backward, grads
cleared. The first step of every arch is a warm-up (oneDNN builds kernels per new tensor shape) and is reported
separately as `first_step_s`. `step_cpu_s` is the process CPU time of a step: on a shared machine it is
less disturbed by other processes than wall time (with 1 thread it is the compute time).
Prints a table and appends one JSON line to benchmarks/results.jsonl.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time
from collections.abc import Callable

import torch

from benchmarks.common import format_table, record_result
from inas.nn import Supernet, extract_subnet, profile
from inas.space import inas_space, sample_max, sample_min, sample_uniform


def _step(supernet: Supernet, images: torch.Tensor, arch) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) of one forward + backward."""
    start, start_cpu = time.perf_counter(), time.process_time()
    out = supernet(images, arch)
    loss = sum(level_map.mean() for level_map in out.values())
    loss.backward()
    supernet.zero_grad(set_to_none=True)
    return time.perf_counter() - start, time.process_time() - start_cpu


def _forward_ms(model: Callable[[torch.Tensor], object], images: torch.Tensor, reps: int) -> float:
    times = []
    with torch.no_grad():
        model(images)  # warm-up
        for _ in range(reps):
            start = time.perf_counter()
            model(images)
            times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=320, help="square input side (multiple of 32)")
    parser.add_argument("--batch", type=int, default=4, help="training batch size")
    parser.add_argument("--reps", type=int, default=2, help="timed steps per arch after one warm-up step")
    parser.add_argument("--forward-reps", type=int, default=5, help="timed batch-1 forwards per stand-alone model")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    parser.add_argument("--no-record", action="store_true", help="do not append to benchmarks/results.jsonl")
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]
    torch.manual_seed(args.seed)
    space = inas_space()
    supernet = Supernet(space)
    supernet_params = sum(p.numel() for p in supernet.parameters())
    rng = random.Random(args.seed)
    archs = {"max": sample_max(space), "min": sample_min(space), "random_1": sample_uniform(space, rng),
             "random_2": sample_uniform(space, rng)}
    images = torch.randn(args.batch, 3, args.size, args.size)
    image_1 = torch.randn(1, 3, args.size, args.size)

    # Python overhead per call: eval forward of the max arch at the smallest legal input (32 x 32).
    supernet.eval()
    tiny = torch.randn(1, 3, 32, 32)
    overhead_ms = _forward_ms(lambda x: supernet(x, archs["max"]), tiny, reps=10)

    rows = []
    for name, arch in archs.items():
        supernet.train()
        first, _ = _step(supernet, images, arch)
        steps = [_step(supernet, images, arch) for _ in range(args.reps)]
        model = extract_subnet(supernet, arch)
        params, macs = profile(arch, (224, 224), space=space)
        rows.append({
            "arch": name,
            "arch_id": arch.arch_id,
            "step_s": round(statistics.median(s[0] for s in steps), 3),
            "step_cpu_s": round(statistics.median(s[1] for s in steps), 3),
            "first_step_s": round(first, 3),
            "standalone_fwd_ms": round(_forward_ms(model, image_1, args.forward_reps), 1),
            "params_m": round(params / 1e6, 3),
            "macs_g_224": round(macs / 1e9, 3),
        })
        print(f"{name}: step {rows[-1]['step_s']} s", flush=True)

    columns = ["arch", "arch_id", "step_s", "step_cpu_s", "first_step_s", "standalone_fwd_ms", "params_m", "macs_g_224"]
    print()
    print(f"supernet (full iNAS space): {supernet_params:,} parameters ({supernet_params / 1e6:.2f} M; "
          f"original iNAS: 20.08 M)")
    print(f"train step = forward + backward, batch {args.batch} at {args.size}x{args.size}, median of {args.reps} "
          f"after 1 warm-up; stand-alone forward batch 1 at {args.size}x{args.size}, eval, folded; "
          f"max-arch eval call at 32x32 (overhead): {overhead_ms:.1f} ms; {torch.get_num_threads()} threads, "
          f"1-min load average before/after: {load_before:.1f}/{os.getloadavg()[0]:.1f}")
    print(format_table(rows, columns))
    if not args.no_record:
        record_result("bench_supernet", {
            "input_size": args.size, "batch": args.batch, "reps": args.reps, "threads": torch.get_num_threads(),
            "load_avg_before": round(load_before, 2), "load_avg_after": round(os.getloadavg()[0], 2),
            "supernet_params": supernet_params, "call_overhead_ms_32px": round(overhead_ms, 2), "archs": rows,
        })


if __name__ == "__main__":
    main()
