/**
 * Fitting math for the approximation passes, always in an orthogonal basis (never a monomial
 * Vandermonde solve):
 * - `hermiteFit`: Gaussian-weighted L2 projection on normalized Hermite polynomials,
 *   c_n = E[f(mu + s Z) h_n(Z)], Z ~ N(0, 1) (AESPA); the result is a `hermite` Poly row with
 *   shift mu and scale s.
 * - `chebyshevFit`: Chebyshev projection on [lo, hi] (near-minimax).
 * - `remezFit`: minimax polynomial on [lo, hi] by the Remez exchange, in the Chebyshev basis.
 * - `weightedFit`: weighted least squares on sample points (OLA's distribution-weighted fit), Chebyshev
 *   design matrix solved by Householder QR.
 * Integrals use composite Gauss-Legendre rules split at the function's kinks, so ReLU-like functions
 * get their coefficients to about 1e-12.
 */
import { evalBasis } from '../ir/poly.js'

/** A vectorized real function. */
export type Fn = (x: Float64Array) => Float64Array

const glCache = new Map<number, { x: Float64Array; w: Float64Array }>()

/** Gauss-Legendre nodes and weights on [-1, 1]. */
export function gaussLegendre(n: number): { x: Float64Array; w: Float64Array } {
  const hit = glCache.get(n)
  if (hit) return hit
  const x = new Float64Array(n)
  const w = new Float64Array(n)
  for (let i = 0; i < Math.ceil(n / 2); i++) {
    let z = Math.cos((Math.PI * (i + 0.75)) / (n + 0.5))
    let dp = 0
    for (let it = 0; it < 100; it++) {
      let p0 = 1
      let p1 = z
      for (let k = 2; k <= n; k++) {
        const p2 = ((2 * k - 1) * z * p1 - (k - 1) * p0) / k
        p0 = p1
        p1 = p2
      }
      dp = (n * (z * p1 - p0)) / (z * z - 1)
      const dz = p1 / dp
      z -= dz
      if (Math.abs(dz) < 1e-16) break
    }
    x[i] = -z
    x[n - 1 - i] = z
    w[i] = w[n - 1 - i] = 2 / ((1 - z * z) * dp * dp)
  }
  const r = { x, w }
  glCache.set(n, r)
  return r
}

/** Quadrature nodes and weights for [a, b] with panel boundaries at `breaks` and at most `h` apart. */
export function panels(a: number, b: number, breaks: readonly number[], h: number, order = 16): { x: Float64Array; w: Float64Array } {
  const cuts = [a, ...breaks.filter((t) => t > a && t < b).sort((p, q) => p - q), b]
  const edges: number[] = []
  for (let i = 0; i + 1 < cuts.length; i++) {
    const n = Math.max(1, Math.ceil((cuts[i + 1] - cuts[i]) / h))
    for (let k = 0; k < n; k++) edges.push(cuts[i] + ((cuts[i + 1] - cuts[i]) * k) / n)
  }
  edges.push(b)
  const gl = gaussLegendre(order)
  const m = edges.length - 1
  const x = new Float64Array(m * order)
  const w = new Float64Array(m * order)
  for (let p = 0; p < m; p++) {
    const mid = (edges[p] + edges[p + 1]) / 2
    const half = (edges[p + 1] - edges[p]) / 2
    for (let k = 0; k < order; k++) {
      x[p * order + k] = mid + half * gl.x[k]
      w[p * order + k] = half * gl.w[k]
    }
  }
  return { x, w }
}

/** Values of the normalized Hermite polynomials h_0..h_d at t (row-major [d + 1][t.length]). */
function hermiteRows(t: Float64Array, d: number): Float64Array[] {
  const rows = [new Float64Array(t.length).fill(1)]
  if (d >= 1) rows.push(Float64Array.from(t))
  for (let n = 1; n < d; n++) {
    const r = new Float64Array(t.length)
    const a = rows[n]
    const b = rows[n - 1]
    for (let i = 0; i < t.length; i++) r[i] = (t[i] * a[i] - Math.sqrt(n) * b[i]) / Math.sqrt(n + 1)
    rows.push(r)
  }
  return rows
}

/** Chebyshev T_0..T_d at t (row-major). */
function chebyshevRows(t: Float64Array, d: number): Float64Array[] {
  const rows = [new Float64Array(t.length).fill(1)]
  if (d >= 1) rows.push(Float64Array.from(t))
  for (let n = 1; n < d; n++) {
    const r = new Float64Array(t.length)
    for (let i = 0; i < t.length; i++) r[i] = 2 * t[i] * rows[n][i] - rows[n - 1][i]
    rows.push(r)
  }
  return rows
}

/** Gaussian tail cut: N(0,1) mass beyond 12 sigma is below 1e-32. */
const HERMITE_SPAN = 12

