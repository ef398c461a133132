"""``xrseg bench``: stage latencies (p50/p99) and ratios against the official MobileSAM predictor."""

from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="time every stage against the official MobileSAM predictor",
        description="Time the encoder, decoder, lifting, fusion and streaming; compare with MobileSAM PyTorch.",
    )
    parser.add_argument("--json", action="store_true", help="print a JSON object instead of a table")
    parser.add_argument("--variant", action="append", help="model variant to time (repeatable; default: all)")
    parser.add_argument("--threads", type=int, help="intra-op threads (default: one per core)")
    parser.add_argument(
        "--encoder-runs", type=int, default=12, help="timed encoder runs per variant (default 12; --quick: 4)"
    )
    parser.add_argument(
        "--decoder-runs", type=int, default=120, help="timed decoder runs per variant (default 120; --quick: 20)"
    )
    parser.add_argument("--no-reference", action="store_true", help="skip the PyTorch reference")
    parser.add_argument(
        "--quick", action="store_true", help="fewer runs, no lifting, streaming or click-to-mask benchmarks"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from xrseg.tools.bench import BenchConfig, format_report, run_bench

    config = BenchConfig(
        encoder_runs=4 if args.quick else args.encoder_runs,
        decoder_runs=20 if args.quick else args.decoder_runs,
        reference_encoder_runs=2 if args.quick else 6,
        reference_decoder_runs=8 if args.quick else 40,
        threads=args.threads,
        variants=tuple(args.variant) if args.variant else None,
        reference=not args.no_reference,
        lift=not args.quick,
        stream=not args.quick,
        click=not args.quick,
    )
    report = run_bench(config)
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0
