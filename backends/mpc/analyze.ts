/**
 * The analysis: an IR graph (batch bound to 1) to sources, steps and segments. Every secret value is
 * either a *source* (the graph input, the output of a garbled step, a basis value B_k of a polynomial
 * step's input, the result of a secret product), held in masked form (the server knows x - r, the
 * client knows r), or an affine function of sources (linear, layout and constant-arithmetic ops fold
 * into one segment, in the normal form of ir/linear, evaluated locally on shares given the offline
 * correlation M r - s). Non-linear ops become steps: ReLU, partial ReLU (only the mask's ones) and
 * max pooling (a tree of comparisons, fused with a preceding ReLU) are garbled circuits; polynomials
 * (Poly, x*x, x^2) use Beaver products and fold their coefficients into the next segment; products
 * of two secrets use Beaver triples.
 */
import { instantiate } from '../../ir/builder.js'
import { describeNode, type Graph, type Node } from '../../ir/graph.js'
import {
  indexPrim, LinearAnalysis, LinearError, scalePrim, sourceAffine, type Affine, type ConvGeom, type Term,
} from '../../ir/linear.js'
import { type PolyAttrs } from '../../ir/ops/pi.js'
import { broadcastIndex } from '../../ir/ops/util.js'
import { toPowerBasis } from '../../ir/poly.js'
import { sizeOf, type Tensor } from '../../ir/tensor.js'
import { MpcLowerError, type OutputSpec, type PoolSpec, type SegmentSpec, type SourceSpec, type Step, type WindowGroup } from './types.js'

type Role = 'public' | 'source' | 'affine' | 'gc' | 'leaky' | 'poly' | 'mul' | 'fused'

export interface Analysis {
  graph: Graph
  nodes: Map<string, Node>
  roles: Map<string, Role>
  /** Sources produced by a node (Input: 1, gc: 1, poly: degree). */
  sourcesOf: Map<string, number[]>
  sources: SourceSpec[]
  steps: Step[]
  outputs: OutputSpec[]
  /** Normal forms of secret values over the sources (ir/linear), as the ops declare them. */
  linear: LinearAnalysis
  /** Per polynomial step: its input's normalization t = (x - shift) / scale, per element. */
  normalizers: Map<string, { shift: Float64Array; scale: Float64Array }>
}

function batchOne(g: Graph): Graph {
  const syms = Object.keys(g.symbols)
  if (syms.length === 0 || syms.every((k) => g.symbols[k] === 1)) return g
  return instantiate(g, Object.fromEntries(syms.map((k) => [k, 1])))
}

/** Channel of flat element i for a per-channel Poly on the given shape. */
function channelOf(shape: readonly number[], axis: number, channels: number): (i: number) => number {
  if (channels === 1) return () => 0
  const ax = axis < 0 ? axis + shape.length : axis
  const inner = sizeOf(shape.slice(ax + 1))
  return (i) => Math.floor(i / inner) % channels
}

interface PolyForm {
  basis: 'power' | 'chebyshev'
  /** Per channel, coefficients in the basis of t = (x - shift) / scale. */
  rows: number[][]
  shift: number[]
  scale: number[]
  axis: number
}

function trim(c: readonly number[]): number[] {
  let d = c.length - 1
  while (d > 0 && c[d] === 0) d--
  return c.slice(0, d + 1)
}

/** Chebyshev polynomials stay in their basis; Hermite and power series become powers of t. */
function polyForm(a: PolyAttrs): PolyForm {
  const cheb = a.basis === 'chebyshev'
  return {
    basis: cheb ? 'chebyshev' : 'power',
    rows: a.coeffs.map((c) => trim(cheb ? c : toPowerBasis(a.basis, c, 0, 1))),
    shift: a.shift,
    scale: a.scale,
    axis: a.axis,
  }
}

const SQUARE: PolyForm = { basis: 'power', rows: [[0, 0, 1]], shift: [0], scale: [1], axis: 1 }

/** Largest polynomial degree the backend evaluates (Beaver products level by level). */
export const MAX_POLY_DEGREE = 64

