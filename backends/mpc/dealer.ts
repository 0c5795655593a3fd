/**
 * The trusted dealer (`pic dealer --port P`): stands in for the offline phase's homomorphic
 * encryption and oblivious transfer. Both parties connect with the same session id; the server
 * uploads the segments' fixed-point linear operators (checked against its schedule), and per image the dealer sends the server a seed and the
 * client a seed plus what cannot be seeded: M r - s per segment, its Beaver-square shares and one
 * label per random oblivious transfer. The dealer sees the weights and the masks but never the
 * client's input, the garbled circuits or any online message.
 */
import type { Server, Socket } from 'node:net'
import { boundPort, Channel, listen, ProtocolError } from './net.js'
import { ClientStreams, gcLayout, levelsOf, polyElems, PROTOCOL, segmentsOf, ServerStreams } from './protocol.js'
import type { PolyLevel } from './cost.js'
import { applyRing, operatorsFromBytes, type RingOperator } from './linear.js'
import { add, freshSeed, ringToBytes, sub } from './ring.js'
import type { MpcSchedule } from './schedule.js'

export interface DealerSpec {
  sources: number[]
  segments: { sources: number[]; size: number }[]
  /** Per step: elements through Beaver products and the product levels. */
  poly: { m: number; levels: PolyLevel[] }[]
  /** Per step: elements multiplied with Beaver triples (product steps). */
  mul: number[]
  ot: number[]
}

export function dealerSpec(s: MpcSchedule): DealerSpec {
  return {
    sources: s.sources.map((x) => x.size),
    segments: segmentsOf(s).map((g) => ({ sources: g.sources, size: g.size })),
    poly: s.steps.map((st) => ({ m: polyElems(st), levels: levelsOf(st) })),
    mul: s.steps.map((st) => (st.kind === 'mul' ? st.segment.size : 0)),
    ot: s.steps.map((st) => (st.kind === 'gc' ? gcLayout(s, st).bBits : 0)),
  }
}

export interface Hello {
  protocol: string
  role: 'server' | 'client'
  session: string
  fingerprint: string
  images: number
  spec: DealerSpec
}

const MAX_IMAGES = 1 << 20

/** Largest number of ring elements a session's offline material may describe per image. */
const MAX_ELEMENTS = 1 << 26

function isCount(v: unknown): v is number {
  return Number.isInteger(v) && (v as number) >= 0 && (v as number) <= MAX_ELEMENTS
}

/** Check a spec read from the network before the dealer allocates anything for it. */
function validSpec(spec: DealerSpec): boolean {
  if (!spec || !Array.isArray(spec.sources) || !Array.isArray(spec.segments) || !Array.isArray(spec.poly) || !Array.isArray(spec.mul) || !Array.isArray(spec.ot)) return false
  if (!spec.sources.every(isCount) || !spec.mul.every(isCount) || !spec.ot.every(isCount)) return false
  const nSteps = spec.poly.length
  if (spec.mul.length !== nSteps || spec.ot.length !== nSteps) return false
  let total = spec.sources.reduce((a, b) => a + b, 0) + spec.mul.reduce((a, b) => a + b, 0) + spec.ot.reduce((a, b) => a + b, 0)
  for (const seg of spec.segments) {
    if (!seg || !isCount(seg.size) || !Array.isArray(seg.sources) || !seg.sources.every((id) => Number.isInteger(id) && id >= 0 && id < spec.sources.length)) return false
    total += seg.size
  }
  for (const p of spec.poly) {
    if (!p || !isCount(p.m) || !Array.isArray(p.levels) || p.levels.length > 8) return false
    for (const lv of p.levels) {
      if (!lv || !Number.isInteger(lv.h) || typeof lv.square !== 'boolean' || !Array.isArray(lv.js) || lv.js.length > 64 || !lv.js.every((j) => Number.isInteger(j))) return false
      total += p.m * (lv.js.length + 1)
    }
  }
  return total <= MAX_ELEMENTS
}

export function parseHello(b: Buffer, peer: string): Hello {
  let h: Hello
  try {
    h = JSON.parse(b.toString('utf8')) as Hello
  } catch {
    throw new ProtocolError(`${peer} sent a malformed hello`)
  }
  if (!h || typeof h !== 'object' || h.protocol !== PROTOCOL) throw new ProtocolError(`${peer} does not speak ${PROTOCOL}`)
  if (typeof h.session !== 'string' || !/^[0-9a-f]{32}$/.test(h.session)) throw new ProtocolError(`${peer} sent a malformed session id`)
  if (typeof h.fingerprint !== 'string') throw new ProtocolError(`${peer} sent no schedule fingerprint`)
  if (!Number.isInteger(h.images) || h.images < 1 || h.images > MAX_IMAGES) throw new ProtocolError(`${peer} asked for ${h.images} images`)
  if (!validSpec(h.spec)) throw new ProtocolError(`${peer} sent a malformed offline specification`)
  return h
}

export interface DealerOptions {
  port: number
  host?: string
  timeoutMs?: number
  log?: (msg: string) => void
}

export interface DealerHandle {
  port: number
  close(): Promise<void>
}

interface Pending {
  role: 'server' | 'client'
  ch: Channel
  hello: Hello
  operators?: RingOperator[]
  timer: NodeJS.Timeout
  /** Wakes the party that arrived first once its partner is here. */
  partner: () => void
}

