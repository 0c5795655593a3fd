/**
 * Lowering an IR graph to a Delphi-style two-party schedule. Every secret value is either a *source*
 * (the graph input, the output of a garbled step, or a power x^k of a polynomial step's input), held
 * in masked form (the server knows x - r, the client knows r), or an affine function of sources
 * (linear, layout and constant-arithmetic ops fold into one segment, evaluated locally on shares
 * given the offline correlation M r - s). Non-linear ops become steps: ReLU, partial ReLU (only the
 * mask's ones) and max pooling (a tree of comparisons, fused with a preceding ReLU) are garbled
 * circuits; polynomials (Poly, x*x, x^2) use Beaver squares and fold their coefficients into the
 * next segment. The schedule is plain JSON with per-step costs from the cost model.
 */
import { createHash } from 'node:crypto'
import { instantiate } from '../../ir/builder.js'
import { PicError } from '../../ir/errors.js'
import { constantOf, describeNode, type Graph, type Node } from '../../ir/graph.js'
import { OPS } from '../../ir/ops/index.js'
import { type PartialReluAttrs, type PolyAttrs } from '../../ir/ops/pi.js'
import { broadcastIndex } from '../../ir/ops/util.js'
import { toPowerBasis } from '../../ir/poly.js'
import { sizeOf, tensor, type Tensor } from '../../ir/tensor.js'
import {
  defaultParams, DEALER_TO_SERVER, frameCost, gcCost, latencyMs, mulCost, polyCost, PRESETS, round3, type MpcParams, type MsgCost, type WindowGroup,
} from './cost.js'

export class MpcLowerError extends PicError {}

export interface SourceSpec {
  id: number
  /** The node whose value (or whose input's power) this source holds. */
  node: string
  power: number
  size: number
}

export interface SegmentSpec {
  /** The value computed on shares from the sources. */
  node: string
  size: number
  sources: number[]
  /** For a polynomial step's input: the value normalized per channel, t = (x - shift) / scale. */
  normalizedFor?: string
}

export interface PoolSpec {
  planes: number
  planeIn: number
  planeOut: number
  /** For each output position of one plane, the input positions of its window. */
  windows: number[][]
}

export interface GcStep {
  kind: 'gc'
  name: string
  op: string
  node: string
  relu: boolean
  segment: SegmentSpec
  /** Elementwise steps: the ReLU positions (ascending) when not all of them; null means all. */
  positions: number[] | null
  pool?: PoolSpec
  groups: WindowGroup[]
  /** Positions passed through unchanged (partial ReLU zeros). */
  identity: number
  source: number
  outSize: number
}

export interface PolyStep {
  kind: 'poly'
  name: string
  op: string
  node: string
  segment: SegmentSpec
  degree: number
  /** Basis the sources hold: t^k, or Chebyshev T_k(t) (bounded on the fitted interval). */
  basis: 'power' | 'chebyshev'
  /** Positions the polynomial applies to (others are identity); null means all. */
  positions: number[] | null
  /** Sources of B_1(t) = t .. B_degree(t) (t covers every position, higher terms only `positions`). */
  sources: number[]
}

/** A product of two different secret values (a Beaver triple per element). */
export interface MulStep {
  kind: 'mul'
  name: string
  op: string
  node: string
  /** The first factor; `segment2` the second (same size, no broadcasting). */
  segment: SegmentSpec
  segment2: SegmentSpec
  source: number
}

export type Step = GcStep | PolyStep | MulStep

export interface OutputSpec {
  node: string
  shape: number[]
  segment: SegmentSpec
}

/** What an inference (one image) costs: in all, or in one layer. */
export interface CostCounts {
  reluCount: number
  comparisons: number
  triples: number
  andGates: number
  rounds: number
  bytes: { offline: number; online: number }
  latencyMs: Record<string, number>
}

export interface LayerRow extends CostCounts {
  name: string
  op: string
  kind: 'input' | 'gc' | 'poly' | 'output'
}

export interface MpcSchedule extends CostCounts {
  format: 'pic.mpc.schedule/1'
  backend: 'mpc'
  model: string
  fingerprint: string
  params: MpcParams
  trust: string
  input: { node: string; shape: number[]; source: number }
  sources: SourceSpec[]
  steps: Step[]
  outputs: OutputSpec[]
  offlineLatencyMs: Record<string, number>
  presets: { name: string; bandwidthBitsPerSecond: number; delayMsPerRound: number }[]
  layers: LayerRow[]
}

