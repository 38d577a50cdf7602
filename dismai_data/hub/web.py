"""Server-rendered web pages of the hub: repo list, repo page with the rendered card (its
images resolved from the repo) and a preview of the first rows of each split, files,
branches and tags, commit history, commit page.

Pages are plain HTML with inline CSS and no JavaScript; the Content-Security-Policy forbids
scripts, so raw HTML inside a card cannot run code. The one exception is the leaderboard
page's table sorter, allowed by its sha256 in that page's own CSP.
"""

from __future__ import annotations

import fnmatch
import html
import re
from urllib.parse import quote

import anyio
from jinja2 import Environment
from starlette.responses import HTMLResponse, RedirectResponse

from dismai_data.hub.storage import HubError, RepoKey

CSP = "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'self'"
PREVIEW_ROWS = 5

env = Environment(autoescape=True)
env.filters["q"] = lambda s: quote(s, safe="")
env.filters["qp"] = lambda s: quote(s, safe="/")

BASE = env.from_string("""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }} · dismai hub</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1f2328;background:#fff}
header.top{background:#0d1117;color:#fff;padding:10px 24px}header.top a{color:#fff;text-decoration:none;font-weight:600}
main{max-width:1100px;margin:0 auto;padding:16px 24px}
a{color:#0969da}table{border-collapse:collapse;margin:8px 0 16px;font-size:14px}
td,th{border:1px solid #d0d7de;padding:4px 8px;text-align:left;vertical-align:top}th{background:#f6f8fa}
nav.tabs a{margin-right:16px;padding:6px 0;display:inline-block}nav.tabs a.on{font-weight:700;border-bottom:2px solid #fd8c73}
.badge{display:inline-block;border:1px solid #d0d7de;border-radius:10px;padding:0 8px;font-size:12px;margin-left:6px}
.card{border:1px solid #d0d7de;border-radius:6px;padding:8px 24px;margin:12px 0}.card img{max-width:100%}
code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:13px}
.muted{color:#656d76}.preview td{max-width:260px;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
</style></head><body><header class="top"><a href="/">dismai hub</a><a href="/leaderboard" id="nav-leaderboard" style="margin-left:20px;font-weight:400">Leaderboard</a></header><main>{{ body|safe }}</main></body></html>""")

INDEX = env.from_string("""<h1>Repositories</h1>
<p class="muted">{{ repos|length }} {% if kind %}{{ kind }} {% endif %}repositories.
Use <code>HF_ENDPOINT={{ endpoint }}</code> with the Hugging Face clients.</p>
<table id="repos"><tr><th>repository</th><th>type</th><th>last commit</th></tr>
{% for r in repos %}<tr><td><a href="/{{ r.prefix }}{{ r.id }}">{{ r.id }}</a>{% if r.private %}<span class="badge">private</span>{% endif %}</td>
<td>{{ r.type }}</td><td>{{ r.date }}</td></tr>{% endfor %}</table>""")

REPO_HEAD = env.from_string("""<h1 id="repo-title"><span class="muted">{{ kind }}</span> {{ id }}
{% if private %}<span class="badge">private</span>{% endif %}</h1>
<p class="muted">revision <b id="rev">{{ rev }}</b> · commit <code>{{ sha[:12] }}</code>
{% if refs %} · switch to {% for name, kindr in refs %}<a href="{{ base }}?rev={{ name|q }}">{{ name }}</a>{% if kindr == 'tag' %} (tag){% endif %}{% if not loop.last %}, {% endif %}{% endfor %}{% endif %}</p>
<nav class="tabs">
<a href="{{ base }}?rev={{ rev|q }}" class="{{ 'on' if tab == 'card' }}">{{ 'Dataset' if kind == 'dataset' else 'Model' if kind == 'model' else 'Space' }} card</a>
<a href="{{ base }}/tree/{{ rev|q }}" class="{{ 'on' if tab == 'files' }}">Files</a>
<a href="{{ base }}/refs" class="{{ 'on' if tab == 'refs' }}">Branches and tags</a>
<a href="{{ base }}/commits/{{ rev|q }}" class="{{ 'on' if tab == 'commits' }}">History</a></nav>
<p class="muted">Load it: <code>{{ load }}</code></p>""")

CARD = env.from_string("""{% if preview %}<section id="preview"><h2>Preview</h2>
{% for p in preview %}<h3 class="split">{{ p.name }} <span class="muted">({{ p.rows }} rows{% if p.files > 1 %}, {{ p.files }} files{% endif %})</span></h3>
<table class="preview" data-split="{{ p.name }}"><tr>{% for c in p.columns %}<th>{{ c }}</th>{% endfor %}</tr>
{% for row in p.data %}<tr>{% for v in row %}<td title="{{ v }}">{{ v }}</td>{% endfor %}</tr>{% endfor %}</table>
{% endfor %}</section>{% endif %}
<article class="card" id="card">{% if card %}{{ card|safe }}{% else %}<p class="muted">No README.md card.</p>{% endif %}</article>
{% if meta %}<details><summary>Card metadata (YAML)</summary><pre class="mono">{{ meta }}</pre></details>{% endif %}""")

