/**
 * Value ranges against the fixed-point headroom (issue 12, item 7), and the truncation failure
 * probability per inference.
 *
 * Where a value sits in the ring (f = fracBits, w = weightFracBits, Z_2^64, values signed):
 *   - a segment's value y (every step's input, every graph output, a product's factors) at 2^(f + w);
 *     it must hold |y| 2^(f + w) < 2^63, and where it enters a garbled circuit, whose adder reads only
 *     the low gcBits = intBits + f + w + 1 bits of each share, |y| 2^(f + w) < 2^(gcBits - 1), that is
 *     |y| < 2^intBits. Past either bound the value wraps: deterministic garbage.
 *   - a Beaver product (polynomial levels, products of two secrets) at 2^(2f) before its truncation:
 *     |p| 2^(2f) < 2^63.
 *
 * SecureML local truncation (ring.ts truncShare), the variant implemented: the client (party 0)
 * shifts its share x0, the server (party 1) shifts the negation of its share and negates back, so
 * the result is floor(x0 / 2^k) - floor((x0 - x) / 2^k) whenever the integer x0 - x stays in
 * [0, 2^64), which is x / 2^k up to one unit; otherwise it is off by about 2^(64 - k). For x > 0 it
 * fails iff x0 < x, for x < 0 iff x0 >= 2^64 - |x|. The client's share is uniform and independent of x
 * at every truncation (it is M r - s, or a Beaver product share, with the server's uniform mask), so
 * P[fail] = |x| / 2^64 exactly, at most 2^(l - 64) for |x| < 2^l: half the 2^(l + 1 - 64) of
 * Mohassel and Zhang, SecureML (S&P 2017), Theorem 1. The union over every truncated element of one
 * inference bounds its failure probability: sum_i |x_i|max / 2^64.
 *
 * Bounds: with calibration data, each value's observed max |x| on the calibration set (the compiled
 * graph run by the interpreter, passes/calibrate.ts valueRanges) times a margin (default 2). A
 * polynomial's input is measured as the normalized t = (x - shift) / scale, per element; its basis
 * values are bounded from t's bound (|t|^k, or max(1, T_k(|t|)) for Chebyshev), a product of two
 * secrets by the product of its factors' bounds. A bound beyond the garbled circuits' width widens
 * intBits (more labels per ReLU; the schedule carries its own params) unless the caller fixed it; a
 * bound beyond the ring, or a failure probability above the accepted limit, is refused in one line
 * naming the node. The default limit, 2^-12 per inference (one in 4,096), accepts what the trained
 * fixtures reach with calibration (2^-25 to 2^-13.5: fmnist32 resnet20_senet's partial-ReLU
 * identity positions the most, 2^1.5 below the limit); --truncation-limit sets it. Fewer fraction
 * bits would lower the probability at a cost in precision the compiler cannot measure here, so it
 * refuses rather than narrowing them. Without calibration nothing is checked (`ranges:
 * 'unchecked'`) and the failure probability is stated under the assumption that every
 * truncated value is below the circuits' bound 2^(gcBits - 1) ring units.
 */
import { describeNode } from '../../ir/graph.js'
import type { ValueRanges } from '../../passes/calibrate.js'
import type { Analysis } from './analyze.js'
import type { MpcParams } from './cost.js'
import { segmentsOf } from './steps/linear.js'
import { polyLevels } from './steps/poly.js'
import { MpcLowerError, type RangeReport, type SegmentSpec, type TruncationReport } from './types.js'

export const DEFAULT_RANGE_MARGIN = 2
export const DEFAULT_TRUNCATION_LIMIT = 2 ** -12

export interface RangeOptions {
  /** Observed ranges of the graph's values on calibration data; absent: unchecked. */
  ranges?: ValueRanges
  /** Factor applied to every observed max |x| (default 2). */
  margin?: number
  /** Largest accepted truncation failure probability per inference (default 2^-12). */
  truncationLimit?: number
  /** Refuse instead of widening intBits (the caller chose it). */
  fixedIntBits?: boolean
}

