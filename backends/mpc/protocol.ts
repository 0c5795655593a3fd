/**
 * What both parties and the dealer derive identically from a schedule: the list of segments, the
 * instance layout of every garbled step (which segment elements enter which circuit instance, which
 * output each instance fills), the online round tags, and the per-image pseudo-random streams.
 */
import { getWindowCircuit, type Circuit } from './gc.js'
import { Prg } from './ring.js'
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

export function gcLayout(s: MpcSchedule, st: GcStep): GcLayout {
  const p = s.params
  const circ = (k: number) => getWindowCircuit({ k, inBits: p.gcBits, shift: p.weightFracBits, relu: st.relu, outBits: p.ringBits })
  const groups: GroupLayout[] = []
  let identity = new Int32Array(0)
  if (!st.pool) {
    const pos = st.positions ? Int32Array.from(st.positions) : Int32Array.from({ length: st.segment.size }, (_, i) => i)
    if (pos.length) groups.push({ k: 1, circuit: circ(1), inIdx: pos, outIdx: pos })
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
      groups.push({ k, circuit: circ(k), inIdx: Int32Array.from(g.ins), outIdx: Int32Array.from(g.outs) })
    }
  }
  const inputs = groups.reduce((a, g) => a + g.inIdx.length, 0)
  const instances = groups.reduce((a, g) => a + g.outIdx.length, 0)
  return { groups, identity, inputs, instances, bBits: inputs * p.gcBits }
}

/** Segments in protocol order: one per step, then one per graph output. */
export function segmentsOf(s: MpcSchedule): SegmentSpec[] {
  return [...s.steps.map((st) => st.segment), ...s.outputs.map((o) => o.segment)]
}

/** Elements squared by Beaver squares in a polynomial step (0 for degree 1). */
export function squaresOf(s: MpcSchedule, st: Step): number {
  if (st.kind !== 'poly' || st.degree < 2) return 0
  return st.positions ? st.positions.length : st.segment.size
}

/** Online round tags: 0 for the input, two per step with online traffic, then the output. */
export function roundTags(s: MpcSchedule, layouts: (GcLayout | undefined)[]): { steps: number[]; output: number } {
  let t = 1
  const steps = s.steps.map((st, i) => {
    const online = st.kind === 'gc' ? layouts[i]!.instances > 0 : squaresOf(s, st) > 0
    if (!online) return -1
    const tag = t
    t += 2
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
  a(step: number, m: number): BigUint64Array {
    return new Prg(this.seed, `a/${step}`).ring(m)
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
  a(step: number, m: number): BigUint64Array {
    return new Prg(this.seed, `a/${step}`).ring(m)
  }
  q(step: number, m: number): BigUint64Array {
    return new Prg(this.seed, `q/${step}`).ring(m)
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
    if (this.o + n > this.b.length) throw new Error(`malformed ${this.what}: too short`)
    const s = this.b.subarray(this.o, this.o + n)
    this.o += n
    return s
  }
  end(): void {
    if (this.o !== this.b.length) throw new Error(`malformed ${this.what}: ${this.b.length - this.o} trailing bytes`)
  }
}
