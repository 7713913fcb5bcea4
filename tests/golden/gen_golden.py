#!/usr/bin/python3
"""Golden reference for the forecasting core, written with PyTorch.

Builds the same model as forecast/nn_*.c (both backbones, small shapes) in
float64 from fixed random weights and a non-identity adapter, runs one
forward pass of forecast and masked-reconstruction windows, and saves the
inputs, the outputs, both losses and the gradient of the joint loss with
respect to every base tensor and every adapter tensor.  The GRU is torch's
own GRU kernel (torch._VF.gru, called with the adapted weights), attention and GELU are torch
ops, so the C code is checked against an independent implementation.

tests/forecast/test_golden.c reads tests/golden/golden.bin without torch.

Regenerate (Debian: apt-get install python3-torch; torch 1.13 works):
    /usr/bin/python3 tests/golden/gen_golden.py tests/golden/golden.bin

File format: records until EOF, each = name (32 bytes, NUL-padded ASCII),
u32 count (little-endian), count x f32.  Names are "<backbone>/<what>";
tensor names and layouts are forecast/nn_layout.c's (PyTorch layout [out, in]; per-layer
tensors get ".<layer>").  Integers (the config) are stored as floats.
"""
import struct
import sys

import torch
import torch.nn.functional as F

torch.manual_seed(1234)
DT = torch.float64

CFG = dict(L=32, H=8, P=8, S=4, D=8, NL=2, NH=2, FF=12, r=2, bf=3, br=2,
           wf=1.0, wr=0.7)


def shapes(gru, c):
    L, H, P, S, D, FF, r = (c[k] for k in ("L", "H", "P", "S", "D", "FF", "r"))
    N = (L - P) // S + 2
    base = [("emb.w", (D, 2 * P), 1), ("emb.b", (D,), 1)]
    if not gru:
        base.append(("pos", (N, D), 1))
        per = [("ln1.w", (D,)), ("ln1.b", (D,)), ("qkv.w", (3 * D, D)),
               ("qkv.b", (3 * D,)), ("proj.w", (D, D)), ("proj.b", (D,)),
               ("ln2.w", (D,)), ("ln2.b", (D,)), ("fc1.w", (FF, D)),
               ("fc1.b", (FF,)), ("fc2.w", (D, FF)), ("fc2.b", (D,))]
    else:
        per = [("gru.wih", (3 * D, D)), ("gru.bih", (3 * D,)),
               ("gru.whh", (3 * D, D)), ("gru.bhh", (3 * D,))]
    for name, shp in per:
        base.append((name, shp, c["NL"]))
    base += [("lnf.w", (D,), 1), ("lnf.b", (D,), 1), ("head.w", (H, N * D), 1),
             ("head.b", (H,), 1), ("rec.w", (P, D), 1), ("rec.b", (P,), 1)]
    ad = [("emb.lora_a", (r, 2 * P), 1), ("emb.lora_b", (D, r), 1)]
    if gru:
        ad += [("gru.wih.lora_a", (r, D), c["NL"]),
               ("gru.wih.lora_b", (3 * D, r), c["NL"]),
               ("gru.whh.lora_a", (r, D), c["NL"]),
               ("gru.whh.lora_b", (3 * D, r), c["NL"])]
    else:
        ad += [("q.lora_a", (r, D), c["NL"]), ("q.lora_b", (D, r), c["NL"]),
               ("v.lora_a", (r, D), c["NL"]), ("v.lora_b", (D, r), c["NL"]),
               ("fc1.lora_a", (r, D), c["NL"]),
               ("fc1.lora_b", (FF, r), c["NL"]),
               ("fc2.lora_a", (r, FF), c["NL"]),
               ("fc2.lora_b", (D, r), c["NL"]),
               ("ln1.w.delta", (D,), c["NL"]), ("ln1.b.delta", (D,), c["NL"]),
               ("ln2.w.delta", (D,), c["NL"]), ("ln2.b.delta", (D,), c["NL"])]
    ad += [("lnf.w.delta", (D,), 1), ("lnf.b.delta", (D,), 1),
           ("head.lora_a", (r, N * D), 1), ("head.lora_b", (H, r), 1),
           ("calib.scale", (H,), 1), ("calib.shift", (H,), 1)]
    return N, base, ad


