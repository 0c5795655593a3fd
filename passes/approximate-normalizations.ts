/**
 * approximate-normalizations: LayerNormalization and Softmax on a secret become polynomials and
 * Newton iterations fitted from calibration data (options `approxNorm`, `approxSoftmax`; both run
 * with their defaults under any `approx` other than none).
 *
 * LayerNormalization over the axes A = axis..rank-1 (output 0 only; a graph that reads the mean or
 * inverse std outputs 1/2 of a secret is refused), `newton:D,K`:
 *
 *   m = ReduceMean(x, A)           affine                                   depth 0
 *   d = x - m                      affine
 *   v = ReduceMean(d * d, A) + eps one product (a square)                   depth 1
 *   y0 = p(v)                      p of degree D fitted to 1/sqrt(v) over   + ceil(log2(D + 1))
 *                                  the calibrated range of v + eps
 *   y <- 1.5 y - 0.5 (v y)(y y)    K Newton steps for 1/sqrt(v)             + 2 per step
 *   out = (d * expand(y)) * scale + bias   (scale, bias: constants)         + 1
 *
 * p is the minimax fit of the relative error (Remez, weight sqrt(v)), so its worst relative error E0
 * = max |sqrt(v) p(v) - 1| over the interval is what Newton sees: with y = (1 + e) / sqrt(v), one
 * step gives e' = -e^2 (3 + e) / 2, hence |e_k| <= h^k(E0), h(t) = t^2 (3 + t) / 2 (quadratic: h(t) <= 2 t^2
 * for t <= 1). Newton diverges for e > 0.56 or e <= -1; a fit with E0 > 0.5 is scaled by 1 / (1 + E0), which
 * makes every e lie in [-2 E0 / (1 + E0), 0] (an under-estimate: Newton then converges monotonically), and
 * a fit that is still not positive throughout becomes the constant 1 / sqrt(hi) (e in [sqrt(lo/hi) - 1, 0]).
 *
 * Softmax along one axis a, `exp:K` or `poly:D`, optionally `+newton:D,K` for the reciprocal:
 *
 *   z = x - c                      c the calibrated max of x (a constant)   affine
 *   e = (1 + z / 2^K)^(2^K)        K squarings (exp:K), or a fitted         depth K, or ceil(log2(D + 1))
 *       or q(z)                    Chebyshev minimax q of degree D over the calibrated range of z (poly:D)
 *   s = ReduceSum(e, a)            affine
 *   r0 = p(s); r <- r (2 - s r)    reciprocal: guess over the calibrated    + ceil(log2(D + 1)) + 2 per step
 *                                  range of s, Newton 1 - s r' = (1 - s r)^2
 *   out = e * expand(r)                                                     + 1
 *
 * A constant shift is exact: exp(x_j - c) / sum_i exp(x_i - c) = exp(x_j) / sum_i exp(x_i) for any c
 * constant along the axis; c only keeps z <= 0 on calibrated inputs, so e and s stay bounded. The
 * reciprocal's error after K steps is |1 - s r_K| <= E0^(2^K) (E0 of the relative fit, scaled to an
 * under-estimate when E0 > 0.5 as above; the constant 2 / (lo + hi) when the fit is not positive).
 * Attention rows whose max lies far below c make the range of s wide (e^14 on vit_tiny), so the
 * reciprocal needs many steps: a secret max (comparisons) is what would narrow it.
 * Polynomial replacements from the literature (not softmax, so a model may lose accuracy):
 * - `2quad[:C]` (MPCFormer): (x + C)^2 / sum (x + C)^2, C = 5 by default; the sum's reciprocal by Newton.
 * - `thex` (THE-X style ReLU attention): relu(x - c0) / sum relu(x - c0), c0 one below the smallest
 *   calibrated row maximum (every calibrated row keeps a positive sum); the Relu stays (mpc: garbled circuits).
 *
 * Every product of two secrets is between equal shapes: the per-row factor is `Expand`ed to the row
 * shape first (the mpc backend refuses broadcasting secret products). Ranges: an interval [lo, hi]
 * from calibration widens by 5% of its width on each side as the activation fits do, but for the
 * positive quantities (v + eps, s) never below lo / 2. Each layer's choice, ranges, degrees, steps,
 * depth and error bound go to `cx.report.normalizations`.
 */