export const TRUST_MODEL =
  'semi-honest client and server; the offline correlations (linear-layer masks M r - s, Beaver squares, random oblivious transfers) come from a trusted dealer that sees the weights but never the input, the labels or the online messages'

type Role = 'public' | 'source' | 'affine' | 'gc' | 'leaky' | 'poly' | 'mul' | 'fused'

/** What the server knows about one poly step beyond the schedule (its coefficients are weights). */
export interface PolyDetail {
  /** Per element: coefficients c_0..c_d in the step's basis of t; null for identity positions. */
  coeffs(index: number): readonly number[] | null
  /** Per element: the normalization t = (x - shift) / scale. */
  norm(index: number): { shift: number; scale: number }
}

export interface Analysis {
  graph: Graph
  nodes: Map<string, Node>
  roles: Map<string, Role>
  /** Sources produced by a node (Input: 1, gc: 1, poly: degree). */
  sourcesOf: Map<string, number[]>
  sources: SourceSpec[]
  steps: Step[]
  outputs: OutputSpec[]
  poly: Map<string, PolyDetail>
  /** LeakyRelu / PRelu: y = (1 - slope) relu(x) + slope x, the slope per element. */
  leaky: Map<string, Float64Array>
}

function batchOne(g: Graph): Graph {
  const syms = Object.keys(g.symbols)
  if (syms.length === 0 || syms.every((k) => g.symbols[k] === 1)) return g
  return instantiate(g, Object.fromEntries(syms.map((k) => [k, 1])))
}

const GC_POOL = new Set(['MaxPool', 'GlobalMaxPool'])
const AFFINE_ARITH = new Set(['Add', 'Sub', 'Neg', 'Sum', 'Mean'])

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

function poolWindows(n: Node, inShape: readonly number[]): PoolSpec {
  const def = OPS[n.op]
  const rank = inShape.length
  if (rank < 3) throw new MpcLowerError(`${describeNode(n)}: pooling needs an [N, C, spatial...] input`)
  const spatial = inShape.slice(2)
  const probeShape = [1, 1, ...spatial]
  const probeType = { dtype: 'float64' as const, shape: probeShape }
  const outType = def.infer([probeType], n.attrs, { constant: () => undefined })
  const planeIn = sizeOf(spatial)
  const planeOut = sizeOf(outType.shape)
  if (planeIn * planeOut > 1 << 26) throw new MpcLowerError(`${describeNode(n)}: pooling plane too large to schedule`)
  const windows: number[][] = Array.from({ length: planeOut }, () => [])
  const data = new Float64Array(planeIn).fill(-1)
  for (let j = 0; j < planeIn; j++) {
    data[j] = 1
    const y = def.eval([tensor('float64', probeShape, data)], n.attrs, outType)
    for (let q = 0; q < planeOut; q++) if (y.data[q] === 1) windows[q].push(j)
    data[j] = -1
  }
  if (windows.some((w) => w.length === 0)) throw new MpcLowerError(`${describeNode(n)}: a pooling window covers no input`)
  return { planes: inShape[0] * inShape[1], planeIn, planeOut, windows }
}

function groupsOf(pool: PoolSpec): WindowGroup[] {
  const count = new Map<number, number>()
  for (const w of pool.windows) count.set(w.length, (count.get(w.length) ?? 0) + pool.planes)
  return [...count.entries()].sort((a, b) => a[0] - b[0]).map(([k, c]) => ({ k, count: c }))
}

