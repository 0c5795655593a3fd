import { describe, expect, it } from 'vitest'
import { toPowerBasis } from '../../ir/poly.js'
import { chebyshevFit, gaussLegendre, hermiteFit, remezFit, weightedFit } from '../../passes/fit.js'

const relu = (x: Float64Array) => x.map((v) => (v > 0 ? v : 0))
const abs = (x: Float64Array) => x.map(Math.abs)

/** (n - 1)!! for odd n - 1, and n! */
const dfact = (n: number): number => (n <= 0 ? 1 : n * dfact(n - 2))
const fact = (n: number): number => (n <= 1 ? 1 : n * fact(n - 1))

describe('hermiteFit', () => {
  it('matches the closed-form AESPA coefficients of ReLU under N(0, 1)', () => {
    const c = hermiteFit(relu, 0, 1, 10, [0])
    const expected = [1 / Math.sqrt(2 * Math.PI), 0.5, 1 / Math.sqrt(4 * Math.PI)]
    for (let n = 3; n <= 10; n++) expected.push(n % 2 ? 0 : ((-1) ** (n / 2 + 1) * dfact(n - 3)) / Math.sqrt(2 * Math.PI * fact(n)))
    expect(c).toHaveLength(11)
    expected.forEach((v, n) => expect(c[n]).toBeCloseTo(v, 12))
    expect(c[4]).toBeCloseTo(-0.081434, 6)
    expect(c[6]).toBeCloseTo(0.044603, 6)
    expect(c[8]).toBeCloseTo(-0.029802, 6)
  })

  it("gives Delphi's quadratic 0.1992 + 0.5002 x + 0.1997 x^2 at mu = 0, s = 1", () => {
    const p = toPowerBasis('hermite', hermiteFit(relu, 0, 1, 2, [0]))
    expect(p[0]).toBeCloseTo(0.1992, 3)
    expect(p[1]).toBeCloseTo(0.5002, 3)
    expect(p[2]).toBeCloseTo(0.1997, 3)
  })

  it('reproduces a quadratic exactly for any mean and std', () => {
    const [mu, s] = [0.7, 2.5]
    const c = hermiteFit((x) => x.map((v) => v * v), mu, s, 3)
    // x = mu + s t: x^2 = (mu^2 + s^2) + 2 mu s h1 + sqrt(2) s^2 h2
    expect(c[0]).toBeCloseTo(mu * mu + s * s, 10)
    expect(c[1]).toBeCloseTo(2 * mu * s, 10)
    expect(c[2]).toBeCloseTo(Math.SQRT2 * s * s, 10)
    expect(c[3]).toBeCloseTo(0, 10)
  })

  it('is the Gaussian-weighted projection for a shifted ReLU (independent Riemann sum)', () => {
    const [mu, s] = [-0.4, 1.7]
    const c = hermiteFit(relu, mu, s, 2, [0])
    const h = [(t: number) => 1, (t: number) => t, (t: number) => (t * t - 1) / Math.SQRT2]
    const dt = 1e-4
    h.forEach((hn, n) => {
      let acc = 0
      for (let t = -12; t < 12; t += dt) acc += Math.max(0, mu + s * t) * hn(t) * Math.exp(-t * t / 2) * dt
      expect(c[n]).toBeCloseTo(acc / Math.sqrt(2 * Math.PI), 6)
    })
  })
})

describe('chebyshevFit', () => {
  it('gives the known Chebyshev series of x^3 and |x| on [-1, 1]', () => {
    const c3 = chebyshevFit((x) => x.map((v) => v ** 3), -1, 1, 4)
    ;[0, 0.75, 0, 0.25, 0].forEach((v, k) => expect(c3[k]).toBeCloseTo(v, 12))
    const ca = chebyshevFit(abs, -1, 1, 6, [0])
    // |x| = 2/pi - (4/pi) sum_k (-1)^k T_2k / (4k^2 - 1)
    const expected = [2 / Math.PI, 0, 4 / (3 * Math.PI), 0, -4 / (15 * Math.PI), 0, 4 / (35 * Math.PI)]
    expect(ca).toHaveLength(7)
    expected.forEach((v, k) => expect(ca[k]).toBeCloseTo(v, 10))
  })

  it('maps the interval: a polynomial on [2, 6] is reproduced', () => {
    const f = (x: Float64Array) => x.map((v) => 1 - 2 * v + 0.5 * v * v)
    const c = chebyshevFit(f, 2, 6, 2)
    const p = toPowerBasis('chebyshev', c, 4, 2)
    ;[1, -2, 0.5].forEach((v, k) => expect(p[k]).toBeCloseTo(v, 10))
  })
})

