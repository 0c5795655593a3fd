/**
 * What both parties and the dealer derive identically from a schedule: the list of segments, the
 * instance layout of every garbled step (which segment elements enter which circuit instance, which
 * output each instance fills), the online round tags, and the per-image pseudo-random streams.
 */
import { gcChunk, polyLevels, type PolyLevel } from './cost.js'
import { getWindowCircuit, type Circuit } from './gc.js'
import { ProtocolError } from './net.js'
import { Prg, ringFromBytes, truncShare } from './ring.js'
import type { GcStep, MpcSchedule, SegmentSpec, Step } from './schedule.js'

export const PROTOCOL = 'pic-mpc/1'

export interface GroupLayout {
  k: number
  circuit: Circuit
  /** Instance i reads segment elements inIdx[i * k .. i * k + k - 1]. */
  inIdx: Int32Array
  /** Instance i fills output element outIdx[i]. */
  outIdx: Int32Array
}

export interface GcLayout {
  groups: GroupLayout[]
  /** Positions copied through by local truncation (partial-ReLU zeros). */
  identity: Int32Array
  inputs: number
  instances: number
  /** Evaluator input bits (oblivious transfers). */
  bBits: number
}

/**
 * Which segment elements enter which circuit instance, grouped by window size and cut into chunks
 * (`gcChunk` instances each): every chunk is garbled on its own and sent as one frame.
 */
export function gcLayout(s: MpcSchedule, st: GcStep): GcLayout {
  const p = s.params
  const circ = (k: number) => getWindowCircuit({ k, inBits: p.gcBits, shift: p.weightFracBits, relu: st.relu, outBits: p.ringBits })
  const groups: GroupLayout[] = []
  const push = (k: number, inIdx: Int32Array, outIdx: Int32Array) => {
    const n = gcChunk(p, k, st.relu)
    for (let o = 0; o < outIdx.length; o += n)
      groups.push({ k, circuit: circ(k), inIdx: inIdx.subarray(o * k, Math.min(outIdx.length, o + n) * k), outIdx: outIdx.subarray(o, o + n) })
  }
  let identity = new Int32Array(0)
  if (!st.pool) {
    const pos = st.positions ? Int32Array.from(st.positions) : Int32Array.from({ length: st.segment.size }, (_, i) => i)
    if (pos.length) push(1, pos, pos)
    if (st.positions) {
      const on = new Uint8Array(st.segment.size)
      for (const i of st.positions) on[i] = 1
      const id: number[] = []
      for (let i = 0; i < on.length; i++) if (!on[i]) id.push(i)
      identity = Int32Array.from(id)
    }
  } else {
    const pl = st.pool
    const byK = new Map<number, { ins: number[]; outs: number[] }>()
    for (let plane = 0; plane < pl.planes; plane++)
      pl.windows.forEach((w, q) => {
        let g = byK.get(w.length)
        if (!g) byK.set(w.length, (g = { ins: [], outs: [] }))
        for (const j of w) g.ins.push(plane * pl.planeIn + j)
        g.outs.push(plane * pl.planeOut + q)
      })
    for (const k of [...byK.keys()].sort((a, b) => a - b)) {
      const g = byK.get(k)!
      push(k, Int32Array.from(g.ins), Int32Array.from(g.outs))
    }
  }
  const inputs = groups.reduce((a, g) => a + g.inIdx.length, 0)
  const instances = groups.reduce((a, g) => a + g.outIdx.length, 0)
  return { groups, identity, inputs, instances, bBits: inputs * p.gcBits }
}

/** Segments in protocol order: one per step, one per graph output, then the second factors of products. */
export function segmentsOf(s: MpcSchedule): SegmentSpec[] {
  return [...s.steps.map((st) => st.segment), ...s.outputs.map((o) => o.segment), ...s.steps.flatMap((st) => (st.kind === 'mul' ? [st.segment2] : []))]
}

/** Index in segmentsOf of the second factor of product step k. */
export function secondSegment(s: MpcSchedule, k: number): number {
  return s.steps.length + s.outputs.length + s.steps.slice(0, k).filter((st) => st.kind === 'mul').length
}

/** Elements that go through Beaver products in a polynomial step (0 for degree 1 and garbled steps). */
export function polyElems(st: Step): number {
  if (st.kind !== 'poly' || st.degree < 2) return 0
  return st.positions ? st.positions.length : st.segment.size
}

/** The product levels of a polynomial step (none for degree 1). */
export function levelsOf(st: Step): PolyLevel[] {
  return st.kind === 'poly' && polyElems(st) > 0 ? polyLevels(st.degree) : []
}

/**
 * Online round tags: 0 for the input; a garbled step takes two (labels, masked outputs); a
 * polynomial step one per product level plus one for the client's masked results; then the output.
 */
export function roundTags(s: MpcSchedule, layouts: (GcLayout | undefined)[]): { steps: number[]; output: number } {
  let t = 1
  const steps = s.steps.map((st, i) => {
    const n = st.kind === 'gc' ? (layouts[i]!.instances > 0 ? 2 : 0) : st.kind === 'mul' ? 2 : levelsOf(st).length ? levelsOf(st).length + 1 : 0
    if (!n) return -1
    const tag = t
    t += n
    return tag
  })
  return { steps, output: t }
}