/** Classify nodes, form steps and segments. */
export function analyze(g0: Graph): Analysis {
  const g = batchOne(g0)
  const nodes = new Map<string, Node>()
  const consumers = new Map<string, Node[]>()
  for (const n of g.nodes) {
    nodes.set(n.name, n)
    for (const i of n.inputs) if (i) consumers.set(i, [...(consumers.get(i) ?? []), n])
  }
  const outputs = new Set(g.outputs)
  const roles = new Map<string, Role>()
  const secret = (x: string) => !!x && roles.get(x) !== 'public'
  const sources: SourceSpec[] = []
  const sourcesOf = new Map<string, number[]>()
  const steps: Step[] = []
  const poly = new Map<string, PolyDetail>()
  const leaky = new Map<string, Float64Array>()
  const newSource = (node: string, power: number, size: number) => {
    const s = { id: sources.length, node, power, size }
    sources.push(s)
    return s.id
  }

  const segCache = new Map<string, number[]>()
  const segmentSources = (v: string): number[] => {
    const hit = segCache.get(v)
    if (hit) return hit
    const role = roles.get(v)
    let out: number[]
    if (role === 'public') out = []
    else if (role === 'affine') {
      const set = new Set<number>()
      for (const i of nodes.get(v)!.inputs) if (i) for (const s of segmentSources(i)) set.add(s)
      out = [...set].sort((a, b) => a - b)
    } else if (role === 'leaky') {
      const set = new Set<number>([...sourcesOf.get(v)!, ...segmentSources(nodes.get(v)!.inputs[0])])
      out = [...set].sort((a, b) => a - b)
    } else if (role === 'fused') throw new MpcLowerError(`internal: fused ReLU '${v}' read outside its pool`)
    else out = sourcesOf.get(v)!
    segCache.set(v, out)
    return out
  }
  const segment = (v: string): SegmentSpec => ({ node: v, size: sizeOf(nodes.get(v)!.type.shape), sources: segmentSources(v) })

  const addPoly = (n: Node, x: string, form: PolyForm, mask: Tensor | undefined) => {
    const rows = form.rows
    const xt = nodes.get(x)!.type
    const size = sizeOf(xt.shape)
    const chan = channelOf(xt.shape, form.axis, rows.length)
    let positions: number[] | null = null
    let isOn = (_i: number) => true
    if (mask) {
      const idx = broadcastIndex(mask.shape, xt.shape)
      isOn = (i) => mask.data[idx ? idx[i] : i] !== 0
      positions = []
      for (let i = 0; i < size; i++) if (isOn(i)) positions.push(i)
    }
    const degree = Math.max(1, ...rows.map((r) => r.length - 1))
    if (degree > MAX_POLY_DEGREE) throw new MpcLowerError(`${describeNode(n)}: polynomials of degree ${degree} are not supported by the mpc backend (at most ${MAX_POLY_DEGREE})`)
    if (form.scale.some((v) => !(v > 0) || !Number.isFinite(v))) throw new MpcLowerError(`${describeNode(n)}: polynomial scale must be positive`)
    const m = positions ? positions.length : size
    const ids = [newSource(n.name, 1, size)]
    for (let k = 2; k <= degree; k++) ids.push(newSource(n.name, k, m))
    sourcesOf.set(n.name, ids)
    const normChan = channelOf(xt.shape, form.axis, form.shift.length)
    poly.set(n.name, {
      coeffs: (i) => (isOn(i) ? rows[chan(i)] : null),
      norm: (i) => ({ shift: form.shift[normChan(i)], scale: form.scale[normChan(i)] }),
    })
    const seg = { ...segment(x), normalizedFor: n.name }
    steps.push({ kind: 'poly', name: n.origin?.name || n.name, op: n.op, node: n.name, segment: seg, degree, basis: form.basis, positions, sources: ids })
    roles.set(n.name, 'poly')
  }

  for (const n of g.nodes) {
    if (n.op === 'Input') {
      roles.set(n.name, 'source')
      sourcesOf.set(n.name, [newSource(n.name, 1, sizeOf(n.type.shape))])
      continue
    }
    const secretIns = n.inputs.filter((i) => secret(i))
    if (n.op === 'Constant' || secretIns.length === 0 || OPS[n.op].kind === 'source') {
      roles.set(n.name, 'public')
      continue
    }
    const def = OPS[n.op]
    const x = n.inputs[0]
    if ((n.op === 'LeakyRelu' || n.op === 'PRelu') && secretIns.length === 1) {
      const size = sizeOf(n.type.shape)
      let slope: Float64Array
      if (n.op === 'LeakyRelu') slope = new Float64Array(size).fill((n.attrs as { alpha: number }).alpha)
      else {
        const sn = nodes.get(n.inputs[1])!
        if (sn.op !== 'Constant') throw new MpcLowerError(`${describeNode(n)}: the PRelu slope must be a constant`)
        const st = constantOf(sn)!
        const idx = broadcastIndex(st.shape, n.type.shape)
        slope = Float64Array.from({ length: size }, (_, i) => st.data[idx ? idx[i] : i])
      }
      gcElementwise(n, x, null)
      roles.set(n.name, 'leaky')
      leaky.set(n.name, slope)
    } else if (n.op === 'Relu') {
      const cs = consumers.get(n.name) ?? []
      if (cs.length === 1 && GC_POOL.has(cs[0].op) && !outputs.has(n.name)) {
        roles.set(n.name, 'fused')
        continue
      }
      gcElementwise(n, x, null)
    } else if (n.op === 'PartialRelu') {
      const a = n.attrs as unknown as PartialReluAttrs
      if (a.poly) addPoly(n, x, polyForm(a.poly), a.mask)
      else {
        const xt = nodes.get(x)!.type
        const idx = broadcastIndex(a.mask.shape, xt.shape)
        const pos: number[] = []
        for (let i = 0; i < sizeOf(xt.shape); i++) if (a.mask.data[idx ? idx[i] : i] !== 0) pos.push(i)
        gcElementwise(n, x, pos)
      }
    } else if (GC_POOL.has(n.op)) {
      const fused = roles.get(x) === 'fused'
      const input = fused ? nodes.get(x)!.inputs[0] : x
      const inShape = nodes.get(input)!.type.shape
      const pool = poolWindows(n, inShape)
      const outSize = sizeOf(n.type.shape)
      const src = newSource(n.name, 1, outSize)
      sourcesOf.set(n.name, [src])
      roles.set(n.name, 'gc')
      steps.push({
        kind: 'gc', name: n.origin?.name || n.name, op: fused ? `Relu+${n.op}` : n.op, node: n.name, relu: fused, segment: segment(input),
        positions: null, pool, groups: groupsOf(pool), identity: 0, source: src, outSize,
      })
    } else if (n.op === 'Poly') {
      const a = n.attrs as unknown as PolyAttrs
      addPoly(n, x, polyForm(a), undefined)
    } else if (n.op === 'Mul' && secretIns.length === 2) {
      if (n.inputs[0] === n.inputs[1]) addPoly(n, x, SQUARE, undefined)
      else {
        const size = sizeOf(n.type.shape)
        if (n.inputs.some((i) => sizeOf(nodes.get(i)!.type.shape) !== size))
          throw new MpcLowerError(`${describeNode(n)}: products of two secret values must not broadcast in the mpc backend`)
        const src = newSource(n.name, 1, size)
        sourcesOf.set(n.name, [src])
        roles.set(n.name, 'mul')
        steps.push({ kind: 'mul', name: n.origin?.name || n.name, op: n.op, node: n.name, segment: segment(n.inputs[0]), segment2: segment(n.inputs[1]), source: src })
      }
    } else if (n.op === 'Pow') {
      const e = nodes.get(n.inputs[1])
      const ev = e && roles.get(e.name) === 'public' ? constantOf(e) : undefined
      if (!ev || ev.data.length !== 1 || ev.data[0] !== 2) throw new MpcLowerError(`${describeNode(n)}: only Pow(x, 2) with a constant exponent is supported by the mpc backend`)
      addPoly(n, x, SQUARE, undefined)
    } else if (def.kind === 'linear' || def.kind === 'layout' || (def.kind === 'arith' && (AFFINE_ARITH.has(n.op) || n.op === 'Mul' || n.op === 'Div'))) {
      if (n.op === 'Div' && secret(n.inputs[1])) throw new MpcLowerError(`${describeNode(n)}: division by a secret value is not supported by the mpc backend`)
      if (def.kind === 'linear' && n.inputs.slice(1).some((i) => secret(i)) && n.op !== 'MatMul')
        throw new MpcLowerError(`${describeNode(n)}: secret weights are not supported by the mpc backend`)
      if (n.op === 'MatMul' && secretIns.length === 2) throw new MpcLowerError(`${describeNode(n)}: products of two secret values are not supported by the mpc backend`)
      roles.set(n.name, 'affine')
    } else
      throw new MpcLowerError(
        `${describeNode(n)}: op ${n.op} is not supported by the mpc backend (ReLU, partial ReLU, max pooling and polynomials are; approximate others with --approx)`,
      )
  }

  function gcElementwise(n: Node, x: string, positions: number[] | null): void {
    const size = sizeOf(n.type.shape)
    const count = positions ? positions.length : size
    const src = newSource(n.name, 1, size)
    sourcesOf.set(n.name, [src])
    roles.set(n.name, 'gc')
    steps.push({
      kind: 'gc', name: n.origin?.name || n.name, op: n.op, node: n.name, relu: true, segment: segment(x),
      positions: positions && positions.length === size ? null : positions, groups: count > 0 ? [{ k: 1, count }] : [], identity: size - count, source: src, outSize: size,
    })
  }

  const outs: OutputSpec[] = g.outputs.map((o) => {
    if (!secret(o)) throw new MpcLowerError(`graph output '${o}' does not depend on the input`)
    return { node: o, shape: [...nodes.get(o)!.type.shape], segment: segment(o) }
  })
  return { graph: g, nodes, roles, sourcesOf, sources, steps, outputs: outs, poly, leaky }
}

