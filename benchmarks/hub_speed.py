"""Both hub speed goals from one run, on one hub over loopback:

1. ``upload_folder`` of a 200 MB folder through Xet (stock client): MB/s, goal >= 100;
2. cold ``load_dataset`` of a 70 MB parquet dataset from the hub against
   ``load_dataset("parquet", data_dir=...)`` on the same files in the same process (its own
   fresh cache): the ratio, goal <= 1.5x; once with the stock client as installed (the files
   were uploaded through Xet, so it downloads them through Xet) and once with
   ``HF_HUB_DISABLE_XET=1`` (plain HTTP from ``resolve``), interleaved.

    python benchmarks/hub_speed.py [--upload-mb 200] [--load-mb 70] [--repeat 3] [--profile]

Each measurement is repeated (``--repeat``, each time a fresh client process with an empty
HF cache and Xet cache) and printed with the median; the machine is shared, so single runs
scatter.

The load is timed in a fresh process after one warm-up load_dataset of a tiny dataset from
the hub (the first call of a process pays about 1 s of lazy imports, both paths alike).
``--profile`` writes where the hub-side load spends its time to ./hub_speed_profile.txt
(cProfile of the client process: the top functions by cumulative time).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from hub_load_dataset import make_dataset  # noqa: E402
from hub_upload import client, start_hub  # noqa: E402


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--upload-mb", type=float, default=200)
    ap.add_argument("--files", type=int, default=4)
    ap.add_argument("--load-mb", type=float, default=70)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="hub-speed-") as tmp:
        tmp = Path(tmp)
        up = tmp / "up"
        (up / "data").mkdir(parents=True)
        per = int(args.upload_mb * 1e6 / args.files)

        def new_content():  # fresh random bytes for each upload: the hub keeps xorbs and skips known ones
            for i in range(args.files):
                (up / "data" / f"part-{i:03d}.bin").write_bytes(os.urandom(per))

        new_content()
        up_total = sum(p.stat().st_size for p in up.rglob("*") if p.is_file())
        ds = tmp / "ds"
        ds_size = make_dataset(ds, args.load_mb / 1.2)  # make_dataset writes about 1.2x the MB asked
        warm = tmp / "warm"
        make_dataset(warm, 0.05)
        proc, url, token = start_hub(tmp / "store")
        try:
            ups, server_cpu = [], []
            for i in range(args.repeat):
                if i:
                    new_content()
                c0 = cpu_seconds(proc.pid)
                ups.append(client(url, token, tmp / f"home-up{i}", f"""
            import json, time
            from huggingface_hub import HfApi
            api = HfApi()
            api.create_repo("dismai/speed-up{i}")
            t0 = time.perf_counter()
            api.upload_folder(repo_id="dismai/speed-up{i}", folder_path={str(up)!r})
            print(json.dumps({{"seconds": time.perf_counter() - t0}}))
            """)["seconds"])
                server_cpu.append(cpu_seconds(proc.pid) - c0)
            client(url, token, tmp / "home-pub", f"""
            import json
            from huggingface_hub import HfApi
            api = HfApi()
            for name, folder in (("dismai/speed-load", {str(ds)!r}), ("dismai/speed-warm", {str(warm)!r})):
                api.create_repo(name, repo_type="dataset")
                api.upload_folder(repo_id=name, repo_type="dataset", folder_path=folder)
                api.create_tag(name, tag="v1.0", repo_type="dataset")
            print(json.dumps({{}}))
            """)
            prof = "import cProfile, pstats, io; pr = cProfile.Profile()" if args.profile else "pr = None"
            code = [f"""
            import json, time, io
            import datasets
            {prof}
            datasets.load_dataset("dismai/speed-warm", revision="v1.0")  # lazy imports of the first call
            datasets.load_dataset("parquet", data_dir={str(warm / 'data')!r}, cache_dir={str(tmp / f'c0-{i}')!r})
            t0 = time.perf_counter()
            local = datasets.load_dataset("parquet", data_dir={str(ds / 'data')!r}, cache_dir={str(tmp / f'c1-{i}')!r})
            t_local = time.perf_counter() - t0
            if pr: pr.enable()
            t0 = time.perf_counter()
            hub = datasets.load_dataset("dismai/speed-load", revision="v1.0")
            t_hub = time.perf_counter() - t0
            if pr and {i} == 0:
                pr.disable()
                s = io.StringIO(); pstats.Stats(pr, stream=s).sort_stats("cumulative").print_stats(40)
                open({str(Path.cwd() / 'hub_speed_profile.txt')!r}, "w").write(s.getvalue())
            assert {{k: hub[k].num_rows for k in hub}} == {{k: local[k].num_rows for k in local}}
            print(json.dumps({{"local": t_local, "hub": t_hub, "rows": sum(hub[k].num_rows for k in hub)}}))
            """ for i in range(args.repeat)]
            loads, http_loads = [], []
            for i in range(args.repeat):  # interleaved, so both paths see the same machine load
                loads.append(client(url, token, tmp / f"home-load{i}", code[i]))
                http_loads.append(client(url, token, tmp / f"home-http{i}", code[i].replace(
                    "hub_speed_profile", "hub_speed_profile_http").replace("/c0-", "/c0h-").replace("/c1-", "/c1h-"),
                    xet=False))
        finally:
            proc.terminate()
            proc.wait()
    from statistics import median

    rates = [up_total / 1e6 / s for s in ups]
    print(f"upload_folder through Xet: {up_total / 1e6:.0f} MB in {args.files} files: "
          + ", ".join(f"{s:.2f} s = {r:.0f} MB/s" for s, r in zip(ups, rates))
          + f"; median {median(rates):.0f} MB/s (goal >= 100 MB/s); hub CPU per upload (repo creation included): "
          + ", ".join(f"{c:.2f} s" for c in server_cpu))
    for what, runs in (("Xet downloads (the stock client's default)", loads),
                       ("plain HTTP downloads (client with HF_HUB_DISABLE_XET=1)", http_loads)):
        ratios = [r["hub"] / r["local"] for r in runs]
        print(f"cold load_dataset from the hub, {what}: {ds_size / 1e6:.1f} MB parquet, {runs[0]['rows']} rows, "
              f"hub vs load_dataset('parquet', data_dir=...) on the same files in the same process: "
              + ", ".join(f"{r['hub']:.3f} s / {r['local']:.3f} s = {x:.2f}x" for r, x in zip(runs, ratios))
              + f"; median ratio {median(ratios):.2f}x (goal <= 1.5x)")


if __name__ == "__main__":
    main()
