/**
 * The trusted dealer (`pic dealer --port P`): stands in for the offline phase's homomorphic
 * encryption and oblivious transfer. Both parties connect with the same session id; the server
 * uploads the segments' fixed-point linear operators (checked against its schedule), and per image
 * the dealer sends the server a seed and the client a seed plus what cannot be seeded: M r - s per
 * segment (steps/linear.ts), then each step kind's part (steps/*.ts: Beaver product shares, one label
 * per random oblivious transfer). The dealer never sees the schedule, only an offline specification
 * of sizes, which it checks before allocating anything. It sees the weights and the masks but never
 * the client's input, the garbled circuits or any online message.
 */
import type { Server, Socket } from 'node:net'
import { operatorsFromBytes, type RingOperator } from './linear.js'
import { boundPort, Channel, listen, ProtocolError } from './net.js'
import { ClientStreams, MAX_ELEMENTS, PROTOCOL, ServerStreams, type Leak } from './protocol.js'
import { freshSeed } from './ring.js'
import { STEP_KINDS, type SessionPlan } from './steps/index.js'
import { checkLinearSpec, dealSegments, linearSpec } from './steps/linear.js'
import type { MpcSchedule } from './types.js'

/**
 * What the dealer needs to know of a schedule: the sizes of the sources and segments, and one field
 * per step kind (its `dealer.key`: poly, mul, ot) with one entry per step.
 */
export interface DealerSpec {
  sources: number[]
  segments: { sources: number[]; size: number }[]
  [kind: string]: unknown[]
}

export function dealerSpec(s: MpcSchedule, plan: SessionPlan): DealerSpec {
  const spec: DealerSpec = linearSpec(s) as DealerSpec
  for (const K of STEP_KINDS) spec[K.dealer.key] = s.steps.map((st, k) => (st.kind === K.kind ? K.dealer.spec(plan.layouts[k]) : K.dealer.none))
  return spec
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

/** Check a spec read from the network before the dealer allocates anything for it. */
function validSpec(spec: DealerSpec): boolean {
  if (!spec || typeof spec !== 'object') return false
  let total = checkLinearSpec(spec)
  if (total === undefined) return false
  const nSteps = spec[STEP_KINDS[0].dealer.key]?.length
  for (const K of STEP_KINDS) {
    const entries = spec[K.dealer.key]
    if (!Array.isArray(entries) || entries.length !== nSteps) return false
    for (const e of entries) {
      const n = K.dealer.check(e)
      if (n === undefined) return false
      total += n
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
  /** TEST ONLY (protocol.ts `Leak`): never set by the CLI. */
  leak?: Leak
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
      await generate(server.hello.spec, server.operators!, server.hello.images, server.ch, client.ch, opts.leak)
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
async function generate(spec: DealerSpec, operators: RingOperator[], images: number, server: Channel, client: Channel, leak?: Leak): Promise<void> {
  for (let img = 0; img < images; img++) {
    const asks = await Promise.all([client.recv('offline', img, `request for image ${img}`), server.recv('offline', img, `request for image ${img}`)])
    if (asks.some((a) => a.length !== 0)) throw new ProtocolError('a party sent a malformed request')
    const seedC = leak?.zeroClientSeed ? Buffer.alloc(16) : freshSeed()
    const seedS = freshSeed()
    const cs = new ClientStreams(seedC)
    const ss = new ServerStreams(seedS)
    const parts: Buffer[] = [seedC, ...dealSegments(spec, operators, cs, ss)]
    for (const K of STEP_KINDS) spec[K.dealer.key].forEach((entry, k) => parts.push(...K.dealer.deal(entry, k, cs, ss)))
    client.send('offline', img, Buffer.concat(parts))
    server.send('offline', img, seedS)
  }
}
