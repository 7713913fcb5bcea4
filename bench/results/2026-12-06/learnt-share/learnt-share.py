"""The recalibration's share learnt per series from its out-of-sample corrections
(docs/RESULTS.md, "A share learnt from the corrections"). Not product code: a causal
replay of what the engine publishes, from `driftcast eval --forecasts` files.

    learnt-share.py DATA.csv FORECASTS.csv H W MODE     MODE: tau | judged | pool | agree | norm

NORM=1 in the environment fits the line in each window's own units (its
lookback's mean and standard deviation, at least SDMIN=0.1), as the model
normalises; with NORM=0 (the default) in the scaled units of the file.

W is the adapter's share to replay (the files were written at 0.65)."""
import importlib.machinery, json, os, sys
import numpy as np
sp = importlib.machinery.SourceFileLoader('sp', os.path.join(os.path.dirname(os.path.abspath(__file__)), '../../../screen-publish')).load_module()
K, FORGET, RIDGE, JUDGE, MARGIN = 12, 0.9998, 10.0, 0.99, 0.01
data, fc, H, w, MODE = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
org, scored, out, Y, P = sp.load(data, fc, H, ['frozen', 'ttt'])
F0 = out['frozen']; F = F0 + w / 0.65 * (out['ttt'] - F0)
NORM = os.environ.get('NORM', '0') == '1'
if NORM:
    import gzip
    opn = gzip.open if data.endswith('.gz') else open
    with opn(data, 'rt') as fh:
        hdr = fh.readline().strip().split(',')[1:]
        X = np.loadtxt(fh, delimiter=',', usecols=range(1, len(hdr) + 1), ndmin=2)
    nX = len(X); ntr = int((0.6 if 'ETT' in data.split('/')[-1] else 0.7) * nX)
    xs = (X - X[:ntr].mean(0)) / X[:ntr].std(0)
    names = set()
    with open(fc) as fh:
        fh.readline()
        for line in fh:
            if line.startswith('frozen,'):
                names.add(line.split(',', 2)[1])
    names = sorted(names)
    cs = np.cumsum(np.vstack([np.zeros((1, xs.shape[1])), xs]), 0)
    cs2 = np.cumsum(np.vstack([np.zeros((1, xs.shape[1])), xs*xs]), 0)
    LB = 96
    lo = np.maximum(org - LB + 1, 0)
    cnt = (org + 1 - lo)[:, None]
    m_ = (cs[org + 1] - cs[lo]) / cnt
    v_ = (cs2[org + 1] - cs2[lo]) / cnt - m_*m_
    sd_ = np.maximum(np.sqrt(np.maximum(v_, 0)), float(os.environ.get("SDMIN", "0.1")))
    MU = np.stack([m_[:, hdr.index(c)] for c in names])[:, :, None]
    SD = np.stack([sd_[:, hdr.index(c)] for c in names])[:, :, None]
    FF, YY = (F - MU) / SD, (Y - MU) / SD
else:
    FF, YY = F, Y
def mse(pub): return np.nanmean((pub - Y)[:, scored] ** 2)
base = mse(F0)
C, T, _ = F.shape
valid = ~np.isnan(Y); Yz = np.nan_to_num(Y); YYz = np.nan_to_num(YY); hh = np.arange(K)
st = np.zeros((5, C, T))
for t in range(T):
    j = t - hh - 1; v = j >= 0
    if v.any():
        f = FF[:, j[v], hh[v]]; r = YYz[:, j[v], hh[v]] - f
        st[:, :, t] = np.stack([(f*f).sum(1), f.sum(1), np.full(C, v.sum()), (f*r).sum(1), r.sum(1)]) / K
S = np.zeros((5, C)); Ss = np.zeros((5, C, T))
for t in range(T):
    S = FORGET * S + st[:, :, t]; Ss[:, :, t] = S
sff, sf, n, sfr, sr = Ss
nn = np.maximum(n, 1e-12); mf, mr = sf/nn, sr/nn
vf, cfr = sff/nn - mf*mf, sfr/nn - mf*mr
a = np.where(vf > 0, cfr / (np.maximum(vf, 1e-30) * (1 + RIDGE/nn)), 0); c = mr*n/(n+RIDGE)
res = {'base w': 100*(mse(F)/base-1)}
edges = [e for e in (K, 48, 96, 192, 336, 720) if e < H] + [H]
corr1 = (a[:, :, None]*FF + (c - a*mf)[:, :, None]) * (SD if NORM else 1)
R = Yz - F
# current rule: share 0.25 judged (first K), later segments middle step judged 0.995
def judge(corr, jf0=JUDGE, jfl=0.995, margin=MARGIN):
    """F + corr, each segment published while it gained: the first K steps
    on their freshest pairs (forgetting jf0), each later segment also on
    its middle step (forgetting jfl)."""
    G = np.where(valid, R**2 - (R-corr)**2, 0); E = np.where(valid, R**2, 0)
    on0 = np.zeros((C, T), bool); acc, en = np.zeros(C), np.zeros(C)
    for t in range(T):
        j = t - hh - 1; v = j >= 0
        acc *= jf0; en *= jf0
        if v.any():
            acc += G[:, j[v], hh[v]].sum(1); en += E[:, j[v], hh[v]].sum(1)
        on0[:, t] = acc > margin*en
    pub = F + corr*on0[:, :, None]*(np.arange(H) < K)
    for s0, s1 in zip(edges[:-1], edges[1:]):
        mid = (s0+s1-1)//2
        on = np.zeros((C, T), bool); acc, en = np.zeros(C), np.zeros(C)
        for t in range(T):
            w_ = t - mid - 1
            acc *= jfl; en *= jfl
            if w_ >= 0:
                acc += G[:, w_, mid]; en += E[:, w_, mid]
            on[:, t] = acc > margin*en
        msk = np.zeros(H); msk[s0:s1] = 1
        pub = pub + corr*(on & on0)[:, :, None]*msk
    return pub
