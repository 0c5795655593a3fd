/** Timing for the benches: mean ms per call, the fastest of five rounds (other load counts least). */
export function timeIt(f: () => unknown, minMs: number): number {
  f()
  let best = Infinity
  for (let round = 0; round < 5; round++) {
    let n = 0
    const t0 = performance.now()
    let t = t0
    while (t - t0 < minMs / 5 || n < 2) {
      f()
      n++
      t = performance.now()
    }
    best = Math.min(best, (t - t0) / n)
  }
  return best
}
