/**
 * Garbled circuits: a small Boolean circuit builder (XOR, NOT free; AND counted) with the circuits the
 * MPC backend needs (share addition, truncation, ReLU, max trees, re-masking), and half-gates garbling
 * with free-XOR and point-and-permute (Zahur, Rosulek, Evans 2015).
 *
 * The hash is the tweakable circular correlation-robust (TCCR) construction of Guo, Katz, Wang, Yu,
 * "Efficient and Secure Multiparty Computation from Fixed-Key Block Ciphers" (IEEE S&P 2020, Section 7):
 *
 *   H(x, i) = pi(pi(x) ^ i) ^ pi(x),   pi = AES-128 (node:crypto) under the garbling's hashKey,
 *
 * the 128-bit tweak i made of the AND gate's index, the instance's index, the garbling's tweak and the
 * half (0: garbler half, 1: evaluator half), as four 32-bit little-endian words. Two AES calls per hash:
 * 8 AES blocks per AND gate to garble (H of A0, A1, B0, B1), 4 to evaluate (H of A, B).
 * Why: half-gates needs H to be correlation robust for the global offset delta *with* tweaks, and
 * circularly (delta also appears in the tables). The former form pi(sigma(x) ^ i) ^ sigma(x) ^ i is not
 * tweakable correlation robust (GKWY20), and under one global fixed key every AND gate ever garbled is
 * a target of the same permutation: by the multi-instance attack of Guo, Katz, Wang, Weng, Yu, "Better
 * Concrete Security for Half-Gates Garbling (in the Multi-Instance Setting)" (CRYPTO 2020), work about
 * 2^k / C breaks one of the garblings seen, C the AND gates observed (security drops by log2 C bits).
 * So, following GKWWY20, the garbler draws a fresh hashKey (node:crypto randomBytes) for every garbling
 * and sends it with the tables: it is public; security comes from it being fresh and independent of
 * the labels and delta, which confines the attacker's gain to one garbling (here one chunk of one
 * garbled step of one image).
 *
 * One circuit template is garbled and evaluated for n independent instances at once, in blocks of
 * GC_BLOCK instances: per block, a compiled program (cached per template) runs the gates by AND
 * depth over wire slots reused by liveness, two AES calls (one per layer of H) per batch of AND gates
 * of one depth for all instances of the block. Memory is the tables (32 B per AND gate per instance,
 * inherent) plus a fixed working set; the garbler keeps no labels (input labels come from a
 * per-garbling key). gcBytes / instancesPerChunk size chunks of a layer for a memory budget.
 */
import { createCipheriv, randomBytes, type Cipher } from 'node:crypto'
import { GC_KEY } from './cost.js'
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

/** Bytes of a garbling's hash key (AES-128), sent with its tables (the cost model's GC_KEY). */
export const HASH_KEY_BYTES = GC_KEY

function ecb(key: Buffer): Cipher {
  const c = createCipheriv('aes-128-ecb', key, null)
  c.setAutoPadding(false)
  return c
}

/** A Uint32Array over a Buffer's bytes, without copying when the Buffer is 4-byte aligned. */
function words(b: Buffer): Uint32Array {
  if ((b.byteOffset & 3) === 0) return new Uint32Array(b.buffer, b.byteOffset, b.length >>> 2)
  const c = new Uint32Array(b.length >>> 2)
  new Uint8Array(c.buffer).set(b)
  return c
}

/** A BigInt64Array over a Buffer's bytes, without copying when the Buffer is 8-byte aligned. */
function lanes(b: Buffer): BigInt64Array {
  if ((b.byteOffset & 7) === 0) return new BigInt64Array(b.buffer, b.byteOffset, b.length >>> 3)
  const c = new BigInt64Array(b.length >>> 3)
  new Uint8Array(c.buffer).set(b)
  return c
}

/**
 * Instances processed together: the working set is one 16-byte label per input wire and per live
 * wire for each instance of a block, so garbling and evaluation need O(slots * GC_BLOCK) scratch
 * whatever n is (besides the tables and labels themselves).
 */
const GC_BLOCK = 1024
/**
 * AES blocks per cipher.update call that AND gates of one depth are batched up to (node:crypto's
 * ECB is fastest from about 64 KiB to 256 KiB per call; every call allocates its output).
 */
const AES_BATCH = 16384
/** Hash inputs per AND gate (AES blocks per layer of H): A0, A1, B0, B1 to garble; A, B to evaluate. */
const GARBLE_BLOCKS = 4
const EVAL_BLOCKS = 2

// Program of a circuit plan (Int32Array): instance-block operations over wire slots (slot 0: the
// all-zero label, slots 1 .. nIn: the circuit inputs in inputsA ++ inputsB ++ inputsU order).
const OP_XOR = 1 // [op, slot a, slot b, slot out]
const OP_AND = 2 // [op, count, (and index, slots a a', slots b b', slot out, flip a, flip b) * count]: one AES call
const OP_EMIT = 3 // [op, output index, slots x x', flip]: output permute bits of the block

/** A circuit with NOT gates folded into wire flips (free-XOR: the zero label of NOT w is w's ^ delta). */
interface Template {
  nIn: number
  /** Wire -> index in inputsA ++ inputsB ++ inputsU, or -1. */
  inputIndex: Int32Array
  plans: Map<number, Plan>
  // values: inputs 0..nIn-1, CONST = nIn (the all-zero label), then XOR / AND results
  vKind: Uint8Array
  vA: Int32Array
  vB: Int32Array
  vFlipA: Uint8Array
  vFlipB: Uint8Array
  vAnd: Int32Array
  outVal: Int32Array
  outFlip: Uint8Array
}

