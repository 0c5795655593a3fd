/**
 * Garbled steps: ReLU, partial ReLU (a circuit only on the mask's ones; the zeros are local
 * truncation) and max pooling (windows grouped by size, optionally with a fused ReLU). One circuit
 * template per window size (../gc.ts getWindowCircuit) garbled for all its instances at once, cut into
 * chunks of at most GC_CHUNK_BYTES of material, one frame per chunk.
 *
 *   dealer   one random-OT label per bit of the client's circuit inputs: pairs (m0, m1) from the
 *            server's seed, the client gets m_c for its choice bits c
 *   client   offline: derandomizes (sends e = b ^ c for its share bits b) and sends its identity
 *            positions' masked truncated shares; per chunk receives the garbling's hash key, tables,
 *            the labels of the server's output mask U, decoding bits and both OT labels masked, and
 *            keeps the labels of b
 *   server   offline: garbles each chunk with fresh randomness (seed and hash key) and its mask U,
 *            sends it
 *   online   tag t: the server sends the labels of its share (gcBits per input); tag t + 1: the
 *            client evaluates, returns Z - r (Z = v + U); the server's masked value is Z - r - U
 */
import { encodeLabels, evaluate, fromBits, garble, getWindowCircuit, toBits, zeroLabels, type Circuit, type Garbled } from '../gc.js'
import { GC_KEY, LABEL, RING, type MpcParams, type MsgCost } from '../cost.js'
import { HEADER_BYTES } from '../net.js'
import { isCount, recvRing, Reader } from '../protocol.js'
import { concatRing, freshSeed, gather, packBits, Prg, ringToBytes, sub, truncShare, unpackBits } from '../ring.js'
import type { GcStep, MpcSchedule, WindowGroup } from '../types.js'
import type { StepKind } from './kind.js'

// ---------------------------------------------------------------------------------------------
// cost

export interface GcShape {
  groups: WindowGroup[]
  relu: boolean
}

const circuitOf = (p: MpcParams, k: number, relu: boolean): Circuit =>
  getWindowCircuit({ k, inBits: p.gcBits, shift: p.weightFracBits, relu, outBits: p.ringBits })

export function gcAnds(p: MpcParams, g: GcShape): number {
  let ands = 0
  for (const w of g.groups) ands += w.count * circuitOf(p, w.k, g.relu).ands
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

/** Bytes of garbled material one frame of garbled circuits aims at (tables, mask labels, OT). */
export const GC_CHUNK_BYTES = 32 << 20

/**
 * Instances of a k-input window circuit garbled together and sent as one frame: as many as fit in
 * GC_CHUNK_BYTES, so neither party holds more than a chunk's wire labels while garbling or evaluating.
 */
export function gcChunk(p: MpcParams, k: number, relu: boolean): number {
  const ands = circuitOf(p, k, relu).ands
  const perInstance = ands * 2 * LABEL + p.ringBits * LABEL + p.ringBits / 8 + k * p.gcBits * 2 * LABEL
  return Math.max(1, Math.floor(GC_CHUNK_BYTES / perInstance / 8) * 8)
}

/** Frames of garbled circuits a step sends offline (one per chunk of instances). */
export function gcChunks(p: MpcParams, g: GcShape): number {
  return g.groups.reduce((s, w) => s + Math.ceil(w.count / gcChunk(p, w.k, g.relu)), 0)
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
    offlineS2C: gcChunks(p, g) * (HEADER_BYTES + GC_KEY) + ands * 2 * LABEL + instances * p.ringBits * LABEL + (instances * p.ringBits) / 8 + bBits * 2 * LABEL,
    dealerToClient: bBits * LABEL,
    rounds: instances > 0 ? 2 : 0,
  }
}

