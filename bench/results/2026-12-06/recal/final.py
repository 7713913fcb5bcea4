#!/usr/bin/env python3
"""Today's defaults (the recalibration on, the adapter's share 0.4) against
the defaults before (../average, the same models), per split: every
cell's `ttt` change against frozen, the (dataset, backbone) averages over
H, and the issue's numbers.  The reports are

  driftcast eval --model M --data F --split val|test --arms frozen,ttt \\
      --json {val,test}/NAME.json -q

with today's defaults (docs/RESULTS.md, "The recalibration on by
default").

  final.py [val|test]
"""
import json
import os
import sys

here = os.path.dirname(os.path.abspath(__file__))
DS = ['etth1', 'etth2', 'ettm1', 'ettm2', 'weather', 'exchange']
BB = ['gru', 'tf']
HS = [96, 192, 336, 720]


def change(path):
    if not os.path.exists(path):
        return None
    a = json.load(open(path))['arms']
    return 100 * (a['ttt']['mse'] / a['frozen']['mse'] - 1)


def main():
    split = sys.argv[1] if len(sys.argv) > 1 else 'test'
    runs = {'before': os.path.join(here, '..', 'average', split),
            'today': os.path.join(here, split)}
    got = {k: {} for k in runs}
    for k, d in runs.items():
        for ds in DS:
            for b in BB:
                for h in HS:
                    got[k][(ds, b, h)] = change(
                        os.path.join(d, f'{ds}-{b}-{h}.json'))
    print(f'## {split}: ttt against frozen, before / today')
    print('| pair | H = 96 | 192 | 336 | 720 | average |')
    print('|---|---|---|---|---|---|')
    summary = {}
    for k in runs:
        pairs, worst = {}, (-1e9, '')
        for ds in DS:
            for b in BB:
                v = [got[k][(ds, b, h)] for h in HS]
                if None in v:
                    continue
                pairs[(ds, b)] = sum(v) / 4
                for h, x in zip(HS, v):
                    worst = max(worst, (x, f'{ds} {b} {h}'))
        summary[k] = (pairs, worst)
    for ds in DS:
        for b in BB:
            cells = []
            for h in HS:
                x, y = got['before'][(ds, b, h)], got['today'][(ds, b, h)]
                cells.append('-' if y is None else
                             '%+.2f / %+.2f %%' % (x, y))
            pa = [summary[k][0].get((ds, b)) for k in runs]
            cells.append('-' if None in pa else '%+.3f / **%+.3f** %%' %
                         tuple(pa))
            print(f'| {ds} {b} | ' + ' | '.join(cells) + ' |')
    for k in runs:
        pairs, worst = summary[k]
        if len(pairs) < 12:
            print(f'{k}: {len(pairs)} pairs only')
            continue
        mean = sum(pairs.values()) / len(pairs)
        e2 = [pairs[('etth2', b)] for b in BB]
        e720 = [got[k][('etth2', b, 720)] for b in BB]
        e1 = max(got[k][('etth1', b, h)] for b in BB for h in HS)
        print(f'{k}: mean of the 12 pairs {mean:+.3f} %; ETTh2 gru / tf '
              f'{e2[0]:+.3f} / {e2[1]:+.3f} %, at H = 720 {e720[0]:+.3f} / '
              f'{e720[1]:+.3f} %; worst cell {worst[0]:+.3f} % ({worst[1]});'
              f' worst ETTh1 cell {e1:+.3f} %; worst pair '
              f'{max(pairs.values()):+.3f} %')


if __name__ == '__main__':
    main()