/** A schedule of one circuit for one AND batch width, with wire slots assigned by liveness. */
interface Plan {
  prog: Int32Array
  nSlots: number
  /** Most AND gates in one batch (one AES call). */
  maxAnd: number
}

// value kinds (0: an input)
const V_CONST = 1
const V_XOR = 2
const V_AND = 3

const templates = new WeakMap<Circuit, Template>()

function template(circ: Circuit): Template {
  let t = templates.get(circ)
  if (t) return t
  const inputs = [...circ.inputsA, ...circ.inputsB, ...circ.inputsU]
  const nIn = inputs.length
  const nW = circ.nWires
  const inputIndex = new Int32Array(nW).fill(-1)
  ;[circ.inputsA, circ.inputsB, circ.inputsU].forEach((ws, s) =>
    ws.forEach((w, p) => {
      const j = s === 0 ? p : s === 1 ? circ.inputsA.length + p : circ.inputsA.length + circ.inputsB.length + p
      if (w < 0 || w >= nW || inputIndex[w] >= 0) throw new Error(`circuit input wire ${w} out of range or repeated`)
      inputIndex[w] = j
    }),
  )
  const CONST = nIn
  const g = circ.gates
  const cap = nIn + 1 + g.length / 4
  const vKind = new Uint8Array(cap)
  const vA = new Int32Array(cap)
  const vB = new Int32Array(cap)
  const vFlipA = new Uint8Array(cap)
  const vFlipB = new Uint8Array(cap)
  const vAnd = new Int32Array(cap).fill(-1)
  vKind[CONST] = V_CONST
  let nv = nIn + 1
  const val = new Int32Array(nW).fill(-1)
  const flip = new Uint8Array(nW)
  for (let w = 0; w < nW; w++) if (inputIndex[w] >= 0) val[w] = inputIndex[w]
  let ands = 0
  const operand = (w: number): number => {
    if (w < 0 || w >= nW || val[w] < 0) throw new Error(`circuit wire ${w} used before it is defined`)
    return val[w]
  }
  for (let q = 0; q < g.length; q += 4) {
    const op = g[q]
    const o = g[q + 3]
    if (o < 0 || o >= nW || val[o] >= 0) throw new Error(`circuit wire ${o} defined twice or out of range`)
    const va = operand(g[q + 1])
    const fa = flip[g[q + 1]]
    if (op === NOT) {
      val[o] = va
      flip[o] = fa ^ 1
      continue
    }
    const vb = operand(g[q + 2])
    const fb = flip[g[q + 2]]
    if (op === XOR) {
      flip[o] = fa ^ fb
      if (va === vb) val[o] = CONST
      else if (va === CONST) val[o] = vb
      else if (vb === CONST) val[o] = va
      else {
        vKind[nv] = V_XOR
        vA[nv] = va
        vB[nv] = vb
        val[o] = nv++
      }
    } else if (op === AND) {
      vKind[nv] = V_AND
      vA[nv] = va
      vB[nv] = vb
      vFlipA[nv] = fa
      vFlipB[nv] = fb
      vAnd[nv] = ands++
      val[o] = nv++
    } else throw new Error(`unknown gate ${op}`)
  }
  if (ands !== circ.ands) throw new Error(`circuit has ${ands} AND gates, says ${circ.ands}`)
  const outVal = Int32Array.from(circ.outputs, (w) => operand(w))
  const outFlip = Uint8Array.from(circ.outputs, (w) => flip[w])
  t = {
    nIn, inputIndex, plans: new Map(),
    vKind: vKind.subarray(0, nv), vA: vA.subarray(0, nv), vB: vB.subarray(0, nv), vFlipA: vFlipA.subarray(0, nv),
    vFlipB: vFlipB.subarray(0, nv), vAnd: vAnd.subarray(0, nv), outVal, outFlip,
  }
  templates.set(circ, t)
  return t
}

/**
 * Schedule the circuit for one instance block. Slot 0 is the all-zero label, slots 1 .. nIn the
 * circuit inputs (filled at the start of a block), then slots reused by liveness for the other values.
 * AND gates run by AND depth, those of one depth batched up to `width` per AES call. An XOR is placed
 * between its earliest and latest possible AND level as late as it can go without keeping one of its
 * operands alive longer (an adder's sum bit is taken at once, since its carry dies soon; a XOR of
 * long-lived values waits for its reader). An XOR read only by AND gates and outputs is not stored
 * when that keeps no operand alive longer: its readers XOR its two operand slots (every AND operand
 * and output is a slot pair, the second slot 0 for a stored value). Outputs are emitted as soon as
 * they exist; a linear scan then frees each slot after its last read.
 */