import { describeNode, type Graph, type Node } from '../ir/graph.js'
import { runBatched } from '../ir/interpret.js'
import { evalBasis } from '../ir/poly.js'
import { polyDepth, type PolyAttrs } from '../ir/ops/pi.js'
import { normAxis } from '../ir/ops/util.js'
import { rewrite, type RewriteContext, type Rule } from '../ir/rewrite.js'
import { secretValues } from '../ir/stats.js'
import { sizeOf, tensor } from '../ir/tensor.js'
import { fitInterval, remezFit } from './fit.js'
import { PassError, type Pass, type PassContext } from './pass.js'

export type NormSpec = { method: 'none' } | { method: 'newton'; degree: number; steps: number }
export interface RecipSpec {
  degree: number
  steps: number
}
export type SoftmaxSpec =
  | { method: 'none' }
  | { method: 'exp'; squarings: number; recip: RecipSpec }
  | { method: 'poly'; degree: number; recip: RecipSpec }
  | { method: '2quad'; c: number; recip: RecipSpec }
  | { method: 'thex'; recip: RecipSpec }

/** Defaults, chosen on fmnist32 convnext_mini and vit_tiny (passes/approximate-normalizations measurements in the report). */
export const DEFAULT_NORM = 'newton:3,3'
export const DEFAULT_SOFTMAX = 'exp:12+newton:0,30'
const MAX_DEGREE = 63
const MAX_STEPS = 64
const MAX_SQUARINGS = 30

function int(s: string | undefined, lo: number, hi: number): number | undefined {
  if (s === undefined || !/^\d+$/.test(s)) return undefined
  const v = Number(s)
  return v >= lo && v <= hi ? v : undefined
}

/** `newton:D,K` (guess degree D from 0 to 63, K steps from 0 to 64), or none. */
function parseNewton(spec: string, flag: string, text: string): RecipSpec {
  const m = /^newton:(\d+),(\d+)$/.exec(text)
  const degree = int(m?.[1], 0, MAX_DEGREE)
  const steps = int(m?.[2], 0, MAX_STEPS)
  if (degree === undefined || steps === undefined) throw new PassError(`${flag} '${spec}': expected newton:D,K with D an initial-guess degree from 0 to ${MAX_DEGREE} and K Newton steps from 0 to ${MAX_STEPS}`)
  return { degree, steps }
}

/** Parse `--approx-norm`: none or newton:D,K. */
export function parseNormSpec(spec: string): NormSpec {
  const s = spec.trim()
  if (s === 'none') return { method: 'none' }
  return { method: 'newton', ...parseNewton(spec, '--approx-norm', s) }
}

/** Parse `--approx-softmax`: none, exp:K, poly:D, 2quad[:C] or thex, each optionally +newton:D,K for the reciprocal. */
export function parseSoftmaxSpec(spec: string): SoftmaxSpec {
  const [main, recipText, ...rest] = spec.trim().split('+')
  const bad = (why: string) => new PassError(`--approx-softmax '${spec}': ${why}`)
  if (main === 'none' && recipText === undefined) return { method: 'none' }
  if (rest.length) throw bad('at most one +newton:D,K')
  const recip = recipText === undefined ? parseNewton(DEFAULT_SOFTMAX, '--approx-softmax', DEFAULT_SOFTMAX.split('+')[1]) : parseNewton(spec, '--approx-softmax', recipText)
  const [method, arg, ...more] = main.split(':')
  if (more.length) throw bad('too many fields')
  if (method === 'exp') {
    const k = int(arg, 1, MAX_SQUARINGS)
    if (k === undefined) throw bad(`exp:K needs K squarings from 1 to ${MAX_SQUARINGS}`)
    return { method, squarings: k, recip }
  }
  if (method === 'poly') {
    const d = int(arg, 1, MAX_DEGREE)
    if (d === undefined) throw bad(`poly:D needs a degree from 1 to ${MAX_DEGREE}`)
    return { method, degree: d, recip }
  }
  if (method === '2quad') {
    const c = arg === undefined ? 5 : Number(arg)
    if (arg !== undefined && !(/^-?\d*\.?\d+$/.test(arg) && Number.isFinite(c))) throw bad('2quad:C needs a number C')
    return { method, c, recip }
  }
  if (method === 'thex' && arg === undefined) return { method, recip }
  throw bad('expected none, exp:K, poly:D, 2quad[:C] or thex, optionally followed by +newton:D,K')
}

