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
  const weightFracBits = over.weightFracBits ?? 13
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

/** Online and offline bytes of a garbled step (ReLU positions, max-pool windows). */
export function gcCost(p: MpcParams, g: GcShape, identity: number): MsgCost & { ands: number } {
  const { inputs, instances } = gcSizes(g)
  const ands = gcAnds(p, g)
  const bBits = inputs * p.gcBits
  return {
    ands,
    online: HEADER_BYTES + inputs * p.gcBits * LABEL + HEADER_BYTES + instances * RING,
    offlineC2S: Math.ceil(bBits / 8) + identity * RING,
    offlineS2C: ands * 2 * LABEL + instances * p.ringBits * LABEL + (instances * p.ringBits) / 8 + bBits * 2 * LABEL,
    dealerToClient: bBits * LABEL,
    rounds: instances > 0 ? 2 : 0,
  }
}

/** A polynomial step of degree <= 2 on n elements, `m` of them squared by Beaver squares. */
export function polyCost(n: number, m: number): MsgCost {
  return {
    online: m > 0 ? 2 * HEADER_BYTES + 2 * m * RING : 0,
    offlineC2S: n * RING + m * RING,
    offlineS2C: 0,
    dealerToClient: m * RING,
    rounds: m > 0 ? 2 : 0,
  }
}

/** Per-image framing and fixed parts: input, output, the two offline messages and the dealer's. */
export function frameCost(inputSize: number, outputSize: number, segmentsSize: number): MsgCost {
  return {
    online: HEADER_BYTES + inputSize * RING + HEADER_BYTES + outputSize * RING,
    offlineC2S: HEADER_BYTES,
    offlineS2C: HEADER_BYTES,
    dealerToClient: HEADER_BYTES + 16 + segmentsSize * RING,
    rounds: 2,
  }
}

/** Dealer to server per image: one frame with a seed. */
export const DEALER_TO_SERVER = HEADER_BYTES + 16