function buildPlan(t: Template, width: number): Plan {
  const { vKind, vA, vB, nIn } = t
  const nv = vKind.length
  const CONST = nIn
  const depth = new Int32Array(nv)
  for (let v = nIn + 1; v < nv; v++) depth[v] = Math.max(depth[vA[v]], depth[vB[v]]) + (vKind[v] === V_AND ? 1 : 0)
  const isOut = new Uint8Array(nv)
  for (const v of t.outVal) isOut[v] = 1
  const readers: number[][] = Array.from({ length: nv }, () => [])
  for (let v = nIn + 1; v < nv; v++) {
    readers[vA[v]].push(v)
    if (vB[v] !== vA[v]) readers[vB[v]].push(v)
  }
  // keys: 2L - 1 for AND level L, 2p for the XOR phase between AND levels p and p + 1
  const INF = 0x7fffffff
  const key = new Int32Array(nv)
  const live = new Uint8Array(nv) // computed at all: ANDs always (their tables), XORs only when read
  const virt = new Uint8Array(nv)
  for (let v = nv - 1; v > nIn; v--) {
    if (vKind[v] === V_AND) {
      live[v] = 1
      key[v] = 2 * depth[v] - 1
    } else live[v] = isOut[v] || readers[v].some((w) => live[w]) ? 1 : 0
  }
  /** When reader w reads its operands: an AND or a stored XOR at its key, a virtual XOR when its readers read (latest). */
  const readTime = (w: number): number => {
    if (!virt[w]) return key[w]
    let m = isOut[w] ? key[w] : -1
    for (const r of readers[w]) if (live[r]) m = Math.max(m, readTime(r))
    return m
  }
  /** Last read of u by readers other than v (its emission if an output). */
  const lastOther = (u: number, v: number): number => {
    let m = isOut[u] ? key[u] : -1
    for (const r of readers[u]) if (r !== v && live[r]) m = Math.max(m, readTime(r))
    return m
  }
  // first estimate: every XOR as late as possible (just before its first reader), as far as readers are known
  for (let v = nv - 1; v > nIn; v--) {
    if (!live[v] || vKind[v] !== V_XOR) continue
    let c = INF
    for (const r of readers[v]) if (live[r]) c = Math.min(c, vKind[r] === V_AND ? key[r] - 1 : key[r])
    key[v] = c === INF ? 2 * depth[v] : c
  }
  // then place each XOR (readers first) without extending its stored operands' lives
  for (let v = nv - 1; v > nIn; v--) {
    if (!live[v] || vKind[v] !== V_XOR) continue
    const asap = 2 * depth[v]
    let latest = INF
    let allAnd = true
    let lastRead = -1
    for (const r of readers[v]) {
      if (!live[r]) continue
      latest = Math.min(latest, vKind[r] === V_AND ? key[r] - 1 : key[r])
      if (vKind[r] !== V_AND) allAnd = false
      lastRead = Math.max(lastRead, readTime(r))
    }
    let bound = INF // operands stay alive anyway until then
    for (const u of [vA[v], vB[v]]) if (u > nIn) bound = Math.min(bound, lastOther(u, v) & ~1) // an XOR phase
    if (latest === INF) latest = asap // an output only: emit at once
    key[v] = Math.max(asap, Math.min(latest, bound))
    const opsStored = !virt[vA[v]] && !virt[vB[v]]
    virt[v] = allAnd && opsStored && Math.max(lastRead, isOut[v] ? key[v] : -1) <= Math.max(bound === INF ? INF : bound, key[v]) ? 1 : 0
    if (virt[v]) for (const u of [vA[v], vB[v]]) if (u > nIn && virt[u]) virt[v] = 0
  }
  // a virtual XOR's operands must be stored: undo any operand that was virtualized (processed later)
  for (let v = nIn + 1; v < nv; v++) if (virt[v] && (virt[vA[v]] || virt[vB[v]])) virt[v] = 0
  /** The slot pair of a value as an operand. */
  const pair = (v: number): [number, number] => (virt[v] ? [vA[v], vB[v]] : [v, CONST])
  let maxKey = 0
  for (let v = nIn + 1; v < nv; v++) if (live[v] && key[v] > maxKey) maxKey = key[v]
  const byKey: number[][] = Array.from({ length: maxKey + 1 }, () => [])
  for (let v = nIn + 1; v < nv; v++) if (live[v]) byKey[key[v]].push(v)
  const outsOf = new Map<number, number[]>()
  t.outVal.forEach((v, j) => {
    const l = outsOf.get(v)
    if (l) l.push(j)
    else outsOf.set(v, [j])
  })
  type Op = { kind: number; defs: number[]; reads: number[]; out?: number }
  const ops: Op[] = []
  const emit = (v: number) => {
    for (const j of outsOf.get(v) ?? []) ops.push({ kind: OP_EMIT, defs: [], reads: pair(v), out: j })
  }
  for (let j = 0; j <= nIn; j++) emit(j) // outputs that are inputs or constant
  for (let k = 0; k <= maxKey; k++) {
    const vs = byKey[k]
    if (k % 2 === 0) {
      for (const v of vs) {
        if (!virt[v]) ops.push({ kind: OP_XOR, defs: [v], reads: [vA[v], vB[v]] })
        emit(v)
      }
    } else
      for (let s = 0; s < vs.length; s += width) {
        const batch = vs.slice(s, s + width)
        ops.push({ kind: OP_AND, defs: batch, reads: batch.flatMap((v) => [...pair(vA[v]), ...pair(vB[v])]) })
        for (const v of batch) emit(v)
      }
  }
  // liveness: last read of every value; then a linear scan, LIFO free list (recently used slots are warm)
  const last = new Int32Array(nv).fill(-1)
  ops.forEach((op, i) => {
    for (const v of op.reads) last[v] = i
    for (const v of op.defs) if (last[v] < i) last[v] = i
  })
  const slot = new Int32Array(nv).fill(-1)
  slot[CONST] = 0
  for (let j = 0; j < nIn; j++) slot[j] = 1 + j
  const free: number[] = []
  let nSlots = 1 + nIn
  const prog: number[] = []
  let maxAnd = 1
  ops.forEach((op, i) => {
    for (const v of op.defs) slot[v] = free.length ? free.pop()! : nSlots++
    if (op.kind === OP_XOR) {
      const v = op.defs[0]
      prog.push(OP_XOR, slot[vA[v]], slot[vB[v]], slot[v])
    } else if (op.kind === OP_AND) {
      prog.push(OP_AND, op.defs.length)
      maxAnd = Math.max(maxAnd, op.defs.length)
      op.defs.forEach((v, q) => {
        const r = op.reads.slice(4 * q, 4 * q + 4).map((u) => slot[u])
        prog.push(t.vAnd[v], r[0], r[1], r[2], r[3], slot[v], t.vFlipA[v], t.vFlipB[v])
      })
    } else prog.push(OP_EMIT, op.out!, slot[op.reads[0]], slot[op.reads[1]], t.outFlip[op.out!])
    const done = new Set<number>()
    for (const v of [...op.reads, ...op.defs])
      if (last[v] === i && v > CONST && !done.has(v)) {
        done.add(v)
        free.push(slot[v])
      }
  })
  return { prog: Int32Array.from(prog), nSlots, maxAnd }
}