function sumCost(a: MsgCost, b: MsgCost): MsgCost {
  return {
    online: a.online + b.online,
    offlineC2S: a.offlineC2S + b.offlineC2S,
    offlineS2C: a.offlineS2C + b.offlineS2C,
    dealerToClient: a.dealerToClient + b.dealerToClient,
    rounds: a.rounds + b.rounds,
  }
}

function offline(c: MsgCost): number {
  return c.offlineC2S + c.offlineS2C + c.dealerToClient
}

export interface LowerOptions {
  fracBits?: number
  weightFracBits?: number
  intBits?: number
}

/** Lower a graph (batch bound to 1) to the two-party schedule with its cost model. */
export function lowerMpc(g: Graph, opts: LowerOptions = {}): MpcSchedule {
  return scheduleOf(analyze(g), opts)
}

/** The schedule of an analyzed graph (the server analyzes once for the schedule check and its matrices). */
export function scheduleOf(an: Analysis, opts: LowerOptions = {}): MpcSchedule {
  const params = defaultParams(opts)
  const inputs = an.graph.nodes.filter((n) => n.op === 'Input')
  if (inputs.length !== 1) throw new MpcLowerError(`the mpc backend needs exactly one graph input, found ${inputs.length}`)
  const input = inputs[0]
  const inSize = sizeOf(input.type.shape)
  const outSize = an.outputs.reduce((s, o) => s + o.segment.size, 0)
  const segSize = an.steps.reduce((s, st) => s + st.segment.size + (st.kind === 'mul' ? st.segment2.size : 0), 0) + outSize
  const fixed = frameCost(inSize, outSize, segSize)
  const layers: LayerRow[] = []
  const row = (name: string, op: string, kind: LayerRow['kind'], c: MsgCost, extra: Partial<LayerRow>): LayerRow => ({
    name, op, kind, reluCount: 0, comparisons: 0, triples: 0, andGates: 0, rounds: c.rounds,
    bytes: { offline: offline(c), online: c.online }, latencyMs: latencyMs(c.online, c.rounds), ...extra,
  })
  const inCost: MsgCost = { online: fixed.online - (8 + outSize * 8), offlineC2S: fixed.offlineC2S, offlineS2C: fixed.offlineS2C, dealerToClient: fixed.dealerToClient + DEALER_TO_SERVER, rounds: 1 }
  layers.push(row(input.name, 'Input', 'input', inCost, {}))
  let total: MsgCost = inCost
  let relus = 0
  let comps = 0
  let triples = 0
  let ands = 0
  for (const st of an.steps) {
    if (st.kind === 'gc') {
      const c = gcCost(params, { groups: st.groups, relu: st.relu }, st.identity)
      const reluCount = st.relu ? (st.pool ? st.segment.size : st.groups.reduce((s, w) => s + w.count, 0)) : 0
      const comparisons = st.groups.reduce((s, w) => s + (w.k - 1) * w.count, 0)
      relus += reluCount
      comps += comparisons
      ands += c.ands
      total = sumCost(total, c)
      layers.push(row(st.name, st.op, 'gc', c, { reluCount, comparisons, andGates: c.ands }))
    } else if (st.kind === 'mul') {
      const c = mulCost(st.segment.size)
      triples += st.segment.size
      total = sumCost(total, c)
      layers.push(row(st.name, st.op, 'poly', c, { triples: st.segment.size }))
    } else {
      const m = st.positions ? st.positions.length : st.segment.size
      const c = polyCost(st.segment.size, m, st.degree)
      const t = m * (st.degree - 1)
      triples += t
      total = sumCost(total, c)
      layers.push(row(st.name, st.op, 'poly', c, { triples: t }))
    }
  }
  const outCost: MsgCost = { online: 8 + outSize * 8, offlineC2S: 0, offlineS2C: 0, dealerToClient: 0, rounds: 1 }
  total = sumCost(total, outCost)
  layers.push(row(an.outputs.map((o) => o.node).join(','), 'Output', 'output', outCost, {}))
  const structure = {
    params,
    input: { node: input.name, shape: [...input.type.shape], source: an.sourcesOf.get(input.name)![0] },
    sources: an.sources,
    steps: an.steps,
    outputs: an.outputs,
  }
  const fingerprint = createHash('sha256').update(JSON.stringify(structure)).digest('hex').slice(0, 32)
  const off = offline(total)
  return {
    format: 'pic.mpc.schedule/1',
    backend: 'mpc',
    model: an.graph.name,
    fingerprint,
    trust: TRUST_MODEL,
    ...structure,
    reluCount: relus,
    comparisons: comps,
    triples,
    andGates: ands,
    rounds: total.rounds,
    bytes: { offline: off, online: total.online },
    latencyMs: latencyMs(total.online, total.rounds),
    offlineLatencyMs: latencyMs(off, 2),
    presets: PRESETS.map((p) => ({ name: p.name, bandwidthBitsPerSecond: p.bandwidth, delayMsPerRound: p.delayMs })),
    layers,
  }
}

