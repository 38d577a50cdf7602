"""Server-rendered web pages of the hub: repo list, repo page with the rendered card (its
images resolved from the repo) and a preview of the first rows of each split, files,
branches and tags, commit history, commit page. The HTML is in Jinja2 templates
(``templates/*.html.j2``, autoescaped); :mod:`.preview` renders the card and the rows.

Pages are plain HTML with inline CSS and no JavaScript; the Content-Security-Policy forbids
scripts, so raw HTML inside a card cannot run code. A mounted extension's page may allow its
own script by hash in that page's CSP (the leaderboard's table sorter does).
"""

from __future__ import annotations

import html
from pathlib import Path
from urllib.parse import quote

import anyio
from jinja2 import Environment, FileSystemLoader
from starlette.responses import HTMLResponse, RedirectResponse

from dismai_data.hub.preview import preview, render_markdown, split_card
from dismai_data.hub.storage import HubError, RepoKey, list_tree

CSP = "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'self'"
TEMPLATES = Path(__file__).parent / "templates"

env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True)
env.filters["q"] = lambda s: quote(s, safe="")
env.filters["qp"] = lambda s: quote(s, safe="/")


def render(name: str, **values) -> str:
    """The template ``templates/{name}.html.j2`` rendered with ``values``."""
    return env.get_template(f"{name}.html.j2").render(**values)


def human(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return str(n)


def _view(request, key: RepoKey, rest: list[str]) -> tuple[str, str, str]:
    """(view, rev, path) of a repo page path ``rest``; 404 for an unknown view."""
    view = rest[0] if rest else ""
    if view in ("tree", "commits"):
        return view, rest[1] if len(rest) > 1 else "main", "/".join(rest[2:]) if view == "tree" else ""
    if view == "commit" and len(rest) == 2:
        return view, rest[1], ""
    if view in ("refs", ""):
        return view, request.query_params.get("rev") or "main", ""
    raise HubError(404, "EntryNotFound", f"no page {view!r} for {key.id}")


def _load_hint(key: RepoKey, endpoint: str, rev: str) -> str:
    """The command line that loads this repo at ``rev`` with the stock clients."""
    if key.type == "dataset":
        return f"HF_ENDPOINT={endpoint} python -c \"import datasets; print(datasets.load_dataset('{key.id}'" + \
               (f", revision='{rev}'" if rev != "main" else "") + "))\""
    return f"HF_ENDPOINT={endpoint} huggingface-cli download {key.id}" + \
           (f" --repo-type {key.type}" if key.type != "model" else "") + \
           (f" --revision {rev}" if rev != "main" else "")


def _changes(st, key: RepoKey, c: dict) -> list[tuple[str, str]]:
    """(path, added|modified|deleted) of commit ``c`` against its first parent."""
    parent_tree = st.commit_obj(key, c["parents"][0])["tree"] if c["parents"] else {}
    return sorted([(p, "added") for p in c["tree"] if p not in parent_tree] +
                  [(p, "modified") for p in c["tree"] if p in parent_tree and
                   parent_tree[p]["blob"] != c["tree"][p]["blob"]] +
                  [(p, "deleted") for p in parent_tree if p not in c["tree"]])


def files_listing(tree: dict, path: str) -> list[dict] | None:
    """The entries of folder ``path`` (folders first) as the files table shows them."""
    entries = list_tree(tree, path, recursive=False)
    if entries is None:
        return None
    out = []
    for e in sorted(entries, key=lambda e: (e["type"] != "directory", e["path"])):
        out.append({"type": e["type"], "path": e["path"], "name": e["path"].rsplit("/", 1)[-1],
                    "size": human(e["size"]) if e["type"] == "file" else "",
                    "storage": ("LFS/Xet" if e.get("lfs") else "git") if e["type"] == "file" else ""})
    return out


TABS = {"tree": "files", "commits": "commits", "commit": "commits", "refs": "refs", "": "card"}


class Web:
    def __init__(self, hub):
        self.hub = hub
        #: links in the top bar after "dismai hub": {href, id, text} (mounted extensions add theirs)
        self.nav: list[dict] = []

    def page(self, title: str, body: str, status: int = 200, csp: str = CSP) -> HTMLResponse:
        return HTMLResponse(render("base", title=title, body=body, nav=self.nav), status_code=status,
                            headers={"Content-Security-Policy": csp, "X-Content-Type-Options": "nosniff"})

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
        return self.page("Repositories", render("index", repos=repos, kind=kind, endpoint=self.hub.endpoint(request)))

    async def repo_page(self, request, key: RepoKey, rest: list[str]):
        user = self.hub.user_or_none(request)
        meta = self.hub.repo(key, user)
        base = f"/{key.url_prefix}{key.id}"
        if rest and rest[0] == "blob" and len(rest) >= 3:
            return RedirectResponse(f"{base}/resolve/{quote(rest[1], safe='')}/{quote('/'.join(rest[2:]), safe='/')}")
        view, rev, path = _view(request, key, rest)
        tab = TABS[view]
        st = self.hub.storage
        sha, tree = st.tree(key, rev)
        refs = st.refs(key)
        ref_list = [(b, "branch") for b in sorted(refs["branches"])] + [(t, "tag") for t in sorted(refs["tags"])]
        head = render("repo_head", kind=key.type, id=key.id, private=meta["private"], rev=rev, sha=sha,
                      refs=ref_list, base=base, tab=tab, load=_load_hint(key, self.hub.endpoint(request), rev))
        if tab == "card":
            body = await anyio.to_thread.run_sync(self._card_body, key, sha, tree, base)
        elif tab == "files":
            entries = files_listing(tree, path)
            if entries is None:
                raise HubError(404, "EntryNotFound", f"folder {path!r} not found at {rev!r}")
            body = render("files", entries=entries, base=base, rev=rev, path=path,
                          parent="/".join(path.split("/")[:-1]))
        elif tab == "refs":
            body = render("refs", base=base,
                          branches=[{"name": b, "commit": c} for b, c in sorted(refs["branches"].items())],
                          tags=[{"name": t, "commit": v["commit"], "message": v.get("message", "")}
                                for t, v in sorted(refs["tags"].items())])
        elif view == "commit":
            c = st.commit_obj(key, sha)
            body = render("commit", c=c, base=base, changes=_changes(st, key, c))
        else:
            body = render("commits", rev=rev, base=base, commits=[
                {"id": c["id"], "title": c["title"], "author": c["author"], "date": c["date"][:19].replace("T", " ")}
                for c in st.history(key, rev)])
        return self.page(key.id, head + body)

    def _card_body(self, key: RepoKey, sha: str, tree: dict, base: str) -> str:
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
        rows = preview(st, tree, card_data) if key.type == "dataset" else []
        return render("card", card=card_html, meta=meta_text, preview=rows)