/**
 * Instances per block and the plan for n instances: AND gates of one level are batched up to about
 * AES_BATCH blocks per cipher call (`hashes` blocks per AND gate and per AES layer of H: 4 to garble,
 * 2 to evaluate; H has two layers, so 8 and 4 AES blocks per AND gate in all).
 */
function planFor(circ: Circuit, n: number, hashes: number): { t: Template; plan: Plan; B: number } {
  const t = template(circ)
  const B = Math.max(1, Math.min(n, GC_BLOCK))
  const width = Math.max(1, Math.floor(AES_BATCH / (hashes * B)))
  let plan = t.plans.get(width)
  if (!plan) t.plans.set(width, (plan = buildPlan(t, width)))
  return { t, plan, B }
}

/** AES input blocks of one layer for a plan: its widest AND batch. */
function scratchBlocks(plan: Plan, B: number, hashes: number): number {
  return plan.maxAnd * hashes * B
}

/**
 * Bytes garbling (or evaluating) n instances holds at its peak: the tables (32 B per AND gate per
 * instance), the input labels the evaluator receives or encodeLabels returns (16 B per input wire
 * per instance), decoding and output bits, and the fixed working set (live-wire slots of one block,
 * AES buffers: the hash inputs, the first layer's output and the second's).
 */
export function gcBytes(circ: Circuit, n: number): number {
  const t = template(circ)
  const perInstance = 32 * circ.ands + 16 * t.nIn + 2 * circ.outputs.length
  let fixed = 0
  for (const hashes of [GARBLE_BLOCKS, EVAL_BLOCKS]) {
    const { plan, B } = planFor(circ, n, hashes)
    fixed = Math.max(fixed, plan.nSlots * B * 16 + 3 * scratchBlocks(plan, B, hashes) * 16 + B * 8)
  }
  return n * perInstance + fixed
}

/**
 * The most instances of `circ` to garble (or evaluate) per call so that one call stays within
 * `bytesBudget` bytes (see gcBytes). Garble a layer in chunks of this many instances, each chunk with
 * its own tweak. Throws a RangeError when not even one instance fits.
 */
export function instancesPerChunk(circ: Circuit, bytesBudget: number): number {
  if (!(gcBytes(circ, 1) <= bytesBudget)) throw new RangeError(`a garbling of one instance needs ${gcBytes(circ, 1)} bytes, budget ${bytesBudget}`)
  let lo = 1
  let hi = 2
  while (gcBytes(circ, hi) <= bytesBudget && hi < 2 ** 31) hi *= 2
  if (hi >= 2 ** 31) return 2 ** 31
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2)
    if (gcBytes(circ, mid) <= bytesBudget) lo = mid
    else hi = mid
  }
  return lo
}

export interface Garbled {
  /** Instances garbled. */
  readonly n: number
  readonly circuit: Circuit
  /** The global offset: one label of each wire is the other's XOR delta (lowest bit 1). */
  readonly delta: Uint32Array
  /**
   * Secret key from which the zero labels of the input wires are derived (input j, instance i:
   * AES_labelKey(j || i), a CTR stream per input); no label is stored. Use encodeLabels / zeroLabels.
   */
  readonly labelKey: Buffer
  /**
   * Key of the hash's permutation pi = AES-128, drawn fresh for this garbling (randomBytes, independent
   * of delta and the labels). Public: the evaluator needs it, send it with the tables.
   */
  readonly hashKey: Buffer
  /** Two ciphertexts per AND gate per instance: gate g, instance i at bytes (g * n + i) * 32. */
  readonly tables: Buffer
  /** Permute bits of the output zero labels: instance i, output j at i * outputs + j. */
  readonly decode: Uint8Array
}

function checkTweak(tweak: number): void {
  if (!Number.isInteger(tweak) || tweak < 0 || tweak > 0xffffffff) throw new RangeError(`garbling tweak must be a 32-bit unsigned integer, got ${tweak}`)
}

/** Index of the low 32 bits of a 64-bit lane in a Uint32Array alias (labels are two 64-bit lanes). */
const LO32 = new Uint8Array(Uint16Array.of(1).buffer)[0] === 1 ? 0 : 1

