/**
 * The two parties' sessions. The server (`pic serve`) holds the model; the client (`pic query`)
 * holds the input and evaluates the garbled circuits. This file only sequences: setup (hello; with a
 * dealer the server's operators to it, without one offline.ts's session setup), then per image the
 * offline material (the dealer's, or made by the two parties in offline.ts), the offline exchange and
 * the online phase, dispatching every step to its kind (steps/*.ts, order in steps/kind.ts) and the
 * input, segment shares and outputs to steps/linear.ts. Every receive is checked for size and
 * bounded by a timeout.
 */
import type { Graph } from '../../ir/graph.js'
import type { Tensor } from '../../ir/tensor.js'
import { analyze } from './analyze.js'
import { latencyMs, round3 } from './cost.js'
import { dealerSpec, materialBytes, parseHello, type Hello } from './dealer.js'
import { operatorsToBytes, type RingOperator } from './linear.js'
import { Channel, connectLink, HELLO_BYTES, ProtocolError, serveSessions, type Endpoint, type Link } from './net.js'
import { ClientStreams, PROTOCOL, Reader, ServerStreams, type Leak } from './protocol.js'
import { freshSeed } from './ring.js'
import { DEALER_LINK_LABEL, exporterHex, generateIdentity, SESSION_LABEL, type Identity, type Trust } from './tls.js'
import { scheduleOf } from './schedule.js'
import { kindOf, sessionPlan, STEP_KINDS, type SessionPlan } from './steps/index.js'
import { clientImageOffline, clientSetup, serverImageOffline, serverSetup } from './offline.js'
import type { ClientImage, ServerImage } from './steps/kind.js'
import { clientInput, clientOutput, clientSegments, quantizeSegments, segmentsOf, serverInput, serverOutput, serverShare } from './steps/linear.js'
import type { MpcSchedule } from './types.js'

const DEFAULT_TIMEOUT = 30_000
/** The server's acceptance and session summary: a line of JSON. */
const SMALL_BYTES = 1024

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
  return { schedule, operators: quantizeSegments(an, schedule) }
}

export interface ServeOptions {
  port: number
  host?: string
  /** The trusted dealer of the offline phase; without one the two parties run it themselves (offline.ts). */
  dealer?: Endpoint
  timeoutMs?: number
  log?: (msg: string) => void
  /** Called when a session ends, with its error if it failed. */
  onSessionEnd?: (error: Error | undefined) => void
  /** TEST ONLY (protocol.ts `Leak`): never set by the CLI. */
  leak?: Leak
  /** The server's certificate (default: a fresh one, not stored; the CLI keeps one in its state directory). */
  identity?: Identity
  /** How the dealer's certificate is checked (tls.ts `Trust`; default: any, with a warning in `log`). */
  dealerTrust?: Trust
  /** Plain TCP on both links (debugging; the dealer must run the same way). */
  insecurePlaintext?: boolean
  /** Sessions served at once (default net.ts DEFAULT_MAX_SESSIONS); further connections are refused. */
  maxSessions?: number
  /** Without a dealer: bytes of kernel plaintexts kept across a session's images (default offline.ts KERNEL_BUDGET_BYTES, 1 GiB); the rest are encoded per image. */
  kernelBudgetBytes?: number
}

export interface ServerHandle {
  port: number
  /** SHA-256 of the server's certificate (undefined in plaintext). */
  fingerprint?: string
  /** Settles when a session ends: undefined on success, the error otherwise. */
  sessions: Promise<Error | undefined>[]
  close(): Promise<void>
}

/** Listen for clients; each connection is one session (several images). */
export async function startServer(model: ServerModel, opts: ServeOptions): Promise<ServerHandle> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT
  const log = opts.log ?? (() => {})
  const identity = opts.insecurePlaintext ? undefined : (opts.identity ?? (await generateIdentity('pic server')))
  const cx: SessionContext = { dealer: opts.dealer, kernelBudgetBytes: opts.kernelBudgetBytes, timeoutMs, leak: opts.leak, identity, dealerTrust: { log, ...opts.dealerTrust }, plaintext: opts.insecurePlaintext === true }
  const srv = await serveSessions(opts.port, opts.host ?? '127.0.0.1', timeoutMs, 'image(s)', (ch, link) => serveSession(model, ch, link, cx), {
    log,
    onEnd: opts.onSessionEnd,
    maxSessions: opts.maxSessions,
    security: { insecurePlaintext: opts.insecurePlaintext, identity },
  })
  return { port: srv.port, fingerprint: identity?.fingerprint, sessions: srv.sessions, close: () => srv.close() }
}

