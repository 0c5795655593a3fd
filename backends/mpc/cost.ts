/**
 * The cost model's common parts: protocol parameters, network presets, latency, and the vocabulary of
 * message costs (label and ring-element sizes, a step's bytes per direction and rounds). Each step
 * kind computes its own bytes and rounds in its file (steps/*.ts) from the same quantities its
 * runtime uses, so measured bytes equal the prediction; latency adds rounds times the one-way delay
 * to bytes over bandwidth (computation is not modelled).
 */
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
      'exact inside garbled circuits (wire shift); elsewhere SecureML local share truncation: error 1 ulp, wrong by about 2^(64 - shift) with probability |x| / 2^64 per element (x in ring units); the schedule states the sum per inference (truncation)',
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

/** Bytes of a wire label (kappa = 128 bits) and of a ring element. */
export const LABEL = 16
export const RING = 8
/**
 * Bytes of a garbling's hash key (AES-128, fresh per garbling, sent in front of each chunk's tables).
 * Half-gates with the TCCR hash pi(pi(x) ^ i) ^ pi(x) costs 8 AES blocks per AND gate to garble and
 * 4 to evaluate (gc.ts); computation is not in the latency model.
 */
export const GC_KEY = 16

/** One step's messages per image: bytes per direction and online rounds. */
export interface MsgCost {
  online: number
  offlineC2S: number
  offlineS2C: number
  dealerToClient: number
  rounds: number
}

export function sumCost(a: MsgCost, b: MsgCost): MsgCost {
  return {
    online: a.online + b.online,
    offlineC2S: a.offlineC2S + b.offlineC2S,
    offlineS2C: a.offlineS2C + b.offlineS2C,
    dealerToClient: a.dealerToClient + b.dealerToClient,
    rounds: a.rounds + b.rounds,
  }
}

export function offlineBytes(c: MsgCost): number {
  return c.offlineC2S + c.offlineS2C + c.dealerToClient
}
