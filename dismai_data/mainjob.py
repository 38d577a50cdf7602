"""The steps of ``dismai main`` (the quick start): build the default datasets, install the
shipped builds of the long ones, start the local hub, publish every dataset, publish the
baselines and the relaxer, put the baselines on the leaderboard, then keep serving.

``dismai_data.cli`` wires the command to :func:`run`; the other commands reuse
:func:`publish_all` and :func:`start_hub`. Top of the layers: it may import the hub, the
leaderboard and the models.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from dismai_data import __version__

#: reconstruction tasks the quick start does not score: the AtomGen score (pymatgen's
#: get_rms_anonymous) is slow on Perov-5's cubic cells (figures: benchmarks/RESULTS.md), so their
#: test splits take an hour or more on 2 cores
QUICK_START_SKIPS = {
    "perov-5": "scoring its 3785 test rows takes about an hour on 2 cores (get_rms_anonymous, ~2 s per pair)",
    "carbon-24": "its 2030 test rows need get_rms_anonymous on 6-24 atom cells (not timed here; left out with Perov-5)",
    # a-si is scored (its LAMMPS relaxations of 200 structures take minutes)
    "interface": ("its scoring relaxes every structure with M3GNet and Dismai-Bench's conjugate gradient "
                  "(~50 CPU-s for a near-relaxed one, minutes for one that takes the full 1000 iterations: "
                  "hours for 200 on 2 cores)"),
}


# ------------------------------------------------------------------------------------ datasets
def build_defaults(datasets_dir: Path, rebuild: bool, console) -> list[dict]:
    """Build each default dataset not yet built (every one with ``rebuild``); their summaries."""
    from dismai_data.build import summarize
    from dismai_data.builders import DEFAULT_DATASETS, run_builder
    from dismai_data.builders.write import write_dataset

    out = []
    for name in DEFAULT_DATASETS:
        folder = datasets_dir / name
        t0 = time.perf_counter()
        built = rebuild or not (folder / "build_info.json").exists()
        if built:
            console.print(f"building {name} ...")
            write_dataset(run_builder(name), folder)
        s = summarize(folder)
        s["built"] = f"built in {time.perf_counter() - t0:.1f} s" if built else "already built"
        out.append(s)
    return out


def separately_built(datasets_dir: Path, console) -> list[dict]:
    """Datasets too long to build in the quick start (a-Si MD, interface relaxations) are
    published when a `dismai build NAME --out HOME/datasets/NAME` has built them, or, when
    HOME has no such folder, from the checkout's shipped build (``prebuilt/NAME``, verified
    against its SHA256SUMS and copied to HOME/datasets/NAME; see dismai_data.prebuilt)."""
    from dismai_data import prebuilt
    from dismai_data.build import summarize
    from dismai_data.builders import BUILDERS, DEFAULT_DATASETS

    out = []
    for name in sorted(set(BUILDERS) - set(DEFAULT_DATASETS)):
        folder = datasets_dir / name
        built = "built separately"
        if folder.exists() and name in prebuilt.available() and prebuilt.is_earlier_shipped(folder, name):
            # a copy of an earlier shipped version (kept in prebuilt/previous and published under its own
            # tag), not a build of the user's: make way for the current one
            console.print(f"{name}: {folder} holds an earlier shipped version; replacing it with the current one",
                          highlight=False)
            shutil.rmtree(folder)
        if not folder.exists() and name in prebuilt.available():
            try:
                prebuilt.install(name, datasets_dir)
            except prebuilt.PrebuiltError as exc:
                console.print(f"{name}: the shipped build is not used: {exc}", highlight=False)
            else:
                built = f"shipped build from {prebuilt.PREBUILT_DIR / name}, copied to {folder}"
                console.print(f"{name}: not built here; using the build shipped in {prebuilt.PREBUILT_DIR / name} "
                              f"(made by `dismai build {name}` as its card says; rebuild with `dismai build {name} "
                              f"--out {folder}`)", highlight=False)
        if (folder / "build_info.json").exists():
            s = summarize(folder)
            s["built"] = built
            out.append(s)
        else:
            console.print(f"{name}: not built by the quick start (a long physics build); build it with "
                          f"`dismai build {name} --out {folder}` and run this again to publish it")
    return out


# ------------------------------------------------------------------------------------ hub
def start_hub(storage: Path, port: int, console):
    """The local hub on 127.0.0.1:``port`` (a free port if that one is busy), in the background,
    with the leaderboard mounted."""
    from dismai_data.leaderboard.routes import serve_in_background

    try:
        return serve_in_background(storage, "127.0.0.1", port)
    except OSError:
        console.print(f"port {port} is busy; serving on a free port instead")
        return serve_in_background(storage, "127.0.0.1", 0)


def publish_all(folders: list[Path], endpoint: str, token: str, console) -> list[dict]:
    """Publish each built dataset folder as dismai/NAME (its earlier shipped versions first)."""
    from dismai_data import prebuilt
    from dismai_data.hub.publish import publish_dataset

    results = []
    for folder in folders:
        name = folder.name
        # earlier shipped versions first, each under its own tag (a no-op once that tag exists)
        for old in prebuilt.previous(name):
            try:
                prebuilt.verify(old)
                info = publish_dataset(old, f"dismai/{name}", endpoint=endpoint, token=token)
            except (prebuilt.PrebuiltError, ValueError) as exc:
                console.print(f"dismai/{name}: the earlier version in {old} is not published: {exc}", highlight=False)
                continue
            if info["changed"]:
                console.print(f"published dismai/{name} {info['tag']} (earlier version, kept for reproducibility)")
        info = publish_dataset(folder, f"dismai/{name}", endpoint=endpoint, token=token)
        info["name"] = name
        console.print(f"published dismai/{name} {info['tag']} ({'new commit' if info['changed'] else 'unchanged'})")
        results.append(info)
    return results


# ------------------------------------------------------------------------------------ baselines
def _submit_shipped(hub, token: str, b, ship: tuple, console) -> None:
    """Submit the predictions a baseline's folder ships with the scores its publisher computed
    (a leaderboard row labelled shipped)."""
    from dismai_data.leaderboard import submit_and_wait
    from dismai_data.leaderboard.client import SubmissionError

    f, record = ship
    try:
        r = submit_and_wait(hub.url, token, b.tasks[0], f, b.name, model_repo=f"dismai/{b.name}",
                            timeout=600, shipped=record)
        console.print(f"  leaderboard: {b.name} on {b.tasks[0]}: {r.get('status')} (scores shipped from "
                      f"{record['hardware']}, {record['scored_at'][:10]}; `dismai leaderboard rescore "
                      f"{r.get('submission_id')}` recomputes them)", highlight=False)
    except (SubmissionError, TimeoutError) as exc:
        console.print(f"  leaderboard: {b.name} on {b.tasks[0]}: shipped scores not accepted: {exc}",
                      highlight=False)


def _baseline_predictions(hub, token: str, home: Path, b, env: dict, console) -> Path | None:
    """The baseline's predictions file: the ones its repo ships (made on other hardware), or
    generated in a fresh process with the stock clients (HF_ENDPOINT = this hub); None when
    generation failed."""
    import subprocess
    import sys

    from dismai_data.evaluation.api import RECONSTRUCTION_TASKS

    out = home / "work" / "baseline-predictions" / f"{b.name}.parquet"
    # reconstruction tasks score one prediction per test row: all of them
    n_rows = 10**9 if all(t in RECONSTRUCTION_TASKS for t in b.tasks) else b.n
    if not out.is_file() and b.shipped:
        # trained and sampled on other hardware: submit the predictions its repo ships (the card
        # gives their sha256, the hardware and the seconds they took)
        from huggingface_hub import hf_hub_download

        console.print(f"fetching the predictions shipped in dismai/{b.name} ...")
        got = hf_hub_download(f"dismai/{b.name}", "predictions/seed0.parquet", revision="v1.0", endpoint=hub.url,
                              token=token, cache_dir=str(home / "work" / "hf-client"))
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(got, out)
    if not out.is_file():
        console.print(f"generating with dismai/{b.name} ...")
        cmd = [sys.executable, "-m", "dismai_data.cli", "generate", "--model", f"dismai/{b.name}",
               "--revision", "v1.0", "-n", str(n_rows), "--out", str(out), "--seed", "0"]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            console.print(f"  generation failed: {(proc.stderr or proc.stdout).strip().splitlines()[-1:]}")
            return None
    return out


def _submit_predictions(hub, token: str, b, out: Path, console) -> None:
    """Submit ``out`` on each of the baseline's tasks and wait for the hub's worker to score it."""
    from dismai_data.leaderboard import submit_and_wait
    from dismai_data.leaderboard.client import SubmissionError

    for task in b.tasks:
        try:
            r = submit_and_wait(hub.url, token, task, out, b.name, model_repo=f"dismai/{b.name}", timeout=7200)
        except (SubmissionError, TimeoutError) as exc:
            console.print(f"  leaderboard: {b.name} on {task}: not scored: {exc}", highlight=False)
            continue
        console.print(f"  leaderboard: {b.name} on {task}: {r.get('status')}"
                      + (f" ({r['reason']})" if r.get("reason") else "")
                      + (" (already submitted)" if r.get("duplicate") else ""), highlight=False)


def baselines_and_leaderboard(hub, home: Path, datasets: set[str], console) -> None:
    """Publish the relaxer and baseline model repos, generate each baseline's predictions
    in a fresh process (the stock clients, HF_ENDPOINT = this hub), submit them to the
    leaderboard and wait for the hub's worker to score them."""
    import os

    from dismai_data.evaluation.api import DISORDER_TASKS
    from dismai_data.hub.publish import publisher_token
    from dismai_data.models.publish import BASELINES, publish_baselines, shipped_record

    token = publisher_token(home / "hub")
    console.print("\nPublishing the relaxer and the baseline model repos ...")
    repos = publish_baselines(hub.url, token, datasets_dir=home / "datasets", console=console, evaluate=False)
    published = {r["repo"] for r in repos if "url" in r}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE"))}
    env.update(HF_ENDPOINT=hub.url, HF_HOME=str(home / "work" / "hf-client"), HF_HUB_DISABLE_TELEMETRY="1")
    for b in BASELINES:
        dataset = b.dataset.split("/", 1)[1]
        if f"dismai/{b.name}" not in published or dataset not in datasets:
            continue
        ship = shipped_record(b, b.tasks[0]) if b.tasks[0] in QUICK_START_SKIPS else None
        if ship is not None:  # scored once by the publisher (the card says where): a row labelled shipped
            _submit_shipped(hub, token, b, ship, console)
            continue
        if b.tasks[0] in QUICK_START_SKIPS:
            n = b.n if b.tasks[0] in DISORDER_TASKS else 1000000000
            console.print(f"not submitting dismai/{b.name} ({b.tasks[0]}): {QUICK_START_SKIPS[b.tasks[0]]}; submit it "
                          f"with `dismai generate --model dismai/{b.name} -n {n} --out P` and `dismai submit "
                          f"--task {b.tasks[0]} --predictions P ...`", highlight=False)
            continue
        out = _baseline_predictions(hub, token, home, b, env, console)
        if out is not None:
            _submit_predictions(hub, token, b, out, console)
    console.print(f"Leaderboard: {hub.url}/leaderboard", highlight=False)


