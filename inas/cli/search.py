"""`search -c CONFIG [--address ADDR] [--resume] [-o OUT_DIR] [--supernet CKPT] [--warm-start DIR ...]`: Ray Tune
architecture search.

Every searcher of `search.searchers` runs in one Tune run (see `inas.search.driver`). Re-running the same command
on the same output folder continues a killed or finished search (with a larger budget it goes on) instead of
starting over. Under `ray job submit --address http://127.0.0.1:8265 --working-dir . -- python -m inas.run search
-c CONFIG` the job joins that cluster through RAY_ADDRESS, which Ray sets for the job.
"""

from __future__ import annotations

import argparse

from inas.cli.common import add_config_argument, add_out_argument, check_at_least, config_from_args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_argument(parser)
    add_out_argument(parser, "output folder (default: search.out_dir of the config)")
    parser.add_argument("--supernet", default=None, help="supernet checkpoint (default: search.supernet)")
    parser.add_argument("--lut-dir", default=None,
                        help="folder of the latency tables `<device>.parquet` (default: search.lut_dir, lut.out_dir)")
    parser.add_argument("--address", default=None,
                        help="Ray cluster to join (auto, HOST:6379, ray://HOST:10001) or `local` for a Ray of this "
                        "command alone; default: RAY_ADDRESS if set, else the cluster running on this machine (`ray "
                        "start --head`), else a local Ray with every CPU of this machine")
    parser.add_argument("--resume", action="store_true",
                        help="require a previous run in the output folder and continue it (a re-run continues "
                        "anyway when one is there)")
    parser.add_argument("--warm-start", nargs="+", default=(), metavar="RESULT_DIR",
                        help="earlier search output folders (same space): their evaluations are fed to every searcher "
                        "first (the predictor and optuna searchers learn from them)")
    parser.add_argument("--no-dashboard", action="store_true", help="local Ray: do not start the dashboard")
    parser.add_argument("--budget", type=int, default=None,
                        help="override every searcher's budget (architectures each evaluates), e.g. for a quick try")


def main(args: argparse.Namespace) -> int:
    from inas.search.driver import prepare_search, run_search

    config = config_from_args(args)
    if args.budget is not None:
        check_at_least("--budget", args.budget)
        for spec in config.search.searchers:
            spec.budget = args.budget
    setup = prepare_search(config, args.out, args.supernet, args.lut_dir, resume=args.resume,
                           warm_start=args.warm_start)
    done = len(setup.table)
    print(f"search: {len(setup.searchers)} searchers ({', '.join(setup.searchers)}), output {setup.out_dir}"
          + (f", resuming with {done} evaluations" if setup.resumed else ""), flush=True)
    if args.warm_start:
        new = ", ".join(f"{name} {count}" for name, count in setup.warm_started.items())
        print(f"warm start: {setup.warm_start_records} earlier evaluations from {len(args.warm_start)} folder(s); new "
              f"to each searcher (not counted in its budget): {new}", flush=True)
    result = run_search(setup, address=args.address, dashboard=not args.no_dashboard)
    print(result.summary)
    print(f"wrote {result.out_dir / 'evaluations.parquet'}, {result.out_dir / 'pareto.parquet'} and "
          f"{len(result.pareto)} architectures in {result.out_dir / 'front'}")
    return 0
