"""Dawid-Skene speed, memory and agreement: crowd.em against Crowd-Kit, on the same data.

    python benchmarks/em_speed.py [--tasks 1000000 --answers-per-task 5 --workers 1000
                                   --classes 4 --spammers 0.15 --iters 10 --seed 0]
                                  [--skip-cli] [--big]

What is measured (each implementation in its own fresh subprocess, same seeded data):

* seconds per EM iteration. After one cold fit (used for memory), each child runs
  ``--repeat`` more fits of ``N`` iterations and timestamps every iteration (ours: the
  ``callback`` it calls after each iteration; Crowd-Kit: each call of
  ``DawidSkene._e_step``, once per iteration). Per-iteration = median gap between
  successive stamps, i.e. one M-step + one E-step (+ Crowd-Kit's ELBO, which its loop
  computes for its stopping test). The
  median resists other processes on a shared machine. One-time setup (input checks, index
  building, majority-vote init, final labelling) = median fit time - N x per-iteration,
  reported apart. Both run exactly ``N`` iterations:
  Crowd-Kit with ``n_iter=N, tol=-inf`` (its loop stops when the ELBO gain is ``< tol``,
  so ``tol=0`` could stop early on a float-level decrease), ours with ``tol=0`` (it rejects
  a negative tol and stops only when the objective falls, which EM rules out up to
  rounding). Each child reports the iterations it ran; the table warns if they differ.
* peak memory of the N-iteration fit: the child loads the arrays and builds its input
  (Crowd-Kit: an int32 ``task, worker, label`` DataFrame), resets the kernel's peak-RSS
  counter (``/proc/self/clear_refs`` = 5), reads VmRSS as the baseline, fits, then reads
  VmHWM. Reported: VmHWM - baseline, i.e. the extra resident memory the fit needed.
* label agreement with smoothing off, on every task.
* end to end: ``crowd aggregate data.csv --method ds --out res.csv`` against a
  ``python -c`` child doing ``pandas.read_csv`` + ``DawidSkene(n_iter=N).fit_predict`` +
  ``to_csv``; wall time of each whole subprocess (interpreter start, imports, reading,
  encoding, EM and writing), and its peak RSS from ``wait4``.
* ``--big``: only our DS on 10M tasks x 10 answers, 2 classes (100M answers): time per
  iteration and the child's peak RSS (absolute, data included). Not a CI step.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _synthetic import SyntheticCrowd, generate, label_names, write_csv

MiB = 1024 * 1024

GOAL_ITER_SPEEDUP = 25.0
GOAL_MEMORY_FRACTION = 0.5
GOAL_AGREEMENT = 0.999
GOAL_E2E_SPEEDUP = 10.0

_MISSING_CROWDKIT = (
    "error: this benchmark compares against Crowd-Kit, which is not installed.\n"
    "Install the benchmark extra:  .venv/bin/pip install -e '.[bench]'\n"
    "(crowd-kit==1.4.2, pandas, scikit-learn<1.8)"
)


# --------------------------------------------------------------------------- child side


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_peak_rss() -> None:
    """Make VmHWM restart from the current RSS (Linux >= 4.0)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


@dataclass
class _Data:
    tasks: npt.NDArray[np.int32]
    workers: npt.NDArray[np.int32]
    labels: npt.NDArray[np.int32]
    n_tasks: int
    n_workers: int
    n_classes: int


def _load(data_dir: Path) -> _Data:
    meta = json.loads((data_dir / "meta.json").read_text())
    arrays = {k: np.load(data_dir / f"{k}.npy") for k in ("tasks", "workers", "labels")}
    return _Data(**arrays, **meta)


def _ours_kwargs(iters: int) -> dict[str, Any]:
    # tol=0: stop only if the objective falls (EM never lets it, up to rounding). Smoothing
    # off so the labels are comparable with Crowd-Kit's (which only floors counts at 1e-10).
    return {"max_iter": iters, "tol": 0.0, "smoothing": 0.0}


