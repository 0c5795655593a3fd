/**
 * The trusted dealer (`pic dealer --port P`): stands in for the offline phase's homomorphic
 * encryption and oblivious transfer. Both parties connect with the same session id (over TLS bound
 * to their TLS connections, see `startDealer`); the server
 * uploads the segments' fixed-point linear operators (checked against its schedule), and per image
 * the dealer sends the server a seed and the client a seed plus what cannot be seeded: M r - s per
 * segment (steps/linear.ts), then each step kind's part (steps/*.ts: Beaver product shares, one label
 * per random oblivious transfer). The dealer never sees the schedule, only an offline specification
 * of sizes, which it checks before allocating anything. It sees the weights and the masks but never
 * the client's input, the garbled circuits or any online message.
 */
import { createHash } from 'node:crypto'
import type { Socket } from 'node:net'
import { operatorsFromBytes, type RingOperator } from './linear.js'
import { Channel, errorFrame, HELLO_BYTES, linkOf, listen, ProtocolError, UNBOUNDED } from './net.js'
import { DEALER_LINK_LABEL, exporterHex, generateIdentity, type Identity } from './tls.js'
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
  /**
   * Over TLS only. From the client to the server: the client's own dealer link (its dealer
   * connection's exporter for DEALER_LINK_LABEL); from the server to the dealer: the same value, the
   * client link this server vouches for.
   */
  clientLink?: string
  /** Over TLS only, from the client to the dealer: SHA-256 of the server certificate the client authenticated. */
  serverCert?: string
  /** From the client to the server: 'two-party' when the client runs the offline phase without a dealer (absent: the dealer's). */
  offline?: 'dealer' | 'two-party'
}

const MAX_IMAGES = 1 << 20
/** Parties (authenticated or not) that may wait at once for their partner; each waits at most the timeout. */
export const MAX_PENDING = 16
/** Connections the dealer holds at once (waiting ones, sessions being dealt, hellos not yet read). */
export const MAX_CONNECTIONS = 64
/** Largest upload of the server's linear operators (read once the server is paired). */
export const MAX_OPERATOR_BYTES = 1 << 28

/** Ring elements the step kinds' entries of a spec ask for; undefined if one is malformed. */
function stepElements(spec: DealerSpec): number | undefined {
  let total = 0
  const nSteps = spec[STEP_KINDS[0].dealer.key]?.length
  for (const K of STEP_KINDS) {
    const entries = spec[K.dealer.key]
    if (!Array.isArray(entries) || entries.length !== nSteps) return undefined
    for (const e of entries) {
      const n = K.dealer.check(e)
      if (n === undefined) return undefined
      total += n
    }
  }
  return total
}

/**
 * Check a spec read from the network before the dealer allocates anything for it: well formed, and
 * at most MAX_ELEMENTS ring elements per image (the sources' masks and the client's material).
 */
function validSpec(spec: DealerSpec): boolean {
  if (!spec || typeof spec !== 'object') return false
  const linear = checkLinearSpec(spec)
  const steps = stepElements(spec)
  return linear !== undefined && steps !== undefined && linear + steps <= MAX_ELEMENTS
}

/** Bytes of the dealer's material for the client per image (its seed, M r - s per segment, the step kinds' parts). */
export function materialBytes(spec: DealerSpec): number {
  return 16 + 8 * (spec.segments.reduce((a, g) => a + g.size, 0) + stepElements(spec)!)
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
  if (h.offline !== undefined && h.offline !== 'dealer' && h.offline !== 'two-party') throw new ProtocolError(`${peer} asked for an unknown offline phase`)
  return h
}

export interface DealerOptions {
  port: number
  host?: string
  timeoutMs?: number
  log?: (msg: string) => void
  /** TEST ONLY (protocol.ts `Leak`): never set by the CLI. */
  leak?: Leak
  /** The dealer's certificate (default: a fresh one, not stored; the CLI keeps one in its state directory). */
  identity?: Identity
  /** Plain TCP, pairing by session id alone (debugging). */
  insecurePlaintext?: boolean
  /**
   * TEST ONLY, never set by the CLI: over TLS, pair by session id alone as the dealer did before
   * sessions were bound to TLS connections (tls.test.ts shows the attacks it lets through).
   */
  unboundPairing?: boolean
}

