/**
 * The CKKS plan: plain JSON data a runtime executes. Ciphertexts are numbered registers; every
 * instruction carries the level and scale of its result. Plaintext constants (diagonals, biases,
 * polynomial coefficients, layouts) live in `constants`, referenced by id: typed arrays in memory,
 * offsets into the binary sidecar (plan.bin) in a written plan.
 */
import { createHash } from 'node:crypto'
import type { CkksParams } from './params.js'
import type { PlaintextMode, PlanMemory } from './memory.js'
import type { RefreshMask } from './refresh.js'

export type InstrOp =
  | 'rotate' //    dst = rot(a, step): slot i gets slot i + step
  | 'mulPlain' //  dst = a * encode(pt, ptScale at a's level)
  | 'addPlain' //  dst = a + encode(pt, a's scale)
  | 'add' //       dst = a + b
  | 'mul' //       dst = a * b (size 3 until relinearized)
  | 'square' //    dst = a * a
  | 'relin' //     relinearize
  | 'rescale' //   divide by the last prime, drop it
  | 'modswitch' // drop primes down to the instruction's level
  | 'negate'
  | 'refresh' //   bootstrap: client-aided refresh to a fresh ciphertext at this level

export interface Instr {
  op: InstrOp
  dst: number
  args: number[]
  step?: number
  pt?: string
  ptScale?: number
  level: number
  scale: number
  /** Which graph node this instruction serves. */
  node?: string
}

/**
 * Where a constant's numbers are: a typed array in memory (as compiled), base64 (plans written
 * before the sidecar), or a reference into the plan's binary sidecar (as written by `pic compile -o`,
 * until `attachConstants` reads them back).
 */
export type Int32Data = Int32Array | string | BinRef
export type Float64Data = Float64Array | string | BinRef

/** Bytes [offset, offset + count * element size) of the sidecar's constants section. */
export interface BinRef {
  offset: number
  count: number
}

export interface ConstVector {
  /** 'sparse': slots + values; 'index': an Int32 array. */
  kind: 'sparse' | 'index'
  length: number
  slots?: Int32Data
  values?: Float64Data
  data?: Int32Data
}

export interface PlanInput {
  name: string
  shape: number[]
  /** Ciphertexts the client encrypts for this input (registers first..first+cts-1). */
  regs: number[]
  /** Level each ciphertext is encrypted at (the lowest its consumers need). */
  levels: number[]
  scale: number
  /** Constant id of an Int32 map (cts * slots): slot -> flat element index or -1. */
  slotMap: string
  layout: string
}

export interface PlanOutput {
  name: string
  shape: number[]
  reg: number
  /** Constant id of an Int32 array: element -> slot. */
  slots: string
  layout: string
}

/** One ring and chain length between refreshes, priced as a whole plan after the memory stages. */
export interface ParamChoice {
  logN: number
  /** Levels between refreshes. */
  levels: number
  refreshes: number
  estimatedMs: number
  peakBytes: number
  fits: boolean
  rotationKeys: number
  plaintexts: PlaintextMode
  /** With refreshes placed by cost: the placement model's latency and refreshes had they gone at the latest point. */
  latestPointMs?: number
  latestPointRefreshes?: number
}

export interface PlanStats {
  /** Levels the chain must hold between refreshes (the whole depth for a leveled plan). */
  depth: number
  /** Multiplicative depth of the whole network as lowered (above `depth` when refreshes are placed). */
  networkDepth?: number
  bootstraps: number
  ciphertexts: number
  counts: Record<string, number>
  estimatedMs: Record<string, number>
  estimatedTotalMs: number
  estimatedEncryptMs: number
  estimatedDecryptMs: number
  keyBytes: { relin: number; galois: number; perRotationKey: number; total: number }
  rotationKeys: number
  /** What node-seal's heap must hold at the plan's peak (backends/ckks/memory.ts). */
  memory: PlanMemory & { peakLayer?: string }
  /** Plans that need refreshes: every ring and chain length priced, the chosen one among them. */
  choices?: ParamChoice[]
  /** Notes for people: bootstraps placed, layouts chosen. */
  notes: string[]
  /** Every value's calibrated bound against its level's modulus (ranges.ts), or 'unchecked'. */
  ranges?: CkksRangeReport | 'unchecked'
}