class _IterationClock:
    """Timestamps taken once per EM iteration; gaps between them are iteration times."""

    def __init__(self) -> None:
        self.stamps: list[float] = []
        self.cpu_stamps: list[float] = []

    def stamp(self, *_: Any) -> None:
        self.stamps.append(time.perf_counter())
        self.cpu_stamps.append(time.process_time())

    def clear(self) -> None:
        self.stamps.clear()
        self.cpu_stamps.clear()

    def wrap(self, owner: type, name: str) -> None:
        """Stamp at every call of the static method ``owner.name``."""
        original = getattr(owner, name)

        def stamped(*args: Any, **kwargs: Any) -> Any:
            self.stamp()
            return original(*args, **kwargs)

        setattr(owner, name, staticmethod(stamped))


def _measure_fit(
    fit: Callable[[], Any], clock: _IterationClock, iters: int, repeat: int
) -> tuple[Any, dict[str, float]]:
    """Peak memory of a first (cold) fit, then timings over ``repeat`` more fits.

    ``fit`` runs ``iters`` EM iterations and stamps ``clock`` once in each. Per-iteration
    time is the median gap between successive stamps over the repeats; setup is the rest of a fit's time, i.e. its time
    minus ``iters`` iterations (median over repeats). The cold fit is left out of timings:
    first-touch page faults and lazy imports would land in it.
    """
    gc.collect()
    _reset_peak_rss()
    baseline = _status_kib("VmRSS")
    t0 = time.perf_counter()
    result = fit()
    cold = time.perf_counter() - t0
    peak = _status_kib("VmHWM")
    gaps: list[float] = []
    cpu_gaps: list[float] = []
    totals: list[float] = []
    for _ in range(repeat):
        gc.collect()
        clock.clear()
        t0 = time.perf_counter()
        fit()
        totals.append(time.perf_counter() - t0)
        if len(clock.stamps) != iters:
            raise RuntimeError(f"expected {iters} iteration stamps, saw {len(clock.stamps)}")
        gaps.extend(np.diff(clock.stamps))
        cpu_gaps.extend(np.diff(clock.cpu_stamps))
    per_iter = float(np.median(gaps))
    total = float(np.median(totals))
    return result, {
        "cold_fit_s": cold,
        "fit_s": total,
        "iter_s": per_iter,
        "iter_cpu_s": float(np.median(cpu_gaps)),
        "setup_s": total - iters * per_iter,
        "baseline_mib": baseline / 1024,
        "peak_mib": peak / 1024,
        "fit_peak_mib": (peak - baseline) / 1024,
    }


def _child_ours(data_dir: Path, iters: int, repeat: int, save: bool) -> dict[str, Any]:
    from crowd.em import DawidSkene

    d = _load(data_dir)
    warnings.simplefilter("ignore")  # ConvergenceWarning: we stop at max_iter on purpose
    clock = _IterationClock()  # stamped by the public callback, at the end of each iteration

    def fit() -> Any:
        return DawidSkene(**_ours_kwargs(iters), callback=clock.stamp).fit(
            d.tasks,
            d.workers,
            d.labels,
            n_tasks=d.n_tasks,
            n_workers=d.n_workers,
            n_classes=d.n_classes,
        )

    model, stats = _measure_fit(fit, clock, iters, repeat)
    stats["n_iter"] = int(model.n_iter_)
    if save:
        np.save(data_dir / "crowd_posteriors.npy", model.posteriors_)
        np.save(data_dir / "crowd_labels.npy", np.asarray(model.labels_))
    return stats