function human(bytes: number): string {
  if (bytes >= 1 << 30) return `${round3(bytes / 2 ** 30)} GiB`
  if (bytes >= 1 << 20) return `${round3(bytes / 2 ** 20)} MiB`
  if (bytes >= 1 << 10) return `${round3(bytes / 2 ** 10)} KiB`
  return `${bytes} B`
}

/** Human-readable schedule: parameters, one line per layer, totals. */
export function printSchedule(s: MpcSchedule): string {
  const p = s.params
  const lines = [
    `mpc schedule for ${s.model} (fingerprint ${s.fingerprint})`,
    `ring ${p.ring}, ${p.fracBits} fractional bits (weights ${p.weightFracBits}), garbled inputs ${p.gcBits} bits, labels ${p.kappa} bits`,
    `truncation: ${p.truncation}`,
    `trust: ${s.trust}`,
    '',
    `${'layer'.padEnd(28)} ${'op'.padEnd(18)} ${'relus'.padStart(7)} ${'cmp'.padStart(6)} ${'triples'.padStart(7)} ${'ANDs'.padStart(9)} ${'rounds'.padStart(6)} ${'online'.padStart(11)} ${'offline'.padStart(11)}`,
  ]
  for (const r of s.layers)
    lines.push(
      `${r.name.slice(0, 28).padEnd(28)} ${r.op.slice(0, 18).padEnd(18)} ${String(r.reluCount).padStart(7)} ${String(r.comparisons).padStart(6)} ${String(r.triples).padStart(7)} ${String(r.andGates).padStart(9)} ${String(r.rounds).padStart(6)} ${human(r.bytes.online).padStart(11)} ${human(r.bytes.offline).padStart(11)}`,
    )
  lines.push(
    '',
    `per inference: ${s.reluCount} garbled ReLUs, ${s.comparisons} garbled comparisons, ${s.triples} Beaver squares, ${s.rounds} rounds, online ${human(s.bytes.online)}, offline ${human(s.bytes.offline)}`,
    `online latency: ${Object.entries(s.latencyMs).map(([k, v]) => `${k} ${v} ms`).join(', ')}`,
  )
  return lines.join('\n')
}
