"""Ingest and tokenize at scale: groups per second and peak memory per stage and size.

For each size N a synthetic source of N ranked groups (k = 2..4 completions, prompts of 50-400
characters, responses of 100-1500) is written as gzipped JSON lines in the `mapping` format of
the repository's sample, with one exact repeat per 500 groups and one malformed line per 1000
(so the accounting has something to count). Then the ingest stage runs once and the tokenize
stage twice (`tokenize.num_proc` 1 and 2), each through `rmcore.stages` in a process of its
own, so each stage's memory is its own: `peak_rss_mb` is the stage process's peak resident set
(VmHWM), `worker_peak_rss_mb` the largest peak of its tokenize workers (getrusage of its
children), `peak_tree_rss_mb` the largest sum over it and its workers sampled every 0.2 s
(pages the forked workers share are counted once per process, so an upper bound), and
`tree_rss_mb_by_quarter` that sum's peak in each quarter of the stage's run (flat when memory
does not grow with the data read).

    python benchmarks/scale.py                 # 1e4 and 1e5 groups
    python benchmarks/scale.py --sizes 1000000 --procs 2
    python benchmarks/scale.py --quick         # 2e3 groups, for the test suite

Prints one JSON line. The tokenizer is the packaged MiniLM WordPiece tokenizer (on a tiny
random BERT, which tokenize only reads the configuration of); max_length 512.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import hashlib
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

QUICK_SIZES = [2_000]
DEFAULT_SIZES = [10_000, 100_000]
REPEAT_EVERY = 500  # one group in this many repeats an earlier one (quarantined duplicate)
BAD_EVERY = 1_000  # one malformed line per this many groups
SOURCE_OPTIONS = {"messages": "prompt", "responses": "completions", "ranks": "ranks"}
WORDS = [
    "the",
    "a",
    "of",
    "to",
    "and",
    "in",
    "is",
    "it",
    "you",
    "that",
    "he",
    "was",
    "for",
    "on",
    "are",
    "with",
    "as",
    "his",
    "they",
    "be",
    "at",
    "one",
    "have",
    "this",
    "from",
    "or",
    "had",
    "by",
    "hot",
    "word",
    "but",
    "what",
    "some",
    "we",
    "can",
    "out",
    "other",
    "were",
    "all",
    "there",
    "when",
    "up",
    "use",
    "your",
    "how",
    "said",
    "an",
    "each",
    "she",
    "which",
    "do",
    "their",
    "time",
    "if",
    "will",
    "way",
    "about",
    "many",
    "then",
    "them",
    "write",
    "would",
    "like",
    "so",
    "these",
    "her",
    "long",
    "make",
    "thing",
    "see",
    "him",
    "two",
    "has",
    "look",
    "more",
    "day",
    "could",
    "go",
    "come",
    "did",
    "number",
    "sound",
    "no",
    "most",
    "people",
    "my",
    "over",
    "know",
    "water",
    "than",
    "call",
    "first",
    "who",
    "may",
    "down",
    "side",
    "been",
    "now",
    "find",
    "reward",
    "model",
    "preference",
    "ranking",
    "answer",
    "question",
    "because",
    "therefore",
    "however",
    "example",
    "data",
    "function",
    "variable",
    "compute",
    "gradient",
    "training",
    "evaluation",
    "carefully",
    "important",
    "consider",
]


def _text_pool(rng: random.Random, size: int = 1 << 20) -> str:
    """A long run of words that texts are cut from (cutting is fast; joining words is not)."""
    words: list[str] = []
    length = 0
    while length < size:
        word = rng.choice(WORDS)
        words.append(word)
        length += len(word) + 1
    return " ".join(words)


def _cut(pool: str, rng: random.Random, low: int, high: int, tag: str) -> str:
    n = rng.randint(low, high)
    start = rng.randrange(len(pool) - n)
    return f"{tag} {pool[start : start + n]}"


def generate(path: Path, n: int, seed: int = 0) -> dict[str, int]:
    """N groups as gzipped JSON lines; the counts an exact ingest must report."""
    rng = random.Random(seed)
    pool = _text_pool(rng)
    written: list[str] = []
    repeats = bad = 0
    with gzip.open(path, "wt", encoding="utf-8", compresslevel=1) as handle:
        for i in range(n):
            if i % REPEAT_EVERY == REPEAT_EVERY - 1:
                line = written[rng.randrange(len(written))]  # an exact repeat
                repeats += 1
            else:
                k = rng.randint(2, 4)
                group = {
                    "id": i,
                    "prompt": [{"role": "user", "content": _cut(pool, rng, 50, 400, f"q{i}")}],
                    "completions": [_cut(pool, rng, 100, 1500, f"r{i}.{j}") for j in range(k)],
                    "ranks": rng.sample(range(k), k),
                }
                line = json.dumps(group)
                if len(written) < 1000:
                    written.append(line)
            handle.write(line + "\n")
            if i % BAD_EVERY == BAD_EVERY - 1:
                handle.write('{"prompt": [{"role": "user", "content": "cut short\n')
                bad += 1
    return {
        "groups": n,
        "records_read": n + bad,
        "records_quarantined": repeats + bad,
        "groups_kept": n - repeats,
    }


def params_for(data_file: Path, model: str, num_proc: int) -> dict[str, Any]:
    return {
        "data": {
            "sources": [
                {
                    "path": str(data_file),
                    "format": "mapping",
                    "name": "synthetic",
                    "options": SOURCE_OPTIONS,
                }
            ]
        },
        "tokenize": {"max_length": 512, "num_proc": num_proc},
        "model": {"name": model},
    }


def child(stage: str, root: Path, params_file: Path) -> None:
    """Run one stage here and print its summary with this process's time and peak memory."""
    from rmcore import stages
    from rmcore.core.config import parse_params
    from rmcore.core.paths import Layout

    params = parse_params(json.loads(params_file.read_text()), str(params_file))
    start = time.perf_counter()
    summary = stages.STAGES[stage](params, Layout(root))
    seconds = time.perf_counter() - start
    peak_kb = _own_peak_kb()
    workers_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    out = {"seconds": seconds, "peak_rss_kb": peak_kb, "worker_peak_rss_kb": workers_kb}
    print(json.dumps({"summary": summary, **out}, default=str))