/** The specs the options ask for: explicit flags, else the defaults under --approx, else none. */
export function normalizationSpecs(options: Readonly<Record<string, unknown>>): { norm: NormSpec; softmax: SoftmaxSpec } {
  const on = (options.approx ?? 'none') !== 'none'
  const n = options.approxNorm as string | undefined
  const s = options.approxSoftmax as string | undefined
  return {
    norm: parseNormSpec(n ?? (on ? DEFAULT_NORM : 'none')),
    softmax: parseSoftmaxSpec(s ?? (on ? DEFAULT_SOFTMAX : 'none')),
  }
}

export interface NormalizationReport {
  name: string
  value: string
  op: 'LayerNormalization' | 'Softmax'
  /** newton (LayerNorm); exp, poly, 2quad, thex (Softmax). */
  method: string
  /** LayerNorm: calibrated range of var; Softmax: of x. */
  range: [number, number]
  /** The interval the reciprocal (square root) guess is fitted on (v + eps or s, with the margin). */
  guessInterval: [number, number]
  guessDegree: number
  /** Worst relative error of the guess on its interval (after the under-estimate scaling). */
  guessError: number
  newtonSteps: number
  /** Bound on the relative error of 1/sqrt(v + eps) or 1/s after the Newton steps (exact arithmetic, on the interval). */
  newtonBound: number
  /** Softmax: the shift c, exp squarings or degree, the interval of z the exp fit covers. */
  shift?: number
  expSquarings?: number
  expDegree?: number
  expInterval?: [number, number]
  /** Worst relative error of the exp replacement on expInterval. */
  expError?: number
  /** Multiplicative depth in products of secrets (polynomials: ceil(log2(D + 1))). */
  depth: number
  /** Products of two secret tensors per layer (elementwise ones counted once per Mul node). */
  products: number
}

/**
 * Upper bound on the relative error after K Newton steps from an initial error e0 in [lo, hi] (lo > -1):
 * 1/sqrt: e' = -e^2 (3 + e) / 2, so after one step e lies in [-t, 0] with t the larger of the ends' |e'|,
 * and from there t' = t^2 (3 - t) / 2; 1/x: r = 1 - s y squares, r' = r^2. (Quadratic: t' <= 1.5 t^2.)
 */
export function newtonBound(kind: 'rsqrt' | 'recip', e0: readonly [number, number], steps: number): number {
  const [lo, hi] = e0
  let t = Math.max(Math.abs(lo), Math.abs(hi))
  if (steps === 0) return t
  if (kind === 'recip') {
    for (let k = 0; k < steps; k++) t = t * t
    return t
  }
  if (lo <= -1) return Infinity
  t = Math.max((lo * lo * (3 + lo)) / 2, (hi * hi * (3 + hi)) / 2)
  for (let k = 1; k < steps; k++) t = t >= 1 ? Infinity : (t * t * (3 - t)) / 2
  return t
}

interface Guess {
  poly: PolyAttrs
  /** Worst relative error, and the range of p / f - 1 on the interval. */
  error: number
  range: [number, number]
}

/** Log-spaced points of [lo, hi] (and uniform ones) for measuring a relative error. */
function grid(lo: number, hi: number, n = 2000): Float64Array {
  const out = new Float64Array(2 * n + 2)
  for (let i = 0; i <= n; i++) {
    out[i] = lo * (hi / lo) ** (i / n)
    out[n + 1 + i] = lo + ((hi - lo) * i) / n
  }
  return out
}