/** A value the protocol holds in the ring, with its bound and where it must stay. */
interface Site {
  node: string
  what: 'garbled input' | 'segment' | 'product'
  /** Largest |value| (real units) after the margin. */
  bound: number
  /** log2 of the value's ring scale. */
  scaleBits: number
  /** |value| 2^scaleBits must stay below 2^limitBits. */
  limitBits: number
}

/** Truncated elements of one site: sum of their ring bounds, their count. */
interface Trunc {
  node: string
  elements: number
  /** sum_i bound_i 2^scaleBits (ring units). */
  ringSum: number
}

const sig = (x: number) => Number(x.toPrecision(6))
const fmt = (x: number) => (Number.isFinite(x) ? x.toPrecision(3) : String(x))
const log2s = (x: number) => (x > 0 ? `2^${Math.log2(x).toFixed(1)}` : '0')

/** |T_k(t)| for |t| <= b: 1 inside [-1, 1], cosh(k acosh b) beyond. */
function chebBound(k: number, b: number): number {
  return b <= 1 ? 1 : Math.cosh(k * Math.acosh(b))
}

/** The check's result: what the schedule records and the params it must use (intBits maybe widened). */
export interface RangeResult {
  params: MpcParams
  ranges: RangeReport
  truncation: TruncationReport
}

/**
 * Check every value's bound against the headroom of `params` (widening intBits where the circuits'
 * width is what is short) and compute the truncation failure probability per inference.
 */
