#!/usr/bin/env python3
"""The recalibration (ttt/recal.c) replayed in numpy from `driftcast eval
--forecasts` files, with judges the engine does not have (docs/RESULTS.md,
"A recalibration from the freshest errors").  Not product code.

    driftcast eval --model M --data F --split val --arms frozen,ttt \\
        --forecasts fc.csv -q
    judge.py F fc.csv H [frozen|ttt|W]

W, a number: the adapter's share w in place of the default 0.65, by the
combiner's convex identity (frozen + w / 0.65 (ttt - frozen); the ttt arm
run at the default share).

The correction is fitted as recal.c fits it (K = 12 freshest steps,
forgetting 0.9998, ridge 10) on the forecasts of the base arm (ttt: the
adapter's published forecast, as the engine with ttt.recal_steps = 12;
frozen: as with ttt.combine_weight = 0) and published with share s:

  diag       recal.c's judge: every step, while the correction's gains on
             the freshest K steps (forgetting 0.99) exceed 1 % of their
             squared errors -- the engine's rule (reproduces it: ETTh2 GRU
             H = 720 validation -0.72 %, exchange_rate GRU H = 720 +1.92 %)
  seg JM     steps < K as diag; each later segment of the horizon (edges
             12, 48, 96, 192, 336, 720) only while, in addition, the
             current correction gained on that segment of the newest
             matured window (sampled every 5th origin, forgetting JM)
  mid JF     as seg, but each later segment judged as diag judges the
             first K steps, on one step of it: its middle step m, whose
             pair (the forecast made m + 1 origins before, the value that
             just arrived) scores the correction that forecast was made
             with (forgetting JF per value, margin 1 %) -- evidence m
             values old instead of H, from m + 1 stored floats

Prints one JSON line: the MSE change against the frozen arm, per variant.
"""
import importlib.machinery
import json
import os
import sys

import numpy as np

here = os.path.dirname(os.path.abspath(__file__))
sp = importlib.machinery.SourceFileLoader(
    'sp', os.path.join(here, '../../../screen-publish')).load_module()

K, FORGET, RIDGE, JUDGE, MARGIN, SAMPLE = 12, 0.9998, 10.0, 0.99, 0.01, 5


def main():
    data, fc, H = sys.argv[1], sys.argv[2], int(sys.argv[3])
    base_arm = sys.argv[4] if len(sys.argv) > 4 else 'ttt'
    org, scored, out, Y, P = sp.load(data, fc, H, ['frozen', 'ttt'])
    F0 = out['frozen']
    if base_arm in ('frozen', 'ttt'):
        F = out[base_arm]
    else:
        F = F0 + float(base_arm) / 0.65 * (out['ttt'] - F0)

    def mse(pub):
        return np.nanmean((pub - Y)[:, scored] ** 2)
    base = mse(F0)
    C, T, _ = F.shape
    valid = ~np.isnan(Y)
    Yz = np.nan_to_num(Y)
    hh = np.arange(K)
    # the pairs each origin's value completes: step h of the forecast
    # made h + 1 origins before
    st = np.zeros((5, C, T))
    for t in range(T):
        j = t - hh - 1
        v = j >= 0
        if v.any():
            f = F[:, j[v], hh[v]]
            r = Yz[:, j[v], hh[v]] - f
            st[:, :, t] = np.stack([(f * f).sum(1), f.sum(1),
                                    np.full(C, v.sum()), (f * r).sum(1),
                                    r.sum(1)]) / K
    S = np.zeros((5, C))
    Ss = np.zeros((5, C, T))
    for t in range(T):
        S = FORGET * S + st[:, :, t]
        Ss[:, :, t] = S
    sff, sf, n, sfr, sr = Ss
    nn = np.maximum(n, 1e-12)
    mf, mr = sf / nn, sr / nn
    vf, cfr = sff / nn - mf * mf, sfr / nn - mf * mr
    a = np.where(vf > 0, cfr / (np.maximum(vf, 1e-30) * (1 + RIDGE / nn)), 0)
    c = mr * n / (n + RIDGE)
    res = {'ttt (no recalibration)': 100 * (mse(out['ttt']) / base - 1)}
    edges = [e for e in (K, 48, 96, 192, 336, 720) if e < H] + [H]
    for share in (0.25, 0.5):
        A, B = share * a, share * (c - a * mf)
        corr = A[:, :, None] * F + B[:, :, None]
        R = Yz - F
        G = np.where(valid, R ** 2 - (R - corr) ** 2, 0)
        E = np.where(valid, R ** 2, 0)
        on0 = np.zeros((C, T), bool)
        acc, en = np.zeros(C), np.zeros(C)
        for t in range(T):
            j = t - hh - 1
            v = j >= 0
            acc *= JUDGE
            en *= JUDGE
            if v.any():
                acc += G[:, j[v], hh[v]].sum(1)
                en += E[:, j[v], hh[v]].sum(1)
            on0[:, t] = acc > MARGIN * en
        res['diag s%.2f' % share] = 100 * (
            mse(F + corr * on0[:, :, None]) / base - 1)
        for jm in (0.9, 0.97):
            pub = F + corr * on0[:, :, None] * (np.arange(H) < K)
            for s0, s1 in zip(edges[:-1], edges[1:]):
                on = np.zeros((C, T), bool)
                acc, en = np.zeros(C), np.zeros(C)
                for t in range(T):
                    w = t - H
                    if w >= 0 and t % SAMPLE == 0:
                        f = F[:, w, s0:s1]
                        r = Yz[:, w, s0:s1] - f
                        g = A[:, t, None] * f + B[:, t, None]
                        acc = jm * acc + (r ** 2 - (r - g) ** 2).sum(1)
                        en = jm * en + (r ** 2).sum(1)
                    on[:, t] = acc > 0
                msk = np.zeros(H)
                msk[s0:s1] = 1
                pub = pub + corr * (on & on0)[:, :, None] * msk
            res['seg%.2f s%.2f' % (jm, share)] = 100 * (mse(pub) / base - 1)
        for jf in (0.99, 0.999):
            pub = F + corr * on0[:, :, None] * (np.arange(H) < K)
            for s0, s1 in zip(edges[:-1], edges[1:]):
                mid = (s0 + s1 - 1) // 2
                on = np.zeros((C, T), bool)
                acc, en = np.zeros(C), np.zeros(C)
                for t in range(T):
                    acc *= jf
                    en *= jf
                    w = t - mid - 1
                    if w >= 0:
                        acc += G[:, w, mid]
                        en += E[:, w, mid]
                    on[:, t] = acc > MARGIN * en
                msk = np.zeros(H)
                msk[s0:s1] = 1
                pub = pub + corr * (on & on0)[:, :, None] * msk
            res['mid%.3f s%.2f' % (jf, share)] = 100 * (mse(pub) / base - 1)
    print(json.dumps({'forecasts': os.path.basename(fc), 'base': base_arm,
                      'frozen_mse': base, 'change_pct': res}))


if __name__ == '__main__':
    main()
