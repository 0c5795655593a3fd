/**
 * The two parties of the online protocol. The server (`pic serve`) holds the model; the client
 * (`pic query`) holds the input and evaluates the garbled circuits. Per image: the dealer's
 * correlations arrive, the parties run the offline exchange (oblivious transfers of the client's
 * circuit inputs, garbled tables and output masks, offline-known masked values), then the online
 * phase: input in masked form, then per step the server's share of the segment (M (x - r) + s + b)
 * feeds either a garbled circuit (server sends its input labels, client evaluates and returns the
 * re-masked result) or Beaver squares (server opens its share, client returns its masked square),
 * and finally the server's output share. Every receive is checked for size and bounded by a timeout.
 */
import type { Socket } from 'node:net'
import { describeNode, type Graph } from '../../ir/graph.js'
import type { Tensor } from '../../ir/tensor.js'
import { latencyMs, round3 } from './cost.js'
import { dealerSpec, parseHello, type Hello } from './dealer.js'
import { encodeLabels, evaluate, fromBits, garble, toBits, zeroLabels, type Garbled } from './gc.js'
import { boundPort, Channel, connectChannel, listen, ProtocolError, type Endpoint, type Phase } from './net.js'
import {
  ClientStreams, gcLayout, levelsOf, secondSegment, polyElems, polyProducts, PROTOCOL, Reader, roundTags, segmentsOf, ServerStreams, type GcLayout, type PolyCorr,
} from './protocol.js'
import {
  add, concatRing, decodeArray, encodeArray, freshSeed, gather, packBits, Prg, ringFromBytes, ringToBytes, sub, truncShare, unpackBits,
} from './ring.js'
import { applyRing, operatorsToBytes, quantize, type RingOperator } from './linear.js'
import { analyze, scheduleOf, segmentAffine, type MpcSchedule } from './schedule.js'

const DEFAULT_TIMEOUT = 30_000

function xorInto(dst: Buffer, a: Buffer, ao: number, b: Buffer, bo: number, n: number, d: number): void {
  for (let i = 0; i < n; i++) dst[d + i] = a[ao + i] ^ b[bo + i]
}

/** Receive n ring elements, checking the length (the peer is told on a mismatch). */
async function recvRing(ch: Channel, phase: Phase, tag: number, n: number, what: string): Promise<BigUint64Array> {
  return ringFromBytes(ch.expect(await ch.recv(phase, tag, what), n * 8, what), n, what)
}

/** Everything the server prepares once per model. */
export interface ServerModel {
  schedule: MpcSchedule
  /** Per segment (protocol order): its linear operator over Z_2^64, quantized. */
  operators: RingOperator[]
}

/** Check the schedule against the model and quantize the segments' linear operators. */
export function prepareServer(graph: Graph, schedule: MpcSchedule): ServerModel {
  const p = schedule.params
  const an = analyze(graph)
  const mine = scheduleOf(an, { fracBits: p.fracBits, weightFracBits: p.weightFracBits, intBits: p.intBits })
  if (mine.fingerprint !== schedule.fingerprint)
    throw new ProtocolError('the schedule was not compiled from this model (fingerprints differ; compile it again with the same options)')
  const operators = segmentsOf(schedule).map((seg) => quantize(segmentAffine(an, seg), p.fracBits, p.weightFracBits, describeNode(an.nodes.get(seg.node)!)))
  return { schedule, operators }
}

export interface ServeOptions {
  port: number
  host?: string
  dealer: Endpoint
  timeoutMs?: number
  log?: (msg: string) => void
  /** Called when a session ends, with its error if it failed. */
  onSessionEnd?: (error: Error | undefined) => void
}

export interface ServerHandle {
  port: number
  /** Settles when a session ends: undefined on success, the error otherwise. */
  sessions: Promise<Error | undefined>[]
  close(): Promise<void>
}