/** For each output position of one plane, the input positions of its window (from the declared geometry). */
function poolWindows(n: Node, w: ConvGeom): PoolSpec {
  const planeIn = w.h * w.w
  const planeOut = w.oh * w.ow
  const windows: number[][] = []
  for (let oh = 0; oh < w.oh; oh++)
    for (let ow = 0; ow < w.ow; ow++) {
      const win: number[] = []
      for (let ki = 0; ki < w.kh; ki++) {
        const ih = oh * w.strides[0] - w.pads[0] + ki * w.dilations[0]
        if (ih < 0 || ih >= w.h) continue
        for (let kj = 0; kj < w.kw; kj++) {
          const iw = ow * w.strides[1] - w.pads[1] + kj * w.dilations[1]
          if (iw >= 0 && iw < w.w) win.push(ih * w.w + iw)
        }
      }
      if (!win.length) throw new MpcLowerError(`${describeNode(n)}: a pooling window covers no input`)
      windows.push(win)
    }
  return { planes: w.c, planeIn, planeOut, windows }
}

function groupsOf(pool: PoolSpec): WindowGroup[] {
  const count = new Map<number, number>()
  for (const w of pool.windows) count.set(w.length, (count.get(w.length) ?? 0) + pool.planes)
  return [...count.entries()].sort((a, b) => a[0] - b[0]).map(([k, c]) => ({ k, count: c }))
}

/** Positions where a broadcast 0/1 mask is one (ascending). */
function onesOf(mask: Tensor, shape: readonly number[]): number[] {
  const idx = broadcastIndex(mask.shape, shape)
  const pos: number[] = []
  for (let i = 0; i < sizeOf(shape); i++) if (mask.data[idx ? idx[i] : i] !== 0) pos.push(i)
  return pos
}

/**
 * Classify nodes by their declared secret form, form steps and segments. Comparisons become garbled
 * steps, polynomials and products Beaver steps; every other secret value is a segment, an affine
 * function of sources in the normal form of ir/linear.
 */
