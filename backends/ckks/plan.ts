/**
 * The CKKS plan: plain JSON data a runtime executes. Ciphertexts are numbered registers; every
 * instruction carries the level and scale of its result. Plaintext constants (diagonals, biases,
 * polynomial coefficients, layouts) live in `constants` as base64 arrays and are referenced by id.
 */
import type { CkksParams } from './params.js'
import type { PlaintextMode, PlanMemory } from './memory.js'

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

export interface ConstVector {
  /** 'sparse': slots + values; 'index': an Int32 array. */
  kind: 'sparse' | 'index'
  length: number
  slots?: string
  values?: string
  data?: string
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

export interface PlanStats {
  depth: number
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
  /** Notes for people: bootstraps placed, layouts chosen. */
  notes: string[]
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

/** Dense slot vector of a sparse constant. */
export function constDense(c: ConstVector, S: number): Float64Array {
  const out = new Float64Array(S)
  if (c.kind !== 'sparse') throw new Error('not a sparse vector constant')
  const slots = fromB64Int32(c.slots!)
  const vals = fromB64Float64(c.values!)
  for (let i = 0; i < slots.length; i++) out[slots[i]] = vals[i]
  return out
}

const decodedIndex = new WeakMap<ConstVector, Int32Array>()

/** An index constant (a slot map), decoded once per plan object; callers only read it. */
export function constIndex(c: ConstVector): Int32Array {
  if (c.kind !== 'index') throw new Error('not an index constant')
  let v = decodedIndex.get(c)
  if (!v) decodedIndex.set(c, (v = fromB64Int32(c.data!)))
  return v
}