export function checkRanges(an: Analysis, params: MpcParams, o: RangeOptions, withParams: (intBits: number) => MpcParams): RangeResult {
  const limit = o.truncationLimit ?? DEFAULT_TRUNCATION_LIMIT
  const margin = o.margin ?? DEFAULT_RANGE_MARGIN
  if (!(limit > 0 && limit <= 1)) throw new MpcLowerError(`the truncation failure limit must be in (0, 1], got ${limit}`)
  if (!(margin >= 1 && Number.isFinite(margin))) throw new MpcLowerError(`the range margin must be a number >= 1, got ${margin}`)
  const name = (node: string) => {
    const n = an.nodes.get(node)
    return n ? describeNode(n) : `node '${node}'`
  }
  if (!o.ranges) {
    // no data: the design bound, assumed at every truncated element
    const t = truncations(an, params, () => 2 ** (params.gcBits - 1 - params.fracBits - params.weightFracBits), undefined)
    return { params, ranges: 'unchecked', truncation: report(t, 'assumed', limit) }
  }
  const R = o.ranges
  const observed = (node: string) => {
    const v = R.maxAbs.get(node)
    if (v === undefined) throw new MpcLowerError(`internal: no calibrated range for '${node}'`)
    return v
  }
  const bound = (node: string) => margin * observed(node)
  const tBounds = normalizedBounds(an, R, margin)
  const segBound = (seg: SegmentSpec) => (seg.normalizedFor ? max(tBounds.get(seg.normalizedFor)!) : bound(seg.node))

  // widen the circuits' width to the largest garbled input
  let p = params
  const wf = p.fracBits + p.weightFracBits
  let widest: { node: string; bound: number } | undefined
  for (const st of an.steps) {
    if (st.kind !== 'gc') continue
    const b = segBound(st.segment)
    if (!widest || b > widest.bound) widest = { node: st.segment.node, bound: b }
  }
  let widened: { from: number; to: number; node: string } | undefined
  if (widest && !(widest.bound < 2 ** p.intBits)) {
    const need = Math.max(p.intBits, Math.floor(Math.log2(widest.bound)) + 1)
    const most = p.ringBits - 1 - wf
    const why = `${name(widest.node)}: |y| <= ${fmt(widest.bound)} (calibrated max ${fmt(widest.bound / margin)} times the margin ${margin})`
    if (o.fixedIntBits || need > most || !Number.isFinite(widest.bound))
      throw new MpcLowerError(
        `${why} exceeds the garbled circuits' headroom 2^${p.intBits} (intBits ${p.intBits}${o.fixedIntBits ? ', fixed by the caller' : ''}; the ${p.ringBits}-bit ring holds at most 2^${most} at ${wf} fractional bits)`,
      )
    p = withParams(need)
    widened = { from: params.intBits, to: need, node: widest.node }
  }

  const sites: Site[] = []
  const seg = (s: SegmentSpec, gc: boolean) =>
    sites.push({ node: s.node, what: gc ? 'garbled input' : 'segment', bound: segBound(s), scaleBits: wf, limitBits: gc ? p.gcBits - 1 : p.ringBits - 1 })
  const gcSegs = new Set(an.steps.filter((st) => st.kind === 'gc').map((st) => st.segment))
  for (const s of segmentsOf(an)) seg(s, gcSegs.has(s))
  const trunc = truncations(an, p, bound, tBounds, (node, b) => sites.push({ node, what: 'product', bound: b, scaleBits: 2 * p.fracBits, limitBits: p.ringBits - 1 }))
  let tight: (Site & { spare: number }) | undefined
  for (const s of sites) {
    const spare = s.limitBits - s.scaleBits - Math.log2(s.bound)
    if (!(spare > 0)) {
      const where = s.what === 'garbled input' ? "the garbled circuits' headroom" : s.what === 'product' ? 'the fixed-point headroom of a product before truncation' : 'the fixed-point headroom'
      throw new MpcLowerError(
        `${name(s.node)}: |y| <= ${fmt(s.bound)}${s.what === 'product' ? '' : ` (calibrated max ${fmt(s.bound / margin)} times the margin ${margin})`} exceeds ${where} 2^${s.limitBits - s.scaleBits} (${s.scaleBits} fractional bits in the ${p.ringBits}-bit ring); the values would wrap`,
      )
    }
    if (!tight || spare < tight.spare) tight = { ...s, spare }
  }
  const tr = report(trunc, 'calibrated', limit)
  if (tr.failureProbabilityPerInference > limit) {
    const w = trunc.reduce((a, b) => (b.ringSum > a.ringSum ? b : a))
    throw new MpcLowerError(
      `truncation failure probability ${log2s(tr.failureProbabilityPerInference)} per inference exceeds the accepted ${log2s(limit)} (--truncation-limit): worst ${name(w.node)}, ${w.elements} truncated elements contributing ${log2s(w.ringSum / 2 ** 64)} (bounds from calibration times the margin ${margin}); the values are too large for ${p.fracBits + p.weightFracBits} fractional bits`,
    )
  }
  return {
    params: p,
    ranges: {
      source: 'calibration',
      samples: R.samples,
      margin,
      tightest: tight
        ? { node: tight.node, what: tight.what, bound: sig(tight.bound), headroom: 2 ** (tight.limitBits - tight.scaleBits), spareBits: sig(tight.spare) }
        : null,
      ...(widened ? { widened: { intBits: { from: widened.from, to: widened.to }, node: widened.node } } : {}),
      values: sites.map((s) => ({ node: s.node, what: s.what, bound: sig(s.bound), headroom: 2 ** (s.limitBits - s.scaleBits) })),
    },
    truncation: tr,
  }
}

function max(a: Float64Array): number {
  let m = 0
  for (const v of a) if (!(v <= m)) m = v
  return m
}

/** Per polynomial step, per element: margin times the observed max |t|, t = (x - shift) / scale. */
function normalizedBounds(an: Analysis, R: ValueRanges, margin: number): Map<string, Float64Array> {
  const out = new Map<string, Float64Array>()
  for (const st of an.steps) {
    if (st.kind !== 'poly') continue
    const e = R.elements.get(st.segment.node)
    const { shift, scale } = an.normalizers.get(st.node)!
    if (!e || e.min.length !== shift.length) throw new MpcLowerError(`internal: no per-element range for '${st.segment.node}'`)
    out.set(st.node, Float64Array.from(shift, (s, i) => (margin * Math.max(Math.abs(e.min[i] - s), Math.abs(e.max[i] - s))) / scale[i]))
  }
  return out
}

