#!/usr/bin/env python3
"""The grids of docs/RESULTS.md, "The average of the versions" and the
screens after it: every setting of a screen file beside this file
(screen.txt by default) at every share.  Per cell and split, a setting's
share-0.25 run M (column X) and share-1 run A (column Xw1) give the MSE at
every share w by the convex identity (docs/DESIGN.md, "The combiner"):
MSE(w) = (1 - w) F + w A - w (1 - w) D, D solved from M.

    grid.py [--screen FILE] [SHARE ...]
"""
import collections
import os
import sys

here = os.path.dirname(os.path.abspath(__file__))
args = sys.argv[1:]
screen = os.path.join(here, "screen.txt")
if args[:1] == ["--screen"]:
    screen, args = os.path.join(here, args[1]), args[2:]
cols, F, X = [], {}, collections.defaultdict(dict)
for line in open(screen):
    if line.startswith("# cell split frozen"):
        cols = line.split()[4:]
    if line.startswith("#"):
        continue
    t = line.split()
    F[t[0], t[1]] = float(t[2])
    for k, v in zip(cols, t[3:]):
        if v != "-":
            X[k][t[0], t[1]] = float(v)
shares = [float(s) for s in args] or [0.25, 0.5, 0.6, 0.65, 0.7, 0.75, 1.0]
print("| setting | share | validation: mean of the 12 pairs | worst validation cell | "
      "training: mean of the pairs | worst training cell | cells |")
print("|---|---|---|---|---|---|---|")


def row(name, w, rel_of):
    out = [name, "%.2f" % w]
    n = 0
    for sp in ("val", "train"):
        rel = rel_of(sp)
        n = len(rel)
        pairs = collections.defaultdict(list)
        for c, v in rel.items():
            pairs[c.rsplit("_", 1)[0]].append(v)
        pm = [sum(v) / len(v) for v in pairs.values()]
        worst = max((v, c) for c, v in rel.items())
        out += ["%+.3f %%" % (sum(pm) / len(pm)), "%+.2f %% (%s)" % worst]
    out.append(str(n))
    print("| " + " | ".join(out) + " |")


if "r0" in X:
    row("r0 (the newest version)", 0.25, lambda sp: {
        c: 100 * (X["r0"][c, s] / F[c, s] - 1) for (c, s) in X["r0"] if s == sp})
for name in cols:
    if name + "w1" not in X:
        continue
    M, A = X[name], X[name + "w1"]
    for w in shares:
        def rel_of(sp, w=w, M=M, A=A):
            r = {}
            for (c, s) in A:
                if s != sp or (c, s) not in M:
                    continue
                f, m, a = F[c, s], M[c, s], A[c, s]
                d = ((1 - 0.25) * f + 0.25 * a - m) / (0.25 * 0.75)
                r[c] = 100 * (((1 - w) * f + w * a - w * (1 - w) * d) / f - 1)
            return r
        row(name, w, rel_of)