/**
 * The initial guess for f = 1/sqrt(t) or 1/t on [lo, hi]: relative minimax of degree D, scaled to an
 * under-estimate when its error exceeds 0.5, a constant when it is not positive throughout.
 */
export function fitGuess(kind: 'rsqrt' | 'recip', lo: number, hi: number, degree: number): Guess {
  const f = kind === 'rsqrt' ? (t: number) => 1 / Math.sqrt(t) : (t: number) => 1 / t
  const mid = (lo + hi) / 2
  const half = (hi - lo) / 2
  const constant = (): Guess => {
    const c = kind === 'rsqrt' ? 1 / Math.sqrt(hi) : 2 / (lo + hi)
    const range: [number, number] = kind === 'rsqrt' ? [Math.sqrt(lo / hi) - 1, 0] : [(lo - hi) / (hi + lo), (hi - lo) / (hi + lo)]
    return { poly: { basis: 'chebyshev', axis: 1, coeffs: [[c]], shift: [mid], scale: [half], of: kind === 'rsqrt' ? 'Rsqrt' : 'Reciprocal', interval: [lo, hi] }, error: Math.max(-range[0], range[1]), range }
  }
  if (degree === 0) return constant()
  const fit = remezFit((x) => x.map(f), lo, hi, degree, [], kind === 'rsqrt' ? Math.sqrt : (t) => t)
  const pts = grid(lo, hi)
  const rel = (c: number[]) => {
    let lo = Infinity
    let hi = -Infinity
    for (const t of pts) {
      const q = evalBasis('chebyshev', c, (t - mid) / half) / f(t) - 1
      lo = Math.min(lo, q)
      hi = Math.max(hi, q)
    }
    return { range: [lo, hi] as [number, number], e: Math.max(-lo, hi), positive: lo > -1 }
  }
  let c = fit.coeffs
  let r = rel(c)
  if (!r.positive || !c.every(Number.isFinite)) return constant()
  if (r.e > 0.5) {
    c = c.map((v) => v / (1 + r.range[1]))
    r = rel(c)
  }
  const k = constant()
  // the constant guess is kept when its Newton bound is better (very wide ranges)
  if (newtonBound(kind, k.range, 4) < newtonBound(kind, r.range, 4)) return k
  return { poly: { ...k.poly, coeffs: [c] }, error: r.e, range: r.range }
}

/** Positive interval [lo, hi] with the fits' margin, never below lo / 2. */
function positiveInterval(min: number, max: number): [number, number] {
  const [lo, hi] = fitInterval({ min, max })
  return [Math.max(lo, min / 2), hi]
}

// ---- calibration ---------------------------------------------------------------------------

interface LnStats {
  vmin: number
  vmax: number
}
interface SmStats {
  xmin: number
  xmax: number
  rowMaxMin: number
  smin: number
  smax: number
}

/** Each row of `len` elements along one axis (stride `inner`) among the first `limit` elements. */
function forRows(data: Float64Array, len: number, inner: number, limit: number, visit: (row: Float64Array) => void): void {
  const row = new Float64Array(len)
  for (let base0 = 0; base0 < limit; base0 += len * inner)
    for (let i = 0; i < inner; i++) {
      for (let k = 0; k < len; k++) row[k] = data[base0 + i + k * inner]
      visit(row)
    }
}

/** Row statistic s of a Softmax replacement at shift c (sum exp(x - c), sum (x + C)^2, sum relu(x - c0)). */
function rowSum(spec: Exclude<SoftmaxSpec, { method: 'none' }>, row: Float64Array, c: number): number {
  let s = 0
  if (spec.method === '2quad') for (const v of row) s += (v + spec.c) ** 2
  else if (spec.method === 'thex') for (const v of row) s += Math.max(0, v - c)
  else for (const v of row) s += Math.exp(v - c)
  return s
}

