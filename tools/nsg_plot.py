#!/usr/bin/env python3
"""NSG evaluation time vs rule count (compiled vs reference, log-log) as a hand-written SVG.

Reads criterion's estimates from one `cargo bench --bench nsg` run
(target/criterion/verdict/{compiled,reference}/<rules>/new/estimates.json; median of one
iteration of 10,000 flows) and writes docs/nsg-eval.svg. No plotting libraries.

Usage: python3 tools/nsg_plot.py [target/criterion] [docs/nsg-eval.svg]
"""
import json
import math
import os
import sys

FLOWS = 10_000
RULES = [10, 30, 100, 300, 1000]
SERIES = [("compiled", "#1f77b4", "compiled (classifier > 24 rules)"),
          ("reference", "#d62728", "reference (linear scan)")]


def load(root, kind, rules):
    path = os.path.join(root, "verdict", kind, str(rules), "new", "estimates.json")
    with open(path) as f:
        est = json.load(f)
    return est["median"]["point_estimate"] / FLOWS  # ns per flow


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "target/criterion"
    out = sys.argv[2] if len(sys.argv) > 2 else "docs/nsg-eval.svg"
    data = {k: [load(root, k, r) for r in RULES] for k, _, _ in SERIES}
    W, H, L, R, T, B = 660, 420, 70, 55, 40, 60
    pw, ph = W - L - R, H - T - B
    xmin, xmax = math.log10(8), math.log10(1250)
    lo = min(min(v) for v in data.values())
    hi = max(max(v) for v in data.values())
    ymin, ymax = math.floor(math.log10(lo)), math.ceil(math.log10(hi))

    def x(r):
        return L + (math.log10(r) - xmin) / (xmax - xmin) * pw

    def y(ns):
        return T + ph - (math.log10(ns) - ymin) / (ymax - ymin) * ph

    s = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
         f'viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">',
         f'<rect width="{W}" height="{H}" fill="white"/>',
         f'<text x="{W / 2}" y="20" text-anchor="middle" font-size="14">'
         'NSG verdict time per flow vs rule count (median, log–log)</text>']
    for e in range(ymin, ymax + 1):
        yy = y(10 ** e)
        label = {0: "1 ns", 1: "10 ns", 2: "100 ns", 3: "1 µs", 4: "10 µs", 5: "100 µs"}.get(e, f"1e{e} ns")
        s.append(f'<line x1="{L}" y1="{yy:.1f}" x2="{W - R}" y2="{yy:.1f}" stroke="#ddd"/>')
        s.append(f'<text x="{L - 6}" y="{yy + 4:.1f}" text-anchor="end">{label}</text>')
    for r in RULES:
        xx = x(r)
        s.append(f'<line x1="{xx:.1f}" y1="{T}" x2="{xx:.1f}" y2="{T + ph}" stroke="#eee"/>')
        s.append(f'<text x="{xx:.1f}" y="{T + ph + 18}" text-anchor="middle">{r}</text>')
    s.append(f'<rect x="{L}" y="{T}" width="{pw}" height="{ph}" fill="none" stroke="#333"/>')
    s.append(f'<text x="{L + pw / 2}" y="{H - 22}" text-anchor="middle">rules in the NSG '
             '(+3 default rules; 40–4,000 prefixes per side)</text>')
    s.append(f'<text x="16" y="{T + ph / 2}" text-anchor="middle" '
             f'transform="rotate(-90 16 {T + ph / 2})">ns per flow</text>')
    if ymin <= math.log10(50) <= ymax:
        yy = y(50)
        s.append(f'<line x1="{L}" y1="{yy:.1f}" x2="{W - R}" y2="{yy:.1f}" stroke="#2ca02c" '
                 'stroke-dasharray="5,4"/>')
        s.append(f'<text x="{L + 6}" y="{yy + 15:.1f}" fill="#2ca02c">'
                 'target: 50 ns at 1,000 rules</text>')
    for i, (k, color, name) in enumerate(SERIES):
        pts = " ".join(f"{x(r):.1f},{y(v):.1f}" for r, v in zip(RULES, data[k]))
        s.append(f'<polyline points="{pts}" fill="none" stroke="{color}" stroke-width="2"/>')
        for r, v in zip(RULES, data[k]):
            s.append(f'<circle cx="{x(r):.1f}" cy="{y(v):.1f}" r="3.5" fill="{color}"/>')
            s.append(f'<text x="{x(r) + 6:.1f}" y="{y(v) - 6:.1f}" fill="{color}">'
                     f'{v:,.0f}</text>' if v >= 100 else
                     f'<text x="{x(r) + 6:.1f}" y="{y(v) + 16:.1f}" fill="{color}">{v:.1f}</text>')
        ly = T + 16 + i * 18
        s.append(f'<line x1="{L + 12}" y1="{ly - 4}" x2="{L + 36}" y2="{ly - 4}" stroke="{color}" '
                 'stroke-width="2"/>')
        s.append(f'<text x="{L + 42}" y="{ly}">{name}</text>')
    s.append("</svg>")
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    with open(out, "w") as f:
        f.write("\n".join(s) + "\n")
    for k, _, _ in SERIES:
        print(k, " ".join(f"{r}:{v:.1f}" for r, v in zip(RULES, data[k])))


if __name__ == "__main__":
    main()
