#!/usr/bin/env python3
"""Where a per-series affine correction of the forecasts has evidence
(docs/RESULTS.md, "A recalibration from the freshest errors").  Not
product code.  From a `driftcast eval --arms frozen,ttt --forecasts` file:

  static     one line r = a f + c per series fitted on the whole split
             (not causal: what the form could gain if it were known)
  matured    the recalibration's rule (recal.c: forgotten sums, 0.9998;
             ridge 10; centred) fitted on matured windows only: each
             window's H steps enter when the last has arrived
  freshest   the same rule on the first K = 12 steps of each forecast as
             they arrive (recal.c's evidence), unjudged

each published whole (share 1) and at share 0.25, against the frozen arm;
with a second forecasts file (another split of the same model, e.g. the
training split), also the static line fitted there and applied here.

    evidence.py DATA.csv FORECASTS.csv H [OTHER_SPLIT_FORECASTS.csv]
"""
import importlib.machinery
import os
import sys

import numpy as np

here = os.path.dirname(os.path.abspath(__file__))
sp = importlib.machinery.SourceFileLoader(
    'sp', os.path.join(here, '../../../screen-publish')).load_module()
FORGET, RIDGE, K = 0.9998, 10.0, 12


def line(S):
    sff, sf, n, sfr, sr = S
    nn = np.maximum(n, 1e-12)
    mf, mr = sf / nn, sr / nn
    vf, cfr = sff / nn - mf * mf, sfr / nn - mf * mr
    a = np.where(vf > 0, cfr / (np.maximum(vf, 1e-30) * (1 + RIDGE / nn)), 0)
    return a, mr * n / (n + RIDGE) - a * mf


def main():
    data, fc, H = sys.argv[1], sys.argv[2], int(sys.argv[3])
    org, scored, out, Y, P = sp.load(data, fc, H, ['frozen', 'ttt'])
    F = out['frozen']
    C, T, _ = F.shape
    Yz = np.nan_to_num(Y)

    def change(pub):
        return 100 * (np.nanmean((pub - Y)[:, scored] ** 2) /
                      np.nanmean((F - Y)[:, scored] ** 2) - 1)

    def stats(f, r):
        return np.stack([(f * f).sum(-1), f.sum(-1),
                         np.full(f.shape[:-1], f.shape[-1]),
                         (f * r).sum(-1), r.sum(-1)])
    def static(F, Y, scored):
        C = F.shape[0]
        ok = scored & ~np.isnan(Y).any((0, 2))
        f = F[:, ok].reshape(C, -1)
        S = stats(f, np.nan_to_num(Y)[:, ok].reshape(C, -1) - f)
        S[2] = np.maximum(S[2], 1)
        sff, sf, n, sfr, sr = S
        mf, mr = sf / n, sr / n
        a = (sfr / n - mf * mr) / (sff / n - mf * mf)
        return a[:, None, None], (mr - a * mf)[:, None, None]
    a, b = static(F, Y, scored)
    print('static (not causal), share 1: %+.2f %%' % change(F + a * F + b))
    if len(sys.argv) > 4:
        _, sc2, out2, Y2, _ = sp.load(data, sys.argv[4], H, ['frozen', 'ttt'])
        a, b = static(out2['frozen'], Y2, sc2)
        print('static, fitted on %s: %+.2f %%' %
              (os.path.basename(sys.argv[4]), change(F + a * F + b)))
    for name in ('matured', 'freshest'):
        S = np.zeros((5, C))
        A, B = np.zeros((C, T)), np.zeros((C, T))
        hh = np.arange(K)
        for t in range(T):
            S *= FORGET
            if name == 'matured':
                w = t - H
                if w >= 0 and not np.isnan(Y[:, w]).any():
                    S += stats(F[:, w], Yz[:, w] - F[:, w]) / H
            else:
                j = t - hh - 1
                v = j >= 0
                if v.any():
                    f = F[:, j[v], hh[v]]
                    S += stats(f, Yz[:, j[v], hh[v]] - f) / K
            A[:, t], B[:, t] = line(S)
        corr = A[:, :, None] * F + B[:, :, None]
        print('%s: share 1 %+.2f %%, share 0.25 %+.2f %%' %
              (name, change(F + corr), change(F + 0.25 * corr)))


if __name__ == '__main__':
    main()
