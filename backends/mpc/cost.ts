/**
 * The MPC cost model: protocol parameters, network presets, and the exact bytes and rounds of every
 * message the runtime sends, derived from the same quantities the runtime uses (garbled-circuit AND
 * counts of the real circuit templates, label and OT sizes, openings, frame headers). Measured online
 * bytes equal these predictions; latency adds rounds times the one-way delay to bytes over bandwidth
 * (computation is not modelled).
 */
import { getWindowCircuit } from './gc.js'
import { HEADER_BYTES } from './net.js'

export interface MpcParams {
  ring: 'Z_2^64'
  ringBits: 64
  /** Fractional bits of activations (secret values). */
  fracBits: number
  /** Fractional bits of weights and linear-layer constants. */
  weightFracBits: number
  /** Magnitude bound of pre-activation values: |y| < 2^intBits. */
  intBits: number
  /** Bits of each share that enter a garbled circuit: intBits + fracBits + weightFracBits + 1. */
  gcBits: number
  /** Label length in bits (half-gates ciphertexts are two labels per AND gate). */
  kappa: 128
  truncation: string
}

export function defaultParams(over: Partial<Pick<MpcParams, 'fracBits' | 'weightFracBits' | 'intBits'>> = {}): MpcParams {
  const fracBits = over.fracBits ?? 13
  const weightFracBits = over.weightFracBits ?? 16
  const intBits = over.intBits ?? 14
  return {
    ring: 'Z_2^64',
    ringBits: 64,
    fracBits,
    weightFracBits,
    intBits,
    gcBits: intBits + fracBits + weightFracBits + 1,
    kappa: 128,
    truncation:
      'exact inside garbled circuits (wire shift); elsewhere SecureML local share truncation (error 1 ulp, failure probability below 2^-20 per value for |x| < 2^intBits)',
  }
}

export interface NetPreset {
  name: string
  /** Bits per second. */
  bandwidth: number
  /** One-way delay per communication round, milliseconds. */
  delayMs: number
}

export const PRESETS: readonly NetPreset[] = [
  { name: 'LAN', bandwidth: 3e9, delayMs: 0.3 },
  { name: 'WAN', bandwidth: 400e6, delayMs: 40 },
]

export function latencyMs(bytes: number, rounds: number): Record<string, number> {
  const out: Record<string, number> = {}
  for (const p of PRESETS) out[p.name] = round3(rounds * p.delayMs + (bytes * 8 * 1000) / p.bandwidth)
  return out
}

export function round3(x: number): number {
  return Math.round(x * 1000) / 1000
}

/** Window-size groups of a garbled step: `count` instances of a k-input window. */
export interface WindowGroup {
  k: number
  count: number
}

export interface GcShape {
  groups: WindowGroup[]
  relu: boolean
}

export function gcAnds(p: MpcParams, g: GcShape): number {
  let ands = 0
  for (const w of g.groups) ands += w.count * getWindowCircuit({ k: w.k, inBits: p.gcBits, shift: p.weightFracBits, relu: g.relu, outBits: p.ringBits }).ands
  return ands
}

/** Label elements (window inputs) and instances of a garbled step. */
export function gcSizes(g: GcShape): { inputs: number; instances: number } {
  let inputs = 0
  let instances = 0
  for (const w of g.groups) {
    inputs += w.k * w.count
    instances += w.count
  }
  return { inputs, instances }
}

const LABEL = 16
const RING = 8

export interface MsgCost {
  online: number
  offlineC2S: number
  offlineS2C: number
  dealerToClient: number
  rounds: number
}

/** Bytes of garbled material one frame of garbled circuits aims at (tables, mask labels, OT). */
export const GC_CHUNK_BYTES = 32 << 20

/**
 * Instances of a k-input window circuit garbled together and sent as one frame: as many as fit in
 * GC_CHUNK_BYTES, so neither party holds more than a chunk's wire labels while garbling or evaluating.
 */
export function gcChunk(p: MpcParams, k: number, relu: boolean): number {
  const ands = getWindowCircuit({ k, inBits: p.gcBits, shift: p.weightFracBits, relu, outBits: p.ringBits }).ands
  const perInstance = ands * 2 * LABEL + p.ringBits * LABEL + p.ringBits / 8 + k * p.gcBits * 2 * LABEL
  return Math.max(1, Math.floor(GC_CHUNK_BYTES / perInstance / 8) * 8)
}

