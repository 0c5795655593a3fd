/**
 * Polynomials in three bases (power, Chebyshev T_k, normalized probabilists' Hermite h_k), as the
 * `Poly` op carries them: y = sum_k c_k B_k((x - shift) / scale), per channel. Evaluation by Horner,
 * Clenshaw and the three-term Hermite recurrence; conversion to the power basis for backends.
 */

export type Basis = 'power' | 'chebyshev' | 'hermite'

/** Evaluate sum_k c[k] B_k(t). */
export function evalBasis(basis: Basis, c: readonly number[], t: number): number {
  ONE_X[0] = t
  evalRun(basis, c, 0, 1, ONE_X, ONE_Y, 0, 1)
  return ONE_Y[0]
}
const ONE_X = new Float64Array(1)
const ONE_Y = new Float64Array(1)

/** sqrt(n) for the Hermite recurrence, grown on demand. */
const SQRT: number[] = [0]

/**
 * y[i] = sum_k c_k B_k((x[i] - shift) / scale) for i in [from, to): Horner, Clenshaw
 * or the three-term Hermite recurrence h_0 = 1, h_1 = t, h_{n+1} = (t h_n - sqrt(n) h_{n-1}) / sqrt(n+1),
 * the basis decided once per run, not per element (OLA's replays spent half their time in that dispatch).
 */
export function evalRun(basis: Basis, c: readonly number[], shift: number, scale: number, x: Float64Array, y: Float64Array, from: number, to: number): void {
  const d = c.length - 1
  if (d < 0) return
  if (basis === 'power') {
    for (let i = from; i < to; i++) {
      const t = (x[i] - shift) / scale
      let acc = c[d]
      for (let k = d - 1; k >= 0; k--) acc = acc * t + c[k]
      y[i] = acc
    }
  } else if (basis === 'chebyshev') {
    // two elements per pass: their Clenshaw chains interleave (each step waits on the one before)
    let i = from
    for (; i + 1 < to; i += 2) {
      const t = (x[i] - shift) / scale
      const u = (x[i + 1] - shift) / scale
      const t2 = 2 * t
      const u2 = 2 * u
      let b1 = 0
      let b2 = 0
      let e1 = 0
      let e2 = 0
      for (let k = d; k >= 1; k--) {
        const b0 = t2 * b1 - b2 + c[k]
        const e0 = u2 * e1 - e2 + c[k]
        b2 = b1
        b1 = b0
        e2 = e1
        e1 = e0
      }
      y[i] = t * b1 - b2 + c[0]
      y[i + 1] = u * e1 - e2 + c[0]
    }
    for (; i < to; i++) {
      const t = (x[i] - shift) / scale
      const t2 = 2 * t
      let b1 = 0
      let b2 = 0
      for (let k = d; k >= 1; k--) {
        const b0 = t2 * b1 - b2 + c[k]
        b2 = b1
        b1 = b0
      }
      y[i] = t * b1 - b2 + c[0]
    }
  } else {
    while (SQRT.length <= d + 1) SQRT.push(Math.sqrt(SQRT.length))
    let i = from
    for (; i + 1 < to; i += 2) {
      const t = (x[i] - shift) / scale
      const u = (x[i + 1] - shift) / scale
      let hPrev = 1
      let h = t
      let gPrev = 1
      let g = u
      let acc = c[0]
      let bcc = c[0]
      if (d >= 1) {
        acc += c[1] * h
        bcc += c[1] * g
      }
      for (let n = 1; n < d; n++) {
        const hNext = (t * h - SQRT[n] * hPrev) / SQRT[n + 1]
        const gNext = (u * g - SQRT[n] * gPrev) / SQRT[n + 1]
        hPrev = h
        h = hNext
        gPrev = g
        g = gNext
        acc += c[n + 1] * h
        bcc += c[n + 1] * g
      }
      y[i] = acc
      y[i + 1] = bcc
    }
    for (; i < to; i++) {
      const t = (x[i] - shift) / scale
      let hPrev = 1
      let h = t
      let acc = c[0]
      if (d >= 1) acc += c[1] * h
      for (let n = 1; n < d; n++) {
        const hNext = (t * h - SQRT[n] * hPrev) / SQRT[n + 1]
        hPrev = h
        h = hNext
        acc += c[n + 1] * h
      }
      y[i] = acc
    }
  }
}

/** Power-basis coefficients of the basis polynomials B_0..B_d (row k = coefficients of B_k). */
export function basisToPowerMatrix(basis: Basis, d: number): number[][] {
  const rows: number[][] = []
  for (let k = 0; k <= d; k++) rows.push(new Array(d + 1).fill(0))
  if (basis === 'power') {
    for (let k = 0; k <= d; k++) rows[k][k] = 1
    return rows
  }
  rows[0][0] = 1
  if (d >= 1) rows[1][1] = 1
  for (let n = 1; n < d; n++) {
    const next = rows[n + 1]
    for (let j = 0; j <= d; j++) {
      const shifted = j > 0 ? rows[n][j - 1] : 0
      if (basis === 'chebyshev') next[j] = 2 * shifted - rows[n - 1][j]
      else next[j] = (shifted - Math.sqrt(n) * rows[n - 1][j]) / Math.sqrt(n + 1)
    }
  }
  return rows
}

/**
 * Power-basis coefficients in x of sum_k c_k B_k((x - shift) / scale).
 * Well conditioned for the low degrees activations use; backends that can should evaluate in the
 * fitted basis instead.
 */
export function toPowerBasis(basis: Basis, c: readonly number[], shift = 0, scale = 1): number[] {
  const d = c.length - 1
  const m = basisToPowerMatrix(basis, d)
  const inT = new Array(d + 1).fill(0)
  for (let k = 0; k <= d; k++) for (let j = 0; j <= d; j++) inT[j] += c[k] * m[k][j]
  // substitute t = (x - shift) / scale = a x + b
  const a = 1 / scale
  const b = -shift / scale
  const out = new Array(d + 1).fill(0)
  let pow = [1] // coefficients of (a x + b)^j
  for (let j = 0; j <= d; j++) {
    for (let i = 0; i < pow.length; i++) out[i] += inT[j] * pow[i]
    const nextPow = new Array(pow.length + 1).fill(0)
    for (let i = 0; i < pow.length; i++) {
      nextPow[i] += b * pow[i]
      nextPow[i + 1] += a * pow[i]
    }
    pow = nextPow
  }
  return out
}
