/**
 * Memory as a compile-time fact: what node-seal's WebAssembly heap must hold to run a plan, from the
 * plan alone. node-seal 6.0 runs SEAL in a 4 GiB heap; SEAL takes ciphertext, plaintext and key
 * buffers from its global memory pool, which keeps every buffer it ever allocated and reuses a freed
 * one only for a request of exactly the same byte count. So the pool's size after a run is, per byte
 * count, the most buffers of that size ever live at once, summed over sizes; it only grows, and the
 * peak is where it grew last.
 *
 * Sizes (8-byte words, N the ring degree, k primes including the special prime):
 *  - key-switching key (a rotation or relinearization): k - 1 components of 2 polynomials over the
 *    k key primes, 16 N k (k - 1) bytes (node-seal's serialized Galois keys: 14.02 MB per key at
 *    N = 2^14, k = 8, against 14.00 MB by the rule);
 *  - ciphertext at level l: 2 N (l + 1) 8 bytes; 3 polynomials after a product, and a relinearized
 *    ciphertext keeps its 3-polynomial buffer (SEAL shrinks the size, not the allocation);
 *  - plaintext at level l: N (l + 1) 8 bytes when shrunk after its mod-switch (resident), else one
 *    top-level buffer reused for every plaintext encoded on demand;
 *  - context and working memory (NTT tables and RNS tools per level, key-generation and
 *    key-switching temporaries, the heap's growth slack): 16 MiB of start-up heap plus 64 N k^2
 *    bytes, measured with node-seal's heap high-water mark after key generation and one rotate,
 *    product, relinearization and rescale (58 N k^2 at N = 2^15, k = 19; 61 N k^2 at N = 2^14, k = 9),
 *    and 3% of the pool's buffers for allocator slack (SLACK_SHARE).
 */
import type { Instr } from './plan.js'

/** node-seal 6.0's WebAssembly heap: 4 GiB. */
export const SEAL_HEAP_BYTES = 4 * 2 ** 30

/** Heap in use before anything is allocated (node-seal's initial memory). */
export const SEAL_START_BYTES = 16 * 2 ** 20

/** Measured bytes per N k^2 of context and working memory. */
export const WORKING_BYTES_PER_NK2 = 64

/**
 * Share of the pool's buffers (keys, ciphertexts, plaintexts) added for allocator slack (SEAL's pool grows each byte count in batches 5% larger
 * than the last, and the heap fragments): a resnet20_aespa plan predicted at 99.9% of the heap died
 * in a bad_alloc after 20 minutes, resnet8 ola at 96.5% ran (3.89 GiB high-water mark).
 */
export const SLACK_SHARE = 0.03

/**
 * Share of the heap a plan leaves unused: the model's error. Measured high-water marks ran up to
 * 4.7% above the prediction (fmnist32/resnet20 minimax:31: 3.31 GiB against 3.16 GiB), and an OLA
 * plan for it predicted at 99.4% of the heap died in a bad_alloc after key generation; a plan fits
 * when its predicted peak is within 95% of the heap.
 */
export const HEAP_HEADROOM = 0.05

/** The bytes of a heap a plan may fill (see HEAP_HEADROOM). */
export const usableHeap = (heapBytes: number) => Math.floor((1 - HEAP_HEADROOM) * heapBytes)

export type PlaintextMode = 'resident' | 'on demand'

export interface PlanMemory {
  /** The heap the plan was checked against. */
  heapBytes: number
  /** Start-up heap, context and working memory (measured rule). */
  contextBytes: number
  /** Rotation and relinearization keys. */
  keyBytes: number
  /** Ciphertext buffers the pool holds at the peak. */
  ciphertextBytes: number
  /** Plaintext buffers the pool holds at the peak. */
  plaintextBytes: number
  /** contextBytes + keyBytes + ciphertextBytes + plaintextBytes. */
  peakBytes: number
  /** Index of the instruction at which the pool reaches its peak (-1: before evaluation). */
  peakInstruction: number
  /** The graph node of that instruction. */
  peakNode?: string
  /** Most ciphertexts live at once. */
  peakLiveCiphertexts: number
  plaintexts: PlaintextMode
  fits: boolean
}

export interface MemoryInput {
  logN: number
  /** Primes including the special prime. */
  primeCount: number
  rotationKeys: number
  relin: boolean
  instructions: readonly Instr[]
  /** Input registers and the levels they are encrypted at. */
  inputs: readonly { regs: readonly number[]; levels: readonly number[] }[]
  outputs: readonly { reg: number }[]
  plaintexts: PlaintextMode
  heapBytes?: number
}

export function keySwitchBytes(logN: number, primeCount: number): number {
  return 16 * 2 ** logN * primeCount * (primeCount - 1)
}

export function contextBytes(logN: number, primeCount: number): number {
  return SEAL_START_BYTES + WORKING_BYTES_PER_NK2 * 2 ** logN * primeCount * primeCount
}

/** Polynomials in the buffer of an instruction's result. */
function polysOf(i: Instr, polys: Map<number, number>): number {
  if (i.op === 'mul' || i.op === 'square') return 3
  if (i.op === 'relin') return polys.get(i.args[0]) ?? 3
  return 2
}

/** A pool of buffers by byte count: live and most-ever-live counts. */
class Pool {
  private live = new Map<number, number>()
  private most = new Map<number, number>()
  total = 0
  alloc(bytes: number): boolean {
    const n = (this.live.get(bytes) ?? 0) + 1
    this.live.set(bytes, n)
    if (n > (this.most.get(bytes) ?? 0)) {
      this.most.set(bytes, n)
      this.total += bytes
      return true
    }
    return false
  }
  free(bytes: number): void {
    this.live.set(bytes, (this.live.get(bytes) ?? 1) - 1)
  }
}

