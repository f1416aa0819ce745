#!/usr/bin/env python3
"""Which source file of src/ imports which, and the loops among them.

A file imports another when a `use` or a path in its code (`crate::…`, `super::…`, or
a child module's name) names an item of that file; re-exports (`pub use …`) are the
crate's front and are not counted, nor are the unit tests at a file's end. Prints the
pairs of files that import each other and the loops (strongly connected groups), and
exits 1 where there is a loop. `--graph` prints every file's imports first.

    python3 .ci/import_loops.py [src] [--graph]
"""
import os, re, sys
root = next((a for a in sys.argv[1:] if not a.startswith('--')), 'src')
files = {}
for d, _, fs in os.walk(root):
    for f in fs:
        if f.endswith('.rs'):
            p = os.path.join(d, f)
            rel = os.path.relpath(p, root)[:-3].split(os.sep)
            if rel[-1] in ('mod', 'lib', 'main'):
                rel = rel[:-1]
            files[tuple(rel)] = p

def mod_of(path):  # module path of a file
    for k, v in files.items():
        if v == path: return k

def strip_comments(t):
    t = re.sub(r'//[^\n]*', '', t)
    return t

def expand(prefix, body):
    # expand a use tree like a::{b, c::{d}}; returns list of paths
    out = []
    body = body.strip()
    m = re.match(r'^([\w:]*?)\{(.*)\}$', body, re.S)
    if m:
        pre = m.group(1)
        inner = m.group(2)
        depth = 0; cur = ''; parts = []
        for ch in inner:
            if ch == '{': depth += 1
            if ch == '}': depth -= 1
            if ch == ',' and depth == 0:
                parts.append(cur); cur = ''
            else: cur += ch
        parts.append(cur)
        for p in parts:
            if p.strip(): out += expand(prefix + pre, p)
    else:
        out.append(prefix + re.sub(r'\s+as\s+\w+$', '', body))
    return out

def resolve(mod, path):
    segs = [s for s in path.split('::') if s]
    if not segs: return None
    if segs[0] == 'crate': base = []; segs = segs[1:]
    elif segs[0] == 'super':
        base = list(mod)
        is_modfile = files[mod].endswith(('mod.rs', 'lib.rs'))
        while segs and segs[0] == 'super':
            base = base[:-1]; segs = segs[1:]
        # super from a mod.rs goes to parent of the directory module
    elif segs[0] == 'self': base = list(mod); segs = segs[1:]
    else:
        # child module of current file?
        if tuple(list(mod) + [segs[0]]) in files: base = list(mod)
        else: return None
    full = base + segs
    for i in range(len(full), -1, -1):
        if tuple(full[:i]) in files: return tuple(full[:i])
    return None

edges = {k: set() for k in files}
for mod, p in files.items():
    t = strip_comments(open(p).read())
    # cut #[cfg(test)] mod tests { ... } at end (approx: from '#[cfg(test)]\nmod tests')
    t = re.split(r'#\[cfg\(test\)\]\s*mod tests', t)[0]
    for m in re.finditer(r'(^|\n)\s*(pub(\([^)]*\))?\s+)?use\s+([^;]+);', t):
        if m.group(2): continue  # re-export
        for path in expand('', m.group(4)):
            r = resolve(mod, path)
            if r is not None and r != mod: edges[mod].add(r)
    t = re.sub(r'(^|\n)\s*pub(\([^)]*\))?\s+use\s+[^;]+;', '\n', t)
    for m in re.finditer(r'(?<![\w:])(\w+(?:::\w+)+)', t):
        first = m.group(1).split('::')[0]
        if first not in ('crate', 'super', 'self') and tuple(list(mod) + [first]) not in files: continue
        if re.search(r'use\s+[^;]*$', t[max(0,m.start()-200):m.start()]):
            pass
        r = resolve(mod, m.group(1))
        if r is not None and r != mod: edges[mod].add(r)

# Tarjan SCC
index = {}; low = {}; st = []; on = set(); sccs = []; c = [0]
sys.setrecursionlimit(10000)
def sc(v):
    index[v] = low[v] = c[0]; c[0] += 1; st.append(v); on.add(v)
    for w in edges[v]:
        if w not in index: sc(w); low[v] = min(low[v], low[w])
        elif w in on: low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        comp = []
        while True:
            w = st.pop(); on.discard(w); comp.append(w)
            if w == v: break
        if len(comp) > 1: sccs.append(comp)
for v in files:
    if v not in index: sc(v)
name = lambda m: files[m]
if '--graph' in sys.argv:
    for k in sorted(files, key=name):
        print(name(k), '->', ', '.join(sorted(name(e) for e in edges[k])))
pairs = sorted({tuple(sorted((name(a), name(b)))) for a in edges for b in edges[a] if a in edges[b]})
print(f'{len(pairs)} pairs of files that import each other')
for a, b in pairs: print('  ', a, '<->', b)
print(f'{len(sccs)} import loops')
for comp in sccs:
    print('  loop:', ' '.join(sorted(name(m) for m in comp)))
    for a in comp:
        for b in edges[a]:
            if b in comp: print('     ', name(a), '->', name(b))
sys.exit(1 if sccs else 0)