/** Listen for clients; each connection is one session (several images). */
export async function startServer(model: ServerModel, opts: ServeOptions): Promise<ServerHandle> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT
  const log = opts.log ?? (() => {})
  const sockets = new Set<Socket>()
  const sessions: Promise<Error | undefined>[] = []
  const srv = await listen(opts.port, opts.host ?? '127.0.0.1', (sock) => {
    sockets.add(sock)
    sock.on('close', () => sockets.delete(sock))
    const ch = new Channel(sock, `client at ${sock.remoteAddress}:${sock.remotePort}`, timeoutMs)
    sessions.push(
      serveSession(model, ch, opts.dealer, timeoutMs).then(
        (n) => {
          log(`served ${n} image(s) to ${ch.peer}`)
          opts.onSessionEnd?.(undefined)
          return undefined
        },
        (e: Error) => {
          ch.abort(e.message)
          log(`session with ${ch.peer} failed: ${e.message}`)
          opts.onSessionEnd?.(e)
          return e
        },
      ),
    )
  })
  return {
    port: boundPort(srv),
    sessions,
    close: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy()
        srv.close(() => resolve())
      }),
  }
}

async function serveSession(model: ServerModel, ch: Channel, dealerEp: Endpoint, timeoutMs: number): Promise<number> {
  const s = model.schedule
  const hello = parseHello(await ch.recv('setup', 0, 'hello'), ch.peer)
  if (hello.role !== 'client') throw new ProtocolError(`${ch.peer} is not a client`)
  if (hello.fingerprint !== s.fingerprint) throw new ProtocolError('client and server hold different schedules')
  const spec = dealerSpec(s)
  const dealer = await connectChannel(dealerEp, timeoutMs, 'dealer')
  try {
    const mine: Hello = { protocol: PROTOCOL, role: 'server', session: hello.session, fingerprint: s.fingerprint, images: hello.images, spec }
    dealer.send('setup', 0, Buffer.from(JSON.stringify(mine)))
    dealer.send('setup', 1, operatorsToBytes(model.operators))
    ch.send('setup', 1, Buffer.from(JSON.stringify({ ok: true })))
    const layouts = s.steps.map((st) => (st.kind === 'gc' ? gcLayout(s, st) : undefined))
    const tags = roundTags(s, layouts)
    for (let img = 0; img < hello.images; img++) {
      dealer.send('offline', img, Buffer.alloc(0))
      const seed = dealer.expect(await dealer.recv('offline', img, 'dealer seed'), 16, 'dealer seed')
      await serverImage(model, ch, img, new ServerStreams(seed), layouts, tags)
    }
    ch.send('setup', 2, Buffer.from(JSON.stringify({ dealerBytes: dealer.counters.received.offline + dealer.counters.sent.offline })))
    return hello.images
  } catch (e) {
    ch.abort((e as Error).message)
    dealer.abort((e as Error).message)
    throw e
  } finally {
    dealer.close()
    ch.close()
  }
}

interface GarbledGroup {
  gb: Garbled
  u: BigUint64Array
}

