/**
 * approximate: replace every non-polynomial elementwise activation by a fitted polynomial (`Poly`),
 * from calibration statistics. Options (cx.options):
 * - `approx`: 'none' | 'hermite:D' | 'chebyshev:D' | 'minimax:D' | 'wls:D' | 'ola[:BUDGET]' (see parseApprox).
 * - `keepRelu`: leave Relu and PartialRelu exact (MPC: they go to garbled circuits).
 * - `costModel`: OLA's cost model (default depth + non-scalar multiplications).
 * Abs (from the MaxPool lowering) becomes x * p(x) with p a polynomial sign; PartialRelu keeps its
 * mask and gets `poly` for the masked positions only. The per-layer report (`cx.report.layers`) gives
 * method, degree, interval or statistics and the measured error on the calibration values.
 * A fit is refused (PassError naming the node, method and degree) when its coefficients are not
 * finite, or when the approximated graph, run on the calibration data, gives NaN or an infinity at
 * an approximated activation (a high degree whose values explode off its interval, often fed by an
 * earlier fit that already did).
 */
import { describeNode, type Graph, type Node } from '../ir/graph.js'
import { applyPoly, polyDegree, polyDepth, type PolyAttrs } from '../ir/ops/pi.js'
import { rewrite, type Rule } from '../ir/rewrite.js'
import { nonPolynomialNodes, secretValues } from '../ir/stats.js'
import { tensor, type Tensor } from '../ir/tensor.js'
import { activations, RELU_OPS, type Activation } from './activations.js'
import { calibrate, valueRanges, type ActivationStats } from './calibrate.js'
import { chebyshevFit, fitInterval, hermiteFit, remezFit } from './fit.js'
import { ola, olaPoly, type CostModel } from './ola.js'
import { PassError, type Pass, type PassContext } from './pass.js'

export type ApproxSpec =
  | { method: 'none' }
  | { method: 'hermite' | 'chebyshev' | 'minimax' | 'wls'; degree: number; degrees?: readonly number[] }
  | { method: 'ola'; budget: number }

export const MAX_DEGREE = 127

/**
 * Parse `--approx`: none, hermite:D, chebyshev:D, minimax:D, wls:D (OLA's density-weighted
 * least-squares fit, one degree for every layer), ola[:BUDGET]. Instead of D, a list D1,D2,...
 * gives one degree per approximated layer in graph order (`degree` is then the largest; replays a
 * choice OLA reported without searching again).
 */
export function parseApprox(spec: string): ApproxSpec {
  const [method, arg, ...rest] = spec.trim().split(':')
  const bad = (why: string) => new PassError(`--approx '${spec}': ${why}`)
  if (rest.length) throw bad('too many fields')
  if (method === 'none' && arg === undefined) return { method: 'none' }
  if (method === 'ola') {
    if (arg === undefined) return { method: 'ola', budget: 0.01 }
    const budget = Number(arg)
    if (!/^\d*\.?\d+(e-?\d+)?$/i.test(arg) || !(budget >= 0 && budget <= 1)) throw bad('the OLA budget must be a number between 0 and 1')
    return { method: 'ola', budget }
  }
  if (method === 'hermite' || method === 'chebyshev' || method === 'minimax' || method === 'wls') {
    const list = (arg ?? '').split(',')
    const degrees = list.map(Number)
    if (arg === undefined || !list.every((d) => /^\d+$/.test(d)) || degrees.some((d) => d < 1 || d > MAX_DEGREE)) throw bad(`the degree must be an integer from 1 to ${MAX_DEGREE} (or a list D1,D2,... of them, one per layer)`)
    return list.length === 1 ? { method, degree: degrees[0] } : { method, degree: Math.max(...degrees), degrees }
  }
  throw bad('expected none, hermite:D, chebyshev:D, minimax:D, wls:D or ola[:BUDGET]')
}

export function approxSpec(options: Readonly<Record<string, unknown>>): ApproxSpec {
  const a = options.approx
  if (a === undefined) return { method: 'none' }
  return typeof a === 'string' ? parseApprox(a) : (a as ApproxSpec)
}

/** AESPA-style per-channel Hermite fit from the channels' mean and std. */
export function hermitePoly(act: Activation, st: ActivationStats, degree: number): PolyAttrs {
  const ch = st.channels
  const C = ch.mean.length
  const shift: number[] = []
  const scale: number[] = []
  const coeffs: number[][] = []
  for (let c = 0; c < C; c++) {
    const mu = ch.count[c] ? ch.mean[c] : st.mean
    const sd = ch.count[c] ? ch.std[c] : st.std
    const s = Math.max(sd, 1e-6 * Math.max(1, Math.abs(mu)))
    shift.push(mu)
    scale.push(s)
    coeffs.push(hermiteFit(act.fn, mu, s, degree, act.kinks))
  }
  return { basis: 'hermite', axis: 1, coeffs, shift, scale, of: act.target, interval: [st.min, st.max] }
}