def make(spec, scale_of):
    out = {}
    for name, shp, nl in spec:
        for l in range(nl):
            key = f"{name}.{l}" if name in PER_LAYER else name
            t = (torch.rand(shp, dtype=DT) * 2 - 1) * scale_of(name, shp)
            if name in ("ln1.w", "ln2.w", "lnf.w"):
                t = 1 + 0.2 * t
            out[key] = t.requires_grad_(True)
    return out


PER_LAYER = {"ln1.w", "ln1.b", "qkv.w", "qkv.b", "proj.w", "proj.b", "ln2.w",
             "ln2.b", "fc1.w", "fc1.b", "fc2.w", "fc2.b", "gru.wih", "gru.bih",
             "gru.whh", "gru.bhh", "gru.wih.lora_a", "gru.wih.lora_b",
             "gru.whh.lora_a", "gru.whh.lora_b", "q.lora_a", "q.lora_b",
             "v.lora_a", "v.lora_b", "fc1.lora_a", "fc1.lora_b", "fc2.lora_a",
             "fc2.lora_b", "ln1.w.delta", "ln1.b.delta", "ln2.w.delta",
             "ln2.b.delta"}


def lora(W, ad, a, b):
    return W + ad[b] @ ad[a]


def forward(gru, c, p, ad, x, m, y):
    L, H, P, S, D, NH = (c[k] for k in ("L", "H", "P", "S", "D", "NH"))
    N = (L - P) // S + 2
    bf, br = c["bf"], c["br"]
    R = bf + br
    mu = x.mean(1, keepdim=True)
    sd = torch.sqrt(((x - mu) ** 2).mean(1, keepdim=True) + 1e-5)
    xn = (x - mu) / sd
    xin = xn * (1 - m)
    idx = torch.tensor([[min(n * S + q, L - 1) for q in range(P)]
                        for n in range(N)])
    tok = torch.cat([xin[:, idx], m[:, idx]], dim=-1)  # [R, N, 2P]
    W = lora(p["emb.w"], ad, "emb.lora_a", "emb.lora_b")
    cur = F.linear(tok, W, p["emb.b"])
    if not gru:
        cur = cur + p["pos"]
    for l in range(c["NL"]):
        if gru:
            wih = lora(p[f"gru.wih.{l}"], ad, f"gru.wih.lora_a.{l}",
                       f"gru.wih.lora_b.{l}")
            whh = lora(p[f"gru.whh.{l}"], ad, f"gru.whh.lora_a.{l}",
                       f"gru.whh.lora_b.{l}")
            # torch's own GRU kernel (what nn.GRU runs), gates r, z, n
            h0 = torch.zeros(1, R, D, dtype=DT)
            cur, _ = torch._VF.gru(cur, h0, [wih, whh, p[f"gru.bih.{l}"],
                                             p[f"gru.bhh.{l}"]],
                                   True, 1, 0.0, False, False, True)
            continue
        ln1 = F.layer_norm(cur, (D,), p[f"ln1.w.{l}"] + ad[f"ln1.w.delta.{l}"],
                           p[f"ln1.b.{l}"] + ad[f"ln1.b.delta.{l}"], 1e-5)
        wq = p[f"qkv.w.{l}"]
        dq = ad[f"q.lora_b.{l}"] @ ad[f"q.lora_a.{l}"]
        dv = ad[f"v.lora_b.{l}"] @ ad[f"v.lora_a.{l}"]
        wq = wq + torch.cat([dq, torch.zeros_like(dq), dv], 0)
        qkv = F.linear(ln1, wq, p[f"qkv.b.{l}"])
        q, k, v = qkv.split(D, dim=-1)
        hs = D // NH
        q = q.reshape(R, N, NH, hs).transpose(1, 2)
        k = k.reshape(R, N, NH, hs).transpose(1, 2)
        v = v.reshape(R, N, NH, hs).transpose(1, 2)
        att = torch.softmax(q @ k.transpose(-1, -2) / hs ** 0.5, dim=-1)
        o = (att @ v).transpose(1, 2).reshape(R, N, D)
        res1 = cur + F.linear(o, p[f"proj.w.{l}"], p[f"proj.b.{l}"])
        ln2 = F.layer_norm(res1, (D,), p[f"ln2.w.{l}"] + ad[f"ln2.w.delta.{l}"],
                           p[f"ln2.b.{l}"] + ad[f"ln2.b.delta.{l}"], 1e-5)
        w1 = lora(p[f"fc1.w.{l}"], ad, f"fc1.lora_a.{l}", f"fc1.lora_b.{l}")
        w2 = lora(p[f"fc2.w.{l}"], ad, f"fc2.lora_a.{l}", f"fc2.lora_b.{l}")
        h = F.gelu(F.linear(ln2, w1, p[f"fc1.b.{l}"]), approximate="tanh")
        cur = res1 + F.linear(h, w2, p[f"fc2.b.{l}"])
    lnf = F.layer_norm(cur, (D,), p["lnf.w"] + ad["lnf.w.delta"],
                       p["lnf.b"] + ad["lnf.b.delta"], 1e-5)
    wh = lora(p["head.w"], ad, "head.lora_a", "head.lora_b")
    fc = F.linear(lnf[:bf].reshape(bf, N * D), wh, p["head.b"])
    fc = (1 + ad["calib.scale"]) * fc + ad["calib.shift"]
    pred = fc * sd[:bf] + mu[:bf]
    rec = F.linear(lnf[bf:], p["rec.w"], p["rec.b"])  # [br, N, P]
    recon = torch.zeros(br, L, dtype=DT)
    count = torch.zeros(L, dtype=DT)
    for n in range(N):
        for q in range(P):
            t = n * S + q
            if t < L:
                recon[:, t] = recon[:, t] + rec[:, n, q]
                count[t] += 1
    recon = recon / count
    lf = ((pred - y) ** 2).mean()
    mr = m[bf:]
    lr = (mr * (recon - xn[bf:]) ** 2).sum() / mr.sum()
    return pred, recon, lf, lr


