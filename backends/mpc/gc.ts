/**
 * Garbled circuits: a small Boolean circuit builder (XOR, NOT free; AND counted) with the circuits the
 * MPC backend needs (share addition, truncation, ReLU, max trees, re-masking), and half-gates garbling
 * with free-XOR and point-and-permute (Zahur, Rosulek, Evans 2015). The hash is fixed-key AES-128 from
 * node:crypto in the TCCR form H(X, j) = pi(sigma(X) ^ j) ^ sigma(X) ^ j. One circuit template is
 * garbled and evaluated for N independent instances at once, so each AND gate costs one batched AES
 * call for all instances.
 */
import { createCipheriv, createHash, type Cipher } from 'node:crypto'
import { Prg } from './ring.js'
import { ProtocolError } from './net.js'

/** Constant wires (never materialized: the builder folds them away). */
export const ZERO = -1
export const ONE = -2

const XOR = 0
const AND = 1
const NOT = 2

/** A circuit template: gates in topological order over numbered wires. */
export interface Circuit {
  readonly nWires: number
  /** Garbler inputs known only online (its share of the layer input). */
  readonly inputsA: readonly number[]
  /** Evaluator inputs (its share, transferred by oblivious transfer offline). */
  readonly inputsB: readonly number[]
  /** Garbler inputs known offline (its output mask). */
  readonly inputsU: readonly number[]
  /** Flattened [op, a, b, out] quadruples. */
  readonly gates: Int32Array
  readonly outputs: readonly number[]
  readonly ands: number
}

export class CircuitBuilder {
  private n = 0
  private readonly g: number[] = []
  private andCount = 0
  readonly inputsA: number[] = []
  readonly inputsB: number[] = []
  readonly inputsU: number[] = []

  private wire(): number {
    return this.n++
  }
  input(kind: 'A' | 'B' | 'U', bits: number): number[] {
    const ws: number[] = []
    for (let i = 0; i < bits; i++) ws.push(this.wire())
    ;(kind === 'A' ? this.inputsA : kind === 'B' ? this.inputsB : this.inputsU).push(...ws)
    return ws
  }
  xor(a: number, b: number): number {
    if (a === ZERO) return b
    if (b === ZERO) return a
    if (a === ONE) return this.not(b)
    if (b === ONE) return this.not(a)
    if (a === b) return ZERO
    const o = this.wire()
    this.g.push(XOR, a, b, o)
    return o
  }
  not(a: number): number {
    if (a === ZERO) return ONE
    if (a === ONE) return ZERO
    const o = this.wire()
    this.g.push(NOT, a, 0, o)
    return o
  }
  and(a: number, b: number): number {
    if (a === ZERO || b === ZERO) return ZERO
    if (a === ONE) return b
    if (b === ONE) return a
    if (a === b) return a
    const o = this.wire()
    this.g.push(AND, a, b, o)
    this.andCount++
    return o
  }
  /** x + y modulo 2^n (ripple carry, n - 1 AND gates for full-width operands). */
  add(x: readonly number[], y: readonly number[], n: number): number[] {
    const out: number[] = []
    let c = ZERO
    for (let i = 0; i < n; i++) {
      const a = x[i] ?? ZERO
      const b = y[i] ?? ZERO
      out.push(this.xor(this.xor(a, b), c))
      if (i < n - 1) c = this.xor(c, this.and(this.xor(a, c), this.xor(b, c)))
    }
    return out
  }
  /** 1 when x < y, for n-bit operands read as signed or unsigned (n AND gates). */
  less(x: readonly number[], y: readonly number[], signed: boolean): number {
    const n = x.length
    let c = ONE
    for (let i = 0; i < n; i++) {
      const a = x[i]
      const b = this.not(y[i])
      c = this.xor(c, this.and(this.xor(a, c), this.xor(b, c)))
    }
    const xe = signed ? x[n - 1] : ZERO
    const ye = this.not(signed ? y[n - 1] : ZERO)
    return this.xor(this.xor(xe, ye), c)
  }
  /** sel ? b : a, bitwise (one AND per bit). */
  mux(sel: number, a: readonly number[], b: readonly number[]): number[] {
    return a.map((ai, i) => this.xor(ai, this.and(sel, this.xor(ai, b[i]))))
  }
  build(outputs: number[]): Circuit {
    for (const o of outputs) if (o < 0) throw new Error('circuit output is a constant')
    return {
      nWires: this.n,
      inputsA: this.inputsA,
      inputsB: this.inputsB,
      inputsU: this.inputsU,
      gates: Int32Array.from(this.g),
      outputs,
      ands: this.andCount,
    }
  }
}