export function analyze(g0: Graph): Analysis {
  const g = batchOne(g0)
  const outputs = new Set(g.outputs)
  const roles = new Map<string, Role>()
  const sources: SourceSpec[] = []
  const sourcesOf = new Map<string, number[]>()
  const steps: Step[] = []
  /** Normal forms of the values the steps define (sources, polynomial outputs, leaky ReLUs). */
  const defined = new Map<string, Affine>()
  const linear = new LinearAnalysis(g, (n) => {
    const role = roles.get(n.name)
    if (role === 'fused') throw new MpcLowerError(`internal: fused ReLU '${n.name}' read outside its pool`)
    return defined.get(n.name)
  })
  const nodes = linear.nodes
  const consumers = new Map<string, Node[]>()
  for (const n of g.nodes) for (const i of n.inputs) if (i) consumers.set(i, [...(consumers.get(i) ?? []), n])
  const newSource = (node: string, power: number, size: number) => {
    const s = { id: sources.length, node, power, size }
    sources.push(s)
    return s.id
  }
  const define = (n: Node, ids: number[], a?: Affine) => {
    sourcesOf.set(n.name, ids)
    defined.set(n.name, a ?? sourceAffine(ids[0], n.type.shape))
  }

  const affineOf = (v: string): Affine => {
    try {
      return linear.affine(v)
    } catch (e) {
      if (e instanceof LinearError) throw new MpcLowerError(e.message)
      throw e
    }
  }
  const segment = (v: string): SegmentSpec => ({
    node: v,
    size: sizeOf(nodes.get(v)!.type.shape),
    sources: [...new Set(affineOf(v).terms.map((t) => t.source))].sort((a, b) => a - b),
  })

  const addPoly = (n: Node, x: string, form: PolyForm, mask: Tensor | undefined) => {
    const rows = form.rows
    const xt = nodes.get(x)!.type
    const size = sizeOf(xt.shape)
    const chan = channelOf(xt.shape, form.axis, rows.length)
    const positions = mask ? onesOf(mask, xt.shape) : null
    const degree = Math.max(1, ...rows.map((r) => r.length - 1))
    if (degree > MAX_POLY_DEGREE) throw new MpcLowerError(`${describeNode(n)}: polynomials of degree ${degree} are not supported by the mpc backend (at most ${MAX_POLY_DEGREE})`)
    if (form.scale.some((v) => !(v > 0) || !Number.isFinite(v))) throw new MpcLowerError(`${describeNode(n)}: polynomial scale must be positive`)
    const m = positions ? positions.length : size
    const ids = [newSource(n.name, 1, size)]
    for (let k = 2; k <= degree; k++) ids.push(newSource(n.name, k, m))
    const normChan = channelOf(xt.shape, form.axis, form.shift.length)
    // y = c_0 + c_1 t + sum_k c_k B_k(t) on the positions, x = scale t + shift elsewhere
    const on = new Uint8Array(size).fill(positions ? 0 : 1)
    if (positions) for (const i of positions) on[i] = 1
    const coef = (i: number, k: number) => rows[chan(i)][k] ?? 0
    const bias = Float64Array.from({ length: size }, (_, i) => (on[i] ? coef(i, 0) : form.shift[normChan(i)]))
    const keep = (want: number) => Int32Array.from({ length: size }, (_, i) => (on[i] === want ? i : -1))
    const terms: Term[] = []
    terms.push({ source: ids[0], prims: [...(positions ? [indexPrim(xt.shape, xt.shape, keep(1))] : []), scalePrim(xt.shape, Float64Array.from({ length: size }, (_, i) => (on[i] ? coef(i, 1) : NaN)))] })
    if (positions) terms.push({ source: ids[0], prims: [indexPrim(xt.shape, xt.shape, keep(0)), scalePrim(xt.shape, Float64Array.from({ length: size }, (_, i) => (on[i] ? NaN : form.scale[normChan(i)])))] })
    const scatter = positions ? Int32Array.from({ length: size }, () => -1) : undefined
    if (scatter) positions!.forEach((p, j) => (scatter[p] = j))
    for (let k = 2; k <= degree; k++)
      terms.push({ source: ids[k - 1], prims: [...(scatter ? [indexPrim([m], xt.shape, scatter)] : []), scalePrim(xt.shape, Float64Array.from({ length: size }, (_, i) => (on[i] ? coef(i, k) : NaN)))] })
    define(n, ids, { shape: xt.shape, terms, bias })
    const seg = { ...segment(x), normalizedFor: n.name }
    normalizers.set(n.name, {
      shift: Float64Array.from({ length: size }, (_, i) => form.shift[normChan(i)]),
      scale: Float64Array.from({ length: size }, (_, i) => form.scale[normChan(i)]),
    })
    steps.push({ kind: 'poly', name: n.origin?.name || n.name, op: n.op, node: n.name, segment: seg, degree, basis: form.basis, positions, sources: ids })
    roles.set(n.name, 'poly')
  }
  const normalizers = new Map<string, { shift: Float64Array; scale: Float64Array }>()

  function gcElementwise(n: Node, x: string, positions: number[] | null): void {
    const size = sizeOf(n.type.shape)
    const count = positions ? positions.length : size
    const src = newSource(n.name, 1, size)
    define(n, [src])
    roles.set(n.name, 'gc')
    steps.push({
      kind: 'gc', name: n.origin?.name || n.name, op: n.op, node: n.name, relu: true, segment: segment(x),
      positions: positions && positions.length === size ? null : positions, groups: count > 0 ? [{ k: 1, count }] : [], identity: size - count, source: src, outSize: size,
    })
  }

  const isMaxPool = (n: Node) => {
    const f = linear.form(n)
    return f.form === 'compare' && f.what === 'max'
  }

  for (const n of g.nodes) {
    if (n.op === 'Input') {
      roles.set(n.name, 'source')
      define(n, [newSource(n.name, 1, sizeOf(n.type.shape))])
      continue
    }
    const f = linear.form(n)
    const x = n.inputs[0]
    if (f.form === 'public') roles.set(n.name, 'public')
    else if (f.form === 'layout' || f.form === 'affine') roles.set(n.name, 'affine')
    else if (f.form === 'compare' && f.what === 'relu') {
      if (f.slope) {
        gcElementwise(n, x, null)
        const r = defined.get(n.name)!
        const xa = affineOf(x)
        const slope = f.slope
        const keepShape = n.type.shape
        defined.set(n.name, {
          shape: keepShape,
          terms: [
            { source: r.terms[0].source, prims: [scalePrim(keepShape, slope.map((s) => 1 - s))] },
            ...xa.terms.map((t) => ({ source: t.source, prims: [...t.prims, scalePrim(keepShape, slope)] })),
          ],
          bias: xa.bias.map((b, i) => slope[i] * b),
        })
        roles.set(n.name, 'leaky')
      } else if (f.positions) gcElementwise(n, x, onesOf(f.positions, nodes.get(x)!.type.shape))
      else {
        const cs = consumers.get(n.name) ?? []
        if (cs.length === 1 && !outputs.has(n.name) && isMaxPool(cs[0])) roles.set(n.name, 'fused')
        else gcElementwise(n, x, null)
      }
    } else if (f.form === 'compare') {
      const fused = roles.get(x) === 'fused'
      const input = fused ? nodes.get(x)!.inputs[0] : x
      const pool = poolWindows(n, f.window)
      const outSize = sizeOf(n.type.shape)
      const src = newSource(n.name, 1, outSize)
      define(n, [src])
      roles.set(n.name, 'gc')
      steps.push({
        kind: 'gc', name: n.origin?.name || n.name, op: fused ? `Relu+${n.op}` : n.op, node: n.name, relu: fused, segment: segment(input),
        positions: null, pool, groups: groupsOf(pool), identity: 0, source: src, outSize,
      })
    } else if (f.form === 'poly') addPoly(n, x, polyForm(f.poly), f.positions)
    else if (f.form === 'product') {
      const secretIns = n.inputs.filter((i) => i && linear.secret.has(i))
      if (secretIns.length === 2 && n.inputs[0] === n.inputs[1]) addPoly(n, x, SQUARE, undefined)
      else if (secretIns.length === 2 && n.inputs.length === 2) {
        const size = sizeOf(n.type.shape)
        if (n.inputs.some((i) => sizeOf(nodes.get(i)!.type.shape) !== size))
          throw new MpcLowerError(`${describeNode(n)}: products of two secret values must not broadcast in the mpc backend`)
        const src = newSource(n.name, 1, size)
        define(n, [src])
        roles.set(n.name, 'mul')
        steps.push({ kind: 'mul', name: n.origin?.name || n.name, op: n.op, node: n.name, segment: segment(n.inputs[0]), segment2: segment(n.inputs[1]), source: src })
      } else throw new MpcLowerError(`${describeNode(n)}: secret weights are not supported by the mpc backend`)
    } else if (f.form === 'nonpoly' && f.why) throw new MpcLowerError(`${describeNode(n)}: ${f.why}`)
    else
      throw new MpcLowerError(
        `${describeNode(n)}: op ${n.op} is not supported by the mpc backend (ReLU, partial ReLU, max pooling and polynomials are; approximate others with --approx)`,
      )
  }

  const outs: OutputSpec[] = g.outputs.map((o) => {
    if (!linear.secret.has(o)) throw new MpcLowerError(`graph output '${o}' does not depend on the input`)
    return { node: o, shape: [...nodes.get(o)!.type.shape], segment: segment(o) }
  })
  return { graph: g, nodes, roles, sourcesOf, sources, steps, outputs: outs, linear, normalizers }
}

/** A segment's normal form over the sources, normalized per element when it feeds a polynomial step. */
export function segmentAffine(an: Analysis, spec: SegmentSpec): Affine {
  const a = an.linear.affine(spec.node)
  if (!spec.normalizedFor) return a
  const { shift, scale } = an.normalizers.get(spec.normalizedFor)!
  const inv = scale.map((v) => 1 / v)
  return {
    shape: a.shape,
    terms: a.terms.map((t) => ({ source: t.source, prims: [...t.prims, scalePrim(a.shape, inv)] })),
    bias: a.bias.map((b, i) => (b - shift[i]) * inv[i]),
  }
}