def masks(R, L, ratio, seg, gen):
    m = torch.zeros(R, L, dtype=DT)
    target = round(ratio * L)
    for b in range(R):
        hidden = 0
        while hidden < target:
            s = int(torch.randint(0, L - seg + 1, (1,), generator=gen))
            for t in range(s, s + seg):
                if hidden < target and m[b, t] == 0:
                    m[b, t] = 1
                    hidden += 1
    return m


def main(path):
    recs = []

    def put(name, t):
        t = t.detach().reshape(-1).to(torch.float32)
        recs.append((name, t.tolist()))

    gen = torch.Generator().manual_seed(7)
    for bb in ("gru", "transformer"):
        gru = bb == "gru"
        c = CFG
        N, base, ads = shapes(gru, c)
        p = make(base, lambda n, s: 1 / (s[-1] ** 0.5) if len(s) == 2 else 0.3)
        ad = make(ads, lambda n, s: 0.3)
        R, L = c["bf"] + c["br"], c["L"]
        x = (torch.rand(R, L, dtype=DT, generator=gen) * 4 - 1)
        x = x + torch.sin(torch.arange(L, dtype=DT) * 0.4)
        m = torch.cat([torch.zeros(c["bf"], L, dtype=DT),
                       masks(c["br"], L, 0.33, 5, gen)])
        y = torch.rand(c["bf"], c["H"], dtype=DT, generator=gen) * 2
        pred, recon, lf, lr = forward(gru, c, p, ad, x, m, y)
        (c["wf"] * lf + c["wr"] * lr).backward()
        put(f"{bb}/config", torch.tensor(
            [c[k] for k in ("L", "H", "P", "S", "D", "NL", "NH", "FF", "r",
                            "bf", "br", "wf", "wr")], dtype=DT))
        put(f"{bb}/x", x)
        put(f"{bb}/mask", m)
        put(f"{bb}/y", y)
        put(f"{bb}/pred", pred)
        put(f"{bb}/recon", recon)
        put(f"{bb}/loss", torch.stack([lf, lr]))
        for k, t in p.items():
            put(f"{bb}/w/{k}", t)
            assert t.grad is not None, (bb, k)
            put(f"{bb}/g/{k}", t.grad)
        for k, t in ad.items():
            put(f"{bb}/a/{k}", t)
            put(f"{bb}/ga/{k}", t.grad)
    with open(path, "wb") as f:
        for name, vals in recs:
            nb = name.encode()
            assert len(nb) < 32, name
            f.write(nb + b"\0" * (32 - len(nb)))
            f.write(struct.pack("<I", len(vals)))
            f.write(struct.pack(f"<{len(vals)}f", *vals))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/golden/golden.bin")