/** Shift c of a Softmax replacement from the first calibration sweep. */
function shiftOf(spec: SoftmaxSpec, st: SmStats): number {
  return spec.method === 'thex' ? st.rowMaxMin - 1 : spec.method === '2quad' ? 0 : st.xmax
}

/** Two sweeps over the calibration data: the ranges, then the sums at the chosen shifts. */
function calibrateNormalizations(g: Graph, cx: PassContext, lns: readonly Node[], sms: readonly Node[], softmax: SoftmaxSpec): { ln: Map<string, LnStats>; sm: Map<string, SmStats> } {
  const ln = new Map(lns.map((n) => [n.name, { vmin: Infinity, vmax: -Infinity }]))
  const sm = new Map(sms.map((n) => [n.name, { xmin: Infinity, xmax: -Infinity, rowMaxMin: Infinity, smin: Infinity, smax: -Infinity }]))
  const input = g.nodes.find((n) => n.op === 'Input')!.name
  const sweep = (second: boolean) =>
    runBatched(g, cx.calib!, {
      keepAll: true,
      accel: cx.accel,
      onChunk: (values, valid) => {
        const chunk = values.get(input)!.shape[0]
        const limitOf = (shape: readonly number[], n: number) => (shape[0] === chunk && chunk > 0 ? (n / chunk) * valid : n)
        if (!second)
          for (const n of lns) {
            const v = values.get(n.inputs[0])!
            const axis = normAxis((n.attrs as { axis: number }).axis, v.shape.length)
            const st = ln.get(n.name)!
            forRows(v.data, sizeOf(v.shape.slice(axis)), 1, limitOf(v.shape, v.data.length), (row) => {
              let m = 0
              for (const t of row) m += t
              m /= row.length
              let q = 0
              for (const t of row) q += (t - m) ** 2
              q /= row.length
              st.vmin = Math.min(st.vmin, q)
              st.vmax = Math.max(st.vmax, q)
            })
          }
        for (const n of sms) {
          const v = values.get(n.inputs[0])!
          const axis = normAxis((n.attrs as { axis: number }).axis, v.shape.length)
          const st = sm.get(n.name)!
          const c = shiftOf(softmax, st)
          forRows(v.data, v.shape[axis], sizeOf(v.shape.slice(axis + 1)), limitOf(v.shape, v.data.length), (row) => {
            if (second && softmax.method !== 'none') {
              const s = rowSum(softmax, row, c)
              st.smin = Math.min(st.smin, s)
              st.smax = Math.max(st.smax, s)
              return
            }
            let mx = -Infinity
            for (const t of row) {
              mx = Math.max(mx, t)
              st.xmin = Math.min(st.xmin, t)
            }
            st.xmax = Math.max(st.xmax, mx)
            st.rowMaxMin = Math.min(st.rowMaxMin, mx)
          })
        }
      },
    })
  sweep(false)
  if (sms.length && softmax.method !== 'none') sweep(true)
  return { ln, sm }
}

// ---- building the replacements -------------------------------------------------------------

interface Builder {
  cx: RewriteContext
  n: Node
  products: number
}

function scalar(b: Builder, v: number, base: string): string {
  return b.cx.addConstant(tensor(b.n.type.dtype, [], [v]), `${b.n.name}_${base}`)
}

function op(b: Builder, type: string, inputs: readonly string[], base: string, attrs: Record<string, unknown> = {}): string {
  return b.cx.add(type, inputs, attrs, `${b.n.name}_${base}`, b.n.origin ?? { name: b.n.name, op: b.n.op })
}

function shapeOf(b: Builder, name: string): readonly number[] {
  return b.cx.producer(name)!.type.shape
}

/** x broadcast to `to` by an explicit Expand (1 where x already has the dim, so a symbolic batch still binds). */
function expandTo(b: Builder, x: string, to: readonly number[]): string {
  const s = shapeOf(b, x)
  if (s.length === to.length && s.every((d, i) => d === to[i])) return x
  const target = to.map((d, i) => (s[i - (to.length - s.length)] === d ? 1 : d))
  return op(b, 'Expand', [x, b.cx.addConstant(tensor('int64', [to.length], target), `${b.n.name}_shape`)], 'expand')
}

