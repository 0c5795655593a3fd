/** Polynomial evaluation in the three bases against closed forms, per element and per channel. */
import { describe, expect, it } from 'vitest'
import { applyPoly } from '../../ir/ops/pi.js'
import { evalBasis, type Basis } from '../../ir/poly.js'
import { tensor } from '../../ir/tensor.js'

/** T_k(t) = cos(k arccos t) on [-1, 1]; He_k by its explicit sum, normalized by sqrt(k!). */
function closedForm(basis: Basis, c: number[], t: number): number {
  let s = 0
  c.forEach((ck, k) => {
    if (basis === 'power') s += ck * t ** k
    else if (basis === 'chebyshev') s += ck * Math.cos(k * Math.acos(t))
    else {
      // He_k(t) = k! sum_m (-1)^m t^(k-2m) / (m! (k-2m)! 2^m)
      let he = 0
      const f = (n: number): number => (n <= 1 ? 1 : n * f(n - 1))
      for (let m = 0; 2 * m <= k; m++) he += ((-1) ** m * t ** (k - 2 * m)) / (f(m) * f(k - 2 * m) * 2 ** m)
      s += (ck * f(k) * he) / Math.sqrt(f(k))
    }
  })
  return s
}

describe('polynomial evaluation', () => {
  const c = [0.3, -1.2, 0.7, 0.25, -0.4, 0.1, 0.05, -0.02]
  const ts = [-0.97, -0.5, -0.1, 0, 0.2, 0.61, 0.99]
  it.each(['power', 'chebyshev', 'hermite'] as const)('%s: evalBasis equals the closed form', (basis) => {
    for (const t of ts) expect(evalBasis(basis, c, t)).toBeCloseTo(closedForm(basis, c, t), 12)
  })

  it.each(['power', 'chebyshev', 'hermite'] as const)('%s: applyPoly gives evalBasis of (x - shift) / scale bit for bit, per channel, odd and even runs', (basis) => {
    const C = 3
    for (const inner of [1, 4, 7]) {
      const x = tensor('float64', [2, C, inner], Array.from({ length: 2 * C * inner }, (_, i) => Math.sin(1.3 * i) * 2))
      const a = { basis, axis: 1, coeffs: [c, c.map((v) => -v), c.map((v, k) => v / (k + 1))], shift: [0.1, -0.2, 0], scale: [2, 2.5, 3] }
      const y = applyPoly(a, x)
      for (let i = 0; i < y.length; i++) {
        const ch = Math.floor(i / inner) % C
        expect(y[i]).toBe(evalBasis(basis, a.coeffs[ch], (x.data[i] - a.shift[ch]) / a.scale[ch]))
      }
    }
  })
})