export interface DealerHandle {
  port: number
  /** SHA-256 of the dealer's certificate (undefined in plaintext). */
  fingerprint?: string
  close(): Promise<void>
}

interface Pending {
  role: 'server' | 'client'
  ch: Channel
  /** The certificate the party presented on this link (the server's), if any. */
  cert?: string
  hello: Hello
  operators?: RingOperator[]
  timer: NodeJS.Timeout
  /** Wakes the party that arrived first once its partner is here. */
  partner: () => void
}

/**
 * Start the dealer; it serves sessions until closed.
 *
 * Pairing. In plaintext the dealer pairs the two hellos that carry the same session id (anyone who
 * knows the id can take either place). Over TLS a client and a server are paired only when
 *   1. the server vouches for the client's own connection: the server's hello names as `clientLink`
 *      the exporter (DEALER_LINK_LABEL) of this very client connection, which the dealer computes
 *      itself (the client told the server over their TLS connection; nobody else knows it);
 *   2. both carry the same session id, the client-server TLS connection's exporter (the server checks
 *      the client's against its own connection, so both come from one TLS session);
 *   3. the server presented, on its dealer link, the certificate the client authenticated (`serverCert`).
 * Pending parties wait under that link, so a party that fails 1 is never matched (it times out), and
 * a match that fails 2 or 3 aborts both. Knowing a session id, or both ids, is not enough to join.
 */
