/**
 * The schedule: plain JSON that `pic compile --backend mpc` writes and the dealer, server and client
 * read. Protocol parameters, the sources (secret values held in masked form), the steps (garbled,
 * polynomial, product), the graph outputs, and the cost model's totals and layer rows. The
 * fingerprint hashes params, input, sources, steps and outputs (schedule.ts).
 */
import { PicError } from '../../ir/errors.js'
import type { MpcParams } from './cost.js'
import type { TwoPartyCost } from './offline.js'

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

/** Window-size groups of a garbled step: `count` instances of a k-input window. */
export interface WindowGroup {
  k: number
  count: number
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

/**
 * The value ranges checked against the fixed-point headroom (ranges.ts): 'unchecked' without
 * calibration data; else the bounds (calibrated max |x| times the margin) of every value the ring
 * holds, each with its headroom (the largest |x| its place holds), the tightest, and intBits when
 * widened for a garbled input.
 */
export type RangeReport =
  | 'unchecked'
  | {
      source: 'calibration'
      samples: number
      margin: number
      tightest: { node: string; what: string; bound: number; headroom: number; spareBits: number } | null
      widened?: { intBits: { from: number; to: number }; node: string }
      values: { node: string; what: 'garbled input' | 'segment' | 'product'; bound: number; headroom: number }[]
    }

/**
 * SecureML truncation per inference: the union bound sum_i |x_i| / 2^64 over every truncated element
 * (ranges.ts derives it), from calibrated bounds or, unchecked, from the assumed |x| < 2^(gcBits - 1).
 */
export interface TruncationReport {
  failureProbabilityPerInference: number
  log2: number | null
  truncatedElements: number
  worstNode: string | null
  bounds: 'calibrated' | 'assumed'
  /** The accepted failure probability per inference (a calibrated schedule above it is refused). */
  limit: number
}

export interface MpcSchedule extends CostCounts {
  format: 'pic.mpc.schedule/1'
  backend: 'mpc'
  model: string
  fingerprint: string
  params: MpcParams
  trust: string
  ranges: RangeReport
  truncation: TruncationReport
  input: { node: string; shape: number[]; source: number }
  sources: SourceSpec[]
  steps: Step[]
  outputs: OutputSpec[]
  offlineLatencyMs: Record<string, number>
  /**
   * The offline phase without a dealer (offline.ts): predicted bytes, flights, HE and OT counts, time;
   * `unavailable` says why a schedule can only run with a dealer. Not in the fingerprint.
   */
  twoParty?: TwoPartyCost | { unavailable: string }
  presets: { name: string; bandwidthBitsPerSecond: number; delayMsPerRound: number }[]
  layers: LayerRow[]
}

export const TRUST_MODEL =
  'semi-honest client and server; by default the two parties make the offline correlations themselves (linear-layer masks M r - s by RLWE encryption under the client\'s key with flooding, random oblivious transfers and Beaver products by IKNP OT extension): nobody else takes part; with --dealer a trusted dealer makes them instead and sees the weights and all masks, never the input, the labels or the online messages'