FILES = env.from_string("""<h2>Files{% if path %} in <code>{{ path }}</code>{% endif %}</h2>
<table id="files"><tr><th>path</th><th>size</th><th>storage</th></tr>
{% if path %}<tr><td><a href="{{ base }}/tree/{{ rev|q }}/{{ parent|qp }}">..</a></td><td></td><td></td></tr>{% endif %}
{% for e in entries %}<tr><td>{% if e.type == 'directory' %}<a href="{{ base }}/tree/{{ rev|q }}/{{ e.path|qp }}">{{ e.name }}/</a>
{% else %}<a href="{{ base }}/resolve/{{ rev|q }}/{{ e.path|qp }}">{{ e.name }}</a>{% endif %}</td>
<td>{{ e.size }}</td><td>{{ e.storage }}</td></tr>{% endfor %}</table>""")

REFS = env.from_string("""<h2>Branches</h2><table id="branches"><tr><th>branch</th><th>commit</th></tr>
{% for b in branches %}<tr><td><a href="{{ base }}?rev={{ b.name|q }}">{{ b.name }}</a></td><td><code>{{ b.commit }}</code></td></tr>{% endfor %}</table>
<h2>Tags</h2><table id="tags"><tr><th>tag</th><th>commit</th><th>message</th></tr>
{% for t in tags %}<tr><td><a href="{{ base }}?rev={{ t.name|q }}">{{ t.name }}</a></td><td><code>{{ t.commit }}</code></td><td>{{ t.message }}</td></tr>{% endfor %}</table>""")

COMMITS = env.from_string("""<h2>History of {{ rev }}</h2><table id="commits"><tr><th>commit</th><th>title</th><th>author</th><th>date</th></tr>
{% for c in commits %}<tr><td><a href="{{ base }}/commit/{{ c.id }}"><code>{{ c.id[:12] }}</code></a></td><td>{{ c.title }}</td>
<td>{{ c.author }}</td><td>{{ c.date }}</td></tr>{% endfor %}</table>""")

COMMIT = env.from_string("""<h2>Commit <code>{{ c.id }}</code></h2><p><b>{{ c.title }}</b></p>
{% if c.message %}<pre class="mono">{{ c.message }}</pre>{% endif %}
<p class="muted">by {{ c.author }} on {{ c.date }}; parents: {% for p in c.parents %}<a href="{{ base }}/commit/{{ p }}"><code>{{ p[:12] }}</code></a> {% endfor %}</p>
<h3>Changes</h3><table id="changes"><tr><th>path</th><th>change</th></tr>
{% for p, what in changes %}<tr><td>{{ p }}</td><td>{{ what }}</td></tr>{% endfor %}</table>
<p><a href="{{ base }}/tree/{{ c.id }}">browse files at this commit</a></p>""")


