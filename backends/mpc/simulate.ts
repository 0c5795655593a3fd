/**
 * The two-party schedule's arithmetic in the clear: what `pic query` reconstructs, computed on one
 * party's view holding the whole value (no masks, no dealer, no network). It is the fixed-point
 * semantics of the protocol over Z_2^64, step by step in schedule order:
 *
 *   input    x encoded at f = fracBits fractional bits (ring.ts encodeArray)
 *   segment  y = M x + b: the server's quantized ring operator (linear.ts applyRing), at f + w bits
 *            (w = weightFracBits)
 *   gc       per circuit instance (gc.ts windowCircuit): v = the low gcBits bits of y as a signed
 *            integer, v >> w (arithmetic), ReLU max(0, .) when the step has one, the window's max;
 *            positions outside a partial ReLU: y >> w
 *   poly     t = y >> w at every position, then B_1 = t and per level (poly.ts polyLevels)
 *            B_{h+j} = (B_h B_j mod 2^64) >> f, Chebyshev 2 (B_h B_j >> f) - B_{h-j} (B_0 = 2^f)
 *   mul      ((y1 >> w) (y2 >> w) mod 2^64) >> f
 *   output   y of each output segment, decoded at f + w bits
 *
 * Every >> is the exact arithmetic shift (floor) of the signed value. The protocol truncates shares
 * locally (SecureML, ring.ts truncShare): its reconstruction is within one unit of the floor (and off
 * by about 2^(64 - bits) with probability |x| / 2^64, which the schedule's truncation report bounds),
 * so the two-party outputs differ from these by those units carried through the later layers.
 */
import type { Graph } from '../../ir/graph.js'
import type { Tensor } from '../../ir/tensor.js'
import { applyRing } from './linear.js'
import { prepareServer, type ServerModel } from './party.js'
import { concatRing, decodeArray, encodeArray } from './ring.js'
import { gcLayout } from './steps/gc.js'
import { polyLevels } from './steps/poly.js'
import { secondSegment } from './steps/linear.js'
import type { MpcSchedule } from './types.js'

/** floor(x / 2^bits) of the signed 64-bit x, back in the ring. */
function shiftAll(x: BigUint64Array, bits: number): BigUint64Array {
  const s = BigInt(bits)
  return x.map((v) => BigInt.asUintN(64, BigInt.asIntN(64, v) >> s))
}

/** The schedule's arithmetic for one image (its elements in the input's order): the decoded outputs. */
export function simulateImage(model: ServerModel, x: ArrayLike<number>): Float64Array {
  const s = model.schedule
  const p = s.params
  const f = p.fracBits
  const w = BigInt(p.weightFracBits)
  const src: BigUint64Array[] = []
  src[s.input.source] = encodeArray(x, f)
  const seg = (j: number) => applyRing(model.operators[j], (id) => src[id], true)
  const one = 1n << BigInt(f)
  for (const [k, st] of s.steps.entries()) {
    const y = seg(k)
    if (st.kind === 'gc') {
      const L = gcLayout(s, st)
      const res = new BigUint64Array(st.outSize)
      const t = shiftAll(y, p.weightFracBits)
      for (const pos of L.identity) res[pos] = t[pos]
      for (const g of L.groups)
        for (let i = 0; i < g.outIdx.length; i++) {
          let best: bigint | undefined
          for (let e = 0; e < g.k; e++) {
            let v = BigInt.asIntN(p.gcBits, y[g.inIdx[i * g.k + e]]) >> w
            if (st.relu && v < 0n) v = 0n
            if (best === undefined || v > best) best = v
          }
          res[g.outIdx[i]] = BigInt.asUintN(64, best!)
        }
      src[st.source] = res
    } else if (st.kind === 'poly') {
      const t = shiftAll(y, p.weightFracBits)
      src[st.sources[0]] = t
      if (st.degree < 2) continue
      const tp = st.positions ? BigUint64Array.from(st.positions, (i) => t[i]) : t
      const B: BigUint64Array[] = [tp]
      const product = (k2: number, a: BigUint64Array, b: BigUint64Array, low: number) => {
        const r = shiftAll(a.map((v, i) => BigInt.asUintN(64, v * b[i])), f)
        if (st.basis === 'chebyshev') {
          const prev = low === 0 ? undefined : B[low - 1]
          for (let i = 0; i < r.length; i++) r[i] = BigInt.asUintN(64, 2n * r[i] - (prev ? prev[i] : one))
        }
        B[k2 - 1] = r
      }
      for (const lv of polyLevels(st.degree)) {
        if (lv.square) product(2 * lv.h, B[lv.h - 1], B[lv.h - 1], 0)
        for (const j of lv.js) product(lv.h + j, B[lv.h - 1], B[j - 1], lv.h - j)
      }
      for (let d = 2; d <= st.degree; d++) src[st.sources[d - 1]] = B[d - 1]
    } else {
      const a = shiftAll(y, p.weightFracBits)
      const b = shiftAll(seg(secondSegment(s, k)), p.weightFracBits)
      src[st.source] = shiftAll(a.map((v, i) => BigInt.asUintN(64, v * b[i])), f)
    }
  }
  return decodeArray(concatRing(s.outputs.map((_, j) => seg(s.steps.length + j))), f + p.weightFracBits)
}

/**
 * Every image of `input` (batch first) through the schedule's arithmetic; `graph` is the model after
 * the mpc pipeline (the schedule's fingerprint is checked against it, as the server does). The output
 * has the shape pic query gives. `progress(done)` is called after each image.
 */
export function simulateSchedule(graph: Graph, schedule: MpcSchedule, input: Tensor, progress?: (done: number, total: number) => void): Tensor {
  const model = prepareServer(graph, schedule)
  const per = schedule.sources[schedule.input.source].size
  const images = input.shape[0]
  const outSize = schedule.outputs.reduce((a, o) => a + o.segment.size, 0)
  const out = new Float64Array(images * outSize)
  for (let img = 0; img < images; img++) {
    out.set(simulateImage(model, input.data.subarray(img * per, (img + 1) * per)), img * outSize)
    progress?.(img + 1, images)
  }
  const shape = schedule.outputs.length === 1 ? [images, ...schedule.outputs[0].shape.slice(1)] : [images, outSize]
  return { dtype: 'float32', shape, data: out }
}