def _own_peak_kb() -> int:
    """This process's peak resident set since it started (VmHWM). Not getrusage's
    ru_maxrss: Linux carries the parent's peak over a fork and exec into it."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _tree_rss(pid: int) -> int:
    import psutil

    try:
        main = psutil.Process(pid)
        procs = [main, *main.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += proc.memory_info().rss
    return total


def run_stage(stage: str, root: Path, params: dict[str, Any]) -> dict[str, Any]:
    """One stage in a fresh process; its summary, seconds and peak memory."""
    params_file = root / f"params-{stage}.json"
    params_file.write_text(json.dumps(params))
    return _run_child(["--child", stage, "--root", str(root), "--params-file", str(params_file)])


def _run_child(args: list[str]) -> dict[str, Any]:
    command = [sys.executable, str(Path(__file__).resolve()), *args]
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    samples: list[int] = []

    def sample() -> None:
        while proc.poll() is None:
            samples.append(_tree_rss(proc.pid))
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, stderr = proc.communicate()
    sampler.join()
    if proc.returncode != 0:
        raise RuntimeError(f"{args} failed ({proc.returncode}):\n{stderr.decode()[-3000:]}")
    result = json.loads(stdout.decode().strip().splitlines()[-1])
    result["peak_tree_rss_kb"] = max(samples, default=0) // 1024
    # the peak in each quarter of the run: flat when memory does not grow with the data read
    quarters = [samples[len(samples) * i // 4 : len(samples) * (i + 1) // 4] for i in range(4)]
    result["tree_rss_mb_by_quarter"] = [round(max(q, default=0) / 2**20) for q in quarters]
    return result


def _figures(result: dict[str, Any], groups: int) -> dict[str, Any]:
    seconds = result["seconds"]
    return {
        "seconds": round(seconds, 2),
        "groups_per_s": round(groups / seconds, 1) if seconds > 0 else None,
        "peak_rss_mb": round(result["peak_rss_kb"] / 1024, 1),
        "worker_peak_rss_mb": round(result["worker_peak_rss_kb"] / 1024, 1),
        "peak_tree_rss_mb": round(result["peak_tree_rss_kb"] / 1024, 1),
        "tree_rss_mb_by_quarter": result["tree_rss_mb_by_quarter"],
    }


def _digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode())
        with path.open("rb") as handle:
            while chunk := handle.read(8 << 20):
                digest.update(chunk)
    return digest.hexdigest()


def measure(n: int, work: Path, model: str, procs: tuple[int, ...] = (1, 2)) -> dict[str, Any]:
    """Generate, ingest and tokenize (on each of `procs` processes; none: ingest only) N
    groups; the figures of each."""
    root = work / f"n{n}"
    shutil.rmtree(root, ignore_errors=True)
    (root / "data").mkdir(parents=True)
    data_file = root / "data" / "groups.jsonl.gz"
    start = time.perf_counter()
    expected = generate(data_file, n)
    out: dict[str, Any] = {
        "expected": expected,
        "generate_seconds": round(time.perf_counter() - start, 2),
        "input_mb": round(data_file.stat().st_size / 2**20, 1),
    }
    ingest = run_stage("ingest", root, params_for(data_file, model, 1))
    totals = ingest["summary"]["totals"]
    out["ingest"] = {**_figures(ingest, n), "totals": totals}
    kept = totals["groups_kept"]
    digests = []
    for count in procs:
        result = run_stage("tokenize", root, params_for(data_file, model, count))
        processes = {s["processes"] for s in result["summary"]["splits"].values()}
        out[f"tokenize_{count}proc"] = {
            **_figures(result, kept),
            "groups": result["summary"]["totals"]["groups"],
            "tokens": result["summary"]["totals"]["tokens"],
            "processes": sorted(processes),
        }
        digests.append(_digest(root / "data" / "tokenized"))
    if len(digests) > 1:
        out["tokenize_outputs_identical"] = len(set(digests)) == 1
    return out


def _linearity(results: dict[str, dict[str, Any]]) -> dict[str, float] | None:
    """Seconds per group at the largest size over the smallest (1.0: exactly linear)."""
    sizes = sorted(int(n) for n in results)
    if len(sizes) < 2:
        return None
    small, large = results[str(sizes[0])], results[str(sizes[-1])]
    ratio: dict[str, float] = {}
    for stage in ("ingest", "tokenize_1proc", "tokenize_2proc"):
        if stage not in small or stage not in large:
            continue
        per_small = small[stage]["seconds"] / sizes[0]
        per_large = large[stage]["seconds"] / sizes[-1]
        ratio[stage] = round(per_large / per_small, 2)
    return ratio


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2e3 groups only (test suite)")
    parser.add_argument("--sizes", type=int, nargs="+", help="groups per run (default 1e4 1e5)")
    parser.add_argument("--workdir", type=Path, help="where the data go (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the generated data")
    parser.add_argument("--ingest-only", action="store_true", help="measure the ingest only")
    parser.add_argument(
        "--procs", type=int, nargs="+", default=[1, 2], help="tokenize processes (default 1 2)"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--params-file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child == "model":  # torch stays out of the measuring process
        from tests.tiny import make_tiny_bert

        print(json.dumps({"model": make_tiny_bert(args.root)}))
        return
    if args.child:
        child(args.child, args.root, args.params_file)
        return
    sizes = args.sizes or (QUICK_SIZES if args.quick else DEFAULT_SIZES)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="rmpipe-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    model = _run_child(["--child", "model", "--root", str(work / "tiny-bert")])["model"]
    results: dict[str, dict[str, Any]] = {}
    try:
        for n in sizes:
            procs = () if args.ingest_only else tuple(args.procs)
            results[str(n)] = measure(n, work, model, procs)
            print(json.dumps({"size": n, **results[str(n)]}), file=sys.stderr, flush=True)
            if not args.keep:
                shutil.rmtree(work / f"n{n}", ignore_errors=True)
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    line = {
        "benchmark": "scale",
        "quick": args.quick,
        "cpus": len(os.sched_getaffinity(0)),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "sizes": sizes,
        "results": results,
        "seconds_per_group_largest_over_smallest": _linearity(results),
    }
    print(json.dumps(line))


if __name__ == "__main__":
    main()