/**
 * The range check of a plan (ranges.ts): the tightest point (max |slot| times the margin, scale and
 * level, bits left below Q_level / 2) and the same over the output slots alone; q0 when widened.
 */
export interface CkksRangeReport {
  source: 'calibration'
  samples: number
  margin: number
  noiseMarginBits: number
  tightest: { node: string | null; level: number; bound: number | null; scaleBits: number | null; modulusBits: number | null; headroomBits: number | null }
  output: { bound: number | null; headroomBits: number | null }
  widened?: { q0Bits: { from: number; to: number } }
}

export interface CkksPlan {
  format: 'pic-ckks-plan'
  version: 1
  model: string
  params: CkksParams & { slots: number; totalBits: number; maxBits: number; primeValues: string[] }
  keys: { rotations: number[]; relin: boolean }
  /** Plaintexts encoded once before evaluation (resident) or per instruction (on demand). */
  plaintexts: PlaintextMode
  batching: string
  inputs: PlanInput[]
  outputs: PlanOutput[]
  instructions: Instr[]
  registers: number
  constants: Record<string, ConstVector>
  stats: PlanStats
  /** Plans with refreshes compiled for masking them (backends/ckks/refresh.ts): sigma, the bound B, the levels reserved. */
  refreshMask?: RefreshMask
}

export function b64Float64(a: ArrayLike<number>): string {
  return Buffer.from(Float64Array.from(a).buffer).toString('base64')
}

export function b64Int32(a: ArrayLike<number>): string {
  return Buffer.from(Int32Array.from(a).buffer).toString('base64')
}

export function fromB64Float64(s: string): Float64Array {
  const b = Buffer.from(s, 'base64')
  return new Float64Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength))
}

export function fromB64Int32(s: string): Int32Array {
  const b = Buffer.from(s, 'base64')
  return new Int32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength))
}

function isRef(v: unknown): v is BinRef {
  return typeof v === 'object' && v !== null && !ArrayBuffer.isView(v) && typeof (v as BinRef).offset === 'number'
}

export function int32Of(v: Int32Data): Int32Array {
  if (typeof v === 'string') return fromB64Int32(v)
  if (isRef(v)) throw new Error('a plan constant is still in the sidecar (read the plan with its .bin)')
  return v
}

export function float64Of(v: Float64Data): Float64Array {
  if (typeof v === 'string') return fromB64Float64(v)
  if (isRef(v)) throw new Error('a plan constant is still in the sidecar (read the plan with its .bin)')
  return v
}

/** Dense slot vector of a sparse constant. */
export function constDense(c: ConstVector, S: number): Float64Array {
  const out = new Float64Array(S)
  if (c.kind !== 'sparse') throw new Error('not a sparse vector constant')
  const slots = int32Of(c.slots!)
  const vals = float64Of(c.values!)
  for (let i = 0; i < slots.length; i++) out[slots[i]] = vals[i]
  return out
}

const decodedIndex = new WeakMap<ConstVector, Int32Array>()

/** An index constant (a slot map), decoded once per plan object; callers only read it. */
export function constIndex(c: ConstVector): Int32Array {
  if (c.kind !== 'index') throw new Error('not an index constant')
  let v = decodedIndex.get(c)
  if (!v) decodedIndex.set(c, (v = int32Of(c.data!)))
  return v
}

/** What a written plan says about its sidecar: the compiled graph's bytes first, then the constants. */
export interface SidecarInfo {
  graphBytes: number
  constantBytes: number
  /** sha256 of the constants section's length and 256 evenly spaced 64-byte samples. */
  fingerprint: string
}

const SAMPLES = 256
const SAMPLE_BYTES = 64

