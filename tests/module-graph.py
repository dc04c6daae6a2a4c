#!/usr/bin/env python3
"""The module graph of src/, drawn from the code, and the rules it must keep.

Each node is a module at the depth where the architecture speaks of it: the roles' parts
(adapter::api, adapter::auth, adapter::sources, exporter::servers, sim::hpa, ...) and the
shared leaves (process, serve, quantity, selector, ...). An edge A -> B means a file of A names
`crate::B...` (or reaches it through `super::`). The script prints the edges and fails when

- the graph has a cycle (imports must point one way), or
- a role imports another role's insides where it must not (the exporter never imports the
  adapter; the adapter never imports the demo or explain; the shared leaves import no role), or
- library code includes a file from tests/.

Run: python3 tests/module-graph.py [--dot]   (make modules; part of make test)
"""

import os
import re
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
# modules whose parts are nodes of their own
SPLIT = {"adapter", "exporter", "sim", "demo", "explain"}
ROLES = {"adapter", "exporter", "demo", "explain", "preflight"}
# role -> roles it may import (composition): the demo runs the exporter's and the adapter's
# code; explain reads the HPA algorithm from sim; the CLI composes everything
ALLOWED_ROLE_EDGES = {
    "demo": {"adapter", "exporter", "sim", "explain"},
    "explain": {"sim"},
    "adapter": {"sim"},
    "exporter": set(),
    "preflight": set(),
}


def module_of(path):
    rel = os.path.relpath(path, ROOT)[:-3].split(os.sep)
    if rel[-1] in ("mod", "lib", "main"):
        rel = rel[:-1]
    return rel


def children(role):
    """The submodules of a split module: its files and folders."""
    directory = os.path.join(ROOT, role)
    if not os.path.isdir(directory):
        return set()
    return {name[:-3] if name.endswith(".rs") else name for name in os.listdir(directory)} - {"mod"}


CHILDREN = {role: children(role) for role in SPLIT}


def node(parts):
    if not parts:
        return "crate"
    if parts[0] in SPLIT and len(parts) > 1 and parts[1] in CHILDREN[parts[0]]:
        return parts[0] + "::" + parts[1]
    return parts[0]


def resolve(module, path):
    """The absolute module path `path` (crate::a::b or super::x) names from `module`."""
    segments = path.split("::")
    if segments[0] == "crate":
        return segments[1:]
    base = list(module)
    while segments and segments[0] in ("super", "self"):
        if segments[0] == "super":
            base = base[:-1]
        segments = segments[1:]
    return base + segments


def main():
    edges = {}
    problems = []
    files = []
    for directory, _, names in os.walk(ROOT):
        files += [os.path.join(directory, n) for n in names if n.endswith(".rs")]
    for path in sorted(files):
        text = open(path, encoding="utf-8").read()
        library = re.split(r"#\[cfg\(test\)\]\s*mod\s+\w+\s*\{", text)[0]
        if re.search(r'include_(str|bytes)!\("[^"]*tests/', library):
            problems.append(f"{os.path.relpath(path, ROOT)} includes a file from tests/")
        module = module_of(path)
        # a file `foo.rs` (not mod.rs) is module `foo`; `super` from it is its parent
        here = node(module)
        # drop comments and the unit tests at the bottom of the file, then look at paths
        code = re.sub(r"//[^\n]*", "", text)
        code = re.split(r"#\[cfg\(test\)\]\s*mod\s+\w+\s*\{", code)[0]
        for match in re.finditer(r"\b((?:crate|super)(?:::[A-Za-z_][A-Za-z0-9_]*)+)", code):
            target = node(resolve(module, match.group(1)))
            if target not in ("crate", here) and not target.startswith(here + "::"):
                edges.setdefault(here, set()).add(target)
        # a parent naming its own child modules by relative path (`use sources::…`)
        for child in re.findall(r"^\s*(?:pub(?:\([a-z]+\))?\s+)?mod\s+([a-z_0-9]+)\s*;", code, re.M):
            if re.search(r"(?<![:\w])" + child + r"::", code):
                target = node(module + [child])
                if target != here:
                    edges.setdefault(here, set()).add(target)
        # `use super::{a, b::c}` groups
        for group in re.finditer(r"\b((?:super::)+)\{([^}]*)\}", code):
            for item in group.group(2).split(","):
                item = item.strip().split("::")[0]
                if item and item != "self":
                    target = node(resolve(module, group.group(1) + item))
                    if target not in ("crate", here) and not target.startswith(here + "::"):
                        edges.setdefault(here, set()).add(target)
        # `use crate::{a, b::c}` groups
        for group in re.finditer(r"crate::\{([^}]*)\}", code):
            for item in group.group(1).split(","):
                item = item.strip().split("::")[0]
                if item:
                    target = node([item])
                    if target != here:
                        edges.setdefault(here, set()).add(target)

    def role(name):
        return name.split("::")[0]

    for source, targets in sorted(edges.items()):
        for target in sorted(targets):
            a, b = role(source), role(target)
            if a == b or a == "cli" or b in ("cli",) and a == "crate":
                continue
            if a in ROLES and b in ROLES | {"sim"} and b not in ALLOWED_ROLE_EDGES[a]:
                problems.append(f"{source} -> {target}: {a} may not import {b}")
            if a not in ROLES and a not in ("cli", "sim", "crate") and b in ROLES:
                problems.append(f"{source} -> {target}: the shared module {a} imports a role")
            if b == "cli" and a != "crate":
                problems.append(f"{source} -> {target}: only main composes the CLI")

    # cycles: Tarjan's strongly connected components
    index, low, stack, on_stack, sccs = {}, {}, [], set(), []
    counter = [0]

    def strongconnect(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                sccs.append(sorted(component))

    sys.setrecursionlimit(10000)
    for v in sorted(set(edges) | {t for ts in edges.values() for t in ts}):
        if v not in index:
            strongconnect(v)
    for component in sccs:
        problems.append("cycle: " + " <-> ".join(component))

    if "--dot" in sys.argv:
        print("digraph kubemind {")
        for source, targets in sorted(edges.items()):
            for target in sorted(targets):
                print(f'  "{source}" -> "{target}";')
        print("}")
    else:
        for source, targets in sorted(edges.items()):
            print(f"{source} -> {', '.join(sorted(targets))}")
    if problems:
        print("\nmodule graph problems:", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    print(f"\n{len(edges)} modules with imports, no cycle, no back-edge", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
