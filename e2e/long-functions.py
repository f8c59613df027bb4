#!/usr/bin/env python3
"""Fails if a function in the given source folders is longer than LIMIT
lines (tests excluded): the runtime and the MQTT library are read most by
people new to them, and a long function there is where they get lost.

Usage: long-functions.py DIR...   (rustfmt-formatted Rust sources)
"""
import pathlib
import re
import sys

LIMIT = 80
START = re.compile(r"^(\s*)(pub(\([a-z]+\))? )?(const )?(async )?(unsafe )?fn (\w+)")


def long_functions(path):
    lines = path.read_text().split("\n")
    end = next((i for i, l in enumerate(lines) if l.startswith("#[cfg(test)]")), len(lines))
    for i in range(end):
        m = START.match(lines[i])
        if not m or lines[i].rstrip().endswith(";"):
            continue
        indent = m.group(1)
        j = i + 1
        while j < end and not lines[j].startswith(indent + "}"):
            j += 1
        if j - i + 1 > LIMIT:
            yield m.group(7), i + 1, j - i + 1


def main():
    found = []
    for folder in sys.argv[1:]:
        for path in sorted(pathlib.Path(folder).rglob("*.rs")):
            found += [(path, *f) for f in long_functions(path)]
    for path, name, line, length in found:
        print(f"{path}:{line}: fn {name} is {length} lines (at most {LIMIT})")
    sys.exit(1 if found else 0)


main()
