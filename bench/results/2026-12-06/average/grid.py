#!/usr/bin/env python3
"""The grid of docs/RESULTS.md, "The average of the versions": every
(ttt.average_rate, ttt.combine_weight) from screen.txt beside this file.
Per cell and split, the share-0.25 run M and the share-1 run A of a rate
give the MSE at every share w by the convex identity (docs/DESIGN.md, "The
combiner"): MSE(w) = (1 - w) F + w A - w (1 - w) D, D solved from M.

    grid.py [SHARE ...]
"""
import collections
import os
import sys

here = os.path.dirname(os.path.abspath(__file__))
cols = ["0", "0.03", "0.05", "0.1", "0.2", "0.03w1", "0.05w1", "0.1w1"]
F, X = {}, collections.defaultdict(dict)
for line in open(os.path.join(here, "screen.txt")):
    if line.startswith("#"):
        continue
    t = line.split()
    F[t[0], t[1]] = float(t[2])
    for k, v in zip(cols, t[3:]):
        if v != "-":
            X[k][t[0], t[1]] = float(v)
shares = [float(s) for s in sys.argv[1:]] or [0.25, 0.5, 0.6, 0.65, 0.7, 0.75, 1.0]
print("| rate | share | validation: mean of the 12 pairs | worst validation cell | "
      "training: mean of the pairs | worst training cell | cells |")
print("|---|---|---|---|---|---|---|")


def row(rate, w, rel_of):
    out = [rate, "%.2f" % w]
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


row("0 (the newest version)", 0.25, lambda sp: {
    c: 100 * (X["0"][c, s] / F[c, s] - 1) for (c, s) in X["0"] if s == sp})
for rate in ("0.03", "0.05", "0.1"):
    M, A = X[rate], X[rate + "w1"]
    for w in shares:
        def rel_of(sp, w=w, M=M, A=A):
            r = {}
            for (c, s) in A:
                if s != sp:
                    continue
                f, m, a = F[c, s], M[c, s], A[c, s]
                d = ((1 - 0.25) * f + 0.25 * a - m) / (0.25 * 0.75)
                r[c] = 100 * (((1 - w) * f + w * a - w * (1 - w) * d) / f - 1)
            return r
        row(rate, w, rel_of)