def _child_crowdkit(data_dir: Path, iters: int, repeat: int, save: bool) -> dict[str, Any]:
    import pandas as pd
    from crowdkit.aggregation import DawidSkene

    d = _load(data_dir)
    df = pd.DataFrame({"task": d.tasks, "worker": d.workers, "label": d.labels})
    n_tasks, k = d.n_tasks, d.n_classes
    del d  # the DataFrame holds copies; keep only what Crowd-Kit sees
    clock = _IterationClock()
    clock.wrap(DawidSkene, "_e_step")  # called once per iteration, at its start

    def fit() -> Any:
        return DawidSkene(n_iter=iters, tol=-np.inf).fit(df)

    model, stats = _measure_fit(fit, clock, iters, repeat)
    stats["n_iter"] = len(model.loss_history_)
    if save:
        probas = model.probas_.reindex(index=range(n_tasks), columns=range(k), fill_value=0.0)
        np.save(data_dir / "crowdkit_posteriors.npy", probas.to_numpy(dtype=np.float64))
        labels = model.labels_.reindex(range(n_tasks), fill_value=-1).to_numpy(dtype=np.int64)
        np.save(data_dir / "crowdkit_labels.npy", labels)
    return stats


_CHILDREN = {"crowd": _child_ours, "crowdkit": _child_crowdkit}

# End-to-end peer: what a Crowd-Kit user runs on a CSV of answers.
_CROWDKIT_E2E = """
import sys
import numpy as np
import pandas as pd
from crowdkit.aggregation import DawidSkene
src, out, n_iter = sys.argv[1], sys.argv[2], int(sys.argv[3])
df = pd.read_csv(src)
labels = DawidSkene(n_iter=n_iter, tol=-np.inf).fit_predict(df)
labels.rename("label").rename_axis("task").to_csv(out)
"""


# -------------------------------------------------------------------------- parent side


@dataclass
class Row:
    metric: str
    ours: str
    peer: str
    ratio: str
    goal: str
    met: str