export interface WindowCircuitParams {
  /** Elements in the window (1 for an elementwise ReLU). */
  k: number
  /** Bits of each input share that enter the circuit (the value bound). */
  inBits: number
  /** Right shift applied to the reconstructed value (fixed-point truncation, free wiring). */
  shift: number
  /** Apply ReLU to every input before taking the maximum. */
  relu: boolean
  /** Width of the re-masked output (the ring). */
  outBits: number
}

/**
 * Per instance: reconstruct k values from the garbler's and evaluator's shares (low `inBits` bits),
 * truncate, optionally ReLU, take the maximum, and output (result + U) mod 2^outBits where U is the
 * garbler's mask. With k = 1 and relu this is the ReLU circuit: (inBits - 1) + (inBits - 1 - shift)
 * + (outBits - 1) AND gates.
 */
export function windowCircuit(p: WindowCircuitParams): Circuit {
  const b = new CircuitBuilder()
  const vals: number[][] = []
  for (let i = 0; i < p.k; i++) {
    const a = b.input('A', p.inBits)
    const e = b.input('B', p.inBits)
    const y = b.add(a, e, p.inBits)
    const sign = y[p.inBits - 1]
    if (p.relu) {
      const pos = b.not(sign)
      vals.push(y.slice(p.shift, p.inBits - 1).map((w) => b.and(w, pos)))
    } else vals.push(y.slice(p.shift))
  }
  const signed = !p.relu
  let level = vals
  while (level.length > 1) {
    const next: number[][] = []
    for (let i = 0; i + 1 < level.length; i += 2) {
      const lt = b.less(level[i], level[i + 1], signed)
      next.push(b.mux(lt, level[i], level[i + 1]))
    }
    if (level.length % 2) next.push(level[level.length - 1])
    level = next
  }
  const v = level[0]
  const ext = signed ? Array.from({ length: p.outBits }, (_, i) => v[Math.min(i, v.length - 1)]) : v
  const u = b.input('U', p.outBits)
  return b.build(b.add(ext, u, p.outBits))
}

const cache = new Map<string, Circuit>()

/** The window circuit, built once per parameter set. */
export function getWindowCircuit(p: WindowCircuitParams): Circuit {
  const key = `${p.k}/${p.inBits}/${p.shift}/${p.relu}/${p.outBits}`
  let c = cache.get(key)
  if (!c) cache.set(key, (c = windowCircuit(p)))
  return c
}

const FIXED_KEY = createHash('sha256').update('PIC half-gates fixed AES key').digest().subarray(0, 16)

function aes(): Cipher {
  const c = createCipheriv('aes-128-ecb', FIXED_KEY, null)
  c.setAutoPadding(false)
  return c
}

/** H(K) = AES(K) ^ K over a batch of 16-byte blocks, in place of nothing: returns a new array. */
function mmo(c: Cipher, k: Uint32Array): Uint32Array {
  const enc = c.update(Buffer.from(k.buffer, k.byteOffset, k.byteLength))
  const h = new Uint32Array(enc.buffer, enc.byteOffset, k.length)
  const out = new Uint32Array(k.length)
  for (let i = 0; i < k.length; i++) out[i] = h[i] ^ k[i]
  return out
}

/** Write sigma(X) ^ tweak into k at word offset o; sigma(L || R) = (L ^ R) || L on 64-bit halves. */
function sigmaTweak(k: Uint32Array, o: number, x: Uint32Array, xo: number, t0: number, t1: number, t2: number, t3: number): void {
  const x0 = x[xo]
  const x1 = x[xo + 1]
  k[o] = (x0 ^ x[xo + 2] ^ t0) >>> 0
  k[o + 1] = (x1 ^ x[xo + 3] ^ t1) >>> 0
  k[o + 2] = (x0 ^ t2) >>> 0
  k[o + 3] = (x1 ^ t3) >>> 0
}

export interface Garbled {
  /** Zero labels of every wire: wire w, instance i at words (w * N + i) * 4. */
  readonly zero: Uint32Array
  readonly delta: Uint32Array
  /** Two ciphertexts per AND gate per instance. */
  readonly tables: Buffer
  /** Permute bits of the output zero labels: instance i, output j at i * outputs + j. */
  readonly decode: Uint8Array
}

/**
 * Garble `n` instances of a circuit. `tweak` must be unique per garbling under one session (it is
 * mixed into every hash together with the gate and instance index).
 */
