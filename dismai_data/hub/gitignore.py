"""``.gitignore`` rules for the preupload answer's ``shouldIgnore``, as the Hub applies them:
the rules a client sends (``gitIgnore``: the ``.gitignore`` it is committing) or else the
repo's own ``.gitignore`` at the revision.

Git's wildmatch semantics: blank lines and ``#`` comments skipped, ``!`` re-includes, a
trailing ``/`` matches folders only, a pattern with a ``/`` before its end is anchored at
the repo root (else it matches a name at any depth), ``*`` ``?`` ``[...]`` never cross a
``/``, ``**`` as a whole component spans any number of folders. The last matching rule
wins, and a file inside an ignored folder stays ignored (git cannot re-include it).

Matching is done component by component with a star-backtracking matcher (quadratic at
worst), never with regular expressions, so a hostile pattern cannot make it exponential.
"""

from __future__ import annotations

MAX_RULES = 10_000
MAX_RULE_CHARS = 1000


def _tokens(comp: str) -> tuple:
    """One path component's pattern as tokens: '*', '?', ('=', char), ('[', negated, ranges)."""
    out = []
    i = 0
    while i < len(comp):
        c = comp[i]
        if c == "\\" and i + 1 < len(comp):
            out.append(("=", comp[i + 1]))
            i += 2
            continue
        if c == "*":
            if not out or out[-1] != "*":
                out.append("*")
        elif c == "?":
            out.append("?")
        elif c == "[":
            j = i + 1
            neg = j < len(comp) and comp[j] in "!^"
            j += neg
            start = j
            ranges = []
            while j < len(comp) and (comp[j] != "]" or j == start):
                lo = comp[j]
                if j + 2 < len(comp) and comp[j + 1] == "-" and comp[j + 2] != "]":
                    ranges.append((lo, comp[j + 2]))
                    j += 3
                else:
                    ranges.append((lo, lo))
                    j += 1
            if j >= len(comp):  # no closing bracket: a literal '['
                out.append(("=", "["))
            else:
                out.append(("[", neg, tuple(ranges)))
                i = j
        else:
            out.append(("=", c))
        i += 1
    return tuple(out)


def _one(tok, ch: str) -> bool:
    if tok == "?":
        return True
    if tok[0] == "=":
        return tok[1] == ch
    hit = any(lo <= ch <= hi for lo, hi in tok[2])
    return hit != tok[1]


def _match_component(toks: tuple, s: str) -> bool:
    """Wildcard match of one component (no '/' in ``s``), remembering only the last star."""
    p = i = 0
    star = back = -1
    while i < len(s):
        if p < len(toks) and toks[p] != "*" and _one(toks[p], s[i]):
            p += 1
            i += 1
        elif p < len(toks) and toks[p] == "*":
            star, back = p, i
            p += 1
        elif star >= 0:
            back += 1
            p, i = star + 1, back
        else:
            return False
    while p < len(toks) and toks[p] == "*":
        p += 1
    return p == len(toks)


class _Rule:
    def __init__(self, comps: list, negated: bool, dir_only: bool, anchored: bool):
        self.comps = tuple(comps)  # each: tokens, or None for '**'
        self.negated, self.dir_only, self.anchored = negated, dir_only, anchored

    def matches(self, parts: tuple) -> bool:
        if not self.anchored:
            return _match_component(self.comps[0], parts[-1])
        reach = {0}  # how many leading components of ``parts`` the rule so far can consume
        for r, comp in enumerate(self.comps):
            if comp is None:  # '**': any number of components (at least one when it ends the rule)
                lo = min(reach) + (1 if r == len(self.comps) - 1 else 0)
                reach = set(range(lo, len(parts) + 1))
            else:
                reach = {k + 1 for k in reach if k < len(parts) and _match_component(comp, parts[k])}
            if not reach:
                return False
        return len(parts) in reach


class GitIgnore:
    def __init__(self, text: str):
        self.rules: list[_Rule] = []
        for line in text.splitlines()[:MAX_RULES]:
            if not line.strip() or line.startswith("#") or len(line) > MAX_RULE_CHARS:
                continue
            if not line.endswith("\\ "):
                line = line.rstrip(" ")
            negated = line.startswith("!")
            if negated:
                line = line[1:]
            if line.startswith("\\"):
                line = line[1:] if line[1:2] in ("!", "#") else line
            dir_only = line.endswith("/")
            line = line.rstrip("/")
            if not line:
                continue
            anchored = "/" in line
            comps = []
            for c in line.lstrip("/").split("/"):
                if c and not (c == "**" and comps and comps[-1] is None):  # a/**/**/b is a/**/b
                    comps.append(None if c == "**" else _tokens(c))
            if not anchored and comps == [None]:  # '**' alone names every file, like '*'
                comps = [("*",)]
            if comps:
                self.rules.append(_Rule(comps, negated, dir_only, anchored))

    def _decide(self, parts: tuple, is_dir: bool) -> bool | None:
        result = None
        for rule in self.rules:
            if (not rule.dir_only or is_dir) and rule.matches(parts):
                result = not rule.negated
        return result

    def ignored(self, path: str) -> bool:
        parts = tuple(path.split("/"))
        for i in range(1, len(parts)):
            if self._decide(parts[:i], True):
                return True
        return bool(self._decide(parts, False))