/**
 * Hermite coefficients c_0..c_d of f under X ~ N(mu, s^2): f(x) ~ sum_n c_n h_n((x - mu) / s).
 * `kinks` are the points (in x) where f is not smooth.
 */
export function hermiteFit(f: Fn, mu: number, s: number, d: number, kinks: readonly number[] = []): number[] {
  const q = panels(-HERMITE_SPAN, HERMITE_SPAN, kinks.map((k) => (k - mu) / s), 0.25)
  const xs = q.x.map((t) => mu + s * t)
  const fx = f(xs)
  const rows = hermiteRows(q.x, d)
  const c: number[] = []
  for (let n = 0; n <= d; n++) {
    let acc = 0
    for (let i = 0; i < q.x.length; i++) acc += q.w[i] * fx[i] * rows[n][i] * Math.exp(-0.5 * q.x[i] * q.x[i])
    c.push(acc / Math.sqrt(2 * Math.PI))
  }
  return c
}

/** Chebyshev projection of f on [lo, hi]: f(x) ~ sum_k c_k T_k((x - m) / h), m, h the interval's center and half width. */
export function chebyshevFit(f: Fn, lo: number, hi: number, d: number, kinks: readonly number[] = []): number[] {
  const m = (lo + hi) / 2
  const h = (hi - lo) / 2
  // c_k = (2 / pi) int_0^pi f(m + h cos th) cos(k th) dth, with the kinks' angles as panel breaks
  const breaks = kinks.filter((k) => k > lo && k < hi).map((k) => Math.acos((k - m) / h))
  const q = panels(0, Math.PI, breaks, Math.PI / Math.max(64, 4 * d))
  const fx = f(q.x.map((th) => m + h * Math.cos(th)))
  const c: number[] = []
  for (let k = 0; k <= d; k++) {
    let acc = 0
    for (let i = 0; i < q.x.length; i++) acc += q.w[i] * fx[i] * Math.cos(k * q.x[i])
    c.push(((k === 0 ? 1 : 2) / Math.PI) * acc)
  }
  return c
}

/** Solve A x = b (n x n, row-major copy) by Gaussian elimination with partial pivoting. */
export function solve(A: number[][], b: number[]): number[] {
  const n = b.length
  const M = A.map((r, i) => [...r, b[i]])
  for (let k = 0; k < n; k++) {
    let p = k
    for (let i = k + 1; i < n; i++) if (Math.abs(M[i][k]) > Math.abs(M[p][k])) p = i
    ;[M[k], M[p]] = [M[p], M[k]]
    const piv = M[k][k]
    if (piv === 0) throw new Error('singular system')
    for (let i = k + 1; i < n; i++) {
      const f = M[i][k] / piv
      if (f !== 0) for (let j = k; j <= n; j++) M[i][j] -= f * M[k][j]
    }
  }
  const x = new Array<number>(n).fill(0)
  for (let i = n - 1; i >= 0; i--) {
    let s = M[i][n]
    for (let j = i + 1; j < n; j++) s -= M[i][j] * x[j]
    x[i] = s / M[i][i]
  }
  return x
}

export interface RemezResult {
  /** Chebyshev coefficients on [lo, hi]. */
  coeffs: number[]
  /** Maximum absolute error on the search grid. */
  error: number
}

/** The dense grid Remez searches: Chebyshev-clustered and uniform points plus the kinks. */
function remezGrid(lo: number, hi: number, kinks: readonly number[]): Float64Array {
  const n = 4000
  const pts: number[] = []
  for (let i = 0; i <= n; i++) {
    pts.push(lo + ((hi - lo) * i) / n)
    pts.push((lo + hi) / 2 - ((hi - lo) / 2) * Math.cos((Math.PI * i) / n))
  }
  for (const k of kinks) if (k > lo && k < hi) pts.push(k)
  return Float64Array.from(pts).sort()
}

/**
 * Minimax polynomial of degree d for f on [lo, hi] by the Remez exchange algorithm, minimizing
 * max w(x) |f(x) - p(x)| (w = 1 by default; points where w = 0 are ignored).
 */