async function serverImage(
  model: ServerModel, ch: Channel, img: number, ss: ServerStreams, layouts: (GcLayout | undefined)[], tags: { steps: number[]; output: number },
): Promise<void> {
  const s = model.schedule
  const p = s.params
  const w = p.gcBits
  const segs = segmentsOf(s)
  const rd = new Reader(await ch.recv('offline', img, 'offline message'), 'offline message')
  const idVals: (BigUint64Array | undefined)[] = []
  const pow1: (BigUint64Array | undefined)[] = []
  const ec: (BigUint64Array | undefined)[] = []
  const eBits: (Uint8Array | undefined)[] = []
  s.steps.forEach((st, k) => {
    if (st.kind === 'gc') {
      const L = layouts[k]!
      eBits[k] = unpackBits(Buffer.from(rd.take(Math.ceil(L.bBits / 8))), L.bBits, 'choice bits')
      idVals[k] = rd.ring(L.identity.length)
    } else if (st.kind === 'mul') {
      const n = st.segment.size
      ec[k] = rd.ring(2 * n)
    } else {
      pow1[k] = rd.ring(st.segment.size)
      const m = levelsOf(st).length ? polyElems(st) : 0
      ec[k] = rd.ring(m)
    }
  })
  rd.end()
  const rnd = new Prg(freshSeed(), 'server masks')
  const garbled: GarbledGroup[][] = []
  let tweak = img * 1024
  // one frame per chunk, sent as soon as it is garbled: the server keeps only input labels and masks
  s.steps.forEach((st, k) => {
    if (st.kind !== 'gc') return
    const L = layouts[k]!
    const pairs = ss.ot(k, L.bBits)
    const e = eBits[k]!
    let bit = 0
    garbled[k] = L.groups.map((g) => {
      const n = g.outIdx.length
      const gb = garble(g.circuit, n, freshSeed(), tweak++)
      const u = rnd.ring(n)
      const x0 = zeroLabels(gb, n, g.circuit.inputsB)
      const delta = Buffer.from(gb.delta.buffer, gb.delta.byteOffset, 16)
      const ot = Buffer.alloc(x0.length * 2)
      for (let j = 0; j < x0.length / 16; j++, bit++) {
        const m0 = bit * 32 + e[bit] * 16
        const m1 = bit * 32 + (1 - e[bit]) * 16
        xorInto(ot, x0, j * 16, pairs, m0, 16, j * 32)
        for (let t = 0; t < 16; t++) ot[j * 32 + 16 + t] = x0[j * 16 + t] ^ delta[t] ^ pairs[m1 + t]
      }
      ch.send('offline', img, Buffer.concat([gb.tables, encodeLabels(gb, n, g.circuit.inputsU, toBits(u, p.ringBits)), packBits(gb.decode), ot]))
      return { gb: { ...gb, tables: Buffer.alloc(0) }, u }
    })
  })
  ch.send('offline', img, Buffer.alloc(0))

  const masked: BigUint64Array[] = []
  const inSrc = s.input.source
  masked[inSrc] = await recvRing(ch, 'online', 0, s.sources[inSrc].size, 'masked input')
  const share = (j: number): BigUint64Array => add(applyRing(model.operators[j], (id) => masked[id], true), ss.s(j, segs[j].size))
  for (const [k, st] of s.steps.entries()) {
    const ys = share(k)
    const tag = tags.steps[k]
    if (st.kind === 'gc') {
      const L = layouts[k]!
      const res = new BigUint64Array(st.outSize)
      if (L.identity.length) {
        const t = truncShare(gather(ys, L.identity), p.weightFracBits, 1)
        L.identity.forEach((pos, j) => (res[pos] = t[j] + idVals[k]![j]))
      }
      if (L.instances) {
        ch.send('online', tag, Buffer.concat(L.groups.map((g, gi) => encodeLabels(garbled[k][gi].gb, g.outIdx.length, g.circuit.inputsA, toBits(gather(ys, g.inIdx), w)))))
        const z = await recvRing(ch, 'online', tag + 1, L.instances, 'circuit outputs')
        let o = 0
        L.groups.forEach((g, gi) => {
          const u = garbled[k][gi].u
          for (let i = 0; i < g.outIdx.length; i++, o++) res[g.outIdx[i]] = z[o] - u[i]
        })
      }
      masked[st.source] = res
    } else if (st.kind === 'mul') {
      const n = st.segment.size
      const t = concatRing([ys, share(secondSegment(s, k))].map((y) => truncShare(y, p.weightFracBits, 1)))
      const a = ss.a(k, 0, n)
      const b = ss.b(k, 0, 0, n)
      const c = ss.c(k, 0, 0, n)
      const mine = sub(t, concatRing([a, b]))
      ch.send('online', tag, ringToBytes(mine))
      const d = add(mine, ec[k]!)
      const prod = new BigUint64Array(n)
      for (let i = 0; i < n; i++) prod[i] = d[i] * b[i] + d[n + i] * a[i] + c[i]
      const back = await recvRing(ch, 'online', tag + 1, n, 'masked products')
      masked[st.source] = add(truncShare(prod, p.fracBits, 1), back)
    } else {
      const ts = truncShare(ys, p.weightFracBits, 1)
      masked[st.sources[0]] = add(ts, pow1[k]!)
      const levels = levelsOf(st)
      if (!levels.length) continue
      const m = polyElems(st)
      const tp = st.positions ? gather(ts, Int32Array.from(st.positions)) : ts
      const corr: PolyCorr = {
        a: levels.map((_, L) => ss.a(k, L, m)),
        b: levels.map((lv, L) => lv.js.map((j) => ss.b(k, L, j, m))),
        q: levels.map((lv, L) => (lv.square ? ss.q(k, L, m) : undefined)),
        c: levels.map((lv, L) => lv.js.map((j) => ss.c(k, L, j, m))),
      }
      const B = await polyProducts(1, p.fracBits, st.basis, levels, tp, corr, async (L, mine) => {
        ch.send('online', tag + L, ringToBytes(mine))
        if (L === 0) return ec[k]!
        return await recvRing(ch, 'online', tag + L, mine.length, 'openings')
      })
      const n = (st.degree - 1) * m
      const back = await recvRing(ch, 'online', tag + levels.length, n, 'masked products')
      for (let d = 2; d <= st.degree; d++) masked[st.sources[d - 1]] = add(B[d - 1], back.subarray((d - 2) * m, (d - 1) * m))
    }
  }
  const outShares = s.outputs.map((_, j) => share(s.steps.length + j))
  ch.send('online', tags.output, ringToBytes(concatRing(outShares)))
}