# ------------------------------------------------------------------------------------ the job
def _print_served(hub, summaries: list[dict], published: list[dict], console) -> None:
    console.print(f"\nThe hub at {hub.url} serves:")
    for s, p in zip(summaries, published):
        splits = "; ".join(", ".join(f"{sp} {n}" for sp, n in v.items()) if c == "default" else
                           f"{c}: " + ", ".join(f"{sp} {n}" for sp, n in v.items())
                           for c, v in s["num_rows"].items())
        console.print(f"  dismai/{s['name']} @ {p['tag']}  ({splits}; {s['bytes'] / 1e6:.1f} MB; "
                      f"{s['built']})\n    {p['url']}", soft_wrap=True, highlight=False)


def run(home: Path, *, rebuild: bool, port: int, serve: bool, baselines: bool) -> None:
    """``dismai main``: build, start the hub, publish, (baselines and leaderboard), serve."""
    from rich.console import Console

    from dismai_data.builders import DEFAULT_DATASETS
    from dismai_data.hub.publish import publisher_token

    datasets_dir = home / "datasets"
    console = Console()
    console.print(f"dismai-data {__version__}: {len(DEFAULT_DATASETS)} datasets in {datasets_dir}")
    summaries = build_defaults(datasets_dir, rebuild, console)
    summaries += separately_built(datasets_dir, console)
    hub = start_hub(home / "hub", port, console)
    try:
        published = publish_all([Path(s["path"]) for s in summaries], hub.url,
                                publisher_token(home / "hub"), console)
        _print_served(hub, summaries, published, console)
        if baselines:
            baselines_and_leaderboard(hub, home, {p["name"] for p in published}, console)
        console.print(f"Hub storage: {home / 'hub'}; web pages: {hub.url}/")
        first = published[0]
        console.print("Load a dataset (any Python with datasets installed):\n"
                      f"  HF_ENDPOINT={hub.url} python -c 'import datasets; "
                      f"print(datasets.load_dataset(\"dismai/{first['name']}\", revision=\"{first['tag']}\"))'",
                      soft_wrap=True, highlight=False)
        if serve:
            console.print("Serving; Ctrl-C stops.")
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        hub.stop()
