/**
 * The linear segments: the input, the segments' shares and the outputs. A segment is an affine
 * function y = sum_j M_j x_j + b of sources (the ring operator of ../linear.ts, which the server
 * quantizes from its model and uploads to the dealer); its shares are the server's M (x - r) + s + b
 * and the client's M r - s from the dealer. Segments in protocol order: one per step, one per graph
 * output, then the second factors of products.
 *
 *   dealer   the client's seed, then M r - s per segment (r: the client's source masks, s: the
 *            server's segment masks, both from the seeds)
 *   online   tag 0: the client sends its masked input x - r; last tag: the server sends its output
 *            shares, the client adds its own and decodes
 *   cost     the input row also carries the per-image framing: the client's offline frame, the
 *            server's end-of-offline frame, the dealer's requests and replies to both
 */
import { describeNode } from '../../../ir/graph.js'
import { segmentAffine, type Analysis } from '../analyze.js'
import { RING, type MsgCost } from '../cost.js'
import type { DealerSpec } from '../dealer.js'
import { applyRing, quantize, type RingOperator } from '../linear.js'
import { HEADER_BYTES } from '../net.js'
import { isCount, recvRing, type ClientStreams, type Reader, type ServerStreams } from '../protocol.js'
import { add, concatRing, decodeArray, encodeArray, ringToBytes, sub } from '../ring.js'
import type { MpcSchedule, OutputSpec, SegmentSpec, Step } from '../types.js'
import type { ClientImage, ServerImage } from './kind.js'

/** Segments in protocol order: one per step, one per graph output, then the second factors of products. */
export function segmentsOf(s: { steps: Step[]; outputs: OutputSpec[] }): SegmentSpec[] {
  return [...s.steps.map((st) => st.segment), ...s.outputs.map((o) => o.segment), ...s.steps.flatMap((st) => (st.kind === 'mul' ? [st.segment2] : []))]
}

/** Index in segmentsOf of the second factor of product step k. */
export function secondSegment(s: MpcSchedule, k: number): number {
  return s.steps.length + s.outputs.length + s.steps.slice(0, k).filter((st) => st.kind === 'mul').length
}

const outputSize = (s: MpcSchedule) => s.outputs.reduce((a, o) => a + o.segment.size, 0)

// ---------------------------------------------------------------------------------------------
// cost

/** The input row: the masked input (one round) and the per-image framing of the offline phase. */
export function inputCost(inputSize: number, segmentsSize: number): MsgCost {
  const dealerToServer = 2 * HEADER_BYTES + 16
  return {
    online: HEADER_BYTES + inputSize * RING,
    offlineC2S: HEADER_BYTES,
    offlineS2C: HEADER_BYTES,
    dealerToClient: 2 * HEADER_BYTES + 16 + segmentsSize * RING + dealerToServer,
    rounds: 1,
  }
}

/** The output row: the server's output shares. */
export function outputCost(outputSize: number): MsgCost {
  return { online: HEADER_BYTES + outputSize * RING, offlineC2S: 0, offlineS2C: 0, dealerToClient: 0, rounds: 1 }
}

// ---------------------------------------------------------------------------------------------
// server setup and dealer

/** The server, once per model: each segment's ring operator (protocol order), quantized. */
export function quantizeSegments(an: Analysis, s: MpcSchedule): RingOperator[] {
  const p = s.params
  return segmentsOf(s).map((seg) => quantize(segmentAffine(an, seg), p.fracBits, p.weightFracBits, describeNode(an.nodes.get(seg.node)!)))
}

/** The offline specification's linear part: the sources' sizes, each segment's sources and size. */
export function linearSpec(s: MpcSchedule): Pick<DealerSpec, 'sources' | 'segments'> {
  return { sources: s.sources.map((x) => x.size), segments: segmentsOf(s).map((g) => ({ sources: g.sources, size: g.size })) }
}

/** Elements the linear part of a specification read from the network asks for; undefined if malformed. */
export function checkLinearSpec(spec: Pick<DealerSpec, 'sources' | 'segments'>): number | undefined {
  if (!Array.isArray(spec.sources) || !Array.isArray(spec.segments) || !spec.sources.every(isCount)) return undefined
  let total = spec.sources.reduce((a, b) => a + b, 0)
  for (const seg of spec.segments) {
    if (!seg || !isCount(seg.size) || !Array.isArray(seg.sources) || !seg.sources.every((id) => Number.isInteger(id) && id >= 0 && id < spec.sources.length)) return undefined
    total += seg.size
  }
  return total
}

/** The dealer: M r - s for every segment, one segment at a time (the sources' masks r are held throughout). */
export function* dealSegments(spec: Pick<DealerSpec, 'sources' | 'segments'>, operators: RingOperator[], cs: ClientStreams, ss: ServerStreams): Generator<Buffer> {
  const r = spec.sources.map((n, id) => cs.r(id, n))
  for (const [j, seg] of spec.segments.entries()) yield ringToBytes(sub(applyRing(operators[j], (id) => r[id], false), ss.s(j, seg.size)))
}

// ---------------------------------------------------------------------------------------------
// server

/** The server's share of segment j: M (x - r) + b + s, from the masked sources. */
export function serverShare(op: RingOperator, masked: BigUint64Array[], ss: ServerStreams, j: number): BigUint64Array {
  return add(applyRing(op, (id) => masked[id], true), ss.s(j, op.size))
}

/** Online, tag 0: the client's masked input. */
export function serverInput(cx: ServerImage): Promise<BigUint64Array> {
  const src = cx.s.input.source
  return recvRing(cx.ch, 'online', 0, cx.s.sources[src].size, 'masked input')
}

/** Online, last tag: the server's shares of the outputs. */
export function serverOutput(cx: ServerImage, tag: number): void {
  const outShares = cx.s.outputs.map((_, j) => cx.share(cx.s.steps.length + j))
  cx.ch.send('online', tag, ringToBytes(concatRing(outShares)))
}

// ---------------------------------------------------------------------------------------------
// client

/** Offline: the client's share M r - s of every segment, from the dealer's material. */
export function clientSegments(material: Reader, s: MpcSchedule): BigUint64Array[] {
  return segmentsOf(s).map((g) => material.ring(g.size))
}

/** Online, tag 0: the input in masked form, x - r. */
export function clientInput(cx: ClientImage, x: Float64Array): void {
  cx.ch.send('online', 0, ringToBytes(sub(encodeArray(x, cx.s.params.fracBits), cx.r[cx.s.input.source])))
}

/** Online, last tag: the server's output shares plus the client's, decoded. */
export async function clientOutput(cx: ClientImage, tag: number): Promise<Float64Array> {
  const s = cx.s
  const p = s.params
  const ys = await recvRing(cx.ch, 'online', tag, outputSize(s), 'output shares')
  return decodeArray(add(concatRing(cx.yc.slice(s.steps.length, s.steps.length + s.outputs.length)), ys), p.fracBits + p.weightFracBits)
}