export interface QueryOptions {
  server: Endpoint
  dealer: Endpoint
  timeoutMs?: number
}

export interface QueryReport {
  images: number
  bytes: { online: number; offline: number; setup: number }
  rounds: number
  perImage: { bytes: { online: number; offline: number }; rounds: number }
  latencyMs: { total: number; perImage: number; onlinePerImage: number }
  predicted: { bytes: { online: number; offline: number }; rounds: number; latencyMs: Record<string, number> }
  reluCount: number
  triples: number
}

/** Run the client over a batch (first dimension of `input`); returns the outputs and the measurements. */
export async function query(s: MpcSchedule, input: Tensor, opts: QueryOptions): Promise<{ output: Tensor; report: QueryReport }> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT
  const per = s.sources[s.input.source].size
  const want = s.input.shape.slice(1)
  if (input.shape.length !== s.input.shape.length || input.shape.slice(1).some((d, i) => d !== want[i]))
    throw new ProtocolError(`input has shape [${input.shape.join(',')}], the schedule expects [N,${want.join(',')}]`)
  const images = input.shape[0]
  if (images < 1) throw new ProtocolError('input has no images')
  const t0 = performance.now()
  const server = await connectChannel(opts.server, timeoutMs, 'server')
  let dealer: Channel | undefined
  try {
    const hello: Hello = {
      protocol: PROTOCOL, role: 'client', session: freshSeed().toString('hex'), fingerprint: s.fingerprint, images, spec: dealerSpec(s),
    }
    server.send('setup', 0, Buffer.from(JSON.stringify(hello)))
    dealer = await connectChannel(opts.dealer, timeoutMs, 'dealer')
    dealer.send('setup', 0, Buffer.from(JSON.stringify(hello)))
    await server.recv('setup', 1, 'session acceptance')
    const layouts = s.steps.map((st) => (st.kind === 'gc' ? gcLayout(s, st) : undefined))
    const tags = roundTags(s, layouts)
    const outSize = s.outputs.reduce((a, o) => a + o.segment.size, 0)
    const out = new Float64Array(images * outSize)
    let online = 0
    let offline = 0
    let rounds = 0
    let onlineMs = 0
    for (let img = 0; img < images; img++) {
      const before = snapshot(server, dealer)
      const x = input.data.subarray(img * per, (img + 1) * per)
      const r = await clientImage(s, server, dealer, img, x, layouts, tags)
      out.set(r.y, img * outSize)
      onlineMs += r.onlineMs
      const after = snapshot(server, dealer)
      online += after.online - before.online
      offline += after.offline - before.offline
      rounds += server.counters.onlineRounds.size
      server.counters.onlineRounds.clear()
    }
    const summary = await server.recv('setup', 2, 'session summary')
    let stats: { dealerBytes?: unknown }
    try {
      stats = JSON.parse(summary.toString('utf8')) as { dealerBytes?: unknown }
    } catch {
      throw new ProtocolError('server sent a malformed session summary')
    }
    offline += typeof stats.dealerBytes === 'number' && Number.isFinite(stats.dealerBytes) ? stats.dealerBytes : 0
    const total = performance.now() - t0
    const setup = server.counters.sent.setup + server.counters.received.setup + dealer.counters.sent.setup
    const oShape = s.outputs.length === 1 ? [images, ...s.outputs[0].shape.slice(1)] : [images, outSize]
    return {
      output: { dtype: 'float32', shape: oShape, data: out },
      report: {
        images,
        bytes: { online, offline, setup },
        rounds,
        perImage: { bytes: { online: online / images, offline: offline / images }, rounds: rounds / images },
        latencyMs: { total: round3(total), perImage: round3(total / images), onlinePerImage: round3(onlineMs / images) },
        predicted: { bytes: s.bytes, rounds: s.rounds, latencyMs: latencyMs(s.bytes.online, s.rounds) },
        reluCount: s.reluCount,
        triples: s.triples,
      },
    }
  } catch (e) {
    server.abort((e as Error).message)
    dealer?.abort((e as Error).message)
    throw e
  } finally {
    dealer?.close()
    server.close()
  }
}

