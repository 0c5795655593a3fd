/**
 * The schedule of an analyzed graph: each step's bytes and rounds from its step kind (steps/*.ts),
 * the input and output from the linear segments (steps/linear.ts), totals, layer rows and the
 * fingerprint (a hash of params, input, sources, steps and outputs, which the server checks against
 * its own analysis of the model).
 */
import { createHash } from 'node:crypto'
import type { Graph } from '../../ir/graph.js'
import type { Accelerator } from '../../ir/interpret.js'
import { sizeOf, type Tensor } from '../../ir/tensor.js'
import { valueRanges, type ValueRanges } from '../../passes/calibrate.js'
import { analyze, type Analysis } from './analyze.js'
import { defaultParams, latencyMs, offlineBytes, PRESETS, sumCost, type MsgCost } from './cost.js'
import { checkRanges, elementwiseNodes } from './ranges.js'
import { kindOf } from './steps/index.js'
import { inputCost, outputCost, quantizeSegments, segmentsOf } from './steps/linear.js'
import { sessionPlan } from './steps/index.js'
import { twoPartyCost } from './offline.js'
import { ProtocolError } from './net.js'
import { MpcLowerError, TRUST_MODEL, type LayerRow, type MpcSchedule } from './types.js'

export interface LowerOptions {
  fracBits?: number
  weightFracBits?: number
  /** Bound 2^intBits of garbled inputs; given, it is never widened (a larger bound is refused). */
  intBits?: number
  /** Calibration inputs: every value's range is measured on them and checked (ranges.ts). */
  calib?: Tensor
  /** Ranges already measured on this graph (instead of `calib`). */
  ranges?: ValueRanges
  /** Factor on the observed max |x| (default 2). */
  rangeMargin?: number
  /** Accepted truncation failure probability per inference (default 2^-12). */
  truncationLimit?: number
  accel?: Accelerator
  log?: (message: string) => void
}

/**
 * Lower a graph (batch bound to 1) to the two-party schedule with its cost model. With calibration
 * data every value's range is checked against the fixed-point headroom (refused, or intBits widened);
 * without, the schedule says `ranges: 'unchecked'` and a warning goes to `log`.
 */
export function lowerMpc(g: Graph, opts: LowerOptions = {}): MpcSchedule {
  const an = analyze(g)
  let ranges = opts.ranges
  if (!ranges && opts.calib) {
    const ew = elementwiseNodes(an)
    ranges = valueRanges(g, opts.calib, { accel: opts.accel, log: opts.log, elementwise: (n) => ew.has(n) })
  }
  if (!ranges) opts.log?.('warning: no calibration data (--calib C.npy): value ranges are not checked against the fixed-point headroom (ranges: unchecked)')
  const s = scheduleOf(an, { ...opts, ranges })
  // the offline phase without a dealer: its packing comes from the quantized operators (the weights' shapes)
  try {
    s.twoParty = twoPartyCost(quantizeSegments(an, s), s, sessionPlan(s), exchangedOffline(s))
  } catch (e) {
    if (!(e instanceof ProtocolError)) throw e
    s.twoParty = { unavailable: e.message }
  }
  return s
}

/** Offline bytes per image the two parties exchange in either mode (garbled tables, derandomization, openings, framing). */
export function exchangedOffline(s: MpcSchedule): number {
  const inCost = inputCost(sizeOf(s.input.shape), 0)
  return s.steps.reduce((t, st) => {
    const c = kindOf(st).cost(s.params, st).msg
    return t + c.offlineC2S + c.offlineS2C
  }, inCost.offlineC2S + inCost.offlineS2C)
}

/**
 * The schedule of an analyzed graph (the server analyzes once for the schedule check and its
 * matrices; it passes the schedule's own params and no ranges, which the fingerprint leaves out).
 */
export function scheduleOf(an: Analysis, opts: LowerOptions = {}): MpcSchedule {
  const checked = checkRanges(an, defaultParams(opts), { ranges: opts.ranges, margin: opts.rangeMargin, truncationLimit: opts.truncationLimit, fixedIntBits: opts.intBits !== undefined }, (intBits) =>
    defaultParams({ ...opts, intBits }),
  )
  const params = checked.params
  const inputs = an.graph.nodes.filter((n) => n.op === 'Input')
  if (inputs.length !== 1) throw new MpcLowerError(`the mpc backend needs exactly one graph input, found ${inputs.length}`)
  const input = inputs[0]
  const outSize = an.outputs.reduce((s, o) => s + o.segment.size, 0)
  const segSize = segmentsOf(an).reduce((s, g) => s + g.size, 0)
  const layers: LayerRow[] = []
  const row = (name: string, op: string, kind: LayerRow['kind'], c: MsgCost, extra: Partial<LayerRow>): LayerRow => ({
    name, op, kind, reluCount: 0, comparisons: 0, triples: 0, andGates: 0, rounds: c.rounds,
    bytes: { offline: offlineBytes(c), online: c.online }, latencyMs: latencyMs(c.online, c.rounds), ...extra,
  })
  const inCost = inputCost(sizeOf(input.type.shape), segSize)
  layers.push(row(input.name, 'Input', 'input', inCost, {}))
  let total: MsgCost = inCost
  const counts = { reluCount: 0, comparisons: 0, triples: 0, andGates: 0 }
  for (const st of an.steps) {
    const K = kindOf(st)
    const c = K.cost(params, st)
    for (const key of Object.keys(counts) as (keyof typeof counts)[]) counts[key] += c.counts[key] ?? 0
    total = sumCost(total, c.msg)
    layers.push(row(st.name, st.op, K.layer, c.msg, c.counts))
  }
  const outCost = outputCost(outSize)
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
  const off = offlineBytes(total)
  return {
    format: 'pic.mpc.schedule/1',
    backend: 'mpc',
    model: an.graph.name,
    fingerprint,
    trust: TRUST_MODEL,
    ranges: checked.ranges,
    truncation: checked.truncation,
    ...structure,
    ...counts,
    rounds: total.rounds,
    bytes: { offline: off, online: total.online },
    latencyMs: latencyMs(total.online, total.rounds),
    offlineLatencyMs: latencyMs(off, 2),
    presets: PRESETS.map((p) => ({ name: p.name, bandwidthBitsPerSecond: p.bandwidth, delayMsPerRound: p.delayMs })),
    layers,
  }
}