/** A product of two secrets, the smaller one expanded first: never a broadcasting secret product. */
function mulSecret(b: Builder, x: string, y: string, base: string): string {
  const sx = shapeOf(b, x)
  const sy = shapeOf(b, y)
  const out = sizeOf(sx) >= sizeOf(sy) ? sx : sy
  b.products++
  return op(b, 'Mul', [expandTo(b, x, out), expandTo(b, y, out)], base)
}

/** a x + c (constants), as Mul then Add (either omitted when trivial). */
function affine(b: Builder, x: string, a: number, c: number, base: string): string {
  const m = a === 1 ? x : op(b, 'Mul', [x, scalar(b, a, `${base}_a`)], `${base}_mul`)
  return c === 0 ? m : op(b, 'Add', [m, scalar(b, c, `${base}_c`)], base)
}

function reduce(b: Builder, type: 'ReduceMean' | 'ReduceSum', x: string, axes: number[], opset: number, base: string): string {
  // ReduceSum takes its axes as an input since opset 13, ReduceMean since 18
  if (type === 'ReduceSum' || opset >= 18) return op(b, type, [x, b.cx.addConstant(tensor('int64', [axes.length], axes), `${b.n.name}_axes`)], base, { keepdims: true, noopWithEmptyAxes: false })
  return op(b, type, [x], base, { axes, keepdims: true, noopWithEmptyAxes: false })
}

/** Newton for 1/sqrt(v) (y <- 1.5 y - 0.5 (v y)(y y), depth 2) or 1/s (y <- y (2 - s y), depth 2). */
function newton(b: Builder, kind: 'rsqrt' | 'recip', v: string, y0: string, steps: number): string {
  let y = y0
  for (let k = 0; k < steps; k++) {
    if (kind === 'rsqrt') {
      const vy = mulSecret(b, v, y, `vy${k}`)
      const yy = mulSecret(b, y, y, `yy${k}`)
      const c = mulSecret(b, vy, yy, `vy3_${k}`)
      const half = affine(b, c, -0.5, 0, `h${k}`)
      y = op(b, 'Add', [affine(b, y, 1.5, 0, `y15_${k}`), half], `newton${k}`)
    } else {
      const sy = mulSecret(b, v, y, `sy${k}`)
      y = mulSecret(b, y, affine(b, sy, -1, 2, `two${k}`), `newton${k}`)
    }
  }
  return y
}

function layerNorm(n: Node, cx: RewriteContext, spec: Extract<NormSpec, { method: 'newton' }>, st: LnStats, opset: number, reports: NormalizationReport[]) {
  const b: Builder = { cx, n, products: 0 }
  const x = n.inputs[0]
  const rank = n.type.shape.length
  const at = n.attrs as { axis: number; epsilon: number }
  const axis = normAxis(at.axis, rank)
  const axes = Array.from({ length: rank - axis }, (_, i) => axis + i)
  const mean = reduce(b, 'ReduceMean', x, axes, opset, 'mean')
  const d = op(b, 'Sub', [x, mean], 'd')
  const v = affine(b, reduce(b, 'ReduceMean', mulSecret(b, d, d, 'dd'), axes, opset, 'var'), 1, at.epsilon, 'veps')
  const interval = positiveInterval(st.vmin + at.epsilon, st.vmax + at.epsilon)
  const guess = fitGuess('rsqrt', interval[0], interval[1], spec.degree)
  const y = newton(b, 'rsqrt', v, op(b, 'Poly', [v], 'guess', { ...guess.poly }), spec.steps)
  const scale = cx.constant(n.inputs[1])
  const bias = n.inputs[2] ? cx.constant(n.inputs[2]) : undefined
  const ones = scale !== undefined && scale.data.every((s) => s === 1)
  const hasBias = n.inputs[2] !== undefined && n.inputs[2] !== '' && !(bias && bias.data.every((c) => c === 0))
  // the last op takes the node's name: d * y itself when there is no scale or bias to apply
  const yd = expandTo(b, y, shapeOf(b, d))
  b.products++
  const normed = ones && !hasBias ? undefined : op(b, 'Mul', [d, yd], 'normed')
  const scaled = hasBias && !ones ? op(b, 'Mul', [normed!, n.inputs[1]], 'scaled') : normed
  const gd = polyDepth(Math.max(0, guess.poly.coeffs[0].length - 1))
  reports.push({
    name: n.origin?.name || n.name,
    value: n.name,
    op: 'LayerNormalization',
    method: 'newton',
    range: [st.vmin, st.vmax],
    guessInterval: interval,
    guessDegree: guess.poly.coeffs[0].length - 1,
    guessError: guess.error,
    newtonSteps: spec.steps,
    newtonBound: newtonBound('rsqrt', guess.range, spec.steps),
    depth: 1 + gd + 2 * spec.steps + 1,
    products: b.products,
  })
  if (normed === undefined) return { op: 'Mul', inputs: [d, yd], attrs: {} }
  if (hasBias) return { op: 'Add', inputs: [scaled!, n.inputs[2]], attrs: {} }
  return { op: 'Mul', inputs: [normed!, n.inputs[1]], attrs: {} }
}

