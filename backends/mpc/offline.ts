/**
 * The offline phase without a dealer (issue 14): the server and the client make, between the two of
 * them, exactly the material the dealer would have made, so the per-image protocol that follows
 * (party.ts, steps/*.ts) is unchanged. Delphi's model: nobody but the two parties.
 *
 *   session   server -> client   the segments' operators in public form (linear.ts: structure and
 *                                geometry, no weights)
 *             client -> server   its RLWE public key (he.ts) and the first base-OT message (ot.ts)
 *             server -> client   the base-OT reply; both hold 128 base OTs for IKNP from here
 *   per image both draw their own seeds; then
 *             segments           for each term with weights (protocol order): the client sends
 *                                Enc(pre(r)), the server returns Enc(W pre(r) - s_t) (flooded,
 *                                re-randomized), the client decrypts and applies the term's
 *                                post-layout; the server's segment mask is the sum of post(s_t). A term
 *                                without weights (exact) the client computes itself from r.
 *             step kinds         in STEP_KINDS order, each step's `twoParty` part: random OTs for the
 *                                garbled circuits' client inputs, Gilboa products for Beaver shares
 *                                (OT extension, ot.ts)
 *   The client's material then has the dealer's layout ([seed][M r - s per segment][kinds' parts]),
 *   and the server's streams hold the jointly made values (protocol.ts ServerStreams.set).
 *
 * Who learns what: the server sees RLWE ciphertexts under the client's key, IKNP's u columns
 * (pseudo-random given the base OTs) and the bits b ^ c of the existing derandomization; the client
 * sees W u - s (uniform: s is the server's fresh mask, every coefficient of every returned
 * ciphertext is masked), flooded noise, and random-OT outputs for its own choices. Every receive
 * states its size (exact, or a bound from the public plan).
 */
import { sizeOf } from '../../ir/tensor.js'
import { HE_N, HE_PRIME_BITS, HE_PUBLIC_KEY_BYTES, HeClient, HeServer, planPrim, termCost, type HeTermPlan, type Prepared } from './he.js'
import { applyPublic, operatorsFromBytes, operatorsToBytes, weightedAt, type RingOperator } from './linear.js'
import { HEADER_BYTES, ProtocolError, type Channel } from './net.js'
import { PRESETS, round3 } from './cost.js'
import { BaseOtReceiver, BaseOtSender, choiceBitsOf, gilboaReceiver, gilboaSender, IknpReceiver, IknpSender, iknpMessageBytes, BASE_OT_FIRST_BYTES, BASE_OT_REPLY_BYTES, MAX_EXTEND } from './ot.js'
import { ClientStreams, ServerStreams, type Leak } from './protocol.js'
import { add, freshSeed, Prg, ringToBytes } from './ring.js'
import { STEP_KINDS, type SessionPlan } from './steps/index.js'
import { segmentsOf } from './steps/linear.js'
import type { MpcSchedule } from './types.js'

/**
 * Kernel plaintexts (products x 196,608 B each) the server keeps across a session's images; the terms
 * past the budget are encoded again for every image (node-seal's heap is 4 GiB, and ResNet-18's 15,179
 * products would take 3 GB of it).
 */
export const KERNEL_BUDGET_BYTES = 1 << 30
const KERNEL_BYTES = 8 * HE_N * (HE_PRIME_BITS.length - 1)
/**
 * How long the client waits for an evaluated term beyond the session's timeout: the server's work
 * grows with the term's products (0.45 ms each measured on one core; 20 ms allowed, for a loaded machine).
 */
const WAIT_PER_PRODUCT_MS = 20

/** Largest public-operator upload the client accepts (the same bound the dealer uses for the weighted form). */
const MAX_PUBLIC_OPERATOR_BYTES = 1 << 28
/** Largest public key plus base-OT message the server accepts. */
const MAX_KEY_BYTES = 1 << 23

// ---------------------------------------------------------------------------------------------
// what the step kinds use (steps/kind.ts TwoPartyPart)