def _run_child(
    impl: str, data_dir: Path, iters: int, repeat: int, save: bool = True
) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", impl, "--data", str(data_dir)]
    cmd += ["--iters", str(iters), "--repeat", str(repeat)] + (["--save"] if save else [])
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"error: the {impl} child failed:\n{proc.stderr}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def _timed_subprocess(cmd: Sequence[str]) -> tuple[float, float, float]:
    """Run ``cmd``; return (wall seconds, CPU seconds, peak RSS MiB) of that process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode() if proc.stderr else ""
    if proc.returncode != 0:
        raise SystemExit(f"error: {' '.join(cmd)} failed ({proc.returncode}):\n{err}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024  # maxrss: KiB


def _save_data(crowd: SyntheticCrowd, data_dir: Path) -> None:
    for name in ("tasks", "workers", "labels"):
        np.save(data_dir / f"{name}.npy", getattr(crowd, name))
    meta = {"n_tasks": crowd.n_tasks, "n_workers": crowd.n_workers, "n_classes": crowd.n_classes}
    (data_dir / "meta.json").write_text(json.dumps(meta))


def _crowd_cli() -> str:
    exe = Path(sys.executable).parent / "crowd"
    found = str(exe) if exe.exists() else shutil.which("crowd")
    if found is None:
        raise SystemExit("error: the `crowd` console script is not installed (pip install -e .)")
    return found


def _cli_iter_args(cli: str, iters: int) -> tuple[list[str], str]:
    """Options that make `crowd aggregate` run exactly ``iters`` iterations, if it has them."""
    help_text = subprocess.run(
        [cli, "aggregate", "--help"], capture_output=True, text=True, check=True
    ).stdout
    args: list[str] = []
    note = "CLI default iterations / tolerance"
    for flag in ("--max-iter", "--iters", "--n-iter"):
        if flag in help_text:
            args += [flag, str(iters)]
            note = f"{flag} {iters}"
            break
    if args and "--tol" in help_text:
        args += ["--tol", "0"]
        note += ", --tol 0"
    return args, note


def _read_result_csv(path: Path, n_tasks: int, names: list[str]) -> npt.NDArray[np.int64]:
    """Labels indexed by task number from a ``task,label,...`` CSV (either tool's)."""
    import pandas as pd

    df = pd.read_csv(path, usecols=["task", "label"], dtype=str)
    task = df["task"].str.slice(1).astype(np.int64).to_numpy()
    code = {name: i for i, name in enumerate(names)}
    label = df["label"].map(code).to_numpy(dtype=np.float64, na_value=-1)
    out = np.full(n_tasks, -1, dtype=np.int64)
    out[task] = label.astype(np.int64)
    return out


def _fmt_ratio(x: float) -> str:
    return f"{x:.1f}x" if x >= 10 else f"{x:.2f}x"


def _met(ok: bool) -> str:
    return "yes" if ok else "**no**"


def _table(rows: Sequence[Row]) -> str:
    head = ["metric", "crowd", "Crowd-Kit", "ratio", "goal", "met?"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        lines.append(f"| {r.metric} | {r.ours} | {r.peer} | {r.ratio} | {r.goal} | {r.met} |")
    return "\n".join(lines)


def _compare(args: argparse.Namespace, work: Path) -> list[Row]:
    t0 = time.perf_counter()
    crowd = generate(
        n_tasks=args.tasks,
        answers_per_task=args.answers_per_task,
        n_workers=args.workers,
        n_classes=args.classes,
        spammers=args.spammers,
        seed=args.seed,
    )
    print(f"generated {crowd.n_answers:,} answers in {time.perf_counter() - t0:.1f} s", flush=True)
    _save_data(crowd, work)
    truth = crowd.true_labels

    print("fitting crowd.em.DawidSkene ...", flush=True)
    ours = _run_child("crowd", work, args.iters, args.repeat)
    print("fitting crowdkit DawidSkene ...", flush=True)
    peer = _run_child("crowdkit", work, args.iters, args.repeat)
    for name, s in (("crowd", ours), ("Crowd-Kit", peer)):
        if s["n_iter"] != args.iters:
            print(f"warning: {name} ran {s['n_iter']} iterations, not {args.iters}")

    lab_o = np.load(work / "crowd_labels.npy")
    lab_p = np.load(work / "crowdkit_labels.npy")
    post_o = np.load(work / "crowd_posteriors.npy")
    post_p = np.load(work / "crowdkit_posteriors.npy")
    agree = float(np.mean(lab_o == lab_p))
    differ = np.flatnonzero(lab_o != lab_p)
    top2 = np.sort(post_o, axis=1)[:, -2:]
    margin = top2[:, 1] - top2[:, 0]  # where tie-breaking rules could decide the label
    near_ties = int(np.sum(margin < 1e-6))
    max_dp = float(np.max(np.abs(post_o - post_p)))

    n = args.iters
    rows = [
        Row(
            f"EM seconds / iteration ({n} iters, setup excluded)",
            f"{ours['iter_s']:.3f}",
            f"{peer['iter_s']:.3f}",
            _fmt_ratio(peer["iter_s"] / ours["iter_s"]) + " faster",
            f">= {GOAL_ITER_SPEEDUP:.0f}x faster",
            _met(peer["iter_s"] / ours["iter_s"] >= GOAL_ITER_SPEEDUP),
        ),
        Row(
            "EM CPU-seconds / iteration (info: robust to other load)",
            f"{ours['iter_cpu_s']:.3f}",
            f"{peer['iter_cpu_s']:.3f}",
            _fmt_ratio(peer["iter_cpu_s"] / ours["iter_cpu_s"]) + " less",
            "-",
            "-",
        ),
        Row(
            "one-time setup, s (init + final labels; reported apart)",
            f"{ours['setup_s']:.3f}",
            f"{peer['setup_s']:.3f}",
            _fmt_ratio(peer["setup_s"] / ours["setup_s"]) + " faster",
            "-",
            "-",
        ),
        Row(
            f"whole fit, s ({n} iters + setup)",
            f"{ours['fit_s']:.2f}",
            f"{peer['fit_s']:.2f}",
            _fmt_ratio(peer["fit_s"] / ours["fit_s"]) + " faster",
            "-",
            "-",
        ),
        Row(
            "fit peak memory over input, MiB",
            f"{ours['fit_peak_mib']:.0f}",
            f"{peer['fit_peak_mib']:.0f}",
            f"{ours['fit_peak_mib'] / peer['fit_peak_mib']:.2f} of peer",
            f"<= {GOAL_MEMORY_FRACTION:.1f} of peer",
            _met(ours["fit_peak_mib"] <= GOAL_MEMORY_FRACTION * peer["fit_peak_mib"]),
        ),
        Row(
            "process peak RSS incl. input, MiB (info)",
            f"{ours['peak_mib']:.0f}",
            f"{peer['peak_mib']:.0f}",
            f"{ours['peak_mib'] / peer['peak_mib']:.2f} of peer",
            "-",
            "-",
        ),
        Row(
            "same label as Crowd-Kit (smoothing off)",
            f"{agree:.5%}",
            "-",
            f"{differ.size:,} differ",
            f">= {GOAL_AGREEMENT:.1%}",
            _met(agree >= GOAL_AGREEMENT),
        ),
        Row(
            "accuracy vs. generating truth (info)",
            f"{np.mean(lab_o == truth):.4%}",
            f"{np.mean(lab_p == truth):.4%}",
            "-",
            "-",
            "-",
        ),
    ]
    print(
        f"max |posterior difference| = {max_dp:.2e}; {differ.size} labels differ; "
        f"{near_ties} tasks have a top-2 posterior margin < 1e-6 (smallest "
        f"{float(margin.min()):.1e}), where tie-breaking could matter"
    )

    if not args.skip_cli:
        rows += _end_to_end(args, crowd, work)
    return rows


def _end_to_end(args: argparse.Namespace, crowd: SyntheticCrowd, work: Path) -> list[Row]:
    csv = work / "data.csv"
    t0 = time.perf_counter()
    write_csv(crowd, csv)
    mb = csv.stat().st_size / 1e6
    print(f"wrote {csv.name} ({mb:.0f} MB) in {time.perf_counter() - t0:.1f} s", flush=True)
    cli = _crowd_cli()
    iter_args, note = _cli_iter_args(cli, args.iters)
    ours_out, peer_out = work / "crowd_res.csv", work / "crowdkit_res.csv"
    print(f"end to end: crowd aggregate ({note}) ...", flush=True)
    cmd = [cli, "aggregate", str(csv), "--method", "ds", "--out", str(ours_out), *iter_args]
    ours_s, ours_cpu, ours_rss = _timed_subprocess(cmd)
    print("end to end: pandas.read_csv + Crowd-Kit ...", flush=True)
    peer_cmd = [sys.executable, "-c", _CROWDKIT_E2E, str(csv), str(peer_out), str(args.iters)]
    peer_s, peer_cpu, peer_rss = _timed_subprocess(peer_cmd)

    names = label_names(crowd.n_classes)
    a = _read_result_csv(ours_out, crowd.n_tasks, names)
    b = _read_result_csv(peer_out, crowd.n_tasks, names)
    agree = float(np.mean(a == b))
    return [
        Row(
            f"end to end CSV -> labels CSV, s ({note})",
            f"{ours_s:.2f}",
            f"{peer_s:.2f}",
            _fmt_ratio(peer_s / ours_s) + " faster",
            f">= {GOAL_E2E_SPEEDUP:.0f}x faster",
            _met(peer_s / ours_s >= GOAL_E2E_SPEEDUP),
        ),
        Row(
            "end to end CPU-seconds, user + sys (info)",
            f"{ours_cpu:.2f}",
            f"{peer_cpu:.2f}",
            _fmt_ratio(peer_cpu / ours_cpu) + " less",
            "-",
            "-",
        ),
        Row(
            "end to end peak RSS, MiB (info)",
            f"{ours_rss:.0f}",
            f"{peer_rss:.0f}",
            f"{ours_rss / peer_rss:.2f} of peer",
            "-",
            "-",
        ),
        Row(
            "end to end: same label in both output CSVs (info)",
            f"{agree:.5%}",
            "-",
            "-",
            "-",
            "-",
        ),
    ]


def _big(args: argparse.Namespace, work: Path) -> list[Row]:
    t0 = time.perf_counter()
    crowd = generate(
        n_tasks=10_000_000,
        answers_per_task=10,
        n_workers=args.workers,
        n_classes=2,
        spammers=args.spammers,
        seed=args.seed,
    )
    print(f"generated {crowd.n_answers:,} answers in {time.perf_counter() - t0:.0f} s", flush=True)
    _save_data(crowd, work)
    del crowd
    gc.collect()
    print("fitting crowd.em.DawidSkene on 100M answers ...", flush=True)
    s = _run_child("crowd", work, args.iters, min(args.repeat, 1), save=False)
    fits = s["peak_mib"] < 24 * 1024
    return [
        Row("100M answers: EM seconds / iteration", f"{s['iter_s']:.2f}", "-", "-", "-", "-"),
        Row(
            "100M answers: EM CPU-seconds / iteration",
            f"{s['iter_cpu_s']:.2f}",
            "-",
            "-",
            "-",
            "-",
        ),
        Row("100M answers: one-time setup, s", f"{s['setup_s']:.2f}", "-", "-", "-", "-"),
        Row(
            "100M answers: process peak RSS incl. input, MiB",
            f"{s['peak_mib']:.0f}",
            "-",
            "-",
            "< 24 GiB",
            _met(fits),
        ),
        Row(
            "100M answers: fit peak over input, MiB", f"{s['fit_peak_mib']:.0f}", "-", "-", "-", "-"
        ),
    ]


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--tasks", type=int, default=1_000_000)
    p.add_argument("--answers-per-task", type=int, default=5)
    p.add_argument("--workers", type=int, default=1000)
    p.add_argument("--classes", type=int, default=4)
    p.add_argument("--spammers", type=float, default=0.15, help="fraction of workers")
    p.add_argument("--iters", type=int, default=10, help="EM iterations for both (>= 2)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--repeat", type=int, default=3, help="timed fits after the cold one")
    p.add_argument("--skip-cli", action="store_true", help="skip the end-to-end CSV comparison")
    p.add_argument(
        "--big",
        action="store_true",
        help="instead: our DS alone on 100M binary answers (10M tasks x 10)",
    )
    p.add_argument("--workdir", type=Path, help="keep data and outputs here (default: temp dir)")
    p.add_argument("--child", choices=sorted(_CHILDREN), help=argparse.SUPPRESS)
    p.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--save", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.iters < 2 or args.repeat < 1:
        p.error("need --iters >= 2 (time is measured between iterations) and --repeat >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    if args.child:
        stats = _CHILDREN[args.child](args.data, args.iters, args.repeat, args.save)
        print(json.dumps(stats))
        return 0

    try:
        import crowdkit  # noqa: F401
        import pandas  # noqa: F401
    except ImportError:
        if not args.big:
            print(_MISSING_CROWDKIT, file=sys.stderr)
            return 2
    try:
        from crowd.em import DawidSkene  # noqa: F401
    except ImportError as exc:
        print(f"error: crowd.em.DawidSkene cannot be imported ({exc})", file=sys.stderr)
        return 2

    load_before = os.getloadavg()[0]
    if args.workdir:
        args.workdir.mkdir(parents=True, exist_ok=True)
        work, cleanup = args.workdir, None
    else:
        cleanup = tempfile.TemporaryDirectory(prefix="em_speed_")
        work = Path(cleanup.name)
    try:
        rows = _big(args, work) if args.big else _compare(args, work)
    finally:
        if cleanup is not None:
            cleanup.cleanup()

    if args.big:
        shape, repeat = "10,000,000 tasks x 10 answers, 2 classes", min(args.repeat, 1)
    else:
        shape = f"{args.tasks:,} tasks x {args.answers_per_task} answers, {args.classes} classes"
        repeat = args.repeat
    print()
    print(
        f"Dawid-Skene, {shape}, {args.workers:,} workers, {args.spammers:.0%} spammers, "
        f"seed {args.seed}, {args.iters} iterations, median over {repeat} fits; "
        f"{os.cpu_count()} CPUs, 1-min load average {load_before:.1f} before / "
        f"{os.getloadavg()[0]:.1f} after"
    )
    print(_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
