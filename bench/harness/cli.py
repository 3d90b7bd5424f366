"""`mdfeed bench`: the end-to-end benchmark harness (see bench/harness/ and the README)."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from mdfeed.cli.support import int_at_least, positive_float, run_async
from mdfeed.kernel.lifecycle import stop_on_signals

if TYPE_CHECKING:  # the harness's modules load only when `mdfeed bench` runs
    from bench.harness.pipeline import Pipeline, PipelineOptions
    from bench.harness.scenarios import Progress, ScenarioOptions, ScenarioResult

__all__ = ["register_cli", "run_bench"]

SCENARIOS = ("fixed", "max", "burst", "ingest")

_DESCRIPTION = """\
Measure mdfeed end to end on this machine. Starts the local stack's Kafka and Mosquitto
(when they are not running; stopped again afterwards), the simulated venue in this
process, `mdfeed ingest` and `mdfeed fanout` as processes of their own, and N gRPC
streams and M MQTT clients in subscriber processes. Then runs the scenarios:

  fixed   the venue at --rate for --duration seconds: throughput per stage and latency
          percentiles per hop (venue -> ingest -> Kafka -> fanout -> client)
  max     steps from --rate, doubling then bisecting: the highest rate every stage
          sustains (no backlog, no conflation, no standing queue)
  burst   a market open: --rate, then --burst-factor x --rate for --burst-seconds,
          then --rate again; reports the time until latency is back to normal
  ingest  the ingest alone into Kafka against the fast venue (its benchmark stream, in a
          process of its own) for --ingest-seconds, after the bare QuickFIX floor (an
          initiator whose fromApp only counts) against the same venue; its last line is
          "ingest: N quote updates/s (R of bare QuickFIX)"

