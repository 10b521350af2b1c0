#!/usr/bin/env python3
"""Reports circles between the files of each crate (test code left out: a test module uses its crate, it is not part of what the
crate's modules depend on): module A naming module B (`crate::b`,
`use crate::{b, ...}`, `super::b` from a top-level module) while B names A, directly or through
others. A child module (`a/x.rs` under `a.rs`) counts as part of its parent; the crate root
(`lib.rs`/`main.rs`) declares the modules and is not a node: a name it re-exports
(`pub use m::Name`) counts as module `m`, and a module that uses an item the root itself
defines (a helper in `main.rs`, say) is reported too, since the root imports every module. Exits 1 when a crate has either.

Usage: scripts/module-cycles.py [CRATE ...]   (default: every crate under crates/)
"""
import os
import re
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "crates")


def drop_block(text, start):
    """Removes the braced block that begins at or after `start` (brace matching)."""
    open_at = text.find("{", start)
    if open_at < 0:
        return text[:start]
    depth = 0
    for i in range(open_at, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[:start] + text[i + 1 :]
    return text[:start]


def strip(text):
    """Code only: comments, string literals and test modules removed."""
    text = re.sub(r"/\*[\s\S]*?\*/", "", text)  # block comments
    text = re.sub(r'r(#+)"[\s\S]*?"\1', '""', text)  # raw strings with hashes
    text = re.sub(r'r"[^"]*"', '""', text)  # raw strings
    text = re.sub(r'"(?:\\.|[^"\\])*"', '""', text)  # string literals
    text = re.sub(r"'(?:\\.|[^'\\])'", "' '", text)  # char literals (a quote char)
    text = re.sub(r"//[^\n]*", "", text)  # line comments, doc comments included
    # test modules use the crate; they are not part of what its modules depend on
    pattern = re.compile(r"#\[cfg\(test\)\]\s*(?:#\[[^\]]*\]\s*)*mod \w+\s*\{")
    while True:
        m = pattern.search(text)
        if not m:
            break
        text = drop_block(text, m.start())
    text = re.sub(r"#\[cfg\(test\)\]\s*(?:#\[[^\]]*\]\s*)*mod \w+;", "", text)
    return text


def modules(src):
    """Top-level module name -> the text of its file and of its children."""
    out = {}
    for name in os.listdir(src):
        path = os.path.join(src, name)
        if name.endswith(".rs") and name not in ("lib.rs", "main.rs"):
            out.setdefault(name[:-3], "")
            out[name[:-3]] += strip(open(path, encoding="utf-8").read())
    for name in list(out):
        sub = os.path.join(src, name)
        if os.path.isdir(sub):
            for dirpath, _, files in os.walk(sub):
                for f in files:
                    if f.endswith(".rs") and f != "tests.rs" and "tests" not in dirpath.split(os.sep):
                        out[name] += strip(open(os.path.join(dirpath, f), encoding="utf-8").read())
    return out


def reexports(src, mods):
    """Names the crate root re-exports (`pub use m::…`), mapped to the module they come from:
    `crate::Name` then names that module."""
    out = {}
    for root in ("lib.rs", "main.rs"):
        path = os.path.join(src, root)
        if not os.path.exists(path):
            continue
        text = strip(open(path, encoding="utf-8").read())
        for module, rest in re.findall(r"pub(?:\([^)]*\))?\s+use\s+(\w+)::([^;]*);", text):
            if module not in mods:
                continue
            for name in re.findall(r"\b(\w+)\b", rest):
                if name not in ("self", "super", "crate", "as"):
                    out.setdefault(name, module)
    return out


def referenced(text):
    refs = set(re.findall(r"\bcrate::(\w+)", text))
    for group in re.findall(r"\bcrate::\{([^}]*)\}", text):
        refs |= set(re.findall(r"(?:^|,)\s*(\w+)", group))
    return refs


def edges(mods, names):
    graph = {}
    for name, text in mods.items():
        refs = referenced(text)
        targets = {r for r in refs if r in mods} | {names[r] for r in refs if r in names}
        # `super::x` in a top-level module names a sibling; in a child it names the parent's
        # items, which is the same module
        targets |= set(re.findall(r"(?<!super::)\bsuper::(\w+)", text)) & set(mods)
        graph[name] = {t for t in targets if t != name}
    return graph


def root_items(src):
    """Names the crate root defines itself (fn, const, static, struct, enum, type, trait)."""
    for root in ("lib.rs", "main.rs"):
        path = os.path.join(src, root)
        if os.path.exists(path):
            text = strip(open(path, encoding="utf-8").read())
            text = re.sub(r"#\[cfg\(test\)\]\s*mod tests\s*\{[\s\S]*", "", text)
            return set(
                re.findall(
                    r"^(?:pub(?:\([^)]*\))?\s+)?(?:async\s+)?(?:fn|const|static|struct|enum|type|trait)\s+(\w+)",
                    text,
                    re.M,
                )
            )
    return set()


def root_uses(mods, items):
    found = []
    for name, text in sorted(mods.items()):
        for item in sorted(referenced(text) & items):
            found.append((name, item))
    return found


def cycles(graph):
    found, seen = [], set()
    for start in sorted(graph):
        stack = [(start, [start])]
        while stack:
            node, path = stack.pop()
            for nxt in sorted(graph[node]):
                if nxt == start and len(path) > 1:
                    key = frozenset(path)
                    if key not in seen:
                        seen.add(key)
                        found.append(path + [start])
                elif nxt not in path and nxt > start:
                    stack.append((nxt, path + [nxt]))
    return found


def main(names):
    names = names or sorted(os.listdir(ROOT))
    bad = False
    for crate in names:
        src = os.path.join(ROOT, crate, "src")
        if not os.path.isdir(src):
            print(f"{crate}: no src/", file=sys.stderr)
            bad = True
            continue
        mods = modules(src)
        found = cycles(edges(mods, reexports(src, mods)))
        helpers = root_uses(mods, root_items(src))
        for c in found:
            print(f"{crate}: circle {' -> '.join(c)}")
        for module, item in helpers:
            print(f"{crate}: `{module}` uses `{item}`, defined in the crate root")
        if found or helpers:
            bad = True
        else:
            print(f"{crate}: no circle")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