// ---------------------------------------------------------------------------------------------
// layout

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
  const groups: GroupLayout[] = []
  const push = (k: number, inIdx: Int32Array, outIdx: Int32Array) => {
    const n = gcChunk(p, k, st.relu)
    for (let o = 0; o < outIdx.length; o += n)
      groups.push({ k, circuit: circuitOf(p, k, st.relu), inIdx: inIdx.subarray(o * k, Math.min(outIdx.length, o + n) * k), outIdx: outIdx.subarray(o, o + n) })
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

function xorInto(dst: Buffer, a: Buffer, ao: number, b: Buffer, bo: number, n: number, d: number): void {
  for (let i = 0; i < n; i++) dst[d + i] = a[ao + i] ^ b[bo + i]
}

// ---------------------------------------------------------------------------------------------
// the step kind

export const gc: StepKind<GcStep, GcLayout, number> = {
  kind: 'gc',
  layer: 'gc',

  cost(p, st) {
    const c = gcCost(p, { groups: st.groups, relu: st.relu }, st.identity)
    const reluCount = st.relu ? (st.pool ? st.segment.size : st.groups.reduce((s, w) => s + w.count, 0)) : 0
    const comparisons = st.groups.reduce((s, w) => s + (w.k - 1) * w.count, 0)
    return { msg: c, counts: { reluCount, comparisons, andGates: c.ands } }
  },

  layout: (s, st) => gcLayout(s, st),
  rounds: (L) => (L.instances > 0 ? 2 : 0),

  dealer: {
    key: 'ot',
    none: 0,
    spec: (L) => L.bBits,
    // one 16-byte label (two ring elements) per bit
    check: (bits) => (isCount(bits) ? 2 * bits : undefined),
    deal(bits, k, cs, ss) {
      if (!bits) return []
      const c = cs.choice(k, bits)
      const pairs = ss.ot(k, bits)
      const mc = Buffer.alloc(bits * 16)
      for (let j = 0; j < bits; j++) pairs.copy(mc, j * 16, j * 32 + c[j] * 16, j * 32 + c[j] * 16 + 16)
      return [mc]
    },
  },

  // without a dealer: the same random OTs from OT extension (the derandomization below is unchanged)
  twoParty: {
    needs: (bits) => ({ ots: bits, products: [] }),
    client: async (bits, k, cs, corr) => (bits ? [await corr.randomOts(cs.choice(k, bits))] : []),
    async server(bits, k, ss, corr) {
      if (bits) ss.set(`ot/${k}`, await corr.randomOts(bits))
    },
  },

  server(cx, st, k, L) {
    const p = cx.s.params
    let e: Uint8Array
    let idVals: BigUint64Array
    let garbled: { gb: Garbled; u: BigUint64Array }[]
    return {
      bytes: Math.ceil(L.bBits / 8) + L.identity.length * RING,
      read(msg) {
        e = unpackBits(Buffer.from(msg.take(Math.ceil(L.bBits / 8))), L.bBits, 'choice bits')
        idVals = msg.ring(L.identity.length)
      },
      // one frame per chunk, sent as soon as it is garbled and the socket has room: the server keeps
      // only the garbling keys and masks, and about one chunk of tables in flight
      async send() {
        const rnd = new Prg(freshSeed(), 'server masks')
        const pairs = cx.ss.ot(k, L.bBits)
        let bit = 0
        garbled = []
        for (const g of L.groups) {
          const n = g.outIdx.length
          const gb = garble(g.circuit, n, cx.leak?.fixedGarbleSeed ? Buffer.alloc(16) : freshSeed(), cx.tweak++)
          const u = cx.leak?.zeroOutputMask ? new BigUint64Array(n) : rnd.ring(n)
          const x0 = zeroLabels(gb, n, g.circuit.inputsB)
          const delta = Buffer.from(gb.delta.buffer, gb.delta.byteOffset, 16)
          const ot = Buffer.alloc(x0.length * 2)
          for (let j = 0; j < x0.length / 16; j++, bit++) {
            const m0 = bit * 32 + e[bit] * 16
            const m1 = bit * 32 + (1 - e[bit]) * 16
            xorInto(ot, x0, j * 16, pairs, m0, 16, j * 32)
            for (let t = 0; t < 16; t++) ot[j * 32 + 16 + t] = x0[j * 16 + t] ^ delta[t] ^ pairs[m1 + t]
          }
          cx.ch.send('offline', cx.img, Buffer.concat([gb.hashKey, gb.tables, encodeLabels(gb, n, g.circuit.inputsU, toBits(u, p.ringBits)), packBits(gb.decode), ot]))
          garbled.push({ gb: { ...gb, tables: Buffer.alloc(0) }, u })
          await cx.ch.drained()
        }
      },
      async online(ys, tag) {
        const res = new BigUint64Array(st.outSize)
        if (L.identity.length) {
          const t = truncShare(gather(ys, L.identity), p.weightFracBits, 1)
          L.identity.forEach((pos, j) => (res[pos] = t[j] + idVals[j]))
        }
        if (L.instances) {
          cx.ch.send('online', tag, Buffer.concat(L.groups.map((g, gi) => encodeLabels(garbled[gi].gb, g.outIdx.length, g.circuit.inputsA, toBits(gather(ys, g.inIdx), p.gcBits)))))
          const z = await recvRing(cx.ch, 'online', tag + 1, L.instances, 'circuit outputs')
          let o = 0
          L.groups.forEach((g, gi) => {
            const u = garbled[gi].u
            for (let i = 0; i < g.outIdx.length; i++, o++) res[g.outIdx[i]] = z[o] - u[i]
          })
        }
        cx.masked[st.source] = res
      },
    }
  },

  client(cx, st, k, L) {
    const p = cx.s.params
    const w = p.gcBits
    const yc = cx.yc[k]
    const r = cx.r[st.source]
    let mc: Buffer | undefined
    let bits: Uint8Array
    const groups: { hashKey: Buffer; tables: Buffer; labelsU: Buffer; decode: Uint8Array; labelsB: Buffer }[] = []
    return {
      dealt(material) {
        mc = L.bBits ? Buffer.from(material.take(L.bBits * 16)) : undefined
      },
      offline() {
        bits = toBits(concatRing(L.groups.map((g) => gather(yc, g.inIdx))), w)
        const c = cx.cs.choice(k, L.bBits)
        const e = new Uint8Array(L.bBits)
        for (let i = 0; i < e.length; i++) e[i] = bits[i] ^ c[i]
        const t = truncShare(gather(yc, L.identity), p.weightFracBits, 0)
        return [packBits(e), ringToBytes(sub(t, gather(r, L.identity)))]
      },
      async receive() {
        let bit = 0
        for (const g of L.groups) {
          const n = g.outIdx.length
          const nb = n * g.k * w
          const bytes = GC_KEY + g.circuit.ands * n * 32 + n * p.ringBits * 16 + (n * p.ringBits) / 8 + nb * 32
          const sr = new Reader(await cx.ch.recv('offline', cx.img, 'garbled circuits', bytes), 'garbled circuits')
          const hashKey = Buffer.from(sr.take(GC_KEY))
          const tables = sr.take(g.circuit.ands * n * 32)
          const labelsU = sr.take(n * p.ringBits * 16)
          const decode = unpackBits(Buffer.from(sr.take((n * p.ringBits) / 8)), n * p.ringBits, 'decoding bits')
          const ot = sr.take(nb * 32)
          sr.end()
          const labelsB = Buffer.alloc(nb * 16)
          for (let j = 0; j < nb; j++, bit++) xorInto(labelsB, ot, j * 32 + bits[bit] * 16, mc!, bit * 16, 16, j * 16)
          groups.push({ hashKey, tables, labelsU, decode, labelsB })
        }
      },
      async online(tag) {
        if (!L.instances) return
        const la = new Reader(await cx.ch.recv('online', tag, 'input labels', L.inputs * w * 16), 'input labels')
        const back: BigUint64Array[] = []
        L.groups.forEach((g, gi) => {
          const n = g.outIdx.length
          const cg = groups[gi]
          const labelsA = Buffer.from(la.take(n * g.k * w * 16))
          const z = fromBits(evaluate(g.circuit, n, labelsA, cg.labelsB, cg.labelsU, cg.tables, cg.decode, cx.tweak++, cg.hashKey), p.ringBits)
          back.push(sub(z, gather(r, g.outIdx)))
        })
        cx.ch.send('online', tag + 1, ringToBytes(concatRing(back)))
      },
    }
  },
}