def judged(share):
    return judge(share*corr1)
res['judged0.25'] = 100*(mse(judged(0.25))/base-1)
# learnt share: s = clip(k * Src/(Scc+lam*Srr), 0, smax); first seg over K pairs with JUDGE, later on mid with jf
RC = np.where(valid, R*corr1, 0); CC = np.where(valid, corr1**2, 0); RR = np.where(valid, R**2, 0)
POOL = False
def shr(a1, a2, a3, k, smax, tau):
    if POOL:
        a1 = np.full_like(a1, a1.sum()); a2 = np.full_like(a2, a2.sum()); a3 = np.full_like(a3, a3.sum())
    s = a1/(a2 + 1e-30)
    rho2 = a1*a1/(a2*a3 + 1e-30)
    return np.clip(k*s*np.maximum(0, 1 - tau/np.maximum(rho2, 1e-30)), 0, smax)
def learnt(k, smax, lam, jf0, jfl, gate):
    s0t = np.zeros((C, T)); a1, a2, a3 = np.zeros(C), np.zeros(C), np.zeros(C)
    for t in range(T):
        j = t - hh - 1; v = j >= 0
        a1 *= jf0; a2 *= jf0; a3 *= jf0
        if v.any():
            a1 += RC[:, j[v], hh[v]].sum(1); a2 += CC[:, j[v], hh[v]].sum(1); a3 += RR[:, j[v], hh[v]].sum(1)
        s0t[:, t] = shr(a1, a2, a3, k, smax, lam)
    pub = F + corr1*s0t[:, :, None]*(np.arange(H) < K)
    for e0, e1 in zip(edges[:-1], edges[1:]):
        mid = (e0+e1-1)//2
        st_ = np.zeros((C, T)); a1, a2, a3 = np.zeros(C), np.zeros(C), np.zeros(C)
        for t in range(T):
            w_ = t - mid - 1
            a1 *= jfl; a2 *= jfl; a3 *= jfl
            if w_ >= 0:
                a1 += RC[:, w_, mid]; a2 += CC[:, w_, mid]; a3 += RR[:, w_, mid]
            st_[:, t] = shr(a1, a2, a3, k, smax, lam)
        if gate == 'min': sh = np.minimum(st_, s0t)
        elif gate == 'on0': sh = st_ * (s0t > 0)
        else: sh = st_
        msk = np.zeros(H); msk[e0:e1] = 1
        pub = pub + corr1*sh[:, :, None]*msk
    return pub

if MODE == 'norm':
    for sh in (0.25, 0.5, 1.0):
        res['s%.2f none' % sh] = 100*(mse(F + sh*corr1)/base-1)
    for sh in (0.5, 1.0):
        res['s%.2f judged' % sh] = 100*(mse(judged(sh))/base-1)
    for k in (0.25, 0.5):
        for smax in (0.5, 1.0):
            res['learnt k%.2f m%.1f' % (k, smax)] = 100*(mse(learnt(k, smax, 0.0, 0.995, 0.999, 'none'))/base-1)
elif MODE == 'agree':
    for k in (0.25, 0.5, 1.0):
        for smax in (0.5, 1.0):
            for (f1, g1), (f2, g2) in (((0.99, 0.995), (0.999, 0.9995)), ((0.98, 0.99), (0.995, 0.999)), ((0.99, 0.995), (0.9995, 0.9998))):
                pa = learnt(k, smax, 0.0, f1, g1, 'none') - F
                pb = learnt(k, smax, 0.0, f2, g2, 'none') - F
                # the smaller share of the two (both have the same sign: corr1 times a share >= 0)
                pub = F + np.where(np.abs(pa) < np.abs(pb), pa, pb)
                res['agree k%.2f m%.1f %.3f/%.4f' % (k, smax, f1, f2)] = 100*(mse(pub)/base-1)
elif MODE == 'tau':
    for k in (0.5, 1.0):
        for tau in (0.005, 0.01, 0.02, 0.05):
            for jf0, jfl in ((0.99, 0.995), (0.995, 0.999)):
                for gate in ('min', 'none'):
                    res['k%.1f t%.3f j%.3f/%.3f %s' % (k, tau, jf0, jfl, gate)] = \
                        100*(mse(learnt(k, 1.0, tau, jf0, jfl, gate))/base-1)
elif MODE in ('judged', 'pool'):
    POOL = MODE == 'pool'
    for k in (0.25, 0.5, 1.0):
        for smax in (0.5, 1.0):
            for jf0, jfl in ((0.99, 0.995), (0.995, 0.999)):
                pub = learnt(k, smax, 0.0, jf0, jfl, 'none')
                nm = '%sk%.2f m%.1f j%.3f/%.3f' % ('pool ' if POOL else '', k, smax, jf0, jfl)
                res[nm] = 100*(mse(pub)/base-1)
                if not POOL:
                    for mg in (0.01, 0.03):
                        res[nm + ' J%.2f' % mg] = 100*(mse(judge(pub - F, margin=mg))/base-1)
print(os.path.basename(fc), json.dumps({kk: round(v, 3) for kk, v in res.items()}))