/** The client's side of the correlations a step asks for, made with the server. */
export interface ClientCorrelations {
  /** Random OTs with these choice bits (one per byte): the 16-byte message of each choice. */
  randomOts(choices: Uint8Array): Promise<Buffer>
  /** The client's share of x * y elementwise (y the server's), mod 2^64. */
  products(x: BigUint64Array): Promise<BigUint64Array>
}

/** The server's side. */
export interface ServerCorrelations {
  /** `bits` random OTs: both 16-byte messages of each, m0 at 32 j, m1 at 32 j + 16. */
  randomOts(bits: number): Promise<Buffer>
  /** The server's share of x * y elementwise (x the client's). */
  products(y: BigUint64Array): Promise<BigUint64Array>
}

// ---------------------------------------------------------------------------------------------
// framing of ciphertext lists

function packBuffers(list: readonly Buffer[]): Buffer {
  const head = Buffer.alloc(4 + 4 * list.length)
  head.writeUInt32LE(list.length, 0)
  list.forEach((b, i) => head.writeUInt32LE(b.length, 4 + 4 * i))
  return Buffer.concat([head, ...list])
}

function unpackBuffers(b: Buffer, count: number, maxEach: number, what: string): Buffer[] {
  const bad = (why: string) => new ProtocolError(`malformed ${what}: ${why}`)
  if (b.length < 4 || b.readUInt32LE(0) !== count || b.length < 4 + 4 * count) throw bad(`expected ${count} ciphertexts`)
  const out: Buffer[] = []
  let o = 4 + 4 * count
  for (let i = 0; i < count; i++) {
    const n = b.readUInt32LE(4 + 4 * i)
    if (n > maxEach || o + n > b.length) throw bad(`ciphertext ${i} has ${n} bytes`)
    out.push(b.subarray(o, o + n))
    o += n
  }
  if (o !== b.length) throw bad('trailing bytes')
  return out
}

const framed = (count: number, each: number) => 4 + 4 * count + count * each

// ---------------------------------------------------------------------------------------------
// the linear terms both sides walk through, from the public operators

interface HeTerm {
  segment: number
  source: number
  pre: RingOperator['terms'][number]['prims']
  post: RingOperator['terms'][number]['prims']
  plan: HeTermPlan
  /** Elements of the weighted primitive's output (W u). */
  outSize: number
  /** Index in the operator's terms (the server's weighted primitive). */
  term: number
}

/** The terms that need homomorphic evaluation, in protocol order (segments, then terms). */
export function heTerms(ops: readonly RingOperator[], where: (j: number) => string): HeTerm[] {
  const out: HeTerm[] = []
  ops.forEach((op, j) =>
    op.terms.forEach((t, i) => {
      const w = weightedAt(t)
      if (w < 0) return
      const prim = t.prims[w]
      if (prim.kind === 'scale') throw new ProtocolError(`${where(j)}: a secret elementwise scale has no homomorphic packing here; run the offline phase with a dealer (--dealer)`)
      out.push({ segment: j, source: t.source, pre: t.prims.slice(0, w), post: t.prims.slice(w + 1), plan: planPrim(prim), outSize: sizeOf(prim.out), term: i })
    }),
  )
  return out
}

/** The two-party offline phase's cost per image, as the schedule states it (`twoParty`). */
export interface TwoPartyCost {
  /** Bytes per image: HE ciphertexts (up, down), OT extension and Gilboa corrections, the messages the parties exchange in either mode (garbled tables, derandomization, openings), and their sum. */
  bytes: { heUp: number; heDown: number; ot: number; exchanged: number; total: number }
  /** Once per session: the public operators, the client's public key and the base OTs. */
  setupBytes: number
  /** Messages in sequence per image (each a round trip's half). */
  flights: number
  counts: { heTerms: number; inCiphertexts: number; outCiphertexts: number; products: number; ots: number; gilboaProducts: number }
  /** Modelled time per image: computation (HE_COST, OT_COST, GC_COST) plus bytes over bandwidth and flights times delay, per network preset. */
  latencyMs: Record<string, number>
  computeMs: number
}