Writes results.json, latency-histogram.png and throughput.png to --out and prints the
headline figures, each beside the limit it is a ratio of.
"""


def _scenarios(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown scenario {', '.join(unknown) or '(none)'}; choose from {', '.join(SCENARIOS)}"
        )
    # max before burst: the burst's ideal drain time uses the measured maximum.
    return tuple(n for n in SCENARIOS if n in names)


def _options(args: argparse.Namespace) -> tuple[ScenarioOptions, PipelineOptions]:
    from bench.harness.pipeline import PipelineOptions
    from bench.harness.scenarios import ScenarioOptions

    run_dir = Path(args.out) if args.out else Path("bench-results") / time.strftime("%Y%m%d-%H%M%S")
    scenario = ScenarioOptions(
        rate_per_s=args.rate,
        duration_s=args.duration,
        warmup_s=args.warmup,
        step_s=args.step_seconds,
        max_rate_per_s=args.max_rate,
        burst_factor=args.burst_factor,
        burst_s=args.burst_seconds,
        floor_s=args.duration if args.floor_seconds is None else args.floor_seconds,
        ingest_s=args.ingest_seconds,
        depth=args.depth,
    )
    pipeline = PipelineOptions(
        symbols=args.symbols,
        rate_per_s=args.rate,
        grpc_streams=args.grpc,
        mqtt_clients=args.mqtt,
        stack_dir=args.stack_dir,
        run_dir=run_dir,
        depth=args.depth,
    )
    return scenario, pipeline


async def run_bench(args: argparse.Namespace) -> int:
    from bench.harness.pipeline import Pipeline, PipelineError
    from bench.harness.scenarios import (
        Progress,
        run_burst,
        run_fixed,
        run_max,
    )

    options, pipeline_options = _options(args)
    run_dir = pipeline_options.run_dir
    out = sys.stderr
    progress = Progress(out)
    results: list[ScenarioResult] = []
    ports: dict[str, int] = {}
    topics: list[str] = []
    client_errors: list[set[str]] = []
    started = time.time()

    async def measure() -> None:
        async with Pipeline(pipeline_options, out=out) as pipe:
            ports.update(pipe.ports)
            topics.append(pipe.tick_topic)
            out.write(
                f"pipeline up: venue :{pipe.ports['venue']}, {args.symbols} symbols, topic "
                f"{pipe.tick_topic}, gRPC :{pipe.ports['grpc']} x {args.grpc} streams, MQTT x "
                f"{args.mqtt}; metrics ingest :{pipe.ports['ingest_metrics']} fanout "
                f":{pipe.ports['fanout_metrics']}; logs in {pipe.logs}\n"
            )
            client_errors.append(pipe.client_errors)  # filled in as the run goes
            for name in args.scenarios:
                if name == "fixed":
                    results.append(await run_fixed(pipe, options, progress))
                elif name == "max":
                    results.append(await run_max(pipe, options, progress))
                elif name == "ingest":
                    results.append(await _ingest(pipe, options, progress, out))
                else:
                    best = next(
                        (
                            r.figures.get("max_sustained_fix_msgs_per_s")
                            for r in results
                            if r.name == "max"
                        ),
                        None,
                    )
                    results.append(
                        await run_burst(pipe, options, progress, max_fix_msgs_per_s=best)
                    )

    # SIGINT or SIGTERM: stop everything the run started (services, subscribers, the
    # servers it brought up), keep the scenarios already finished, and say so.
    stop = stop_on_signals()
    work = asyncio.create_task(measure())
    stopped = asyncio.create_task(stop.wait())
    await asyncio.wait({work, stopped}, return_when=asyncio.FIRST_COMPLETED)
    stopped.cancel()
    interrupted = not work.done()
    if interrupted:
        out.write("\nmdfeed bench: interrupted; stopping what it started…\n")
        work.cancel()
    try:
        await work
    except asyncio.CancelledError:
        if not interrupted:
            raise
    except PipelineError as exc:
        out.write(f"\nmdfeed bench: {exc}\n")
        return 1
    if interrupted and not results:
        out.write("mdfeed bench: no scenario finished; nothing written\n")
        return 130
    meta = _meta(args, started, ports, topics)
    meta["client_errors"] = sorted(set().union(*client_errors))
    meta["interrupted"] = interrupted
    _report(args, run_dir, meta, results, out)
    return 130 if interrupted else 0


async def _ingest(
    pipe: Pipeline, options: ScenarioOptions, progress: Progress, out: TextIO
) -> ScenarioResult:
    from bench.harness.ingest_scenario import run_ingest
    from bench.harness.pipeline import KAFKA

    out.write(f"ingest: bare QuickFIX, then the ingest, {options.ingest_s:g} s each…\n")
    return await run_ingest(pipe, options, progress, bootstrap=KAFKA)


def _report(
    args: argparse.Namespace,
    run_dir: Path,
    meta: dict[str, Any],
    results: list[ScenarioResult],
    out: TextIO,
) -> None:
    from bench.harness.report import summary_lines, write_results

    for result in results:
        result.figures["grpc_streams"] = args.grpc
        result.figures["mqtt_clients"] = args.mqtt
    for error in meta["client_errors"]:
        out.write(f"mdfeed bench: a subscriber reported: {error}\n")
    written = write_results(run_dir, meta, results)
    print("\n".join(summary_lines(results)))
    out.write("wrote " + ", ".join(str(p) for p in written) + "\n")


def _meta(
    args: argparse.Namespace, started: float, ports: dict[str, int], topics: list[str]
) -> dict[str, Any]:
    return {
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "seconds": round(time.time() - started, 1),
        "ports": ports,
        "tick_topic": topics[0] if topics else None,
        "options": {
            k: (list(v) if isinstance(v, tuple) else v)
            for k, v in vars(args).items()
            if k not in {"func", "command"}
        },
    }


def _cmd_bench(args: argparse.Namespace) -> int:
    try:
        import matplotlib  # noqa: F401 - checked up front, not after a 3-minute run
    except ImportError:
        print(
            "mdfeed bench: the plots need matplotlib: pip install 'mdfeed[bench]'",
            file=sys.stderr,
        )
        return 2
    return run_async(run_bench(args))


def register_cli(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    bench = sub.add_parser(
        "bench",
        help="measure the pipeline end to end: throughput per stage, latency per hop, bursts",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    bench.add_argument(
        "--scenarios",
        type=_scenarios,
        default=SCENARIOS,
        metavar="LIST",
        help=f"comma-separated, from {', '.join(SCENARIOS)} (default: all)",
    )
    bench.add_argument(
        "--rate",
        type=int_at_least(1),
        default=5000,
        help="venue ticks/s of the fixed scenario, "
        "the burst's base and the max search's first step (default: 5000)",
    )
    bench.add_argument(
        "--duration",
        type=positive_float,
        default=20.0,
        help="measured seconds of the fixed scenario (default: 20)",
    )
    bench.add_argument(
        "--warmup",
        type=positive_float,
        default=5.0,
        help="unmeasured seconds before the fixed scenario (default: 5)",
    )
    bench.add_argument("--grpc", type=int_at_least(0), default=8, help="gRPC streams (default: 8)")
    bench.add_argument("--mqtt", type=int_at_least(0), default=4, help="MQTT clients (default: 4)")
    bench.add_argument(
        "--symbols", type=int_at_least(1), default=50, help="symbols quoted (default: 50)"
    )
    bench.add_argument(
        "--step-seconds",
        type=positive_float,
        default=8.0,
        help="seconds per step of the max search (default: 8)",
    )
    bench.add_argument(
        "--max-rate",
        type=int_at_least(1),
        default=1_000_000,
        help="highest rate the max search tries (default: 1,000,000)",
    )
    bench.add_argument(
        "--burst-factor",
        type=positive_float,
        default=10.0,
        help="the burst's rate as a multiple of --rate (default: 10)",
    )
    bench.add_argument(
        "--burst-seconds",
        type=positive_float,
        default=10.0,
        help="how long the burst lasts (default: 10)",
    )
    bench.add_argument(
        "--floor-seconds",
        type=positive_float,
        default=None,
        help="seconds of each latency floor (bare Kafka; bare Kafka then bare gRPC) measured "
        "in the fixed scenario (default: as --duration, so both p99s cover as long a stretch)",
    )
    bench.add_argument(
        "--depth",
        type=int,
        choices=range(0, 16),
        default=0,
        metavar="N",
        help="price levels a side each quote tick carries (fix_session.publish_depth, 0-15; "
        "default: 0, the top of book only): the tick path measured with depth published",
    )
    bench.add_argument(
        "--ingest-seconds",
        type=positive_float,
        default=15.0,
        help="measured seconds of each phase of the ingest scenario (default: 15)",
    )
    bench.add_argument(
        "--out",
        metavar="DIR",
        default=None,
        help="where results go (default: bench-results/<date-time>)",
    )
    bench.add_argument(
        "--stack-dir",
        metavar="DIR",
        default=None,
        help="the local stack's directory (default: as `mdfeed stack`)",
    )
    bench.set_defaults(func=_cmd_bench)