interface SessionContext {
  dealer: Endpoint | undefined
  kernelBudgetBytes: number | undefined
  timeoutMs: number
  leak: Leak | undefined
  identity: Identity | undefined
  dealerTrust: Trust
  plaintext: boolean
}

const HEX128 = /^[0-9a-f]{32}$/

/**
 * One client session. Over TLS the session is bound to this connection: the client's session id must
 * be this TLS connection's exporter (SESSION_LABEL), and the client names its own dealer link (its
 * exporter for DEALER_LINK_LABEL), which the server passes to the dealer over its own authenticated
 * link (it presents its certificate there): the dealer pairs this server only with that connection.
 */
async function serveSession(model: ServerModel, ch: Channel, link: Link, cx: SessionContext): Promise<number> {
  const s = model.schedule
  const hello = parseHello(await ch.recv('setup', 0, 'hello', { max: HELLO_BYTES }), ch.peer)
  if (hello.role !== 'client') throw new ProtocolError(`${ch.peer} is not a client`)
  if (hello.fingerprint !== s.fingerprint) throw new ProtocolError('client and server hold different schedules')
  const mode = cx.dealer ? 'dealer' : 'two-party'
  if ((hello.offline ?? 'dealer') !== mode)
    throw new ProtocolError(mode === 'dealer' ? 'this server takes its offline correlations from a dealer: query it with --dealer HOST:PORT' : 'this server runs the offline phase without a dealer: query it without --dealer')
  if (!cx.plaintext) {
    if (!link.tls || hello.session !== exporterHex(link.tls, SESSION_LABEL)) throw new ProtocolError(`${ch.peer} sent a session id that does not come from this TLS connection`)
    if (cx.dealer && (typeof hello.clientLink !== 'string' || !HEX128.test(hello.clientLink))) throw new ProtocolError(`${ch.peer} did not name its dealer link`)
  }
  const plan = sessionPlan(s)
  if (!cx.dealer) return serveTwoParty(model, plan, ch, hello.images, cx)
  const spec = dealerSpec(s, plan)
  const dealer = (await connectLink(cx.dealer, cx.timeoutMs, 'dealer', { insecurePlaintext: cx.plaintext, trust: cx.dealerTrust, identity: cx.identity })).ch
  const leak = cx.leak
  try {
    const mine: Hello = {
      protocol: PROTOCOL, role: 'server', session: hello.session, fingerprint: s.fingerprint, images: hello.images, spec,
      ...(cx.plaintext ? {} : { clientLink: hello.clientLink }),
    }
    dealer.send('setup', 0, Buffer.from(JSON.stringify(mine)))
    dealer.send('setup', 1, operatorsToBytes(model.operators))
    ch.send('setup', 1, Buffer.from(JSON.stringify({ ok: true })))
    for (let img = 0; img < hello.images; img++) {
      dealer.send('offline', img, Buffer.alloc(0))
      const seed = await dealer.recv('offline', img, 'dealer seed', 16)
      await serverImage(model, plan, ch, img, new ServerStreams(seed), leak)
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

/** A session without a dealer: the two-party offline phase (offline.ts) before each image. */
async function serveTwoParty(model: ServerModel, plan: SessionPlan, ch: Channel, images: number, cx: SessionContext): Promise<number> {
  const s = model.schedule
  try {
    ch.send('setup', 1, Buffer.from(JSON.stringify({ ok: true })))
    const segs = segmentsOf(s)
    const off = await serverSetup(ch, model.operators, (j) => `segment ${j} (into ${segs[j].node})`, cx.kernelBudgetBytes, cx.leak)
    try {
      for (let img = 0; img < images; img++) {
        const ss = new ServerStreams(freshSeed())
        await serverImageOffline(off, s, plan, ch, img, ss, cx.leak)
        await serverImage(model, plan, ch, img, ss, cx.leak)
      }
    } finally {
      for (const p of off.prepared) p?.delete()
      off.he.delete()
    }
    ch.send('setup', 2, Buffer.from(JSON.stringify({ dealerBytes: 0 })))
    return images
  } catch (e) {
    ch.abort((e as Error).message)
    throw e
  } finally {
    ch.close()
  }
}

/** One image on the server: the client's offline message, each step's offline frames, then online step by step. */
async function serverImage(model: ServerModel, plan: SessionPlan, ch: Channel, img: number, ss: ServerStreams, leak: Leak | undefined): Promise<void> {
  const s = model.schedule
  const masked: BigUint64Array[] = []
  const cx: ServerImage = { s, ch, img, ss, masked, share: (j) => serverShare(model.operators[j], masked, ss, j), tweak: img * 1024, leak }
  const steps = s.steps.map((st, k) => kindOf(st).server(cx, st, k, plan.layouts[k]))
  const msg = new Reader(await ch.recv('offline', img, 'offline message', steps.reduce((a, st) => a + st.bytes, 0)), 'offline message')
  for (const st of steps) st.read(msg)
  msg.end()
  for (const st of steps) await st.send?.()
  ch.send('offline', img, Buffer.alloc(0))

  masked[s.input.source] = await serverInput(cx)
  for (const [k, st] of steps.entries()) await st.online(cx.share(k), plan.tags.steps[k])
  serverOutput(cx, plan.tags.output)
}

export interface QueryOptions {
  server: Endpoint
  /** The trusted dealer; without one the offline phase runs between the two parties (offline.ts). */
  dealer?: Endpoint
  timeoutMs?: number
  /** How the server's and the dealer's certificates are checked (tls.ts `Trust`; default: any, with a warning in `log`). */
  serverTrust?: Trust
  dealerTrust?: Trust
  /** Plain TCP on both links (debugging; server and dealer must run the same way). */
  insecurePlaintext?: boolean
  log?: (msg: string) => void
  /** TEST ONLY (protocol.ts `Leak`, without a dealer: the client's own seed): never set by the CLI. */
  leak?: Leak
}

export interface QueryReport {
  images: number
  bytes: { online: number; offline: number; setup: number }
  rounds: number
  perImage: { bytes: { online: number; offline: number }; rounds: number }
  latencyMs: { total: number; perImage: number; onlinePerImage: number; offlinePerImage: number; setup: number }
  /** Where the offline correlations came from. */
  offline: 'dealer' | 'two-party'
  /** The schedule's prediction; offline bytes (and offlineLatencyMs, modelled) are those of the mode run (two-party: `twoParty`). */
  predicted: { bytes: { online: number; offline: number }; rounds: number; latencyMs: Record<string, number>; offlineLatencyMs?: Record<string, number> }
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
  const plaintext = opts.insecurePlaintext === true
  const log = opts.log ?? (() => {})
  const serverLink = await connectLink(opts.server, timeoutMs, 'server', { insecurePlaintext: plaintext, trust: { log, ...opts.serverTrust } })
  const server = serverLink.ch
  let dealer: Channel | undefined
  let twoParty: Awaited<ReturnType<typeof clientSetup>> | undefined
  try {
    const plan = sessionPlan(s)
    const dealerLink = opts.dealer ? await connectLink(opts.dealer, timeoutMs, 'dealer', { insecurePlaintext: plaintext, trust: { log, ...opts.dealerTrust } }) : undefined
    dealer = dealerLink?.ch
    // over TLS: the session id is the client-server connection's exporter, the server learns this
    // client's dealer link and the dealer the server certificate this client authenticated
    const base: Hello = {
      protocol: PROTOCOL, role: 'client', session: serverLink.tls ? exporterHex(serverLink.tls, SESSION_LABEL) : freshSeed().toString('hex'),
      fingerprint: s.fingerprint, images, spec: dealerSpec(s, plan), ...(dealer ? {} : { offline: 'two-party' as const }),
    }
    const toServer: Hello = dealerLink?.tls ? { ...base, clientLink: exporterHex(dealerLink.tls, DEALER_LINK_LABEL) } : base
    const toDealer: Hello = serverLink.peerCertificate ? { ...base, serverCert: serverLink.peerCertificate } : base
    server.send('setup', 0, Buffer.from(JSON.stringify(toServer)))
    dealer?.send('setup', 0, Buffer.from(JSON.stringify(toDealer)))
    await server.recv('setup', 1, 'session acceptance', { max: SMALL_BYTES })
    const t1 = performance.now()
    twoParty = dealer ? undefined : await clientSetup(server, s, timeoutMs)
    const setupMs = performance.now() - t1
    const outSize = s.outputs.reduce((a, o) => a + o.segment.size, 0)
    const out = new Float64Array(images * outSize)
    let online = 0
    let offline = 0
    let rounds = 0
    let onlineMs = 0
    let offlineMs = 0
    // progress: `image i/n`, the first after two seconds, then at most one a second; none for the last image
    let lastLine = performance.now() + 1000
    for (let img = 0; img < images; img++) {
      const before = snapshot(server, dealer)
      const x = input.data.subarray(img * per, (img + 1) * per)
      const t2 = performance.now()
      const material = twoParty ? await clientImageOffline(twoParty, s, plan, server, img, opts.leak) : await dealtMaterial(s, plan, dealer!, img)
      const r = await clientImage(s, plan, server, new Reader(material, twoParty ? 'offline material' : 'dealer material'), img, x)
      out.set(r.y, img * outSize)
      onlineMs += r.onlineMs
      offlineMs += performance.now() - t2 - r.onlineMs
      const after = snapshot(server, dealer)
      online += after.online - before.online
      offline += after.offline - before.offline
      rounds += server.counters.onlineRounds.size
      server.counters.onlineRounds.clear()
      if (img + 1 < images && performance.now() - lastLine >= 1000) {
        lastLine = performance.now()
        log(`image ${img + 1}/${images}`)
      }
    }
    const summary = await server.recv('setup', 2, 'session summary', { max: SMALL_BYTES })
    let stats: { dealerBytes?: unknown }
    try {
      stats = JSON.parse(summary.toString('utf8')) as { dealerBytes?: unknown }
    } catch {
      throw new ProtocolError('server sent a malformed session summary')
    }
    offline += typeof stats.dealerBytes === 'number' && Number.isFinite(stats.dealerBytes) ? stats.dealerBytes : 0
    const total = performance.now() - t0
    const setup = server.counters.sent.setup + server.counters.received.setup + (dealer?.counters.sent.setup ?? 0)
    const oShape = s.outputs.length === 1 ? [images, ...s.outputs[0].shape.slice(1)] : [images, outSize]
    return {
      output: { dtype: 'float32', shape: oShape, data: out },
      report: {
        images,
        bytes: { online, offline, setup },
        rounds,
        perImage: { bytes: { online: online / images, offline: offline / images }, rounds: rounds / images },
        latencyMs: { total: round3(total), perImage: round3(total / images), onlinePerImage: round3(onlineMs / images), offlinePerImage: round3(offlineMs / images), setup: round3(setupMs) },
        offline: dealer ? 'dealer' : 'two-party',
        predicted: {
          bytes: { online: s.bytes.online, offline: twoParty && s.twoParty && 'bytes' in s.twoParty ? s.twoParty.bytes.total : s.bytes.offline },
          rounds: s.rounds,
          latencyMs: latencyMs(s.bytes.online, s.rounds),
          ...(twoParty && s.twoParty && 'bytes' in s.twoParty ? { offlineLatencyMs: s.twoParty.latencyMs } : {}),
        },
        reluCount: s.reluCount,
        triples: s.triples,
      },
    }
  } catch (e) {
    server.abort((e as Error).message)
    dealer?.abort((e as Error).message)
    throw e
  } finally {
    twoParty?.he.delete()
    dealer?.close()
    server.close()
  }
}

function snapshot(server: Channel, dealer: Channel | undefined): { online: number; offline: number } {
  const c = server.counters
  return {
    online: c.sent.online + c.received.online,
    offline: c.sent.offline + c.received.offline + (dealer ? dealer.counters.received.offline + dealer.counters.sent.offline : 0),
  }
}

/** The dealer's material for one image. */
async function dealtMaterial(s: MpcSchedule, plan: SessionPlan, dealer: Channel, img: number): Promise<Buffer> {
  dealer.send('offline', img, Buffer.alloc(0))
  return dealer.recv('offline', img, 'dealer material', materialBytes(dealerSpec(s, plan)))
}

/** One image on the client: its offline material (the dealer's or the two-party phase's), the offline exchange, then online step by step. */
async function clientImage(s: MpcSchedule, plan: SessionPlan, server: Channel, material: Reader, img: number, x: Float64Array): Promise<{ y: Float64Array; onlineMs: number }> {
  const cs = new ClientStreams(Buffer.from(material.take(16)))
  const r = s.sources.map((src) => cs.r(src.id, src.size))
  const cx: ClientImage = { s, ch: server, img, cs, r, yc: clientSegments(material, s), tweak: img * 1024 }
  const steps = s.steps.map((st, k) => kindOf(st).client(cx, st, k, plan.layouts[k]))
  // the material holds the kinds' parts one kind after another, in STEP_KINDS order
  for (const K of STEP_KINDS) s.steps.forEach((st, k) => {
    if (st.kind === K.kind) steps[k].dealt(material)
  })
  material.end()
  server.send('offline', img, Buffer.concat(steps.flatMap((st) => st.offline())))
  for (const st of steps) await st.receive?.()
  await server.recv('offline', img, 'end of garbled circuits', 0)

  const t0 = performance.now()
  clientInput(cx, x)
  for (const [k, st] of steps.entries()) await st.online(plan.tags.steps[k])
  const y = await clientOutput(cx, plan.tags.output)
  return { y, onlineMs: performance.now() - t0 }
}