/**
 * Measured costs the model uses (this 2-core machine class, one core each; node-seal 6.0 at N = 8192
 * with three 60-bit data primes): per input ciphertext encrypted, per product, per output ciphertext
 * masked, re-randomized and decrypted (he.ts's measurement of ResNet-20's layers); per million OT
 * extensions, receiver and sender together (ot.ts's, 141-227 ms measured); per million AND gates
 * garbled (bench/gc.ts: 6.5-8.4 M AND/s). The garbling runs offline in both modes.
 */
export const HE_COST = { encryptMs: 3.5, productMs: 0.45, outputMs: 15 }
export const OT_COST = { perMillionMs: 185 }
export const GC_COST = { garblePerMillionAndMs: 135 }

function heComputeMs(c: TwoPartyCost['counts']): number {
  return c.inCiphertexts * HE_COST.encryptMs + c.products * HE_COST.productMs + c.outCiphertexts * HE_COST.outputMs
}

/** Bytes of the OT-extension messages for `ots` OTs (calls of at most MAX_EXTEND, one frame each). */
function extensionBytes(ots: number): number {
  let b = 0
  for (let o = 0; o < ots; o += MAX_EXTEND) b += iknpMessageBytes(Math.min(MAX_EXTEND, ots - o)) + HEADER_BYTES
  return b
}

/** Bytes of the session setup: the public operators, the public key, the base OTs (with frame headers). */
function setupBytes(ops: readonly RingOperator[]): number {
  return operatorsToBytes(ops, 'public').length + HEADER_BYTES + framed(2, 0) + HE_PUBLIC_KEY_BYTES + BASE_OT_FIRST_BYTES + HEADER_BYTES + BASE_OT_REPLY_BYTES + HEADER_BYTES
}

/** The schedule's prediction of the two-party offline phase (the server's quantized operators give the HE packing). */
export function twoPartyCost(ops: readonly RingOperator[], s: MpcSchedule, plan: SessionPlan, exchanged: number): TwoPartyCost {
  const c = { heTerms: 0, inCiphertexts: 0, outCiphertexts: 0, products: 0, ots: 0, gilboaProducts: 0 }
  let heUp = 0
  let heDown = 0
  let flights = 0
  for (const t of heTerms(ops, (j) => `segment ${j}`)) {
    const k = termCost(t.plan)
    c.heTerms++
    c.inCiphertexts += k.inCts
    c.outCiphertexts += k.outCts
    c.products += k.products
    heUp += framed(k.inCts, k.inCtBytes) + HEADER_BYTES
    heDown += framed(k.outCts, k.outCtBytes) + HEADER_BYTES
    flights += 2
  }
  let ot = 0
  for (const K of STEP_KINDS)
    s.steps.forEach((st, k) => {
      if (st.kind !== K.kind) return
      const need = K.twoParty.needs(K.dealer.spec(plan.layouts[k]))
      if (need.ots) {
        c.ots += need.ots
        ot += extensionBytes(need.ots)
        flights += Math.ceil(need.ots / MAX_EXTEND)
      }
      // products come in calls of m elements; each call is one extension and one correction message
      for (const m of need.products) {
        c.gilboaProducts += m
        c.ots += 64 * m
        ot += extensionBytes(64 * m) + 8 * 64 * m + HEADER_BYTES
        flights += Math.ceil((64 * m) / MAX_EXTEND) + 1
      }
    })
  const computeMs = heComputeMs(c) + (OT_COST.perMillionMs * c.ots) / 1e6 + (GC_COST.garblePerMillionAndMs * s.andGates) / 1e6
  const total = heUp + heDown + ot + exchanged
  const latencyMs: Record<string, number> = {}
  for (const p of PRESETS) latencyMs[p.name] = round3(computeMs + flights * p.delayMs + (total * 8 * 1000) / p.bandwidth)
  return { bytes: { heUp, heDown, ot, exchanged, total }, setupBytes: setupBytes(ops), flights, counts: c, latencyMs, computeMs: round3(computeMs) }
}
// ---------------------------------------------------------------------------------------------
// the server

/** What the server holds for one client session. */
export interface ServerOffline {
  he: HeServer
  /** Per term its kernels, kept across images within KERNEL_BUDGET_BYTES (undefined: encoded per image). */
  prepared: (Prepared | undefined)[]
  operators: readonly RingOperator[]
  terms: HeTerm[]
  ot: IknpSender
}