/**
 * The memory model of a plan: the pool as the runtime (runtime.ts) fills it. Inputs are encrypted,
 * then each instruction allocates its result (and, on demand, its plaintext) before the arguments
 * whose last use it is are freed; outputs stay live.
 */
export function planMemory(m: MemoryInput): PlanMemory {
  const N = 2 ** m.logN
  const L = m.primeCount - 2
  const heapBytes = m.heapBytes ?? SEAL_HEAP_BYTES
  const keyBytes = (m.rotationKeys + (m.relin ? 1 : 0)) * keySwitchBytes(m.logN, m.primeCount)
  const ctx0 = contextBytes(m.logN, m.primeCount)
  const cts = new Pool()
  const pts = new Pool()
  const level = new Map<number, number>()
  const polys = new Map<number, number>()
  const bytesOf = new Map<number, number>()
  let liveCount = 0
  let peakLive = 0
  let peakInstruction = -1
  const allocCt = (reg: number, p: number, lv: number) => {
    const b = p * N * (lv + 1) * 8
    bytesOf.set(reg, b)
    polys.set(reg, p)
    liveCount++
    peakLive = Math.max(peakLive, liveCount)
    return cts.alloc(b)
  }
  const freeCt = (reg: number) => {
    const b = bytesOf.get(reg)
    if (b === undefined) return
    cts.free(b)
    bytesOf.delete(reg)
    liveCount--
  }
  // resident plaintexts: one shrunk buffer per distinct (constant, level, scale), encoded before evaluation
  for (const inp of m.inputs) inp.regs.forEach((r, j) => level.set(r, inp.levels[j]))
  for (const i of m.instructions) level.set(i.dst, i.level)
  const topPt = N * (L + 1) * 8
  if (m.plaintexts === 'resident') {
    const seen = new Set<string>()
    for (const i of m.instructions) {
      if (i.op !== 'mulPlain' && i.op !== 'addPlain') continue
      const lv = level.get(i.args[0]) ?? i.level
      const key = `${i.pt}@${lv}@${i.op === 'mulPlain' ? i.ptScale : i.scale}`
      if (seen.has(key)) continue
      seen.add(key)
      pts.alloc(topPt)
      pts.alloc(N * (lv + 1) * 8)
      pts.free(topPt)
    }
  }
  // the client's input is encoded at the top level, then encrypted at its own level
  for (const inp of m.inputs)
    inp.regs.forEach((r, j) => {
      pts.alloc(topPt)
      allocCt(r, 2, inp.levels[j])
      pts.free(topPt)
    })
  const lastUse = new Map<number, number>()
  m.instructions.forEach((i, k) => i.args.forEach((a) => lastUse.set(a, k)))
  const keep = new Set(m.outputs.map((o) => o.reg))
  m.instructions.forEach((i, k) => {
    let grew = false
    const onDemand = m.plaintexts === 'on demand' && (i.op === 'mulPlain' || i.op === 'addPlain')
    if (onDemand) grew = pts.alloc(topPt) || grew
    grew = allocCt(i.dst, polysOf(i, polys), i.level) || grew
    if (onDemand) pts.free(topPt)
    for (const a of new Set(i.args)) if (lastUse.get(a) === k && !keep.has(a)) freeCt(a)
    if (grew) peakInstruction = k
  })
  const ctx = ctx0 + Math.round(SLACK_SHARE * (keyBytes + cts.total + pts.total))
  const peakBytes = ctx + keyBytes + cts.total + pts.total
  return {
    heapBytes,
    contextBytes: ctx,
    keyBytes,
    ciphertextBytes: cts.total,
    plaintextBytes: pts.total,
    peakBytes,
    peakInstruction,
    ...(peakInstruction >= 0 && m.instructions[peakInstruction].node !== undefined ? { peakNode: m.instructions[peakInstruction].node } : {}),
    peakLiveCiphertexts: peakLive,
    plaintexts: m.plaintexts,
    fits: peakBytes <= usableHeap(heapBytes),
  }
}

export function gib(bytes: number): string {
  const g = bytes / 2 ** 30
  return g >= 0.995 || g === 0 ? `${+g.toFixed(2)}` : `${+g.toPrecision(2)}`
}

/** "the CKKS plan needs X GiB at this layer, more than the 0.95 H GiB a plan may use of node-seal's H GiB heap (keys ..., ciphertexts ..., plaintexts ..., context ...)" */
export function memoryProblem(mem: PlanMemory): string {
  return (
    `the CKKS plan needs ${gib(mem.peakBytes)} GiB at this layer, more than the ${gib(usableHeap(mem.heapBytes))} GiB a plan may use of node-seal's ${gib(mem.heapBytes)} GiB heap ` +
    `(keys ${gib(mem.keyBytes)} GiB, ciphertexts ${gib(mem.ciphertextBytes)} GiB, plaintexts ${gib(mem.plaintextBytes)} GiB, context and working memory ${gib(mem.contextBytes)} GiB)`
  )
}

/** Parse a heap size: bytes, or a number with KiB, MiB or GiB. */
export function parseBytes(v: string): number {
  const m = /^\s*([0-9]*\.?[0-9]+)\s*(k|ki|kib|m|mi|mib|g|gi|gib|b)?\s*$/i.exec(v)
  if (!m) throw new Error(`not a size: '${v}' (bytes, or a number with KiB, MiB or GiB)`)
  const unit = (m[2] ?? 'b').toLowerCase()[0]
  const mult = unit === 'k' ? 2 ** 10 : unit === 'm' ? 2 ** 20 : unit === 'g' ? 2 ** 30 : 1
  return Math.round(Number(m[1]) * mult)
}