export function garble(circ: Circuit, n: number, seed: Buffer, tweak: number): Garbled {
  const prg = new Prg(seed, 'garble')
  const delta = new Uint32Array(prg.bytes(16).buffer.slice(0, 16))
  delta[0] |= 1
  const zero = new Uint32Array(circ.nWires * n * 4)
  const inputs = [...circ.inputsA, ...circ.inputsB, ...circ.inputsU]
  const rnd = prg.bytes(inputs.length * n * 16)
  const rw = new Uint32Array(rnd.buffer, rnd.byteOffset, inputs.length * n * 4)
  inputs.forEach((w, j) => zero.set(rw.subarray(j * n * 4, (j + 1) * n * 4), w * n * 4))
  const tables = Buffer.alloc(circ.ands * n * 32)
  const tw = new Uint32Array(tables.buffer, tables.byteOffset, circ.ands * n * 8)
  const c = aes()
  const k = new Uint32Array(n * 16)
  const g = circ.gates
  let andIdx = 0
  for (let q = 0; q < g.length; q += 4) {
    const op = g[q]
    const oa = g[q + 1] * n * 4
    const ob = g[q + 2] * n * 4
    const oo = g[q + 3] * n * 4
    if (op === XOR) {
      for (let i = 0; i < n * 4; i++) zero[oo + i] = zero[oa + i] ^ zero[ob + i]
      continue
    }
    if (op === NOT) {
      for (let i = 0; i < n * 4; i++) zero[oo + i] = zero[oa + i] ^ delta[i & 3]
      continue
    }
    const a1 = new Uint32Array(4)
    const b1 = new Uint32Array(4)
    for (let i = 0; i < n; i++) {
      const ai = oa + i * 4
      const bi = ob + i * 4
      for (let w = 0; w < 4; w++) {
        a1[w] = zero[ai + w] ^ delta[w]
        b1[w] = zero[bi + w] ^ delta[w]
      }
      sigmaTweak(k, i * 16, zero, ai, andIdx, i, tweak, 0)
      sigmaTweak(k, i * 16 + 4, a1, 0, andIdx, i, tweak, 0)
      sigmaTweak(k, i * 16 + 8, zero, bi, andIdx, i, tweak, 1)
      sigmaTweak(k, i * 16 + 12, b1, 0, andIdx, i, tweak, 1)
    }
    const h = mmo(c, k)
    for (let i = 0; i < n; i++) {
      const ai = oa + i * 4
      const bi = ob + i * 4
      const pa = zero[ai] & 1
      const pb = zero[bi] & 1
      const hb = i * 16
      const t = (andIdx * n + i) * 8
      for (let w = 0; w < 4; w++) {
        const tg = h[hb + w] ^ h[hb + 4 + w] ^ (pb ? delta[w] : 0)
        const wg = h[hb + w] ^ (pa ? tg : 0)
        const te = h[hb + 8 + w] ^ h[hb + 12 + w] ^ zero[ai + w]
        const we = h[hb + 8 + w] ^ (pb ? te ^ zero[ai + w] : 0)
        tw[t + w] = tg
        tw[t + 4 + w] = te
        zero[oo + i * 4 + w] = wg ^ we
      }
    }
    andIdx++
  }
  const no = circ.outputs.length
  const decode = new Uint8Array(n * no)
  for (let i = 0; i < n; i++) for (let j = 0; j < no; j++) decode[i * no + j] = zero[(circ.outputs[j] * n + i) * 4] & 1
  return { zero, delta, tables, decode }
}

/**
 * Active labels of the given input wires for the given bit values: bits[i * wires.length + j] is the
 * value of wire j in instance i. Returns 16 bytes per bit in the same order.
 */
export function encodeLabels(gb: Garbled, n: number, wires: readonly number[], bits: Uint8Array): Buffer {
  const m = wires.length
  const out = Buffer.alloc(n * m * 16)
  const ow = new Uint32Array(out.buffer, out.byteOffset, n * m * 4)
  for (let i = 0; i < n; i++)
    for (let j = 0; j < m; j++) {
      const src = (wires[j] * n + i) * 4
      const dst = (i * m + j) * 4
      const bit = bits[i * m + j]
      for (let w = 0; w < 4; w++) ow[dst + w] = gb.zero[src + w] ^ (bit ? gb.delta[w] : 0)
    }
  return out
}

