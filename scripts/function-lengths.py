#!/usr/bin/env python3
"""Lists the longest functions in Swift and C sources, by lines from signature to closing brace.

    scripts/function-lengths.py [--limit N] [--top K] PATH...

With --limit, exits non-zero when a function is longer than N lines (make test holds the engine to
this). Braces inside strings and comments are skipped; good enough for this code base's style.
"""
import argparse, os, re, sys

SWIFT_DECL = re.compile(r'^\s*(?:@[\w()":, ]+\s+)*(?:(?:public|internal|private|fileprivate|package|open|static|final|override|mutating|nonmutating|@inlinable|@usableFromInline|@inline\(__always\)|convenience|required)\s+)*(?:func\s+([^\s(<]+)|(init)[?!]?\s*[(<]|(subscript)\s*\(|(deinit)\b)')
C_DECL = re.compile(r'^(?:static\s+)?(?:inline\s+)?(?:__attribute__\(\(.*?\)\)\s+)*[\w\s\*]+?\b(\w+)\s*\([^;]*$')

def strip(line, state):
    out, i = [], 0
    while i < len(line):
        if state['block']:
            j = line.find('*/', i)
            if j < 0: return ''.join(out)
            state['block'] = False; i = j + 2; continue
        c = line[i]
        if line.startswith('//', i): break
        if line.startswith('/*', i): state['block'] = True; i += 2; continue
        if c == '"':
            j = i + 1
            while j < len(line) and line[j] != '"':
                j += 2 if line[j] == '\\' else 1
            i = j + 1; continue
        if c == "'" and not line.endswith('.swift'):
            out.append(' '); i += 1; continue
        out.append(c); i += 1
    return ''.join(out)

def functions(path):
    is_swift = path.endswith('.swift')
    lines = open(path, encoding='utf-8', errors='replace').read().split('\n')
    state = {'block': False}
    code = [strip(l, state) for l in lines]
    found = []
    for i, raw in enumerate(code):
        m = (SWIFT_DECL if is_swift else C_DECL).match(raw)
        if not m or (not is_swift and (raw.startswith((' ', '\t', '#')) or raw.rstrip().endswith(';'))):
            continue
        name = next(g for g in m.groups() if g)
        depth, opened = 0, False
        for j in range(i, len(code)):
            if not opened and ';' in code[j] and '{' not in code[j] and not is_swift:
                break
            for ch in code[j]:
                if ch == '{': depth += 1; opened = True
                elif ch == '}': depth -= 1
            if opened and depth <= 0:
                found.append((j - i + 1, name, path, i + 1)); break
            if not opened and is_swift and j > i and SWIFT_DECL.match(code[j]):
                break  # a protocol requirement: no body
    return found

def main():
    p = argparse.ArgumentParser()
    p.add_argument('--limit', type=int); p.add_argument('--top', type=int, default=15)
    p.add_argument('paths', nargs='+')
    a = p.parse_args()
    allf = []
    for root in a.paths:
        walk = [(root, [], [os.path.basename(root)])] if os.path.isfile(root) else os.walk(root)
        for d, _, files in walk:
            for f in files:
                full = root if os.path.isfile(root) else os.path.join(d, f)
                if full.endswith(('.swift', '.c')):
                    allf += functions(full)
    allf.sort(reverse=True)
    for n, name, path, line in allf[:a.top]:
        print(f'{n:5d}  {name}  {path}:{line}')
    if a.limit is not None:
        over = [f for f in allf if f[0] > a.limit]
        if over:
            print(f'{len(over)} function(s) over {a.limit} lines', file=sys.stderr); sys.exit(1)

main()
