#!/usr/bin/env python3
"""Fails if the modules of a crate import one another in a circle.

Usage: import-cycles.py SRC_DIR...  (each a crate's src/, flat modules)

A module's imports are the `crate::<module>` paths in its code (comments
and its #[cfg(test)] part left out) and the first names of its
`use crate::{...}` lists. Circles are found as strongly connected
components (Tarjan); each is printed with the edges that make it.
"""
import os
import re
import sys


def imports(path, modules):
    text = open(path).read()
    text = "\n".join(l for l in text.split("\n") if not l.lstrip().startswith("//"))
    text = text.split("#[cfg(test)]")[0]
    found = set(re.findall(r"crate::([a-z_][a-z0-9_]*)", text))
    for block in re.findall(r"use crate::\{(.*?)\};", text, re.S):
        depth, current = 0, ""
        for ch in block + ",":
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
            if depth == 0 and ch == ",":
                found.add(current.strip().split("::")[0])
                current = ""
            else:
                current += ch
    return {m for m in found if m in modules}


def circles(graph):
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


failed = False
for src in sys.argv[1:]:
    modules = {f[:-3] for f in os.listdir(src) if f.endswith(".rs")}
    graph = {m: imports(os.path.join(src, m + ".rs"), modules) - {m} for m in modules}
    for component in circles(graph):
        failed = True
        edges = [f"{a} -> {b}" for a in component for b in sorted(graph[a]) if b in component]
        print(f"{src}: modules import one another in a circle: {', '.join(edges)}", file=sys.stderr)
sys.exit(1 if failed else 0)