/*
 * The kernels work on labels as two signed 64-bit lanes (BigInt64Array): TurboFan compiles BigInt
 * XOR / AND on BigInt64Array elements to plain 64-bit instructions, with no BigInt allocated, which
 * is 2-4x faster than four 32-bit words. (It does not for BigUint64Array once values reach 2^63.)
 * Constants come in a BigInt64Array C, never as BigInt arguments or loop-carried BigInts:
 *   C = [delta lo, delta hi, flip a lo, hi, flip b lo, hi, gate, tweak, tweak | 1 << 32]
 * and II[i] = (first instance + i) << 32. The hash tweak of half j is (gate | i << 32, tweak | j << 32):
 * the words (gate, instance, tweak, j). Per batch of AND gates: the inputs X go to K, P = pi(K) (one
 * cipher call), P ^= tweak in place, Q = pi(P) (one call), and H(X) = Q ^ P ^ tweak.
 */
const C_DL = 0
const C_DH = 1
const C_FA = 2
const C_FB = 4
const C_GATE = 6
const C_TW0 = 7
const C_TW1 = 8
const C_LEN = 9

/**
 * Half-gates garbler hash inputs of one AND gate for cnt instances: A0, A1 = A0 ^ delta, B0, B1, where
 * A0 = S[xa] ^ S[ya] ^ (flip a ? delta : 0), B0 likewise (8 lanes per instance).
 */
function garbleInputs(S: BigInt64Array, xa: number, ya: number, xb: number, yb: number, K: BigInt64Array, k: number, cnt: number, C: BigInt64Array): void {
  const dl = C[C_DL], dh = C[C_DH], fal = C[C_FA], fah = C[C_FA + 1], fbl = C[C_FB], fbh = C[C_FB + 1]
  for (let i = 0; i < cnt; i++, xa += 2, ya += 2, xb += 2, yb += 2, k += 8) {
    const al = S[xa] ^ S[ya] ^ fal
    const ah = S[xa + 1] ^ S[ya + 1] ^ fah
    K[k] = al
    K[k + 1] = ah
    K[k + 2] = al ^ dl
    K[k + 3] = ah ^ dh
    const bl = S[xb] ^ S[yb] ^ fbl
    const bh = S[xb + 1] ^ S[yb + 1] ^ fbh
    K[k + 4] = bl
    K[k + 5] = bh
    K[k + 6] = bl ^ dl
    K[k + 7] = bh ^ dh
  }
}

/** Garbler: pi(X) ^ tweak in place for A0, A1 (half 0) and B0, B1 (half 1) of one AND gate. */
function garbleTweak(P: BigInt64Array, k: number, cnt: number, C: BigInt64Array, II: BigInt64Array): void {
  const g = C[C_GATE], th0 = C[C_TW0], th1 = C[C_TW1]
  for (let i = 0; i < cnt; i++, k += 8) {
    const tl = II[i] ^ g
    P[k] ^= tl
    P[k + 1] ^= th0
    P[k + 2] ^= tl
    P[k + 3] ^= th0
    P[k + 4] ^= tl
    P[k + 5] ^= th1
    P[k + 6] ^= tl
    P[k + 7] ^= th1
  }
}

/**
 * Half-gates garbling of one AND gate from P = pi(X) ^ tweak and Q = pi(P), H(X) = Q ^ P ^ tweak (the
 * tweaks cancel in H(A0) ^ H(A1) and H(B0) ^ H(B1)): tables TG = H(A0) ^ H(A1) ^ pb delta,
 * TE = H(B0) ^ H(B1) ^ A0, and the output zero label H(A0) ^ pa TG ^ H(B0) ^ pb (TE ^ A0). A0, B0 and
 * the permute bits pa, pb (their low bits) are read back from the hash inputs K.
 */
function garbleFinish(oo: number, S: BigInt64Array, K: BigInt64Array, P: BigInt64Array, Q: BigInt64Array, k: number, T: BigInt64Array, t: number, cnt: number, C: BigInt64Array, II: BigInt64Array): void {
  const dl = C[C_DL], dh = C[C_DH], g = C[C_GATE], th0 = C[C_TW0], th1 = C[C_TW1]
  for (let i = 0; i < cnt; i++, oo += 2, k += 8, t += 4) {
    const tl = II[i] ^ g
    const al = K[k], ah = K[k + 1]
    const pa = BigInt.asIntN(64, -(al & 1n))
    const pb = BigInt.asIntN(64, -(K[k + 4] & 1n))
    const hal = Q[k] ^ P[k] ^ tl
    const hah = Q[k + 1] ^ P[k + 1] ^ th0
    const tgl = Q[k] ^ P[k] ^ Q[k + 2] ^ P[k + 2] ^ (dl & pb)
    const tgh = Q[k + 1] ^ P[k + 1] ^ Q[k + 3] ^ P[k + 3] ^ (dh & pb)
    const hbl = Q[k + 4] ^ P[k + 4] ^ tl
    const hbh = Q[k + 5] ^ P[k + 5] ^ th1
    const ul = Q[k + 4] ^ P[k + 4] ^ Q[k + 6] ^ P[k + 6]
    const uh = Q[k + 5] ^ P[k + 5] ^ Q[k + 7] ^ P[k + 7]
    T[t] = tgl
    T[t + 1] = tgh
    T[t + 2] = ul ^ al
    T[t + 3] = uh ^ ah
    S[oo] = hal ^ (tgl & pa) ^ hbl ^ (ul & pb)
    S[oo + 1] = hah ^ (tgh & pa) ^ hbh ^ (uh & pb)
  }
}