/** Session setup on the server: the public operators out, the client's key and base OTs in. */
export async function serverSetup(ch: Channel, operators: readonly RingOperator[], where: (j: number) => string, kernelBudget = KERNEL_BUDGET_BYTES, leak?: Leak): Promise<ServerOffline> {
  const terms = heTerms(operators, where)
  ch.send('setup', 3, operatorsToBytes(operators, leak?.weightedOperatorsToClient ? 'dealer' : 'public'))
  const [pk, first] = unpackBuffers(await ch.recv('setup', 4, 'public key and base OTs', { max: MAX_KEY_BYTES }), 2, MAX_KEY_BYTES, 'public key and base OTs')
  if (first.length !== BASE_OT_FIRST_BYTES) throw new ProtocolError(`malformed base OT message: ${first.length} bytes`)
  const base = new BaseOtReceiver()
  ch.send('setup', 5, base.reply(first))
  const he = await HeServer.create(pk)
  let kept = 0
  const prepared = terms.map((t) => {
    kept += termCost(t.plan).products * KERNEL_BYTES
    return kept <= kernelBudget ? prepareTerm(he, operators, t) : undefined
  })
  return { he, prepared, operators, terms, ot: new IknpSender(base) }
}

function prepareTerm(he: HeServer, operators: readonly RingOperator[], t: HeTerm): Prepared {
  return he.prepare(t.plan, operators[t.segment].terms[t.term].prims[t.pre.length], `segment ${t.segment}, term ${t.term}`)
}

/** One image's offline correlations on the server: fills `ss` with the jointly made streams. */
export async function serverImageOffline(x: ServerOffline, s: MpcSchedule, plan: SessionPlan, ch: Channel, img: number, ss: ServerStreams, leak?: Leak): Promise<void> {
  const segs = segmentsOf(s)
  const masks: (BigUint64Array | undefined)[] = segs.map(() => undefined)
  const rnd = new Prg(freshSeed(), 'segment masks')
  for (const [i, t] of x.terms.entries()) {
    const c = termCost(t.plan)
    const cts = unpackBuffers(await ch.recv('offline', img, 'encrypted masks', { max: framed(c.inCts, c.inCtBytes) }), c.inCts, c.inCtBytes, 'encrypted masks')
    const st = rnd.ring(t.outSize)
    const prep = x.prepared[i] ?? prepareTerm(x.he, x.operators, t)
    let out: Buffer[]
    try {
      out = x.he.evaluate(prep, cts, st)
    } finally {
      if (!x.prepared[i]) prep.delete()
    }
    ch.send('offline', img, packBuffers(out))
    await ch.drained()
    const part = applyPublic(t.post, st)
    masks[t.segment] = masks[t.segment] ? add(masks[t.segment]!, part) : part
  }
  // a segment whose terms are all exact has no server mask: the client computes M r itself
  segs.forEach((g, j) => ss.set(`s/${j}`, masks[j] ?? new BigUint64Array(g.size)))
  // OT extension in calls of at most MAX_EXTEND, one message each (the client splits alike)
  const randomOts = async (bits: number): Promise<Buffer> => {
    const parts: Buffer[] = []
    for (let o = 0; o < bits; o += MAX_EXTEND) {
      const m = Math.min(MAX_EXTEND, bits - o)
      parts.push(x.ot.extend(await ch.recv('offline', img, 'OT extension', iknpMessageBytes(m)), m))
    }
    return parts.length === 1 ? parts[0] : Buffer.concat(parts)
  }
  const corr: ServerCorrelations = {
    randomOts,
    products: async (y) => {
      const { msg, share } = gilboaSender(await randomOts(64 * y.length), y)
      ch.send('offline', img, leak?.unmaskedProducts ? unmaskedCorrections(y) : msg)
      await ch.drained()
      return share
    },
  }
  for (const K of STEP_KINDS)
    for (const [k, st] of s.steps.entries())
      if (st.kind === K.kind) await K.twoParty.server(K.dealer.spec(plan.layouts[k]), k, ss, corr)
}