function snapshot(server: Channel, dealer: Channel): { online: number; offline: number } {
  const c = server.counters
  return {
    online: c.sent.online + c.received.online,
    offline: c.sent.offline + c.received.offline + dealer.counters.received.offline + dealer.counters.sent.offline,
  }
}

async function clientImage(
  s: MpcSchedule, server: Channel, dealer: Channel, img: number, x: Float64Array, layouts: (GcLayout | undefined)[], tags: { steps: number[]; output: number },
): Promise<{ y: Float64Array; onlineMs: number }> {
  const p = s.params
  const w = p.gcBits
  const segs = segmentsOf(s)
  dealer.send('offline', img, Buffer.alloc(0))
  const rd = new Reader(await dealer.recv('offline', img, 'dealer material'), 'dealer material')
  const cs = new ClientStreams(Buffer.from(rd.take(16)))
  const yc = segs.map((g) => rd.ring(g.size))
  const corr: (PolyCorr | undefined)[] = s.steps.map((st, k) => {
    const levels = levelsOf(st)
    if (!levels.length) return undefined
    const m = polyElems(st)
    const take = () => rd.ring(m)
    const q: (BigUint64Array | undefined)[] = []
    const c: BigUint64Array[][] = []
    for (const lv of levels) {
      q.push(lv.square ? take() : undefined)
      c.push(lv.js.map(() => take()))
    }
    return { a: levels.map((_, L) => cs.a(k, L, m)), b: levels.map((lv, L) => lv.js.map((j) => cs.b(k, L, j, m))), q, c }
  })
  const mulC = s.steps.map((st) => (st.kind === 'mul' ? rd.ring(st.segment.size) : undefined))
  const mc = s.steps.map((st, k) => (st.kind === 'gc' && layouts[k]!.bBits ? Buffer.from(rd.take(layouts[k]!.bBits * 16)) : undefined))
  rd.end()
  const r = s.sources.map((src) => cs.r(src.id, src.size))

  const parts: Buffer[] = []
  const bBitsOf: (Uint8Array | undefined)[] = []
  const tcOf: (BigUint64Array | undefined)[] = []
  const mulOf: ({ a: BigUint64Array; b: BigUint64Array; c: BigUint64Array; mine: BigUint64Array } | undefined)[] = []
  s.steps.forEach((st, k) => {
    if (st.kind === 'gc') {
      const L = layouts[k]!
      const bits = toBits(concatRing(L.groups.map((g) => gather(yc[k], g.inIdx))), w)
      bBitsOf[k] = bits
      const c = cs.choice(k, L.bBits)
      const e = new Uint8Array(L.bBits)
      for (let i = 0; i < e.length; i++) e[i] = bits[i] ^ c[i]
      parts.push(packBits(e))
      const t = truncShare(gather(yc[k], L.identity), p.weightFracBits, 0)
      parts.push(ringToBytes(sub(t, gather(r[st.source], L.identity))))
    } else if (st.kind === 'mul') {
      const n = st.segment.size
      const t = concatRing([yc[k], yc[secondSegment(s, k)]].map((y) => truncShare(y, p.weightFracBits, 0)))
      const a = cs.a(k, 0, n)
      const b = cs.b(k, 0, 0, n)
      const mine = sub(t, concatRing([a, b]))
      mulOf[k] = { a, b, c: mulC[k]!, mine }
      parts.push(ringToBytes(mine))
    } else {
      const tc = truncShare(yc[k], p.weightFracBits, 0)
      parts.push(ringToBytes(sub(tc, r[st.sources[0]])))
      if (corr[k]) {
        const tp = st.positions ? gather(tc, Int32Array.from(st.positions)) : tc
        tcOf[k] = tp
        parts.push(ringToBytes(sub(tp, corr[k]!.a[0])))
      }
    }
  })
  server.send('offline', img, Buffer.concat(parts))
  interface ClientGroup {
    tables: Buffer
    labelsU: Buffer
    decode: Uint8Array
    labelsB: Buffer
  }
  const groups: ClientGroup[][] = []
  for (const [k, st] of s.steps.entries()) {
    if (st.kind !== 'gc') continue
    const L = layouts[k]!
    const bits = bBitsOf[k]!
    const m = mc[k]
    let bit = 0
    groups[k] = []
    for (const g of L.groups) {
      const sr = new Reader(await server.recv('offline', img, 'garbled circuits'), 'garbled circuits')
      const n = g.outIdx.length
      const tables = sr.take(g.circuit.ands * n * 32)
      const labelsU = sr.take(n * p.ringBits * 16)
      const decode = unpackBits(Buffer.from(sr.take((n * p.ringBits) / 8)), n * p.ringBits, 'decoding bits')
      const nb = n * g.k * w
      const ot = sr.take(nb * 32)
      sr.end()
      const labelsB = Buffer.alloc(nb * 16)
      for (let j = 0; j < nb; j++, bit++) xorInto(labelsB, ot, j * 32 + bits[bit] * 16, m!, bit * 16, 16, j * 16)
      groups[k].push({ tables, labelsU, decode, labelsB })
    }
  }
  server.expect(await server.recv('offline', img, 'end of garbled circuits'), 0, 'end of garbled circuits')

  const t0 = performance.now()
  const inSrc = s.input.source
  server.send('online', 0, ringToBytes(sub(encodeArray(x, p.fracBits), r[inSrc])))
  let tweak = img * 1024
  for (const [k, st] of s.steps.entries()) {
    const tag = tags.steps[k]
    if (st.kind === 'gc') {
      const L = layouts[k]!
      if (!L.instances) continue
      const la = new Reader(server.expect(await server.recv('online', tag, 'input labels'), L.inputs * w * 16, 'input labels'), 'input labels')
      const back: BigUint64Array[] = []
      L.groups.forEach((g, gi) => {
        const n = g.outIdx.length
        const cg = groups[k][gi]
        const labelsA = Buffer.from(la.take(n * g.k * w * 16))
        const z = fromBits(evaluate(g.circuit, n, labelsA, cg.labelsB, cg.labelsU, cg.tables, cg.decode, tweak++), p.ringBits)
        back.push(sub(z, gather(r[st.source], g.outIdx)))
      })
      server.send('online', tag + 1, ringToBytes(concatRing(back)))
    } else if (st.kind === 'mul') {
      const n = st.segment.size
      const mu = mulOf[k]!
      const other = await recvRing(server, 'online', tag, 2 * n, 'openings')
      const d = add(mu.mine, other)
      const prod = new BigUint64Array(n)
      for (let i = 0; i < n; i++) prod[i] = d[i] * d[n + i] + d[i] * mu.b[i] + d[n + i] * mu.a[i] + mu.c[i]
      server.send('online', tag + 1, ringToBytes(sub(truncShare(prod, p.fracBits, 0), r[st.source])))
    } else {
      const levels = levelsOf(st)
      if (!levels.length) continue
      const B = await polyProducts(0, p.fracBits, st.basis, levels, tcOf[k]!, corr[k]!, async (L, mine) => {
        if (L > 0) server.send('online', tag + L, ringToBytes(mine))
        return await recvRing(server, 'online', tag + L, mine.length, 'openings')
      })
      server.send('online', tag + levels.length, ringToBytes(concatRing(B.slice(1).map((b, i) => sub(b, r[st.sources[i + 1]])))))
    }
  }
  const outSize = s.outputs.reduce((a, o) => a + o.segment.size, 0)
  const ys = await recvRing(server, 'online', tags.output, outSize, 'output shares')
  const y = decodeArray(add(concatRing(yc.slice(s.steps.length, s.steps.length + s.outputs.length)), ys), p.fracBits + p.weightFracBits)
  return { y, onlineMs: performance.now() - t0 }
}