/** The per-image streams the client derives from its dealer seed. */
export class ClientStreams {
  constructor(private readonly seed: Buffer) {}
  r(source: number, size: number): BigUint64Array {
    return new Prg(this.seed, `r/${source}`).ring(size)
  }
  a(step: number, level: number, m: number): BigUint64Array {
    return new Prg(this.seed, `a/${step}/${level}`).ring(m)
  }
  b(step: number, level: number, j: number, m: number): BigUint64Array {
    return new Prg(this.seed, `b/${step}/${level}/${j}`).ring(m)
  }
  choice(step: number, bits: number): Uint8Array {
    return new Prg(this.seed, `c/${step}`).bits(bits)
  }
}

/** The per-image streams the server derives from its dealer seed. */
export class ServerStreams {
  constructor(private readonly seed: Buffer) {}
  s(segment: number, size: number): BigUint64Array {
    return new Prg(this.seed, `s/${segment}`).ring(size)
  }
  a(step: number, level: number, m: number): BigUint64Array {
    return new Prg(this.seed, `a/${step}/${level}`).ring(m)
  }
  b(step: number, level: number, j: number, m: number): BigUint64Array {
    return new Prg(this.seed, `b/${step}/${level}/${j}`).ring(m)
  }
  q(step: number, level: number, m: number): BigUint64Array {
    return new Prg(this.seed, `q/${step}/${level}`).ring(m)
  }
  c(step: number, level: number, j: number, m: number): BigUint64Array {
    return new Prg(this.seed, `c/${step}/${level}/${j}`).ring(m)
  }
  /** Random-OT message pairs: bit j's m0 at bytes 32j, m1 at 32j + 16. */
  ot(step: number, bits: number): Buffer {
    return new Prg(this.seed, `ot/${step}`).bytes(bits * 32)
  }
}

/** Read consecutive slices of a buffer with length checks. */
export class Reader {
  private o = 0
  constructor(
    private readonly b: Buffer,
    private readonly what: string,
  ) {}
  take(n: number): Buffer {
    if (this.o + n > this.b.length) throw new ProtocolError(`malformed ${this.what}: too short`)
    const s = this.b.subarray(this.o, this.o + n)
    this.o += n
    return s
  }
  /** The next n ring elements. */
  ring(n: number): BigUint64Array {
    return ringFromBytes(this.take(n * 8), n, this.what)
  }
  end(): void {
    if (this.o !== this.b.length) throw new ProtocolError(`malformed ${this.what}: ${this.b.length - this.o} trailing bytes`)
  }
}

/** One party's Beaver correlations for one polynomial step, per level. */
export interface PolyCorr {
  a: BigUint64Array[]
  b: BigUint64Array[][]
  /** Shares of a^2 (square levels) and a * b_j. */
  q: (BigUint64Array | undefined)[]
  c: BigUint64Array[][]
}

/**
 * Build this party's shares of B_2 .. B_d at the step's positions from its share of t, level by
 * level: open t^h - a and t^j - b_j (`open` returns the other party's halves), form the products,
 * truncate, and for Chebyshev apply T_{h+j} = 2 T_h T_j - T_{h-j}. Returns B_1 .. B_d (index k - 1).
 */
export async function polyProducts(
  party: 0 | 1, frac: number, basis: 'power' | 'chebyshev', levels: PolyLevel[], t: BigUint64Array, corr: PolyCorr,
  open: (level: number, mine: BigUint64Array) => Promise<BigUint64Array>,
): Promise<BigUint64Array[]> {
  const m = t.length
  const B: BigUint64Array[] = [t]
  const one = party === 0 ? 1n << BigInt(frac) : 0n
  for (const [L, lv] of levels.entries()) {
    const xs = [B[lv.h - 1], ...lv.js.map((j) => B[j - 1])]
    const masks = [corr.a[L], ...corr.b[L]]
    const mine = new BigUint64Array(m * xs.length)
    xs.forEach((x, o) => {
      for (let i = 0; i < m; i++) mine[o * m + i] = x[i] - masks[o][i]
    })
    const other = await open(L, mine)
    const d = new BigUint64Array(mine.length)
    for (let i = 0; i < d.length; i++) d[i] = mine[i] + other[i]
    const a = corr.a[L]
    const finish = (k: number, prod: BigUint64Array, low: number) => {
      const tr = truncShare(prod, frac, party)
      if (basis === 'chebyshev') {
        const prev = low === 0 ? undefined : B[low - 1]
        for (let i = 0; i < m; i++) tr[i] = 2n * tr[i] - (prev ? prev[i] : one)
      }
      B[k - 1] = tr
    }
    if (lv.square) {
      const q = corr.q[L]!
      const prod = new BigUint64Array(m)
      for (let i = 0; i < m; i++) prod[i] = (party === 0 ? d[i] * d[i] : 0n) + 2n * d[i] * a[i] + q[i]
      finish(2 * lv.h, prod, 0)
    }
    lv.js.forEach((j, o) => {
      const b = corr.b[L][o]
      const c = corr.c[L][o]
      const off = (o + 1) * m
      const prod = new BigUint64Array(m)
      for (let i = 0; i < m; i++) prod[i] = (party === 0 ? d[i] * d[off + i] : 0n) + d[i] * b[i] + d[off + i] * a[i] + c[i]
      finish(lv.h + j, prod, lv.h - j)
    })
  }
  return B
}
