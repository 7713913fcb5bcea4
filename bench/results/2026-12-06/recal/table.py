#!/usr/bin/env python3
"""The recalibration's screen (docs/RESULTS.md, "A recalibration from the
freshest errors"): screen.txt holds, per cell, split and setting, the
frozen and the `ttt` arm's MSE of

  driftcast eval --model M --data F --split S --arms frozen,ttt \\
      --set ttt.recal_steps=12 [--set ttt.combine_weight=0]

(a: the defaults plus the recalibration; b: the recalibration alone, the
adapter published with share 0), and of

  driftcast eval ... --set ttt.recal_steps=12 --set ttt.combine_weight=0.5

with the later segments judged on their middle steps (m: the engine of
commit cc31477 on, ttt.recal_later_judge 0.999; a and b were run before
it, when every step followed the first steps' judge).  The defaults' own `ttt` arm is read from
../average/{val,train}/*.json (the same models).  Prints per split the
change against frozen per cell, the mean of the 12 (dataset, backbone)
averages over H, the worst cell, and the rule (no validation and no
training cell worse than frozen by more than 0.2 %)."""
import collections
import json
import os
import sys

here = os.path.dirname(os.path.abspath(__file__))
DS = ['ETTh1', 'ETTh2', 'ETTm1', 'ETTm2', 'weather', 'exchange_rate']
BB = ['gru', 'transformer']
HS = [96, 192, 336, 720]


def main():
    got = collections.defaultdict(dict)  # (cell, split) -> tag -> change
    with open(os.path.join(here, 'screen.txt')) as fh:
        for line in fh:
            cell, split, tag, fz, tt = line.split()
            got[(cell, split)][tag] = 100 * (float(tt) / float(fz) - 1)
    for split in ('val', 'train'):
        for cell in [f'{d}_{b}_{h}' for d in DS for b in BB for h in HS]:
            d, b, h = cell.rsplit('_', 2)
            name = '%s-%s-%s.json' % (d.lower().replace('_rate', ''),
                                      'tf' if b == 'transformer' else b, h)
            p = os.path.join(here, '..', 'average', split, name)
            if os.path.exists(p):
                a = json.load(open(p))['arms']
                got[(cell, split)]['default'] = 100 * (
                    a['ttt']['mse'] / a['frozen']['mse'] - 1)
    tags = ['default', 'a', 'b', 'm']
    for split in ('val', 'train'):
        print(f'## {split}')
        print('| cell | ' + ' | '.join(tags) + ' |')
        print('|---' * (len(tags) + 1) + '|')
        for d in DS:
            for b in BB:
                for h in HS:
                    c = f'{d}_{b}_{h}'
                    row = got.get((c, split), {})
                    print(f'| {c} | ' + ' | '.join(
                        '%+.3f %%' % row[t] if t in row else '-'
                        for t in tags) + ' |')
        print('| pair (average over H) | ' + ' | '.join(tags) + ' |')
        print('|---' * (len(tags) + 1) + '|')
        for d in DS:
            for b in BB:
                cells = [got.get((f'{d}_{b}_{h}', split), {}) for h in HS]
                print(f'| {d} {b} | ' + ' | '.join(
                    '%+.3f %%' % (sum(c[t] for c in cells) / len(HS))
                    if all(t in c for c in cells) else '-'
                    for t in tags) + ' |')
        for t in tags:
            pairs, worst, n = [], (-1e9, ''), 0
            for d in DS:
                for b in BB:
                    v = [got[(f'{d}_{b}_{h}', split)].get(t) for h in HS]
                    v = [x for x in v if x is not None]
                    n += len(v)
                    if len(v) == len(HS):
                        pairs.append(sum(v) / len(v))
                    for h, x in zip(HS, v):
                        worst = max(worst, (x, f'{d} {b} {h}'))
            mean = sum(pairs) / len(pairs) if pairs else float('nan')
            print(f'{t}: {n} cells, mean of {len(pairs)} pairs {mean:+.3f} %,'
                  f' worst {worst[0]:+.3f} % ({worst[1]})')


if __name__ == '__main__':
    sys.exit(main())