function softmaxOf(n: Node, cx: RewriteContext, spec: Exclude<SoftmaxSpec, { method: 'none' }>, st: SmStats, opset: number, reports: NormalizationReport[]) {
  const b: Builder = { cx, n, products: 0 }
  const x = n.inputs[0]
  const axis = normAxis((n.attrs as { axis: number }).axis, n.type.shape.length)
  const c = shiftOf(spec, st)
  let e: string
  let depth = 0
  const extra: Partial<NormalizationReport> = {}
  if (spec.method === 'exp' || spec.method === 'poly') {
    const [zlo, zhi] = fitInterval({ min: st.xmin - c, max: 0 })
    extra.shift = c
    extra.expInterval = [zlo, zhi]
    if (spec.method === 'exp') {
      const K = spec.squarings
      e = affine(b, x, 2 ** -K, 1 - c * 2 ** -K, 'base')
      for (let k = 0; k < K; k++) e = mulSecret(b, e, e, `sq${k}`)
      depth = K
      extra.expSquarings = K
      let err = 0
      for (let i = 0; i <= 1000; i++) {
        const t = zlo + ((zhi - zlo) * i) / 1000
        err = Math.max(err, Math.abs((1 + t / 2 ** K) ** (2 ** K) / Math.exp(t) - 1))
      }
      extra.expError = err
      // z in [zlo, zhi] must stay where 1 + z / 2^K > -1, else the power grows instead of decaying
      if (zlo < -(2 ** (K + 1))) throw new PassError(`${describeNode(n)}: exp:${K} needs 2^${K} above half the calibrated range of x - c (${(-zlo).toPrecision(3)}); use exp:${Math.ceil(Math.log2(-zlo / 2))} or more`)
    } else {
      const fit = remezFit((t) => t.map(Math.exp), zlo, zhi, spec.degree, [], (t) => Math.exp(-t))
      const z = affine(b, x, 1, -c, 'z')
      e = op(b, 'Poly', [z], 'exp', { basis: 'chebyshev', axis: 1, coeffs: [fit.coeffs], shift: [(zlo + zhi) / 2], scale: [(zhi - zlo) / 2], of: 'Exp', interval: [zlo, zhi] } satisfies PolyAttrs)
      depth = polyDepth(spec.degree)
      extra.expDegree = spec.degree
      extra.expError = fit.error
    }
  } else if (spec.method === '2quad') {
    const t = affine(b, x, 1, spec.c, 'z')
    e = mulSecret(b, t, t, 'quad')
    depth = 1
    extra.shift = -spec.c
  } else {
    e = op(b, 'Relu', [affine(b, x, 1, -c, 'z')], 'relu')
    extra.shift = c
  }
  const s = reduce(b, 'ReduceSum', e, [axis], opset, 'sum')
  const interval = positiveInterval(st.smin, st.smax)
  // exp: every row with x <= c + zhi has s <= len e^zhi; covering that keeps Newton convergent on unseen rows
  if (extra.expInterval) interval[1] = Math.max(interval[1], n.type.shape[axis] * Math.exp(extra.expInterval[1]))
  const guess = fitGuess('recip', interval[0], interval[1], spec.recip.degree)
  const r = newton(b, 'recip', s, op(b, 'Poly', [s], 'guess', { ...guess.poly }), spec.recip.steps)
  const gd = polyDepth(guess.poly.coeffs[0].length - 1)
  reports.push({
    name: n.origin?.name || n.name,
    value: n.name,
    op: 'Softmax',
    method: spec.method,
    range: [st.xmin, st.xmax],
    guessInterval: interval,
    guessDegree: guess.poly.coeffs[0].length - 1,
    guessError: guess.error,
    newtonSteps: spec.recip.steps,
    newtonBound: newtonBound('recip', guess.range, spec.recip.steps),
    ...extra,
    depth: depth + gd + 2 * spec.recip.steps + 1,
    products: b.products + 1,
  })
  const er = expandTo(b, r, shapeOf(b, e))
  return { op: 'Mul', inputs: [e, er], attrs: {} }
}