/** The zero label of input wire j in instance i (for oblivious transfer: the one label is zero ^ delta). */
export function zeroLabels(gb: Garbled, n: number, wires: readonly number[]): Buffer {
  return encodeLabels(gb, n, wires, new Uint8Array(n * wires.length))
}

/**
 * Evaluate n instances given active input labels (16 bytes per bit, instance-major, in the order of
 * the circuit's input lists) and the tables; returns the output bits (instance-major) after decoding.
 */
export function evaluate(
  circ: Circuit, n: number, labelsA: Buffer, labelsB: Buffer, labelsU: Buffer, tables: Buffer, decode: Uint8Array, tweak: number,
): Uint8Array {
  const act = new Uint32Array(circ.nWires * n * 4)
  const place = (wires: readonly number[], buf: Buffer) => {
    const m = wires.length
    if (buf.length !== n * m * 16) throw new ProtocolError(`malformed labels: expected ${n * m * 16} bytes, got ${buf.length}`)
    const bw = new Uint32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.length))
    for (let i = 0; i < n; i++) for (let j = 0; j < m; j++) act.set(bw.subarray((i * m + j) * 4, (i * m + j) * 4 + 4), (wires[j] * n + i) * 4)
  }
  place(circ.inputsA, labelsA)
  place(circ.inputsB, labelsB)
  place(circ.inputsU, labelsU)
  if (tables.length !== circ.ands * n * 32) throw new ProtocolError(`malformed garbled tables: expected ${circ.ands * n * 32} bytes, got ${tables.length}`)
  const tw = new Uint32Array(tables.buffer.slice(tables.byteOffset, tables.byteOffset + tables.length))
  const c = aes()
  const k = new Uint32Array(n * 8)
  const g = circ.gates
  let andIdx = 0
  for (let q = 0; q < g.length; q += 4) {
    const op = g[q]
    const oa = g[q + 1] * n * 4
    const ob = g[q + 2] * n * 4
    const oo = g[q + 3] * n * 4
    if (op === XOR) {
      for (let i = 0; i < n * 4; i++) act[oo + i] = act[oa + i] ^ act[ob + i]
      continue
    }
    if (op === NOT) {
      act.copyWithin(oo, oa, oa + n * 4)
      continue
    }
    for (let i = 0; i < n; i++) {
      sigmaTweak(k, i * 8, act, oa + i * 4, andIdx, i, tweak, 0)
      sigmaTweak(k, i * 8 + 4, act, ob + i * 4, andIdx, i, tweak, 1)
    }
    const h = mmo(c, k)
    for (let i = 0; i < n; i++) {
      const ai = oa + i * 4
      const sa = act[ai] & 1
      const sb = act[ob + i * 4] & 1
      const t = (andIdx * n + i) * 8
      for (let w = 0; w < 4; w++) {
        const wg = h[i * 8 + w] ^ (sa ? tw[t + w] : 0)
        const we = h[i * 8 + 4 + w] ^ (sb ? tw[t + 4 + w] ^ act[ai + w] : 0)
        act[oo + i * 4 + w] = wg ^ we
      }
    }
    andIdx++
  }
  const no = circ.outputs.length
  if (decode.length !== n * no) throw new ProtocolError('malformed decoding bits')
  const out = new Uint8Array(n * no)
  for (let i = 0; i < n; i++) for (let j = 0; j < no; j++) out[i * no + j] = (act[(circ.outputs[j] * n + i) * 4] & 1) ^ decode[i * no + j]
  return out
}

/** Bits 0..nBits-1 of each value, instance-major (value i's bits at i * nBits). */
export function toBits(values: BigUint64Array, nBits: number): Uint8Array {
  const out = new Uint8Array(values.length * nBits)
  for (let i = 0; i < values.length; i++) {
    const v = values[i]
    const lo = Number(v & 0xffffffffn)
    const hi = Number(v >> 32n)
    for (let j = 0; j < nBits; j++) out[i * nBits + j] = j < 32 ? (lo >>> j) & 1 : (hi >>> (j - 32)) & 1
  }
  return out
}

/** Inverse of toBits for up to 64 bits per value. */
export function fromBits(bits: Uint8Array, nBits: number): BigUint64Array {
  const n = bits.length / nBits
  const out = new BigUint64Array(n)
  for (let i = 0; i < n; i++) {
    let lo = 0
    let hi = 0
    for (let j = 0; j < nBits; j++) {
      const b = bits[i * nBits + j]
      if (!b) continue
      if (j < 32) lo |= 1 << j
      else hi |= 1 << (j - 32)
    }
    out[i] = (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0)
  }
  return out
}
