"""Microseconds per line to parse a /write batch, with each line-protocol parser Tracker has.

The body is the batch workload's (batch.lua): 5,000 lines x 8 vocabulary fields, precision=s.
`parse` is the parser alone; `parse_samples` is what /write runs (the parser and the vocabulary
check).  Best of a few rounds, so a busy machine shows less noise:

    .venv/bin/python bench/parse_speed.py            # 5,000 lines, 7 rounds
    .venv/bin/python bench/parse_speed.py 1000 3     # lines, rounds
"""

from __future__ import annotations

import random
import sys
import time

from tracker import lineprotocol


def batch_body(lines: int) -> bytes:
    rng = random.Random(1)
    start = 1_763_942_400
    rows = []
    for second in range(lines):
        rows.append(
            f"samples,device=bike hr_bpm={rng.randint(90, 180)},pwr_w={rng.randint(100, 400)},"
            f"cad_rpm={rng.randint(70, 100)},spd_kph={rng.uniform(20, 40):.2f},"
            f"lat={52.5 + rng.uniform(-0.1, 0.1):.6f},lng={13.4 + rng.uniform(-0.1, 0.1):.6f},"
            f"alt_m={rng.uniform(30, 60):.1f},dist_km={second * 0.008:.3f} {start + second}"
        )
    return ("\n".join(rows) + "\n").encode()


def best_us_per_line(function: object, body: bytes, lines: int, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        began = time.perf_counter()
        function(body, "s", None, None)  # type: ignore[operator]
        best = min(best, time.perf_counter() - began)
    return best * 1e6 / lines


def main() -> None:
    lines = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 7
    body = batch_body(lines)
    print(f"{lines} lines x 8 fields, precision=s, best of {rounds} (active parser: {lineprotocol.IMPLEMENTATION})")
    if lineprotocol.COMPILED is None:
        print(f"compiled: not available ({lineprotocol.COMPILED_MISSING})")
    for name, (parse, parse_samples) in lineprotocol.IMPLEMENTATIONS.items():
        assert not parse_samples(body, "s", None, None).refused
        print(
            f"{name:>9}: parse {best_us_per_line(parse, body, lines, rounds):5.2f} us/line, "
            f"parse_samples {best_us_per_line(parse_samples, body, lines, rounds):5.2f} us/line"
        )


if __name__ == "__main__":
    main()