/** TEST ONLY (Leak.unmaskedProducts): the corrections y_e 2^j without the OT masks w0 - w1. */
function unmaskedCorrections(y: BigUint64Array): Buffer {
  const d = new BigUint64Array(64 * y.length)
  for (let e = 0; e < y.length; e++) for (let j = 0; j < 64; j++) d[64 * e + j] = y[e] << BigInt(j)
  return ringToBytes(d)
}

// ---------------------------------------------------------------------------------------------
// the client

export interface ClientOffline {
  he: HeClient
  /** The session's receive timeout (an evaluated term may take longer: WAIT_PER_PRODUCT_MS). */
  timeoutMs: number
  ops: RingOperator[]
  terms: HeTerm[]
  ot: IknpReceiver
}

/** Session setup on the client: the server's public operators in, the key and base OTs out. */
export async function clientSetup(ch: Channel, s: MpcSchedule, timeoutMs: number): Promise<ClientOffline> {
  const segs = segmentsOf(s)
  const ops = operatorsFromBytes(await ch.recv('setup', 3, 'public operators', { max: MAX_PUBLIC_OPERATOR_BYTES }), segs, (id) => s.sources[id].size, 'public')
  const terms = heTerms(ops, (j) => `segment ${j}`)
  const he = await HeClient.create()
  const base = new BaseOtSender()
  ch.send('setup', 4, packBuffers([he.publicKey(), base.first()]))
  base.finish(await ch.recv('setup', 5, 'base OT reply', BASE_OT_REPLY_BYTES))
  return { he, timeoutMs, ops, terms, ot: new IknpReceiver(base) }
}

/** One image's offline correlations on the client: the material, laid out as the dealer's. */
export async function clientImageOffline(x: ClientOffline, s: MpcSchedule, plan: SessionPlan, ch: Channel, img: number, leak?: Leak): Promise<Buffer> {
  const seed = leak?.zeroClientSeed ? Buffer.alloc(16) : freshSeed()
  const cs = new ClientStreams(seed)
  const r = s.sources.map((src) => cs.r(src.id, src.size))
  const shares: BigUint64Array[] = x.ops.map((op) => {
    let y: BigUint64Array = new BigUint64Array(op.size)
    for (const t of op.terms) if (t.exact) y = add(y, applyPublic(t.prims, r[t.source]))
    return y
  })
  for (const t of x.terms) {
    ch.send('offline', img, packBuffers(x.he.encrypt(t.plan, applyPublic(t.pre, r[t.source]))))
    const c = termCost(t.plan)
    const wait = x.timeoutMs + WAIT_PER_PRODUCT_MS * c.products
    const out = unpackBuffers(await ch.recv('offline', img, 'evaluated masks', { max: framed(c.outCts, c.outCtBytes) }, wait), c.outCts, c.outCtBytes, 'evaluated masks')
    shares[t.segment] = add(shares[t.segment], applyPublic(t.post, x.he.decrypt(t.plan, out)))
  }
  const randomOts = async (choices: Uint8Array): Promise<Buffer> => {
    const parts: Buffer[] = []
    for (let o = 0; o < choices.length; o += MAX_EXTEND) {
      const { u, labels } = x.ot.extend(choices.subarray(o, Math.min(choices.length, o + MAX_EXTEND)))
      ch.send('offline', img, u)
      await ch.drained()
      parts.push(labels)
    }
    return parts.length === 1 ? parts[0] : Buffer.concat(parts)
  }
  const corr: ClientCorrelations = {
    randomOts,
    products: async (xs) => {
      const labels = await randomOts(choiceBitsOf(xs))
      return gilboaReceiver(labels, xs, await ch.recv('offline', img, 'product corrections', 8 * 64 * xs.length))
    },
  }
  const parts: Buffer[] = [seed, ...shares.map(ringToBytes)]
  for (const K of STEP_KINDS)
    for (const [k, st] of s.steps.entries())
      if (st.kind === K.kind) parts.push(...(await K.twoParty.client(K.dealer.spec(plan.layouts[k]), k, cs, corr)))
  return Buffer.concat(parts)
}