/** Uniform-degree fit over the calibrated range: Chebyshev projection or Remez minimax. */
export function rangePoly(act: Activation, st: ActivationStats, degree: number, method: 'chebyshev' | 'minimax'): PolyAttrs {
  const [lo, hi] = fitInterval(st)
  // for a sign inside x * p(x), minimax weighs the error by |x|: it bounds the error of |x| itself
  const weight = act.target === 'Sign' ? Math.abs : undefined
  const coeffs = method === 'chebyshev' ? chebyshevFit(act.fn, lo, hi, degree, act.kinks) : remezFit(act.fn, lo, hi, degree, act.kinks, weight).coeffs
  return { basis: 'chebyshev', axis: 1, coeffs: [coeffs], shift: [(lo + hi) / 2], scale: [(hi - lo) / 2], of: act.target, interval: [lo, hi] }
}

export interface LayerReport {
  /** ONNX node name (for MaxPool's lowered Abs nodes, the MaxPool's). */
  name: string
  /** The IR value the activation computes (unique). */
  value: string
  op: string
  method: string
  /** Basis of the fitted polynomial (OLA may pick the per-channel Hermite fit at low degrees). */
  basis: string
  degree: number
  depth: number
  interval?: [number, number]
  stats: { mean: number; std: number; min: number; max: number }
  /** Errors of the activation's polynomial on the calibration values of its input. */
  maxAbsError: number
  rmsError: number
  /** OLA: drop in top-1 agreement on the calibration data with only this layer approximated. */
  agreementDrop?: number
  cost?: number
}

/** Max and RMS error of the replacement on the sampled calibration inputs. */
export function measureError(act: Activation, st: ActivationStats, p: PolyAttrs): { maxAbsError: number; rmsError: number } {
  const { x, channel } = st.sample
  if (x.length === 0) return { maxAbsError: 0, rmsError: 0 }
  const C = p.coeffs.length
  const y = new Float64Array(x.length)
  for (let c = 0; c < C; c++) {
    const idx = C === 1 ? Array.from(x.keys()) : Array.from(channel.keys()).filter((i) => channel[i] === c)
    if (!idx.length) continue
    const row = { ...p, coeffs: [p.coeffs[c]], shift: [p.shift[c]], scale: [p.scale[c]] }
    const v = applyPoly(row, tensor('float64', [idx.length], Float64Array.from(idx, (i) => x[i])))
    idx.forEach((i, k) => (y[i] = act.target === 'Sign' ? v[k] * x[i] : v[k]))
  }
  const truth = act.target === 'Sign' ? x.map(Math.abs) : act.fn(x)
  let max = 0
  let sq = 0
  for (let i = 0; i < x.length; i++) {
    const e = Math.abs(y[i] - truth[i])
    max = Math.max(max, e)
    sq += e * e
  }
  return { maxAbsError: max, rmsError: Math.sqrt(sq / x.length) }
}

/** The activations the spec approximates: all of them, or all but ReLU under keepRelu. */
export function targets(g: Graph, keepRelu: boolean): Activation[] {
  const secret = secretValues(g)
  return activations(g).filter((a) => secret.has(a.node.name) && !(keepRelu && RELU_OPS.has(a.node.op)))
}

function replacementRule(fits: ReadonlyMap<string, PolyAttrs>, ops: readonly string[]): Rule {
  return {
    name: 'approximate',
    on: [...new Set(ops)],
    apply: (n: Node, cx) => {
      const p = fits.get(n.name)
      if (!p) return undefined
      if (n.op === 'PartialRelu') return { op: 'PartialRelu', inputs: n.inputs, attrs: { ...n.attrs, poly: p } }
      if (n.op === 'Abs') return { op: 'Mul', inputs: [n.inputs[0], cx.add('Poly', [n.inputs[0]], { ...p }, `${n.name}_sign`, n.origin)], attrs: {} }
      return { op: 'Poly', inputs: [n.inputs[0]], attrs: { ...p } }
    },
  }
}