/** Frames of garbled circuits a step sends offline (one per chunk of instances). */
export function gcChunks(p: MpcParams, g: GcShape): number {
  return g.groups.reduce((s, w) => s + Math.ceil(w.count / gcChunk(p, w.k, g.relu)), 0)
}

/** Online and offline bytes of a garbled step (ReLU positions, max-pool windows). */
export function gcCost(p: MpcParams, g: GcShape, identity: number): MsgCost & { ands: number } {
  const { inputs, instances } = gcSizes(g)
  const ands = gcAnds(p, g)
  const bBits = inputs * p.gcBits
  return {
    ands,
    online: HEADER_BYTES + inputs * p.gcBits * LABEL + HEADER_BYTES + instances * RING,
    offlineC2S: Math.ceil(bBits / 8) + identity * RING,
    offlineS2C: gcChunks(p, g) * HEADER_BYTES + ands * 2 * LABEL + instances * p.ringBits * LABEL + (instances * p.ringBits) / 8 + bBits * 2 * LABEL,
    dealerToClient: bBits * LABEL,
    rounds: instances > 0 ? 2 : 0,
  }
}

/** Level L of a degree-d polynomial: h = 2^(L-1); products t^h * t^j for j in js, and t^h squared. */
export interface PolyLevel {
  h: number
  js: number[]
  square: boolean
}

/** The Beaver products that build B_2 .. B_d from B_1 in ceil(log2 d) levels. */
export function polyLevels(d: number): PolyLevel[] {
  const out: PolyLevel[] = []
  for (let h = 1; h < d; h *= 2) {
    const js: number[] = []
    for (let j = 1; j < h && h + j <= d; j++) js.push(j)
    out.push({ h, js, square: 2 * h <= d })
  }
  return out
}

/**
 * A polynomial step on n elements, degree d on m of them: level 1 opens t - a (the client's half
 * offline, the server's online), every further level exchanges the openings of t^h and t^j both
 * ways, and the client returns its masked shares of B_2 .. B_d.
 */
export function polyCost(n: number, m: number, d: number): MsgCost & { dealerToClient: number } {
  const levels = d >= 2 ? polyLevels(d) : []
  let online = 0
  let dealer = 0
  levels.forEach((lv, i) => {
    const opens = 1 + lv.js.length
    online += i === 0 ? HEADER_BYTES + m * RING : 2 * (HEADER_BYTES + opens * m * RING)
    dealer += (lv.js.length + (lv.square ? 1 : 0)) * m * RING
  })
  if (levels.length) online += HEADER_BYTES + (d - 1) * m * RING
  return {
    online: m > 0 ? online : 0,
    offlineC2S: n * RING + (levels.length ? m * RING : 0),
    offlineS2C: 0,
    dealerToClient: m > 0 ? dealer : 0,
    rounds: m > 0 && levels.length ? levels.length + 1 : 0,
  }
}

/** A Beaver product of two secret n-vectors: the client's openings go offline, the server's online. */
export function mulCost(n: number): MsgCost {
  return {
    online: HEADER_BYTES + 2 * n * RING + HEADER_BYTES + n * RING,
    offlineC2S: 2 * n * RING,
    offlineS2C: 0,
    dealerToClient: n * RING,
    rounds: 2,
  }
}

/** Per-image framing and fixed parts: input, output, the two offline messages and the dealer's. */
export function frameCost(inputSize: number, outputSize: number, segmentsSize: number): MsgCost {
  return {
    online: HEADER_BYTES + inputSize * RING + HEADER_BYTES + outputSize * RING,
    offlineC2S: HEADER_BYTES,
    offlineS2C: HEADER_BYTES,
    dealerToClient: 2 * HEADER_BYTES + 16 + segmentsSize * RING,
    rounds: 2,
  }
}

/** Dealer and server per image: an empty request frame and a frame with a seed. */
export const DEALER_TO_SERVER = 2 * HEADER_BYTES + 16