/** The nodes whose per-element ranges the check needs (the polynomial steps' inputs). */
export function elementwiseNodes(an: Analysis): Set<string> {
  return new Set(an.steps.filter((st) => st.kind === 'poly').map((st) => st.segment.node))
}

/**
 * Every SecureML truncation of one inference with the sum of its elements' ring bounds: partial-ReLU
 * identity positions and product factors at 2^(f + w) shifted by w, polynomial inputs t likewise,
 * Beaver products at 2^(2f) shifted by f. `onProduct` sees each product's bound for the ring check.
 */
function truncations(
  an: Analysis, p: MpcParams, bound: (node: string) => number, tBounds: Map<string, Float64Array> | undefined,
  onProduct?: (node: string, bound: number) => void,
): Trunc[] {
  const wf = p.fracBits + p.weightFracBits
  const out: Trunc[] = []
  const add = (node: string, elements: number, ringSum: number) => {
    if (elements > 0) out.push({ node, elements, ringSum })
  }
  // without calibration every truncated element gets the same assumed ring bound
  const assumed = tBounds === undefined ? 2 ** (p.gcBits - 1) : 0
  for (const st of an.steps) {
    if (st.kind === 'gc') add(st.segment.node, st.identity, st.identity * (assumed || bound(st.segment.node) * 2 ** wf))
    else if (st.kind === 'mul') {
      const n = st.segment.size
      if (assumed) {
        add(st.segment.node, 2 * n, 2 * n * assumed)
        add(st.node, n, n * assumed)
        continue
      }
      const b1 = bound(st.segment.node)
      const b2 = bound(st.segment2.node)
      add(st.segment.node, n, n * b1 * 2 ** wf)
      add(st.segment2.node, n, n * b2 * 2 ** wf)
      onProduct?.(st.node, b1 * b2)
      add(st.node, n, n * b1 * b2 * 2 ** (2 * p.fracBits))
    } else {
      const n = st.segment.size
      const levels = st.degree >= 2 && (st.positions ? st.positions.length : n) > 0 ? polyLevels(st.degree) : []
      const pos = st.positions ?? Array.from({ length: n }, (_, i) => i)
      const m = levels.length ? pos.length : 0
      // products: every level's squares and cross terms, B_h B_j for B_{h+j}
      const products: [number, number][] = []
      for (const lv of levels) {
        if (lv.square) products.push([lv.h, lv.h])
        for (const j of lv.js) products.push([lv.h, j])
      }
      if (assumed) {
        add(st.segment.node, n, n * assumed)
        if (m) add(st.node, m * products.length, m * products.length * assumed)
        continue
      }
      const tb = tBounds!.get(st.node)!
      let s = 0
      for (const v of tb) s += v
      add(st.segment.node, n, s * 2 ** wf)
      if (!m) continue
      const basis = (k: number, b: number) => (st.basis === 'chebyshev' ? chebBound(k, b) : b ** k)
      let sum = 0
      let worst = 0
      for (const [h, j] of products)
        for (const i of pos) {
          const b = basis(h, tb[i]) * basis(j, tb[i])
          sum += b
          if (b > worst) worst = b
        }
      onProduct?.(st.node, worst)
      add(st.node, m * products.length, sum * 2 ** (2 * p.fracBits))
    }
  }
  return out
}

function report(t: Trunc[], bounds: 'calibrated' | 'assumed', limit: number): TruncationReport {
  let sum = 0
  let elements = 0
  let worst: Trunc | undefined
  for (const x of t) {
    sum += x.ringSum
    elements += x.elements
    if (!worst || x.ringSum > worst.ringSum) worst = x
  }
  const pr = Math.min(1, sum / 2 ** 64)
  return {
    failureProbabilityPerInference: sig(pr),
    log2: pr > 0 ? sig(Math.log2(pr)) : null,
    truncatedElements: elements,
    worstNode: worst?.node ?? null,
    bounds,
    limit,
  }
}