/** Evaluator hash inputs of one AND gate: A = S[xa] ^ S[ya], B = S[xb] ^ S[yb] (4 lanes per instance). */
function evalInputs(S: BigInt64Array, xa: number, ya: number, xb: number, yb: number, K: BigInt64Array, k: number, cnt: number): void {
  for (let i = 0; i < cnt; i++, xa += 2, ya += 2, xb += 2, yb += 2, k += 4) {
    K[k] = S[xa] ^ S[ya]
    K[k + 1] = S[xa + 1] ^ S[ya + 1]
    K[k + 2] = S[xb] ^ S[yb]
    K[k + 3] = S[xb + 1] ^ S[yb + 1]
  }
}

/** Evaluator: pi(X) ^ tweak in place for A (half 0) and B (half 1) of one AND gate. */
function evalTweak(P: BigInt64Array, k: number, cnt: number, C: BigInt64Array, II: BigInt64Array): void {
  const g = C[C_GATE], th0 = C[C_TW0], th1 = C[C_TW1]
  for (let i = 0; i < cnt; i++, k += 4) {
    const tl = II[i] ^ g
    P[k] ^= tl
    P[k + 1] ^= th0
    P[k + 2] ^= tl
    P[k + 3] ^= th1
  }
}

/**
 * Half-gates evaluation: W = H(A) ^ sa TG ^ H(B) ^ sb (TE ^ A), H(X) = Q ^ P ^ tweak, sa and sb the
 * permute bits (low bits of A and B); A and B are read back from K.
 */
function evalFinish(oo: number, S: BigInt64Array, K: BigInt64Array, P: BigInt64Array, Q: BigInt64Array, k: number, T: BigInt64Array, t: number, cnt: number, C: BigInt64Array, II: BigInt64Array): void {
  const g = C[C_GATE], th0 = C[C_TW0], th1 = C[C_TW1]
  for (let i = 0; i < cnt; i++, oo += 2, k += 4, t += 4) {
    const tl = II[i] ^ g
    const al = K[k], ah = K[k + 1]
    const sa = BigInt.asIntN(64, -(al & 1n))
    const sb = BigInt.asIntN(64, -(K[k + 2] & 1n))
    S[oo] = Q[k] ^ P[k] ^ tl ^ (T[t] & sa) ^ Q[k + 2] ^ P[k + 2] ^ tl ^ ((T[t + 2] ^ al) & sb)
    S[oo + 1] = Q[k + 1] ^ P[k + 1] ^ th0 ^ (T[t + 1] & sa) ^ Q[k + 3] ^ P[k + 3] ^ th1 ^ ((T[t + 3] ^ ah) & sb)
  }
}

/** The bytes of a lane array (to feed a layer's output, tweaked in place, to the next cipher call). */
function bytesOf(x: BigInt64Array): Buffer {
  return Buffer.from(x.buffer, x.byteOffset, x.byteLength)
}

function xorSlots(S: BigInt64Array, oa: number, ob: number, oo: number, len: number): void {
  for (let w = 0; w < len; w += 2) {
    S[oo + w] = S[oa + w] ^ S[ob + w]
    S[oo + w + 1] = S[oa + w + 1] ^ S[ob + w + 1]
  }
}

/** Per-block scratch shared by garble and evaluate. */
interface Scratch {
  B: number
  /** Wire slots: slot s, instance i at lanes (s * B + i) * 2; slot 0 is the all-zero label. */
  S: BigInt64Array
  S32: Uint32Array
  /** AES input blocks. */
  K: Buffer
  K64: BigInt64Array
  C: BigInt64Array
  II: BigInt64Array
}

function scratch(plan: Plan, B: number, blocks: number): Scratch {
  const S = new BigInt64Array(plan.nSlots * B * 2)
  const K = Buffer.allocUnsafeSlow(blocks * 16)
  return {
    B, S, S32: new Uint32Array(S.buffer), K, K64: new BigInt64Array(K.buffer, K.byteOffset, blocks * 2),
    C: new BigInt64Array(C_LEN), II: new BigInt64Array(B),
  }
}

function setInstances(II: BigInt64Array, i0: number, cnt: number): void {
  for (let i = 0; i < cnt; i++) II[i] = BigInt.asIntN(64, BigInt(i0 + i) << 32n)
}

/**
 * The zero labels of circuit input j (index in inputsA ++ inputsB ++ inputsU) are the AES-CTR stream
 * under the garbling's secret labelKey from the counter block (j as a 64-bit big-endian integer) || 0:
 * instance i's label is AES_labelKey(j || i). A stream per input, read in instance order.
 */
function labelStream(labelKey: Buffer, j: number): Cipher {
  const iv = Buffer.alloc(16)
  iv.writeUInt32BE(Math.floor(j / 2 ** 32), 0)
  iv.writeUInt32BE(j >>> 0, 4)
  return createCipheriv('aes-128-ctr', labelKey, iv)
}

/** Zero bytes fed to the label streams. */
let zeros = Buffer.alloc(0)
function zeroBytes(n: number): Buffer {
  if (zeros.length < n) zeros = Buffer.alloc(Math.max(n, 64 << 10))
  return zeros.subarray(0, n)
}

/**
 * Garble `n` instances of a circuit. Delta and the input labels come from `seed`; the hash key is
 * drawn fresh (randomBytes) for this garbling, independently of the seed, and must be sent to the
 * evaluator with the tables (Garbled.hashKey, public). AND gate g of instance i hashes with the
 * tweak (g, i, tweak, 0 | 1), distinct within the garbling; `tweak` (a 32-bit unsigned integer) names
 * the garbling, and the evaluator must use the same. To garble a layer in chunks (see
 * instancesPerChunk), give every chunk its own tweak.
 */