export async function startDealer(opts: DealerOptions): Promise<DealerHandle> {
  const timeoutMs = opts.timeoutMs ?? 30_000
  const log = opts.log ?? (() => {})
  const plaintext = opts.insecurePlaintext === true
  const bound = !plaintext && !opts.unboundPairing
  const identity = plaintext ? undefined : (opts.identity ?? (await generateIdentity('pic dealer')))
  const pending = new Map<string, Pending>()
  // what is logged of a session: a hash of its id, not the id
  const label = (session: string) => createHash('sha256').update(session).digest('hex').slice(0, 8)
  let open = 0
  const onSocket = (sock: Socket) => {
    const peer = `party at ${sock.remoteAddress}:${sock.remotePort}`
    if (open >= MAX_CONNECTIONS && !UNBOUNDED) {
      log(`dealer: refused ${peer}: ${MAX_CONNECTIONS} connections open`)
      sock.end(errorFrame(`the dealer is busy (${MAX_CONNECTIONS} connections open); try again later`))
      setTimeout(() => sock.destroy(), 1000).unref()
      return
    }
    open++
    sock.once('close', () => open--)
    const ch = new Channel(sock, peer, timeoutMs)
    handle(ch, sock).catch((e) => {
      ch.abort((e as Error).message)
      log(`dealer: ${(e as Error).message}`)
    })
  }
  const handle = async (ch: Channel, sock: Socket) => {
    const hello = parseHello(await ch.recv('setup', 0, 'hello', { max: HELLO_BYTES }), ch.peer)
    // the server's operators are read only once it is paired (unread, they wait in the socket)
    const operators: RingOperator[] | undefined = undefined
    if (hello.role !== 'server' && hello.role !== 'client') throw new ProtocolError(`${ch.peer} has unknown role`)
    const link = linkOf(sock)
    let key = hello.session
    if (bound) {
      if (hello.role === 'client') key = exporterHex(link.tls!, DEALER_LINK_LABEL)
      else if (typeof hello.clientLink === 'string' && /^[0-9a-f]{32}$/.test(hello.clientLink)) key = hello.clientLink
      else throw new ProtocolError(`${ch.peer} (a server) did not name the client link it vouches for`)
      if (hello.role === 'server' && !link.peerCertificate) throw new ProtocolError(`${ch.peer} (a server) presented no certificate`)
    }
    const other = pending.get(key)
    if (!other) {
      if (pending.size >= MAX_PENDING) throw new ProtocolError(`the dealer is busy (${MAX_PENDING} parties waiting for their partner); try again later`)
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => {
          pending.delete(key)
          reject(new ProtocolError(`timed out after ${timeoutMs} ms waiting for the other party of session ${label(hello.session)}`))
        }, timeoutMs)
        pending.set(key, { role: hello.role, ch, cert: link.peerCertificate, hello, operators, timer, partner: resolve })
      })
      return
    }
    clearTimeout(other.timer)
    pending.delete(key)
    other.partner()
    const mine: Pending = { role: hello.role, ch, cert: link.peerCertificate, hello, operators, timer: other.timer, partner: () => {} }
    const server = hello.role === 'server' ? mine : other
    const client = hello.role === 'client' ? mine : other
    const tag = label(hello.session)
    try {
      if (other.role === hello.role) throw new ProtocolError(`two ${hello.role}s joined session ${tag}`)
      if (bound && server.hello.session !== client.hello.session) throw new ProtocolError(`refused session ${tag}: the client's and the server's session ids do not come from one TLS session`)
      if (bound && client.hello.serverCert !== server.cert) throw new ProtocolError(`refused session ${tag}: the server did not present the certificate the client authenticated`)
      if (server.hello.fingerprint !== client.hello.fingerprint) throw new ProtocolError('client and server hold different schedules')
      if (server.hello.images !== client.hello.images) throw new ProtocolError('client and server disagree on the number of images')
      if (JSON.stringify(server.hello.spec) !== JSON.stringify(client.hello.spec)) throw new ProtocolError('client and server disagree on the offline material')
      const spec = server.hello.spec
      server.operators = operatorsFromBytes(await server.ch.recv('setup', 1, 'linear operators', { max: MAX_OPERATOR_BYTES }), spec.segments, (id) => spec.sources[id])
      await generate(server.hello.spec, server.operators!, server.hello.images, server.ch, client.ch, opts.leak)
      log(`dealer: session ${tag}: ${server.hello.images} image(s) served`)
    } catch (e) {
      server.ch.abort((e as Error).message)
      client.ch.abort((e as Error).message)
      throw e
    }
    server.ch.close()
    client.ch.close()
  }
  const srv = await listen(opts.port, opts.host ?? '127.0.0.1', onSocket, {
    insecurePlaintext: plaintext, identity, requestCert: true, handshakeTimeoutMs: timeoutMs, log: (m) => log(`dealer: ${m}`),
  })
  return {
    port: srv.port,
    fingerprint: identity?.fingerprint,
    close: () => {
      for (const p of pending.values()) clearTimeout(p.timer)
      return srv.close()
    },
  }
}

/** Produce and send each image's correlations when both parties ask for it (bounded memory). */
async function generate(spec: DealerSpec, operators: RingOperator[], images: number, server: Channel, client: Channel, leak?: Leak): Promise<void> {
  for (let img = 0; img < images; img++) {
    await Promise.all([client.recv('offline', img, `request for image ${img}`, 0), server.recv('offline', img, `request for image ${img}`, 0)])
    const seedC = leak?.zeroClientSeed ? Buffer.alloc(16) : freshSeed()
    const seedS = freshSeed()
    const cs = new ClientStreams(seedC)
    const ss = new ServerStreams(seedS)
    // made and sent one segment or step at a time: the dealer holds the sources' masks and one part
    function* parts(): Generator<Buffer> {
      yield seedC
      yield* dealSegments(spec, operators, cs, ss)
      for (const K of STEP_KINDS) for (const [k, entry] of spec[K.dealer.key].entries()) yield* K.dealer.deal(entry, k, cs, ss)
    }
    await client.sendParts('offline', img, materialBytes(spec), parts())
    server.send('offline', img, seedS)
  }
}