/** Start the dealer; it serves sessions until closed. */
export async function startDealer(opts: DealerOptions): Promise<DealerHandle> {
  const timeoutMs = opts.timeoutMs ?? 30_000
  const log = opts.log ?? (() => {})
  const pending = new Map<string, Pending>()
  const sockets = new Set<Socket>()
  const onSocket = (sock: Socket) => {
    sockets.add(sock)
    sock.on('close', () => sockets.delete(sock))
    const ch = new Channel(sock, `party at ${sock.remoteAddress}:${sock.remotePort}`, timeoutMs)
    handle(ch).catch((e) => {
      ch.abort((e as Error).message)
      log(`dealer: ${(e as Error).message}`)
    })
  }
  const handle = async (ch: Channel) => {
    const hello = parseHello(await ch.recv('setup', 0, 'hello'), ch.peer)
    let operators: RingOperator[] | undefined
    if (hello.role === 'server') {
      const buf = await ch.recv('setup', 1, 'linear operators')
      operators = operatorsFromBytes(buf, hello.spec.segments, (id) => hello.spec.sources[id])
    } else if (hello.role !== 'client') throw new ProtocolError(`${ch.peer} has unknown role`)
    const other = pending.get(hello.session)
    if (!other) {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => {
          pending.delete(hello.session)
          reject(new ProtocolError(`timed out after ${timeoutMs} ms waiting for the other party of session ${hello.session.slice(0, 8)}`))
        }, timeoutMs)
        pending.set(hello.session, { role: hello.role, ch, hello, operators, timer, partner: resolve })
      })
      return
    }
    clearTimeout(other.timer)
    pending.delete(hello.session)
    other.partner()
    const mine: Pending = { role: hello.role, ch, hello, operators, timer: other.timer, partner: () => {} }
    const server = hello.role === 'server' ? mine : other
    const client = hello.role === 'client' ? mine : other
    try {
      if (other.role === hello.role) throw new ProtocolError(`two ${hello.role}s joined session ${hello.session.slice(0, 8)}`)
      if (server.hello.fingerprint !== client.hello.fingerprint) throw new ProtocolError('client and server hold different schedules')
      if (server.hello.images !== client.hello.images) throw new ProtocolError('client and server disagree on the number of images')
      if (JSON.stringify(server.hello.spec) !== JSON.stringify(client.hello.spec)) throw new ProtocolError('client and server disagree on the offline material')
      await generate(server.hello.spec, server.operators!, server.hello.images, server.ch, client.ch)
      log(`dealer: session ${hello.session.slice(0, 8)}: ${server.hello.images} image(s) served`)
    } catch (e) {
      server.ch.abort((e as Error).message)
      client.ch.abort((e as Error).message)
      throw e
    }
    server.ch.close()
    client.ch.close()
  }
  const srv: Server = await listen(opts.port, opts.host ?? '127.0.0.1', onSocket)
  return {
    port: boundPort(srv),
    close: () =>
      new Promise((resolve) => {
        for (const p of pending.values()) clearTimeout(p.timer)
        for (const s of sockets) s.destroy()
        srv.close(() => resolve())
      }),
  }
}

/** Produce and send each image's correlations when both parties ask for it (bounded memory). */
async function generate(spec: DealerSpec, operators: RingOperator[], images: number, server: Channel, client: Channel): Promise<void> {
  for (let img = 0; img < images; img++) {
    const asks = await Promise.all([client.recv('offline', img, `request for image ${img}`), server.recv('offline', img, `request for image ${img}`)])
    if (asks.some((a) => a.length !== 0)) throw new ProtocolError('a party sent a malformed request')
    const seedC = freshSeed()
    const seedS = freshSeed()
    const cs = new ClientStreams(seedC)
    const ss = new ServerStreams(seedS)
    const r = spec.sources.map((n, id) => cs.r(id, n))
    const parts: Buffer[] = [seedC]
    spec.segments.forEach((seg, j) => {
      parts.push(ringToBytes(sub(applyRing(operators[j], (id) => r[id], false), ss.s(j, seg.size))))
    })
    spec.poly.forEach(({ m, levels }, k) => {
      levels.forEach((lv, L) => {
        const a = add(cs.a(k, L, m), ss.a(k, L, m))
        if (lv.square) parts.push(ringToBytes(productShare(a, a, ss.q(k, L, m))))
        for (const j of lv.js) parts.push(ringToBytes(productShare(a, add(cs.b(k, L, j, m), ss.b(k, L, j, m)), ss.c(k, L, j, m))))
      })
    })
    spec.mul.forEach((n, k) => {
      if (n) parts.push(ringToBytes(productShare(add(cs.a(k, 0, n), ss.a(k, 0, n)), add(cs.b(k, 0, 0, n), ss.b(k, 0, 0, n)), ss.c(k, 0, 0, n))))
    })
    spec.ot.forEach((bits, k) => {
      if (!bits) return
      const c = cs.choice(k, bits)
      const pairs = ss.ot(k, bits)
      const mc = Buffer.alloc(bits * 16)
      for (let j = 0; j < bits; j++) pairs.copy(mc, j * 16, j * 32 + c[j] * 16, j * 32 + c[j] * 16 + 16)
      parts.push(mc)
    })
    client.send('offline', img, Buffer.concat(parts))
    server.send('offline', img, seedS)
  }
}

/** The client's share of x * y given the server's share. */
function productShare(x: BigUint64Array, y: BigUint64Array, server: BigUint64Array): BigUint64Array {
  const out = new BigUint64Array(x.length)
  for (let i = 0; i < x.length; i++) out[i] = x[i] * y[i] - server[i]
  return out
}