export function garble(circ: Circuit, n: number, seed: Buffer, tweak: number): Garbled {
  checkTweak(tweak)
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new RangeError(`bad instance count ${n}`)
  const prg = new Prg(seed, 'garble')
  const d64 = new BigInt64Array(2)
  new Uint8Array(d64.buffer).set(prg.bytes(16))
  d64[0] |= 1n // point-and-permute: the permute bit of a label is the low bit of its first lane
  const delta = new Uint32Array(4)
  new Uint8Array(delta.buffer).set(new Uint8Array(d64.buffer))
  const labelKey = Buffer.from(prg.bytes(16))
  const hashKey = randomBytes(HASH_KEY_BYTES)
  const { t, plan, B } = planFor(circ, n, GARBLE_BLOCKS)
  const tables = Buffer.allocUnsafeSlow(circ.ands * n * 32)
  const no = circ.outputs.length
  const decode = new Uint8Array(n * no)
  if (n === 0) return { n, circuit: circ, delta, labelKey, hashKey, tables, decode }
  const T = lanes(tables)
  const sc = scratch(plan, B, scratchBlocks(plan, B, GARBLE_BLOCKS))
  const { S, S32, K, K64, C, II } = sc
  const dl = d64[0], dh = d64[1]
  C[C_DL] = dl
  C[C_DH] = dh
  C[C_TW0] = BigInt(tweak)
  C[C_TW1] = BigInt(tweak) | (1n << 32n)
  const B2 = B * 2
  const hash = ecb(hashKey)
  const streams = Array.from({ length: t.nIn }, (_, j) => labelStream(labelKey, j))
  const prog = plan.prog
  for (let i0 = 0; i0 < n; i0 += B) {
    const cnt = Math.min(B, n - i0)
    setInstances(II, i0, cnt)
    for (let j = 0; j < t.nIn; j++) S.set(lanes(streams[j].update(zeroBytes(cnt * 16))), (1 + j) * B2)
    for (let pc = 0; pc < prog.length; ) {
      const op = prog[pc]
      if (op === OP_XOR) {
        xorSlots(S, prog[pc + 1] * B2, prog[pc + 2] * B2, prog[pc + 3] * B2, cnt * 2)
        pc += 4
      } else if (op === OP_AND) {
        const m = prog[pc + 1]
        const p0 = pc + 2
        for (let q = 0, p = p0; q < m; q++, p += 8) {
          C[C_FA] = prog[p + 6] ? dl : 0n
          C[C_FA + 1] = prog[p + 6] ? dh : 0n
          C[C_FB] = prog[p + 7] ? dl : 0n
          C[C_FB + 1] = prog[p + 7] ? dh : 0n
          garbleInputs(S, prog[p + 1] * B2, prog[p + 2] * B2, prog[p + 3] * B2, prog[p + 4] * B2, K64, q * cnt * 8, cnt, C)
        }
        const P = lanes(hash.update(K.subarray(0, m * cnt * 64)))
        for (let q = 0, p = p0; q < m; q++, p += 8) {
          C[C_GATE] = BigInt(prog[p])
          garbleTweak(P, q * cnt * 8, cnt, C, II)
        }
        const Q = lanes(hash.update(bytesOf(P)))
        for (let q = 0, p = p0; q < m; q++, p += 8) {
          C[C_GATE] = BigInt(prog[p])
          garbleFinish(prog[p + 5] * B2, S, K64, P, Q, q * cnt * 8, T, (prog[p] * n + i0) * 4, cnt, C, II)
        }
        pc = p0 + 8 * m
      } else {
        const j = prog[pc + 1]
        const x = prog[pc + 2] * B * 4 + LO32
        const y = prog[pc + 3] * B * 4 + LO32
        const f = prog[pc + 4]
        for (let i = 0; i < cnt; i++) decode[(i0 + i) * no + j] = (S32[x + i * 4] ^ S32[y + i * 4] ^ f) & 1
        pc += 5
      }
    }
  }
  return { n, circuit: circ, delta, labelKey, hashKey, tables, decode }
}

/**
 * Active labels of the given input wires for the given bit values: bits[i * wires.length + j] is the
 * value of wire j in instance i. Returns 16 bytes per bit in the same order.
 */
export function encodeLabels(gb: Garbled, n: number, wires: readonly number[], bits: Uint8Array): Buffer {
  if (n !== gb.n) throw new RangeError(`garbling has ${gb.n} instances, asked for ${n}`)
  const m = wires.length
  if (bits.length !== n * m) throw new RangeError(`expected ${n * m} bits, got ${bits.length}`)
  const t = template(gb.circuit)
  const js = Int32Array.from(wires, (w) => {
    const j = w >= 0 && w < t.inputIndex.length ? t.inputIndex[w] : -1
    if (j < 0) throw new RangeError(`wire ${w} is not an input of the circuit`)
    return j
  })
  const out = Buffer.allocUnsafeSlow(n * m * 16)
  if (n * m === 0) return out
  const ow = new Uint32Array(out.buffer, out.byteOffset, n * m * 4)
  const d0 = gb.delta[0], d1 = gb.delta[1], d2 = gb.delta[2], d3 = gb.delta[3]
  const chunk = Math.min(n, AES_BATCH)
  for (let q = 0; q < m; q++) {
    const st = labelStream(gb.labelKey, js[q])
    for (let i0 = 0; i0 < n; i0 += chunk) {
      const cnt = Math.min(chunk, n - i0)
      const E = words(st.update(zeroBytes(cnt * 16)))
      for (let i = 0, k = 0; i < cnt; i++, k += 4) {
        const r = (i0 + i) * m + q
        const mk = (bits[r] << 31) >> 31
        const o = r * 4
        ow[o] = E[k] ^ (d0 & mk)
        ow[o + 1] = E[k + 1] ^ (d1 & mk)
        ow[o + 2] = E[k + 2] ^ (d2 & mk)
        ow[o + 3] = E[k + 3] ^ (d3 & mk)
      }
    }
  }
  return out
}