function sectionFingerprint(chunks: readonly Uint8Array[], total: number): string {
  const h = createHash('sha256').update(`pic-ckks-constants:${total}`)
  if (total === 0) return h.digest('hex').slice(0, 16)
  // each sample is the SAMPLE_BYTES bytes from an evenly spaced position, read across chunk boundaries
  const sample = new Uint8Array(SAMPLE_BYTES)
  let c = 0
  let base = 0
  for (let i = 0; i < SAMPLES; i++) {
    const pos = Math.floor((i * total) / SAMPLES)
    while (base + chunks[c].length <= pos) base += chunks[c++].length
    let n = 0
    let cc = c
    let at = pos - base
    while (n < SAMPLE_BYTES && cc < chunks.length) {
      const take = Math.min(SAMPLE_BYTES - n, chunks[cc].length - at)
      sample.set(chunks[cc].subarray(at, at + take), n)
      n += take
      cc++
      at = 0
    }
    h.update(sample.subarray(0, n))
  }
  return h.digest('hex').slice(0, 16)
}

/**
 * The constants as sidecar chunks (each array's own bytes, 8-byte aligned) and their JSON form with
 * references by offset: large plans stay out of one JSON string.
 */
export function constantsToSidecar(constants: Record<string, ConstVector>): { json: Record<string, ConstVector>; chunks: Uint8Array[]; bytes: number; fingerprint: string } {
  const chunks: Uint8Array[] = []
  let offset = 0
  const put = (a: Int32Array | Float64Array): BinRef => {
    const ref = { offset, count: a.length }
    const b = new Uint8Array(a.buffer, a.byteOffset, a.byteLength)
    chunks.push(b)
    offset += b.length
    const pad = (8 - (b.length % 8)) % 8
    if (pad) {
      chunks.push(new Uint8Array(pad))
      offset += pad
    }
    return ref
  }
  const json: Record<string, ConstVector> = {}
  for (const [id, c] of Object.entries(constants)) {
    const o: ConstVector = { kind: c.kind, length: c.length }
    if (c.slots !== undefined) o.slots = put(int32Of(c.slots))
    if (c.values !== undefined) o.values = put(float64Of(c.values))
    if (c.data !== undefined) o.data = put(int32Of(c.data))
    json[id] = o
  }
  return { json, chunks, bytes: offset, fingerprint: sectionFingerprint(chunks, offset) }
}

/** The constants of a written plan with their arrays read from the sidecar's constants section (views, no copy when aligned). */
export function constantsFromSidecar(json: Record<string, ConstVector>, section: Uint8Array, info: SidecarInfo): Record<string, ConstVector> {
  if (section.length !== info.constantBytes) throw new Error(`the sidecar holds ${section.length} bytes of constants, the plan refers to ${info.constantBytes}`)
  if (sectionFingerprint([section], section.length) !== info.fingerprint) throw new Error('the sidecar does not match the plan (fingerprint of its constants)')
  const bytes = section.byteOffset % 8 === 0 ? section : section.slice()
  const i32 = (r: Int32Data): Int32Array => {
    if (!isRef(r)) return int32Of(r)
    if (r.offset % 4 !== 0 || r.offset + 4 * r.count > bytes.length) throw new Error('the sidecar does not hold the constants the plan refers to')
    return new Int32Array(bytes.buffer, bytes.byteOffset + r.offset, r.count)
  }
  const f64 = (r: Float64Data): Float64Array => {
    if (!isRef(r)) return float64Of(r)
    if (r.offset % 8 !== 0 || r.offset + 8 * r.count > bytes.length) throw new Error('the sidecar does not hold the constants the plan refers to')
    return new Float64Array(bytes.buffer, bytes.byteOffset + r.offset, r.count)
  }
  const out: Record<string, ConstVector> = {}
  for (const [id, c] of Object.entries(json)) {
    const o: ConstVector = { kind: c.kind, length: c.length }
    if (c.slots !== undefined) o.slots = i32(c.slots)
    if (c.values !== undefined) o.values = f64(c.values)
    if (c.data !== undefined) o.data = i32(c.data)
    out[id] = o
  }
  return out
}
