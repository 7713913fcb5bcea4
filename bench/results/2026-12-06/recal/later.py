#!/usr/bin/env python3
"""The recalibration with its later segments judged on their middle steps
(ttt.recal_later_judge; docs/RESULTS.md, "The recalibration on by
default"): the screen that chose today's defaults.  Every line of
screen-later.txt (and the lines tagged m of screen.txt) is

  cell split tag frozen_mse ttt_mse

of `driftcast eval --model M --data F --split S --arms frozen,ttt -q`
with the setting of its tag, on the defaults of the stop before (the
adapter's share 0.65, the recalibration off) and ttt.recal_later_judge
0.999 where the tag does not set it:

  m   --set ttt.recal_steps=12 --set ttt.combine_weight=0.5
  m0 --set ttt.recal_steps=12 --set ttt.combine_weight=0.5 --set ttt.recal_later_judge=0
  m1 --set ttt.recal_steps=12 --set ttt.combine_weight=0.65
  m2 --set ttt.recal_steps=12 --set ttt.combine_weight=0.5 --set ttt.recal_margin=0.03
  m3 --set ttt.recal_steps=12 --set ttt.combine_weight=0.5 --set ttt.recal_judge=0.999
  m4 --set ttt.recal_steps=12 --set ttt.combine_weight=0.5 --set ttt.recal_share=0.15
  m5 --set ttt.recal_steps=12 --set ttt.combine_weight=0.4
  m6 --set ttt.recal_steps=12 --set ttt.combine_weight=0.5 --set ttt.recal_later_judge=0.99
  m7 --set ttt.recal_steps=12 --set ttt.combine_weight=0.5 --set ttt.recal_margin=0.02
  m8 --set ttt.recal_steps=12 --set ttt.combine_weight=0.5 --set ttt.recal_ridge=30
  m9 --set ttt.recal_steps=12 --set ttt.combine_weight=0.5 --set ttt.recal_forget=0.999
  m10 --set ttt.recal_steps=24 --set ttt.combine_weight=0.5
  m11 --set ttt.recal_steps=6 --set ttt.combine_weight=0.5
  m12 --set ttt.recal_steps=12 --set ttt.combine_weight=0.5 --set ttt.recal_forget=0.99995
  m13 --set ttt.recal_steps=12 --set ttt.combine_weight=0.5 --set ttt.recal_judge=0.95
  m14 --set ttt.recal_steps=24 --set ttt.combine_weight=0.4
  m15 --set ttt.recal_steps=24 --set ttt.combine_weight=0.5 --set ttt.recal_later_judge=0.99
  m16 --set ttt.recal_steps=24 --set ttt.combine_weight=0.5 --set ttt.recal_judge=0.95
  m17 --set ttt.recal_steps=24 --set ttt.combine_weight=0.4 --set ttt.recal_later_judge=0.99
  m18 --set ttt.recal_steps=24 --set ttt.combine_weight=0.5 --set ttt.recal_margin=0.02
  m19 --set ttt.recal_steps=16 --set ttt.combine_weight=0.5
  m20 --set ttt.recal_steps=12 --set ttt.combine_weight=0.4 --set ttt.recal_later_judge=0.99
  m21 --set ttt.recal_steps=24 --set ttt.combine_weight=0.3
  m22 --set ttt.recal_steps=12 --set ttt.combine_weight=0.4 --set ttt.recal_later_judge=0.99 --set ttt.recal_margin=0.015
  m23 --set ttt.recal_steps=12 --set ttt.combine_weight=0.45 --set ttt.recal_later_judge=0.99
  m24 --set ttt.recal_steps=12 --set ttt.combine_weight=0.4 --set ttt.recal_later_judge=0.995
  m25 --set ttt.recal_steps=16 --set ttt.combine_weight=0.4 --set ttt.recal_later_judge=0.99
  m26 --set ttt.recal_steps=12 --set ttt.combine_weight=0.35 --set ttt.recal_later_judge=0.99
  m27 --set ttt.recal_steps=12 --set ttt.combine_weight=0.3 --set ttt.recal_later_judge=0.99

m and m24 and m27 ran on all 48 cells and both splits; the others on
nine cells, the ones nearest the rule's limit and ETTh2's.  m24 is
today's default.  Prints, per tag, the mean of the 12 (dataset,
backbone) averages over H and the worst cell per split (validation,
training), and the nine cells' changes against frozen:

  later.py [TAG,TAG,...]
"""
import collections
import json
import os
import sys

here = os.path.dirname(os.path.abspath(__file__))
DS = ['ETTh1', 'ETTh2', 'ETTm1', 'ETTm2', 'weather', 'exchange_rate']
BB = ['gru', 'transformer']
HS = [96, 192, 336, 720]


def load():
    d = collections.defaultdict(dict)
    for name in ('screen.txt', 'screen-later.txt'):
        with open(os.path.join(here, name)) as fh:
            for line in fh:
                c, s, t, fz, x = line.split()
                if name == 'screen.txt' and t != 'm':
                    continue
                d[(c, s)][t] = 100 * (float(x) / float(fz) - 1)
    for split in ('val', 'train'):
        for c in [f'{a}_{b}_{h}' for a in DS for b in BB for h in HS]:
            a, b, h = c.rsplit('_', 2)
            p = os.path.join(here, '..', 'average', split, '%s-%s-%s.json' % (
                a.lower().replace('_rate', ''),
                'tf' if b == 'transformer' else b, h))
            if os.path.exists(p):
                arms = json.load(open(p))['arms']
                d[(c, split)]['default'] = 100 * (
                    arms['ttt']['mse'] / arms['frozen']['mse'] - 1)
    return d


def main():
    d = load()
    tags = (sys.argv[1].split(',') if len(sys.argv) > 1 else
            ['default', 'm', 'm24', 'm27'])
    for t in tags:
        out = []
        for split in ('val', 'train'):
            pairs, worst, n = {}, (-1e9, ''), 0
            for a in DS:
                for b in BB:
                    v = [d[(f'{a}_{b}_{h}', split)].get(t) for h in HS]
                    if None in v:
                        continue
                    n += 4
                    pairs[(a, b)] = sum(v) / 4
                    for h, x in zip(HS, v):
                        worst = max(worst, (x, f'{a} {b} {h}'))
            if not pairs:
                continue
            mean = sum(pairs.values()) / len(pairs)
            e2 = ''
            if split == 'val' and ('ETTh2', 'gru') in pairs:
                e2 = ', ETTh2 gru / tf %+.3f / %+.3f %%' % (
                    pairs[('ETTh2', 'gru')], pairs[('ETTh2', 'transformer')])
            out.append(f'{split}: {n} cells, mean of pairs {mean:+.3f} %, '
                       f'worst {worst[0]:+.3f} % ({worst[1]}){e2}')
        print(f'{t}: ' + '; '.join(out))
    nine = sorted(k for k in d if 'm7' in d[k])
    print()
    print('cell split | ' + ' | '.join(tags))
    for k in nine:
        print('%s %s | ' % k + ' | '.join(
            '%+.3f' % d[k][t] if t in d[k] else '-' for t in tags))


if __name__ == '__main__':
    main()
