/**
 * Calibration: run the calibration set through the interpreter in batches and record, for the input
 * of every activation, the overall and per-channel (axis 1) mean, std, min and max, a histogram, and
 * a bounded sample of the values for measuring fit errors. A PartialRelu counts only the positions
 * its mask selects. Progress goes to `log` on long runs.
 */
import { graphInputs, inputDims, type Graph, type Node } from '../ir/graph.js'
import { interpret, type Accelerator } from '../ir/interpret.js'
import { sizeOf, tensor, type Tensor } from '../ir/tensor.js'
import { activations, maskSelector } from './activations.js'

export interface ChannelStats {
  count: number[]
  mean: number[]
  std: number[]
  min: number[]
  max: number[]
}

export interface Histogram {
  lo: number
  hi: number
  counts: number[]
}

export interface ActivationStats {
  /** The activation node (its input is what was measured). */
  node: string
  op: string
  count: number
  mean: number
  std: number
  min: number
  max: number
  channels: ChannelStats
  histogram: Histogram
  /** Up to SAMPLE_LIMIT measured values and their channels, evenly strided. */
  sample: { x: Float64Array; channel: Int32Array }
}

export interface CalibrateOptions {
  /** Which nodes to measure (default: every approximable activation). */
  nodes?: readonly string[]
  batch?: number
  bins?: number
  log?: (message: string) => void
  /** Faster kernels for the runs (see Accelerator in ir/interpret.ts). */
  accel?: Accelerator
}

const SAMPLE_LIMIT = 1 << 16
const KEEP_LIMIT = 1 << 22

/** Rows [from, to) of a tensor along axis 0. */
export function rows(t: Tensor, from: number, to: number): Tensor {
  const inner = sizeOf(t.shape.slice(1))
  return tensor(t.dtype, [to - from, ...t.shape.slice(1)], t.data.subarray(from * inner, to * inner))
}

class Accumulator {
  readonly sum: Float64Array
  readonly sq: Float64Array
  readonly min: Float64Array
  readonly max: Float64Array
  readonly n: Float64Array
  readonly kept: { x: Float64Array; c: Int32Array }[] = []
  keptCount = 0

  constructor(
    readonly node: Node,
    readonly C: number,
  ) {
    this.sum = new Float64Array(C)
    this.sq = new Float64Array(C)
    this.n = new Float64Array(C)
    this.min = new Float64Array(C).fill(Infinity)
    this.max = new Float64Array(C).fill(-Infinity)
  }

  add(v: Tensor, total: number): void {
    const shape = v.shape
    const inner = shape.length >= 2 ? sizeOf(shape.slice(2)) : 1
    const sel = maskSelector(this.node, shape)
    const stride = Math.max(1, Math.ceil((total * sizeOf(shape.slice(1))) / KEEP_LIMIT))
    const xs: number[] = []
    const cs: number[] = []
    for (let i = 0; i < v.data.length; i++) {
      if (sel && !sel[i]) continue
      const c = this.C === 1 ? 0 : Math.floor(i / inner) % this.C
      const x = v.data[i]
      this.sum[c] += x
      this.sq[c] += x * x
      this.n[c]++
      if (x < this.min[c]) this.min[c] = x
      if (x > this.max[c]) this.max[c] = x
      if (i % stride === 0) {
        xs.push(x)
        cs.push(c)
      }
    }
    this.kept.push({ x: Float64Array.from(xs), c: Int32Array.from(cs) })
    this.keptCount += xs.length
  }

  finish(bins: number): ActivationStats {
    const C = this.C
    const ch: ChannelStats = { count: [], mean: [], std: [], min: [], max: [] }
    let N = 0
    let S = 0
    let Q = 0
    for (let c = 0; c < C; c++) {
      const n = this.n[c]
      N += n
      S += this.sum[c]
      Q += this.sq[c]
      const mean = n ? this.sum[c] / n : 0
      ch.count.push(n)
      ch.mean.push(mean)
      ch.std.push(n ? Math.sqrt(Math.max(0, this.sq[c] / n - mean * mean)) : 0)
      ch.min.push(n ? this.min[c] : 0)
      ch.max.push(n ? this.max[c] : 0)
    }
    const mean = N ? S / N : 0
    const lo = N ? Math.min(...ch.min.filter((_, c) => ch.count[c] > 0)) : 0
    const hi = N ? Math.max(...ch.max.filter((_, c) => ch.count[c] > 0)) : 0
    const counts = new Array<number>(bins).fill(0)
    const width = (hi - lo) / bins || 1
    const n = Math.min(this.keptCount, SAMPLE_LIMIT)
    const step = this.keptCount / Math.max(1, n)
    const x = new Float64Array(n)
    const channel = new Int32Array(n)
    let k = 0
    let next = 0
    for (const part of this.kept)
      for (let i = 0; i < part.x.length; i++, k++) {
        const v = part.x[i]
        counts[Math.min(bins - 1, Math.max(0, Math.floor((v - lo) / width)))]++
        if (next < n && k === Math.floor(next * step)) {
          x[next] = v
          channel[next++] = part.c[i]
        }
      }
    return {
      node: this.node.name,
      op: this.node.op,
      count: N,
      mean,
      std: N ? Math.sqrt(Math.max(0, Q / N - mean * mean)) : 0,
      min: lo,
      max: hi,
      channels: ch,
      histogram: { lo, hi, counts },
      sample: { x, channel },
    }
  }
}