describe('remezFit', () => {
  it('finds the minimax quadratics of ReLU and |x| on [-1, 1]', () => {
    const r = remezFit(relu, -1, 1, 2, [0])
    expect(r.error).toBeCloseTo(1 / 16, 8)
    const p = toPowerBasis('chebyshev', r.coeffs)
    ;[1 / 16, 0.5, 0.5].forEach((v, k) => expect(p[k]).toBeCloseTo(v, 6))
    expect(remezFit(abs, -1, 1, 2, [0]).error).toBeCloseTo(1 / 8, 8)
  })

  it('equioscillates below the Chebyshev projection error', () => {
    const f = (x: Float64Array) => x.map(Math.exp)
    const r = remezFit(f, -1, 1, 3)
    // best degree-3 error of exp on [-1, 1] is about 5.53e-3
    expect(r.error).toBeCloseTo(0.00553, 4)
    const grid = Float64Array.from({ length: 20001 }, (_, i) => -1 + i / 10000)
    const err = (c: number[]) => {
      const p = toPowerBasis('chebyshev', c)
      return Array.from(grid, (x) => Math.exp(x) - p.reduce((s, v, k) => s + v * x ** k, 0))
    }
    const e = err(Array.from(r.coeffs))
    const cheb = Math.max(...err(Array.from(chebyshevFit(f, -1, 1, 3))).map(Math.abs))
    expect(Math.max(...e.map(Math.abs))).toBeLessThan(cheb)
    // d + 2 = 5 alternating extrema of the error, each of size r.error
    const extrema: number[] = []
    for (let i = 0; i < e.length; i++) {
      const peak = (i === 0 || Math.abs(e[i]) >= Math.abs(e[i - 1])) && (i === e.length - 1 || Math.abs(e[i]) >= Math.abs(e[i + 1]))
      if (peak && Math.abs(e[i]) > 0.9 * r.error) extrema.push(e[i])
    }
    expect(extrema).toHaveLength(5)
    extrema.forEach((v, k) => {
      expect(Math.abs(v)).toBeCloseTo(r.error, 6)
      if (k > 0) expect(Math.sign(v)).toBe(-Math.sign(extrema[k - 1]))
    })
  })
})

describe('weighted remezFit', () => {
  it('fits sign inside x p(x) with the error of |x| equioscillating', () => {
    const r = remezFit((x) => x.map(Math.sign), -1, 1, 7, [0], Math.abs)
    let worst = 0
    for (let i = -10000; i <= 10000; i++) {
      const x = i / 10000
      const p = toPowerBasis('chebyshev', r.coeffs).reduce((s, c, k) => s + c * x ** k, 0)
      worst = Math.max(worst, Math.abs(x * p - Math.abs(x)))
    }
    expect(worst).toBeCloseTo(r.error, 4)
    // x p(x) is an even polynomial of degree 8: no better than the best degree-8 approximation of |x|
    // (Bernstein: about 0.2802 / 8 = 0.035)
    expect(r.error).toBeGreaterThan(0.03)
    expect(r.error).toBeLessThan(0.06)
  })
})

describe('weightedFit', () => {
  it('reproduces a cubic from its samples', () => {
    const x = Float64Array.from({ length: 50 }, (_, i) => -3 + (6 * i) / 49)
    const y = x.map((v) => 2 - v + 0.3 * v ** 3)
    const c = weightedFit(x, y, x.map(() => 1), -3, 3, 5)
    const p = toPowerBasis('chebyshev', c, 0, 3)
    ;[2, -1, 0, 0.3, 0, 0].forEach((v, k) => expect(p[k]).toBeCloseTo(v, 9))
  })

  it('is the weighted least-squares line (normal equations in closed form)', () => {
    const x = Float64Array.of(-1, 0, 1, 2, 4)
    const y = Float64Array.of(0, 0, 1, 2, 4)
    const w = Float64Array.of(1, 3, 2, 1, 0.5)
    let [S, Sx, Sy, Sxx, Sxy] = [0, 0, 0, 0, 0]
    x.forEach((v, i) => {
      S += w[i]
      Sx += w[i] * v
      Sy += w[i] * y[i]
      Sxx += w[i] * v * v
      Sxy += w[i] * v * y[i]
    })
    const slope = (S * Sxy - Sx * Sy) / (S * Sxx - Sx * Sx)
    const icept = (Sy - slope * Sx) / S
    const p = toPowerBasis('chebyshev', weightedFit(x, y, w, -1, 4, 1), 1.5, 2.5)
    expect(p[0]).toBeCloseTo(icept, 12)
    expect(p[1]).toBeCloseTo(slope, 12)
  })
})

it('Gauss-Legendre rules integrate polynomials of degree 2n - 1 exactly', () => {
  const { x, w } = gaussLegendre(8)
  let acc = 0
  x.forEach((v, i) => (acc += w[i] * v ** 14))
  expect(acc).toBeCloseTo(2 / 15, 14)
})