/** Fit every target activation by the spec; returns the fits and the per-layer report. */
export function fitActivations(g: Graph, cx: PassContext, spec: Exclude<ApproxSpec, { method: 'none' }>, acts: readonly Activation[]): { fits: Map<string, PolyAttrs>; layers: LayerReport[] } {
  if (!cx.calib) throw new PassError(`--approx ${spec.method} needs calibration data (--calib)`)
  const stats = calibrate(g, cx.calib, { nodes: acts.map((a) => a.node.name), log: cx.log, accel: cx.accel })
  const fits = new Map<string, PolyAttrs>()
  const extra = new Map<string, Partial<LayerReport>>()
  if (spec.method === 'ola') {
    const layers = acts.map((act) => ({ act, stats: stats.get(act.node.name)! }))
    const r = ola(g, layers, cx.calib, { budget: spec.budget, costModel: cx.options.costModel as CostModel | undefined, fits: [hermitePoly], log: cx.log, accel: cx.accel })
    for (const [name, c] of r.choices) {
      fits.set(name, c.poly)
      extra.set(name, { agreementDrop: c.error, cost: c.cost })
    }
    cx.report.ola = { budget: spec.budget, jointAgreementDrop: r.jointError, totalCost: r.totalCost, samples: r.samples, jointSamples: r.jointSamples }
    const chosen = acts.map((a) => r.choices.get(a.node.name)!)
    // the weighted fits at these degrees are the choice itself (a per-channel Hermite pick is not)
    if (chosen.every((c) => c.poly.basis === 'chebyshev')) cx.log(`ola: chosen degrees ${chosen.map((c) => c.degree).join(',')} (--approx wls:${chosen.map((c) => c.degree).join(',')} fits the same polynomials without searching again)`)
  } else {
    if (spec.degrees && spec.degrees.length !== acts.length)
      throw new PassError(`--approx ${spec.method}:${spec.degrees.join(',')}: ${spec.degrees.length} degrees given for ${acts.length} approximated layers (${acts.map((a) => a.node.origin?.name || a.node.name).join(', ')})`)
    for (const [l, act] of acts.entries()) {
      const st = stats.get(act.node.name)!
      const d = spec.degrees?.[l] ?? spec.degree
      fits.set(act.node.name, spec.method === 'hermite' ? hermitePoly(act, st, d) : spec.method === 'wls' ? olaPoly(act, st, d) : rangePoly(act, st, d, spec.method))
    }
  }
  for (const act of acts) {
    const p = fits.get(act.node.name)!
    if (![...p.coeffs.flat(), ...p.shift, ...p.scale].every(Number.isFinite))
      throw new PassError(`${describeNode(act.node)}: the ${spec.method} fit of degree ${polyDegree(p)} has NaN or infinite coefficients; use a lower degree`)
  }
  const layers: LayerReport[] = acts.map((act) => {
    const st = stats.get(act.node.name)!
    const p = fits.get(act.node.name)!
    const d = polyDegree(p)
    return {
      name: act.node.origin?.name || act.node.name,
      value: act.node.name,
      op: act.node.op,
      method: spec.method,
      basis: p.basis,
      degree: d,
      depth: polyDepth(d) + (act.target === 'Sign' || act.node.op === 'PartialRelu' ? 1 : 0),
      interval: p.interval,
      stats: { mean: st.mean, std: st.std, min: st.min, max: st.max },
      ...measureError(act, st, p),
      ...extra.get(act.node.name),
    }
  })
  return { fits, layers }
}

/**
 * Run the approximated graph on the calibration data; the first approximated activation (graph
 * order) whose value holds NaN or an infinity is refused, with its fit and its input's range.
 */
function refuseNonFinite(out: Graph, calib: Tensor, acts: readonly Activation[], layers: readonly LayerReport[], cx: PassContext): void {
  const { maxAbs } = valueRanges(out, calib, { accel: cx.accel })
  const byName = new Map(out.nodes.map((n) => [n.name, n]))
  for (const [i, act] of acts.entries()) {
    if (Number.isFinite(maxAbs.get(act.node.name) ?? 0)) continue
    const l = layers[i]
    const input = maxAbs.get(byName.get(act.node.name)?.inputs[0] ?? '')
    const range = l.interval ? `fitted on [${l.interval.map((v) => v.toPrecision(3)).join(', ')}]` : 'fitted'
    // an input already out of all proportion: name the earlier fit whose values grew most
    const earlier = acts.slice(0, i).map((a, k) => ({ a, k, m: maxAbs.get(a.node.name) ?? 0 })).sort((x, y) => y.m - x.m)[0]
    const cause = earlier && !(input !== undefined && input <= 1e6) ? `, after ${describeNode(earlier.a.node)} (${layers[earlier.k].method} degree ${layers[earlier.k].degree}) reached |y| = ${earlier.m.toPrecision(3)}` : ''
    throw new PassError(
      `${describeNode(act.node)}: the ${l.method} fit of degree ${l.degree} gives NaN or infinite values on the calibration data (${range}; its input reaches |x| = ${input === undefined ? '?' : input.toPrecision(3)}${cause}); use a lower degree${l.method === 'hermite' ? ' or a fit over the calibrated range (chebyshev:D, minimax:D, ola)' : ''}`,
    )
  }
}

export const approximate: Pass = {
  name: 'approximate',
  doc: 'Replace non-polynomial activations by fitted polynomials (--approx hermite:D | chebyshev:D | minimax:D | wls:D | ola[:BUDGET]; --keep-relu keeps ReLU).',
  run(g, cx) {
    const spec = approxSpec(cx.options)
    if (spec.method === 'none') return g
    const keepRelu = cx.options.keepRelu === true
    const acts = targets(g, keepRelu)
    if (acts.length === 0) return g
    const { fits, layers } = fitActivations(g, cx, spec, acts)
    cx.report.layers = layers
    const out = rewrite(g, [replacementRule(fits, acts.map((a) => a.node.op))])
    if (cx.calib) refuseNonFinite(out, cx.calib, acts, layers, cx)
    const left = nonPolynomialNodes(out).filter((n) => !(keepRelu && (RELU_OPS.has(n.op) || n.op === 'MaxPool')))
    if (left.length) cx.log(`approximate: left non-polynomial: ${left.map((n) => `${n.origin?.name || n.name} (${n.op})`).join(', ')}`)
    return out
  },
}