def human(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return str(n)


def split_card(text: str) -> tuple[str, str]:
    if text.startswith("---"):
        end = text.find("\n---", 3)
        if end >= 0:
            nl = text.find("\n", end + 4)
            return text[3:end].strip("\n"), text[nl + 1:] if nl >= 0 else ""
    return "", text


_SRC = re.compile(r'(<img\b[^>]*?\bsrc=")([^"]+)(")', re.I)
_HREF = re.compile(r'(<a\b[^>]*?\bhref=")([^"]+)(")', re.I)


def render_markdown(md_text: str, resolve_base: str, tree_base: str, files: set[str]) -> str:
    import markdown

    out = markdown.markdown(md_text, extensions=["tables", "fenced_code", "sane_lists"], output_format="html")

    def fix(m, base):
        url = html.unescape(m.group(2))
        if re.match(r"^[a-z][a-z0-9+.-]*:|^#|^/", url, re.I):
            if re.match(r"^\s*javascript:", url, re.I):
                return m.group(1) + "#" + m.group(3)
            return m.group(0)
        path = url.split("#")[0].split("?")[0]
        while path.startswith("./"):
            path = path[2:]
        if path in files or base is resolve_base:
            return m.group(1) + html.escape(base + quote(path, safe="/")) + m.group(3)
        return m.group(0)

    out = _SRC.sub(lambda m: fix(m, resolve_base), out)
    out = _HREF.sub(lambda m: fix(m, resolve_base if html.unescape(m.group(2)).split("#")[0] in files else tree_base),
                    out)
    return out


def _cell(v) -> str:
    s = v if isinstance(v, str) else repr(v)
    return s if len(s) <= 120 else s[:117] + "..."


class Web:
    def __init__(self, hub):
        self.hub = hub

    def page(self, title: str, body: str, status: int = 200, csp: str = CSP) -> HTMLResponse:
        return HTMLResponse(BASE.render(title=title, body=body), status_code=status,
                            headers={"Content-Security-Policy": csp, "X-Content-Type-Options": "nosniff"})

    async def leaderboard(self, request):
        """The leaderboard page (dismai_data.leaderboard.page): its one inline script, the
        table sorter, is allowed by hash in the page's CSP."""
        from dismai_data.leaderboard import page, service
        from dismai_data.leaderboard.queue import STATES, Queue

        user = self.hub.user_or_none(request)

        def build():
            rows = self.hub.visible_rows(service.leaderboard_rows(self.hub.storage), user)
            root = self.hub.storage.root / "leaderboard"
            queue = Queue(self.hub.storage.root).counts() if root.is_dir() else {s: 0 for s in STATES}
            return page.render(rows, queue)

        return self.page("Leaderboard", await anyio.to_thread.run_sync(build), csp=page.CSP)

    async def index(self, request, kind: str | None = None):
        user = self.hub.user_or_none(request)
        repos = []
        for key, meta in self.hub.storage.list_repos(kind):
            if not self.hub.visible(key, meta, user):
                continue
            try:
                date = self.hub.storage.commit_obj(key, self.hub.storage.resolve(key, "main"))["date"]
            except HubError:
                date = meta["created"]
            repos.append({"id": key.id, "type": key.type, "prefix": key.url_prefix, "private": meta["private"],
                          "date": date[:19].replace("T", " ")})
        repos.sort(key=lambda r: r["date"], reverse=True)
        return self.page("Repositories", INDEX.render(repos=repos, kind=kind, endpoint=self.hub.endpoint(request)))

    async def repo_page(self, request, key: RepoKey, rest: list[str]):
        user = self.hub.user_or_none(request)
        meta = self.hub.repo(key, user)
        st = self.hub.storage
        base = f"/{key.url_prefix}{key.id}"
        view = rest[0] if rest else ""
        if view == "tree":
            rev = rest[1] if len(rest) > 1 else "main"
            path = "/".join(rest[2:])
            tab = "files"
        elif view == "commits":
            rev = rest[1] if len(rest) > 1 else "main"
            tab = "commits"
        elif view == "commit" and len(rest) == 2:
            rev = rest[1]
            tab = "commits"
        elif view == "blob" and len(rest) >= 3:
            return RedirectResponse(f"{base}/resolve/{quote(rest[1], safe='')}/{quote('/'.join(rest[2:]), safe='/')}")
        elif view == "refs":
            rev = request.query_params.get("rev") or "main"
            tab = "refs"
        elif not view:
            rev = request.query_params.get("rev") or "main"
            tab = "card"
        else:
            raise HubError(404, "EntryNotFound", f"no page {view!r} for {key.id}")
        sha, tree = st.tree(key, rev)
        refs = st.refs(key)
        ref_list = [(b, "branch") for b in sorted(refs["branches"])] + [(t, "tag") for t in sorted(refs["tags"])]
        ep = self.hub.endpoint(request)
        if key.type == "dataset":
            load = f"HF_ENDPOINT={ep} python -c \"import datasets; print(datasets.load_dataset('{key.id}'" + \
                   (f", revision='{rev}'" if rev != "main" else "") + "))\""
        else:
            load = f"HF_ENDPOINT={ep} huggingface-cli download {key.id}" + \
                   (f" --repo-type {key.type}" if key.type != "model" else "") + \
                   (f" --revision {rev}" if rev != "main" else "")
        head = REPO_HEAD.render(kind=key.type, id=key.id, private=meta["private"], rev=rev, sha=sha, refs=ref_list,
                                base=base, tab=tab, load=load)
        if tab == "card":
            body = await anyio.to_thread.run_sync(self._card_body, key, rev, sha, tree, base)
        elif tab == "files":
            entries = self._files(tree, path)
            if entries is None:
                raise HubError(404, "EntryNotFound", f"folder {path!r} not found at {rev!r}")
            body = FILES.render(entries=entries, base=base, rev=rev, path=path, parent="/".join(path.split("/")[:-1]))
        elif tab == "refs":
            body = REFS.render(base=base, branches=[{"name": b, "commit": c} for b, c in sorted(refs["branches"].items())],
                               tags=[{"name": t, "commit": v["commit"], "message": v.get("message", "")}
                                     for t, v in sorted(refs["tags"].items())])
        elif view == "commit":
            c = st.commit_obj(key, sha)
            parent_tree = st.commit_obj(key, c["parents"][0])["tree"] if c["parents"] else {}
            changes = sorted([(p, "added") for p in c["tree"] if p not in parent_tree] +
                             [(p, "modified") for p in c["tree"] if p in parent_tree and
                              parent_tree[p]["blob"] != c["tree"][p]["blob"]] +
                             [(p, "deleted") for p in parent_tree if p not in c["tree"]])
            body = COMMIT.render(c=c, base=base, changes=changes)
        else:
            body = COMMITS.render(rev=rev, base=base, commits=[
                {"id": c["id"], "title": c["title"], "author": c["author"], "date": c["date"][:19].replace("T", " ")}
                for c in st.history(key, rev)])
        return self.page(key.id, head + body)

    def _files(self, tree: dict, path: str):
        from dismai_data.hub.storage import list_tree

        entries = list_tree(tree, path, recursive=False)
        if entries is None:
            return None
        out = []
        for e in sorted(entries, key=lambda e: (e["type"] != "directory", e["path"])):
            out.append({"type": e["type"], "path": e["path"], "name": e["path"].rsplit("/", 1)[-1],
                        "size": human(e["size"]) if e["type"] == "file" else "",
                        "storage": ("LFS/Xet" if e.get("lfs") else "git") if e["type"] == "file" else ""})
        return out

    def _card_body(self, key: RepoKey, rev: str, sha: str, tree: dict, base: str) -> str:
        st = self.hub.storage
        meta_text, card_html = "", ""
        card_data = None
        if "README.md" in tree:
            text = st.read_blob(tree["README.md"]["blob"]).decode("utf-8", "replace")
            meta_text, body = split_card(text)
            card_data = self.hub.card_data(tree["README.md"]["blob"])
            try:
                card_html = render_markdown(body, f"{base}/resolve/{quote(sha, safe='')}/",
                                            f"{base}/tree/{quote(sha, safe='')}/", set(tree))
            except (RecursionError, ValueError):  # a hostile card must not break the page: show it as text
                card_html = f"<pre class=\"mono\">{html.escape(body[:200_000])}</pre>"
        preview = self._preview(tree, card_data) if key.type == "dataset" else []
        return CARD.render(card=card_html, meta=meta_text, preview=preview)

    def _preview(self, tree: dict, card_data: dict | None) -> list[dict]:
        import pyarrow.parquet as pq

        parquet = sorted(p for p in tree if p.endswith(".parquet"))
        groups: dict[str, list[str]] = {}
        configs = (card_data or {}).get("configs") if isinstance(card_data, dict) else None
        if isinstance(configs, list):
            for cfg in configs:
                if not isinstance(cfg, dict):
                    continue
                name = str(cfg.get("config_name", "default"))
                files = cfg.get("data_files")
                if isinstance(files, str):
                    files = [{"split": "train", "path": files}]
                for df in files if isinstance(files, list) else []:
                    if not isinstance(df, dict):
                        continue
                    pats = df.get("path")
                    pats = [pats] if isinstance(pats, str) else pats or []
                    label = (f"{name}/" if len(configs) > 1 else "") + str(df.get("split", "train"))
                    groups[label] = [p for p in parquet if any(fnmatch.fnmatch(p, pat) for pat in pats)]
        if not groups:
            for p in parquet:
                stem = p.rsplit("/", 1)[-1].split("-")[0].removesuffix(".parquet")
                parent = p.rsplit("/", 2)[-2] if p.count("/") >= 2 else ""
                label = f"{parent}/{stem}" if parent and parent != "data" else stem
                groups.setdefault(label, []).append(p)
        out = []
        for label, files in list(groups.items())[:24]:
            if not files:
                continue
            try:
                pf = pq.ParquetFile(st_path := self.hub.storage.blob_path(tree[files[0]]["blob"]))
                rows = sum(pq.ParquetFile(self.hub.storage.blob_path(tree[f]["blob"])).metadata.num_rows
                           for f in files)
                batch = next(pf.iter_batches(batch_size=PREVIEW_ROWS), None)
                data = [] if batch is None else batch.to_pylist()
                cols = pf.schema_arrow.names
                out.append({"name": label, "rows": rows, "files": len(files), "columns": cols,
                            "data": [[_cell(r.get(c)) for c in cols] for r in data]})
                del st_path
            except Exception as exc:  # a broken parquet must not break the page
                out.append({"name": label, "rows": "?", "files": len(files), "columns": ["error"],
                            "data": [[f"cannot read: {exc}"]]})
        return out
