import json, sys
rows=[l.split(' ',1) for l in open(sys.argv[1]) if '.csv {' in l]
d={r[0].replace('.csv',''):json.loads(r[1]) for r in rows}
names=sorted(d); keys=list(d[names[0]].keys())
ab={'ETTh1_gru_96.val':'h1g v','ETTh1_transformer_96.train':'h1t tr','ETTh1_transformer_96.val':'h1t v','ETTh2_gru_96.val':'h2g v','ETTh2_transformer_96.val':'h2t v','e2g720.val':'h2g720v','ex720.val':'exg720v','exchange_rate_gru_96.train':'exg tr','exchange_rate_gru_96.val':'exg v','exchange_rate_transformer_96.train':'ext tr','weather_gru_96.val':'wg v'}
print('%-36s'%'setting', ' '.join('%8s'%ab.get(n,n[:8]) for n in names), '  maxoth')
for k in keys:
    print('%-36s'%k, ' '.join('%8.3f'%d[n][k] for n in names), ' %7.3f'%max(d[n][k] for n in names if 'ETTh2' not in n and 'e2g' not in n))