/** Channels of a value: axis 1 for rank >= 2, else one. */
export function channelCount(shape: readonly number[]): number {
  return shape.length >= 2 ? shape[1] : 1
}

/**
 * Run `g` over the calibration set in chunks of `opts.batch` (default 100; a model with a fixed batch
 * size takes chunks of exactly that size and drops the remainder); `onValue(node, value, rows, total)`
 * sees every value of every chunk of `rows` images. Logs `LABEL: DONE/TOTAL samples`; returns the total.
 */
function overCalibration(g: Graph, calib: Tensor, opts: Pick<CalibrateOptions, 'batch' | 'log' | 'accel'>, label: string, onValue: (n: Node, v: Tensor, rows: number, total: number) => void): number {
  const fixed = graphInputs(g)[0] ? inputDims(graphInputs(g)[0])[0] : undefined
  const batch = typeof fixed === 'number' ? fixed : (opts.batch ?? 100)
  const total = typeof fixed === 'number' ? calib.shape[0] - (calib.shape[0] % fixed) : calib.shape[0]
  for (let from = 0; from < total; from += batch) {
    const to = Math.min(total, from + batch)
    interpret(g, [rows(calib, from, to)], { accel: opts.accel, onValue: (n, v) => onValue(n, v, to - from, total) })
    if (total > batch) opts.log?.(`${label}: ${to}/${total} samples`)
  }
  return total
}

/** Measure the inputs of the given (default: all activation) nodes on the calibration data. */
export function calibrate(g: Graph, calib: Tensor, opts: CalibrateOptions = {}): Map<string, ActivationStats> {
  const names = new Set(opts.nodes ?? activations(g).map((a) => a.node.name))
  const byName = new Map(g.nodes.map((n) => [n.name, n]))
  const watch = new Map<string, Node[]>()
  for (const name of names) {
    const n = byName.get(name)
    if (!n) throw new Error(`calibrate: no node '${name}'`)
    watch.set(n.inputs[0], [...(watch.get(n.inputs[0]) ?? []), n])
  }
  const acc = new Map<string, Accumulator>()
  overCalibration(g, calib, opts, 'calibrate', (n, v, _rows, total) => {
    for (const a of watch.get(n.name) ?? []) {
      let st = acc.get(a.name)
      if (!st) acc.set(a.name, (st = new Accumulator(a, channelCount(v.shape))))
      st.add(v, total)
    }
  })
  const out = new Map<string, ActivationStats>()
  for (const name of names) {
    const a = acc.get(name)
    if (a) out.set(name, a.finish(opts.bins ?? 512))
  }
  return out
}

/**
 * Every value's range on calibration data, for the backends' headroom checks (backends/mpc/ranges.ts,
 * backends/ckks/ranges.ts): `maxAbs` is max |x| over the whole set for every node of `g` (the graph as
 * compiled, so approximations are what is measured), and `elements` the per-element min and max (at
 * batch 1: element i of every image) of the nodes `elementwise` asks for. Observed values only: a
 * backend applies its own safety margin.
 */
export interface ValueRanges {
  samples: number
  maxAbs: Map<string, number>
  elements: Map<string, { min: Float64Array; max: Float64Array }>
}

export function valueRanges(g: Graph, calib: Tensor, opts: Pick<CalibrateOptions, 'batch' | 'log' | 'accel'> & { elementwise?: (node: string) => boolean } = {}): ValueRanges {
  const maxAbs = new Map<string, number>()
  const elements = new Map<string, { min: Float64Array; max: Float64Array }>()
  const total = overCalibration(g, calib, opts, 'ranges', (n, v, rowsIn) => {
    let m = maxAbs.get(n.name) ?? 0
    const d = v.data
    // a NaN counts as unbounded
    for (let i = 0; i < d.length; i++) {
      const a = Math.abs(d[i])
      if (!(a <= m)) m = Number.isNaN(a) ? Infinity : a
    }
    maxAbs.set(n.name, m)
    if (!opts.elementwise?.(n.name)) return
    // element i of image b is at b * per + i when the value keeps the batch as its first axis
    const per = v.shape.length > 0 && v.shape[0] === rowsIn ? d.length / rowsIn : d.length
    let e = elements.get(n.name)
    if (!e) elements.set(n.name, (e = { min: new Float64Array(per).fill(Infinity), max: new Float64Array(per).fill(-Infinity) }))
    for (let i = 0; i < d.length; i++) {
      const k = i % per
      if (d[i] < e.min[k]) e.min[k] = d[i]
      if (d[i] > e.max[k]) e.max[k] = d[i]
    }
  })
  return { samples: total, maxAbs, elements }
}