/** The zero label of input wire j in instance i (for oblivious transfer: the one label is zero ^ delta). */
export function zeroLabels(gb: Garbled, n: number, wires: readonly number[]): Buffer {
  return encodeLabels(gb, n, wires, new Uint8Array(n * wires.length))
}

/**
 * Evaluate n instances given active input labels (16 bytes per bit, instance-major, in the order of
 * the circuit's input lists), the tables and the garbling's hash key as the garbler sent them; returns
 * the output bits (instance-major) after decoding.
 */
export function evaluate(
  circ: Circuit, n: number, labelsA: Buffer, labelsB: Buffer, labelsU: Buffer, tables: Buffer, decode: Uint8Array, tweak: number, hashKey: Buffer,
): Uint8Array {
  checkTweak(tweak)
  if (!Buffer.isBuffer(hashKey) || hashKey.length !== HASH_KEY_BYTES) throw new ProtocolError(`malformed garbling key: expected ${HASH_KEY_BYTES} bytes`)
  const lists = [circ.inputsA, circ.inputsB, circ.inputsU]
  const bufs = [labelsA, labelsB, labelsU]
  bufs.forEach((buf, s) => {
    const m = lists[s].length
    if (buf.length !== n * m * 16) throw new ProtocolError(`malformed labels: expected ${n * m * 16} bytes, got ${buf.length}`)
  })
  if (tables.length !== circ.ands * n * 32) throw new ProtocolError(`malformed garbled tables: expected ${circ.ands * n * 32} bytes, got ${tables.length}`)
  const no = circ.outputs.length
  if (decode.length !== n * no) throw new ProtocolError('malformed decoding bits')
  const out = new Uint8Array(n * no)
  if (n === 0) return out
  const views = bufs.map(words)
  const { plan, B } = planFor(circ, n, EVAL_BLOCKS)
  const T = lanes(tables)
  const sc = scratch(plan, B, scratchBlocks(plan, B, EVAL_BLOCKS))
  const { S, S32, K, K64, C, II } = sc
  C[C_TW0] = BigInt(tweak)
  C[C_TW1] = BigInt(tweak) | (1n << 32n)
  const B2 = B * 2
  const hash = ecb(hashKey)
  const prog = plan.prog
  for (let i0 = 0; i0 < n; i0 += B) {
    const cnt = Math.min(B, n - i0)
    setInstances(II, i0, cnt)
    // the block's input labels into slots 1 .. nIn: sequential reads, one write stream per wire
    for (let s = 0, j0 = 1; s < 3; j0 += lists[s].length, s++) {
      const L = views[s]
      const m = lists[s].length
      for (let i = 0, si = i0 * m * 4; i < cnt; i++)
        for (let q = 0, so = (j0 * B + i) * 4; q < m; q++, si += 4, so += B * 4) {
          S32[so] = L[si]
          S32[so + 1] = L[si + 1]
          S32[so + 2] = L[si + 2]
          S32[so + 3] = L[si + 3]
        }
    }
    for (let pc = 0; pc < prog.length; ) {
      const op = prog[pc]
      if (op === OP_XOR) {
        xorSlots(S, prog[pc + 1] * B2, prog[pc + 2] * B2, prog[pc + 3] * B2, cnt * 2)
        pc += 4
      } else if (op === OP_AND) {
        const m = prog[pc + 1]
        const p0 = pc + 2
        for (let q = 0, p = p0; q < m; q++, p += 8)
          evalInputs(S, prog[p + 1] * B2, prog[p + 2] * B2, prog[p + 3] * B2, prog[p + 4] * B2, K64, q * cnt * 4, cnt)
        const P = lanes(hash.update(K.subarray(0, m * cnt * 32)))
        for (let q = 0, p = p0; q < m; q++, p += 8) {
          C[C_GATE] = BigInt(prog[p])
          evalTweak(P, q * cnt * 4, cnt, C, II)
        }
        const Q = lanes(hash.update(bytesOf(P)))
        for (let q = 0, p = p0; q < m; q++, p += 8) {
          C[C_GATE] = BigInt(prog[p])
          evalFinish(prog[p + 5] * B2, S, K64, P, Q, q * cnt * 4, T, (prog[p] * n + i0) * 4, cnt, C, II)
        }
        pc = p0 + 8 * m
      } else {
        const j = prog[pc + 1]
        const x = prog[pc + 2] * B * 4 + LO32
        const y = prog[pc + 3] * B * 4 + LO32
        for (let i = 0; i < cnt; i++) {
          const o = (i0 + i) * no + j
          out[o] = ((S32[x + i * 4] ^ S32[y + i * 4]) & 1) ^ decode[o]
        }
        pc += 5
      }
    }
  }
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
