#!/usr/bin/env python3
"""The service's own Winograd races from its /metrics text (stdin, or a file): each raced shape's
kernel time ÷ ONNX Runtime's as the race decides (a forward's F(2×2) charged the layout's reorders;
a backward's F(4×4), or F(2×2) past 256×256 channels), and how many of its rounds held the
service's own runs off. The kernel is taken at a ratio ≤ 0.9 (WinogradRace.Margin).

Usage: service_races.py [METRICS_TXT]
"""
import collections
import re
import sys


def races(metrics):
    """{shape: {side: ms, ..., "alone": rounds}} from /metrics text."""
    served = collections.defaultdict(dict)
    for shape, side, ms in re.findall(r'^saliency_winograd_race_milliseconds\{shape="([^"]+)",side="([^"]+)"\} (\S+)', metrics, re.M):
        served[shape][side] = float(ms)
    for shape, rounds in re.findall(r'^saliency_winograd_race_rounds_alone\{shape="([^"]+)"\} (\S+)', metrics, re.M):
        served[shape]["alone"] = int(rounds)
    return served


def decisions(metrics):
    """One line per raced shape: 'SHAPE forward R, backward R (N of M rounds alone)'."""
    # A race's rounds, as the gauge's help says them (WinogradRace.Rounds).
    rounds = re.search(r"^# HELP saliency_winograd_race_rounds_alone Of each race's (\d+) rounds", metrics, re.M)

    def decided(shape, t):
        outputs, inputs = (int(n) for n in shape.split("x")[:2])
        backward = t.get("f4x4" if outputs * inputs <= 256 * 256 else "f2x2", float("inf")) / t["onnxruntime"]
        forward = (t.get("f2x2", float("inf")) + t["reorders"]) / t["onnxruntime"]
        alone = f" ({t['alone']} of {rounds.group(1)} rounds alone)" if "alone" in t and rounds else ""
        return f"{shape} forward {forward:.2f}, backward {backward:.2f}{alone}"
    return [decided(k, v) for k, v in sorted(races(metrics).items()) if "onnxruntime" in v]


if __name__ == "__main__":
    text = open(sys.argv[1]).read() if len(sys.argv) > 1 else sys.stdin.read()
    print("\n".join(decisions(text)) or "no races in this process yet")