export const approximateNormalizations: Pass = {
  name: 'approximate-normalizations',
  doc: 'Replace LayerNormalization and Softmax on a secret by polynomials and Newton iterations fitted on calibration data (--approx-norm newton:D,K; --approx-softmax exp:K | poly:D | 2quad[:C] | thex [+newton:D,K]; defaults under --approx).',
  run(g, cx) {
    const { norm, softmax } = normalizationSpecs(cx.options)
    if (norm.method === 'none' && softmax.method === 'none') return g
    const secret = secretValues(g)
    const on = (n: Node) => secret.has(n.name) && secret.has(n.inputs[0])
    const stats = g.nodes.filter((n) => n.op === 'LayerNormalization' && on(n) && ((n.attrs as { output?: number }).output ?? 0) !== 0)
    if (norm.method !== 'none' && stats.length) throw new PassError(`${describeNode(stats[0])}: the graph reads LayerNormalization's output ${(stats[0].attrs as { output?: number }).output} (mean or inverse std) of a secret; --approx-norm replaces output 0 only`)
    const lns = norm.method === 'none' ? [] : g.nodes.filter((n) => n.op === 'LayerNormalization' && on(n))
    const sms = softmax.method === 'none' ? [] : g.nodes.filter((n) => n.op === 'Softmax' && on(n) && !(n.attrs as { legacy: boolean }).legacy)
    if (lns.length === 0 && sms.length === 0) return g
    if (!cx.calib) throw new PassError('--approx-norm and --approx-softmax need calibration data (--calib)')
    const st = calibrateNormalizations(g, cx, lns, sms, softmax)
    const reports: NormalizationReport[] = []
    const todo = new Set([...lns, ...sms].map((n) => n.name))
    const rule: Rule = {
      name: 'approximate-normalizations',
      on: ['LayerNormalization', 'Softmax'],
      apply: (n, rcx) => {
        if (!todo.has(n.name)) return undefined
        todo.delete(n.name)
        if (n.op === 'LayerNormalization') return layerNorm(n, rcx, norm as Extract<NormSpec, { method: 'newton' }>, st.ln.get(n.name)!, g.opset, reports)
        return softmaxOf(n, rcx, softmax as Exclude<SoftmaxSpec, { method: 'none' }>, st.sm.get(n.name)!, g.opset, reports)
      },
    }
    const out = rewrite(g, [rule])
    cx.report.normalizations = reports
    for (const r of reports)
      cx.log(`approximate-normalizations: ${r.name} (${r.op}) ${r.method}: guess degree ${r.guessDegree} on [${r.guessInterval.map((v) => v.toPrecision(3)).join(', ')}] error ${r.guessError.toPrecision(3)}, ${r.newtonSteps} Newton steps (bound ${r.newtonBound.toPrecision(3)}), depth ${r.depth}`)
    return out
  },
}
