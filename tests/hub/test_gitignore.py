"""The hub's .gitignore matcher (preupload shouldIgnore) against git itself, and against
patterns that would make a regex-based matcher backtrack exponentially."""

from __future__ import annotations

import shutil
import subprocess
import time

import pytest

from dismai_data.hub.gitignore import GitIgnore

RULES = ("# comment\n*.log\n!keep.log\nbuild/\n/root.txt\ndocs/**/*.tmp\na?c\n[ab].x\n**/deep/*.bin\n[!q]z.y\n"
         "lib/**\n*.o\n!lib/keep.o\nfoo/*/bar\n\\#hash\nspace\\ \n[a-c]r.txt\nünï*.md\n")
PATHS = ["x.log", "sub/x.log", "keep.log", "sub/keep.log", "build/a.txt", "sub/build/a.txt", "build", "root.txt",
         "sub/root.txt", "docs/a/b/c.tmp", "docs/c.tmp", "abc", "abbc", "a.x", "c.x", "x/deep/y.bin", "deep/y.bin",
         "README.md", "az.y", "qz.y", "lib/x.txt", "lib/keep.o", "m.o", "foo/q/bar", "foo/bar", "foo/a/b/bar",
         "#hash", "sub/#hash", "buildx/a", "a/b/c/d.log", "space ", "br.txt", "dr.txt", "ünïcode.md", "x/ünï.md"]


@pytest.mark.skipif(shutil.which("git") is None, reason="git not installed")
def test_same_answers_as_git(tmp_path):
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / ".gitignore").write_text(RULES)
    out = subprocess.run(["git", "-C", str(tmp_path), "check-ignore", "--no-index", "--stdin", "-z"],
                         input="\0".join(PATHS) + "\0", capture_output=True, text=True)
    git = {p for p in out.stdout.split("\0") if p}
    rules = GitIgnore(RULES)
    assert {p: rules.ignored(p) for p in PATHS} == {p: p in git for p in PATHS}
    assert git  # the comparison saw ignored paths at all


def test_hostile_patterns_stay_fast():
    rules = GitIgnore("*a*a*a*a*a*a*a*a*a*a*a*a*a*b\n" + "/**" * 300 + "/x\n**\n!**\n[\n[!]\n\\\n")
    t0 = time.perf_counter()
    assert rules.ignored("a" * 900) is False
    assert rules.ignored("/".join(["q"] * 400) + "/y") is False
    assert time.perf_counter() - t0 < 2