export function remezFit(f: Fn, lo: number, hi: number, d: number, kinks: readonly number[] = [], weight?: (x: number) => number, maxIter = 60): RemezResult {
  const m = (lo + hi) / 2
  const h = (hi - lo) / 2
  const w = weight ?? (() => 1)
  const grid = remezGrid(lo, hi, kinks).filter((x) => w(x) > 0)
  const fg = f(grid)
  const wg = grid.map(w)
  const tg = grid.map((x) => (x - m) / h)
  const errors = (c: number[]) => Float64Array.from(tg, (t, i) => wg[i] * (fg[i] - evalBasis('chebyshev', c, t)))
  const start = chebyshevFit(f, lo, hi, d, kinks)
  const e0 = errors(start)
  let best: RemezResult = { coeffs: start, error: Math.max(...Array.from(e0, Math.abs)) }
  let ref = alternatingExtrema(tg, e0, d + 2) ?? Array.from({ length: d + 2 }, (_, i) => -Math.cos((Math.PI * i) / (d + 1)))
  for (let it = 0; it < maxIter; it++) {
    const xr = Float64Array.from(ref, (t) => m + h * t)
    if (xr.some((x) => !(w(x) > 0))) break
    const fr = f(xr)
    const A = ref.map((t, i) => [...chebyshevRows(Float64Array.of(t), d).map((r) => r[0]), (i % 2 === 0 ? 1 : -1) / w(xr[i])])
    let sol: number[]
    try {
      sol = solve(A, Array.from(fr))
    } catch {
      break
    }
    const c = sol.slice(0, d + 1)
    const level = Math.abs(sol[d + 1])
    const e = errors(c)
    let emax = 0
    for (const v of e) emax = Math.max(emax, Math.abs(v))
    if (emax < best.error) best = { coeffs: c, error: emax }
    if (emax - level <= 1e-9 * Math.max(emax, 1e-300)) break
    const next = alternatingExtrema(tg, e, d + 2)
    if (!next) break
    ref = next
  }
  return best
}

/** One extremum of |e| per run of constant sign, trimmed to n alternating points keeping the largest. */
function alternatingExtrema(t: Float64Array, e: Float64Array, n: number): number[] | undefined {
  const pts: { t: number; v: number }[] = []
  for (let i = 0; i < t.length; i++) {
    const v = e[i]
    if (v === 0) continue
    const last = pts[pts.length - 1]
    if (last && Math.sign(last.v) === Math.sign(v)) {
      if (Math.abs(v) > Math.abs(last.v)) pts[pts.length - 1] = { t: t[i], v }
    } else pts.push({ t: t[i], v })
  }
  if (pts.length < n) return undefined
  while (pts.length > n) {
    const first = Math.abs(pts[0].v)
    const last = Math.abs(pts[pts.length - 1].v)
    if (first < last) pts.shift()
    else pts.pop()
  }
  return pts.map((p) => p.t)
}

/** The fitted interval [min, max] widened by `margin` (default 5%) of its width on each side. */
export function fitInterval(st: { min: number; max: number }, margin = 0.05): [number, number] {
  const w = st.max - st.min
  return w > 0 ? [st.min - margin * w, st.max + margin * w] : [st.min - 1, st.max + 1]
}

/**
 * Weighted least squares: minimize sum_i w_i (f(x_i) - p(x_i))^2 over degree-d p in the Chebyshev
 * basis on [lo, hi], by Householder QR of the weighted design matrix. Degrees the data cannot
 * determine are dropped (their coefficients are 0).
 */
export function weightedFit(x: Float64Array, y: Float64Array, w: Float64Array, lo: number, hi: number, d: number): number[] {
  const m = (lo + hi) / 2
  const h = (hi - lo) / 2 || 1
  const rowsIdx: number[] = []
  for (let i = 0; i < x.length; i++) if (w[i] > 0) rowsIdx.push(i)
  const n = rowsIdx.length
  const cols = Math.min(d + 1, n)
  const t = Float64Array.from(rowsIdx, (i) => (x[i] - m) / h)
  const T = chebyshevRows(t, d)
  // column-major A[col][row] = sqrt(w) T_col(t_row), right side sqrt(w) y
  const A = T.slice(0, cols).map((r) => Float64Array.from(r, (v, k) => v * Math.sqrt(w[rowsIdx[k]])))
  const b = Float64Array.from(rowsIdx, (i) => y[i] * Math.sqrt(w[i]))
  const diag = new Float64Array(cols)
  for (let k = 0; k < cols; k++) {
    const a = A[k]
    let norm = 0
    for (let i = k; i < n; i++) norm += a[i] * a[i]
    norm = Math.sqrt(norm)
    const alpha = a[k] > 0 ? -norm : norm
    diag[k] = alpha
    if (norm === 0) continue
    a[k] -= alpha
    let vv = 0
    for (let i = k; i < n; i++) vv += a[i] * a[i]
    if (vv === 0) continue
    const reflect = (col: Float64Array) => {
      let dot = 0
      for (let i = k; i < n; i++) dot += a[i] * col[i]
      const f = (2 * dot) / vv
      for (let i = k; i < n; i++) col[i] -= f * a[i]
    }
    for (let j = k + 1; j < cols; j++) reflect(A[j])
    reflect(b)
  }
  const scale = Math.max(...Array.from(diag, Math.abs))
  const c = new Array<number>(d + 1).fill(0)
  for (let k = cols - 1; k >= 0; k--) {
    if (Math.abs(diag[k]) <= 1e-12 * scale) continue
    let s = b[k]
    for (let j = k + 1; j < cols; j++) s -= A[j][k] * c[j]
    c[k] = s / diag[k]
  }
  return c
}
