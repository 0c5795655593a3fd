/**
 * Message framing over TLS 1.3 (or, with insecurePlaintext, plain TCP; tls.ts) for the two-party
 * runtime, the dealer and the CKKS service. Every frame is
 * [u8 kind][u8 phase][u16 tag][u32 length][payload]; receiving checks kind, phase and tag against
 * what the protocol expects, enforces a size limit and a timeout, and counts bytes per phase so the
 * runtime can report measured communication. Errors are one-line messages; the peer is told about a
 * local failure with an ERROR frame before the socket closes.
 */
import { connect as tcpConnect, createServer, isIP, type Server, type Socket } from 'node:net'
import { connect as tlsConnect, createServer as tlsCreateServer, TLSSocket } from 'node:tls'
import { PicError } from '../../ir/errors.js'
import { certFingerprint, checkPeer, TLS_VERSION, type Identity, type Trust } from './tls.js'

export const HEADER_BYTES = 8
const KIND_DATA = 1
const KIND_ERROR = 2

export type Phase = 'setup' | 'offline' | 'online'
const PHASES: Phase[] = ['setup', 'offline', 'online']

/** A failure of the two-party protocol or its transport (a PicError: printed as one line). */
export class ProtocolError extends PicError {}

export interface Counters {
  sent: Record<Phase, number>
  received: Record<Phase, number>
  /** Distinct online round tags seen in either direction. */
  onlineRounds: Set<number>
}

function zero(): Record<Phase, number> {
  return { setup: 0, offline: 0, online: 0 }
}

/**
 * How much a receive accepts: a number is the exact payload size, `{ max }` an upper bound (for
 * messages whose size the protocol cannot know ahead, e.g. compressed ciphertexts).
 */
export type Size = number | { max: number }

/** Largest payload a `{ max }` receive may announce (1 GiB), whatever it asks for. */
export const MAX_FRAME = 1 << 30
/**
 * Most bytes of frames a Channel buffers before the protocol has posted their receive: a frame that
 * arrives early is accepted while it fits, otherwise the socket is paused at its header until a
 * receive claims it (and checks the header against its size before any payload is read).
 */
export const AHEAD_BYTES = 1 << 20
/** A hello (the first receive of every session): a few KB of JSON. */
export const HELLO_BYTES = 1 << 16
/** ERROR frames carry a one-line reason. */
const MAX_ERROR_BYTES = 1024

/**
 * TEST ONLY (test/backends/mpc/hostile.test.ts): PIC_TEST_UNBOUNDED_CHANNEL=1 turns the receive
 * bounds off (any frame up to MAX_FRAME is buffered, unread frames queue without limit, sessions are
 * not capped), so that the test can show its memory bounds fail without them.
 */
export const UNBOUNDED = process.env.PIC_TEST_UNBOUNDED_CHANNEL === '1'

interface Frame {
  kind: number
  phase: number
  tag: number
  payload: Buffer
}

interface Waiter {
  what: string
  size: Size
  done: (f: Frame | Error) => void
}

function sizeText(size: Size): string {
  return typeof size === 'number' ? `${size} bytes` : `at most ${size.max} bytes`
}

/**
 * One framed connection. Memory per channel is bounded: AHEAD_BYTES of frames no receive has
 * claimed yet, plus the payload of the frame the posted receive claimed (at most its Size), plus one
 * socket read; beyond that the socket is paused (TCP backpressure) until the protocol reads.
 */
export class Channel {
  readonly counters: Counters = { sent: zero(), received: zero(), onlineRounds: new Set() }
  /** Received bytes not yet framed; concatenated once per complete frame. */
  private chunks: Buffer[] = []
  private have = 0
  private frames: Frame[] = []
  /** Bytes (headers included) of the frames in `frames`. */
  private queued = 0
  private waiter: Waiter | undefined
  private failure: Error | undefined
  private closed = false
  private paused = false

  constructor(
    private readonly socket: Socket,
    readonly peer: string,
    private readonly timeoutMs: number,
  ) {
    socket.setNoDelay(true)
    socket.on('data', (d: Buffer) => this.onData(d))
    socket.on('error', (e) => this.fail(new ProtocolError(`connection to ${peer} failed: ${e.message}`)))
    socket.on('close', () => this.fail(new ProtocolError(`${peer} closed the connection`)))
  }

  private onData(d: Buffer): void {
    if (this.failure) return
    this.chunks.push(d)
    this.have += d.length
    this.pump()
  }

  /**
   * Whether a frame whose header announces `len` bytes may be buffered now: 'ok', 'wait' (no receive
   * claims it and it does not fit in AHEAD_BYTES: pause until one does) or why it is refused.
   */
  private admit(kind: number, len: number): 'ok' | 'wait' | string {
    if (kind === KIND_ERROR) return len <= MAX_ERROR_BYTES ? 'ok' : `${this.peer} sent an oversized error frame (${len} bytes)`
    if (len > MAX_FRAME) return `${this.peer} announced a frame of ${len} bytes (at most ${MAX_FRAME})`
    if (UNBOUNDED) return 'ok'
    const w = this.waiter
    if (w) {
      const fits = typeof w.size === 'number' ? len === w.size : len <= w.size.max
      return fits ? 'ok' : `${this.peer} announced ${len} bytes for ${w.what}, expected ${sizeText(w.size)}`
    }
    return this.queued + HEADER_BYTES + len <= AHEAD_BYTES ? 'ok' : 'wait'
  }

  /** Cut complete frames out of the buffered bytes; pause the socket at a frame that must wait. */
  private pump(): void {
    let wait = false
    while (!this.failure && this.have >= HEADER_BYTES) {
      if (this.chunks[0].length < HEADER_BYTES) this.chunks = [Buffer.concat(this.chunks, this.have)]
      const head = this.chunks[0]
      const kind = head[0]
      const phase = head[1]
      const tag = head.readUInt16LE(2)
      const len = head.readUInt32LE(4)
      if ((kind !== KIND_DATA && kind !== KIND_ERROR) || phase >= PHASES.length) {
        this.fail(new ProtocolError(`${this.peer} sent a malformed frame`), true)
        return
      }
      const ok = this.admit(kind, len)
      if (ok === 'wait') {
        wait = true
        break
      }
      if (ok !== 'ok') {
        this.fail(new ProtocolError(ok), true)
        return
      }
      const total = HEADER_BYTES + len
      if (this.have < total) break
      const all = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks, this.have)
      const payload = all.subarray(HEADER_BYTES, total)
      // copy the start of the next frame so that it does not keep this one's buffer alive
      const rest = Buffer.from(all.subarray(total))
      this.chunks = rest.length ? [rest] : []
      this.have = rest.length
      this.counters.received[PHASES[phase]] += total
      if (kind === KIND_ERROR) {
        this.fail(new ProtocolError(`${this.peer} reported an error: ${payload.toString('utf8').slice(0, 300)}`))
        return
      }
      const f = { kind, phase, tag, payload }
      const w = this.waiter
      if (w) {
        this.waiter = undefined
        w.done(f)
      } else {
        this.frames.push(f)
        this.queued += total
      }
    }
    if (this.failure) return
    if (wait && !this.paused) this.socket.pause()
    else if (!wait && this.paused) this.socket.resume()
    this.paused = wait
  }

  private fail(e: Error, tellPeer = false): void {
    if (this.failure) return
    this.failure = e
    this.chunks = []
    this.have = 0
    this.frames = []
    this.queued = 0
    // read nothing more: what the peer still sends stays in the kernel until the socket closes
    this.socket.pause()
    if (tellPeer && !this.closed && !this.socket.destroyed) {
      this.socket.end(errorFrame(e.message))
      setTimeout(() => this.socket.destroy(), 1000).unref()
    } else this.socket.destroy()
    if (this.waiter) {
      const w = this.waiter
      this.waiter = undefined
      w.done(e)
    }
  }

  send(phase: Phase, tag: number, payload: Buffer): void {
    if (this.failure) throw this.failure
    const h = Buffer.alloc(HEADER_BYTES)
    h[0] = KIND_DATA
    h[1] = PHASES.indexOf(phase)
    h.writeUInt16LE(tag & 0xffff, 2)
    h.writeUInt32LE(payload.length, 4)
    this.socket.write(h)
    this.socket.write(payload)
    this.counters.sent[phase] += HEADER_BYTES + payload.length
    if (phase === 'online') this.counters.onlineRounds.add(tag)
  }

  /**
   * Send one frame of `bytes` whose payload is made part by part: each part is written as it is made
   * and the socket drained before the next, so the sender holds about one part, not the frame.
   */
  async sendParts(phase: Phase, tag: number, bytes: number, parts: Iterable<Buffer>): Promise<void> {
    if (this.failure) throw this.failure
    const h = Buffer.alloc(HEADER_BYTES)
    h[0] = KIND_DATA
    h[1] = PHASES.indexOf(phase)
    h.writeUInt16LE(tag & 0xffff, 2)
    h.writeUInt32LE(bytes, 4)
    this.socket.write(h)
    let n = 0
    for (const p of parts) {
      if (this.failure) throw this.failure
      n += p.length
      if (n > bytes) break
      this.socket.write(p)
      await this.drained()
    }
    if (n !== bytes) {
      const e = new ProtocolError(`internal error: a frame announced as ${bytes} bytes had ${n}`)
      this.fail(e)
      throw e
    }
    this.counters.sent[phase] += HEADER_BYTES + bytes
  }

  /**
   * Resolves once the socket has passed on what was written (at once when its buffer is below the
   * high-water mark), so a sender of many large frames holds about one frame, not all of them.
   */
  drained(): Promise<void> {
    if (this.failure) return Promise.reject(this.failure)
    if (!this.socket.writableNeedDrain) return Promise.resolve()
    return new Promise((resolve, reject) => {
      const done = () => {
        this.socket.off('drain', done)
        this.socket.off('close', done)
        if (this.failure) reject(this.failure)
        else resolve()
      }
      this.socket.on('drain', done)
      this.socket.on('close', done)
    })
  }

  /**
   * The next frame, which must carry the given phase and tag and a payload of `size` (exact, or
   * `{ max }`); `what` names it in errors. A frame whose header announces another size is refused
   * before its payload is read (the peer is told, and the receive throws).
   */
  async recv(phase: Phase, tag: number, what: string, size: Size, timeoutMs = this.timeoutMs): Promise<Buffer> {
    const f = await this.next(what, size, timeoutMs)
    if (f.phase !== PHASES.indexOf(phase) || f.tag !== (tag & 0xffff)) {
      const e = new ProtocolError(`${this.peer} sent an unexpected message while waiting for ${what}`)
      this.fail(e, true)
      throw e
    }
    const n = f.payload.length
    if (typeof size === 'number' ? n !== size : n > size.max) {
      const e = new ProtocolError(`${this.peer} sent ${n} bytes for ${what}, expected ${sizeText(size)}`)
      this.fail(e, true)
      throw e
    }
    if (phase === 'online') this.counters.onlineRounds.add(tag)
    return f.payload
  }

  private next(what: string, size: Size, timeoutMs: number): Promise<Frame> {
    const f = this.frames.shift()
    if (f) {
      this.queued -= HEADER_BYTES + f.payload.length
      this.pump()
      return Promise.resolve(f)
    }
    if (this.failure) return Promise.reject(this.failure)
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = undefined
        const e = new ProtocolError(`timed out after ${timeoutMs} ms waiting for ${what} from ${this.peer}`)
        this.fail(e, true)
        reject(e)
      }, timeoutMs)
      this.waiter = {
        what,
        size,
        done: (x) => {
          clearTimeout(timer)
          if (x instanceof Error) reject(x)
          else resolve(x)
        },
      }
      // a frame paused at its header, or already partly buffered, is checked against this receive now
      this.pump()
    })
  }

  /** Abort with a reason the peer will see. */
  abort(message: string): void {
    this.fail(new ProtocolError(message), true)
  }

  close(): void {
    this.closed = true
    if (!this.failure) this.failure = new ProtocolError('channel closed')
    this.socket.end()
  }
}

/** An ERROR frame carrying a one-line reason. */
export function errorFrame(message: string): Buffer {
  const p = Buffer.from(message.slice(0, 300), 'utf8')
  const h = Buffer.alloc(HEADER_BYTES)
  h[0] = KIND_ERROR
  h.writeUInt32LE(p.length, 4)
  return Buffer.concat([h, p])
}

export interface Endpoint {
  host: string
  port: number
}

/** Parse HOST:PORT; loopback and named hosts are accepted, the port must be 1..65535. */
export function parseEndpoint(s: string): Endpoint {
  const i = s.lastIndexOf(':')
  const host = i > 0 ? s.slice(0, i) : '127.0.0.1'
  const port = Number(i >= 0 ? s.slice(i + 1) : s)
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new ProtocolError(`invalid address '${s}' (expected HOST:PORT)`)
  return { host, port }
}

/**
 * How a connecting party secures its link: TLS 1.3 (the peer's certificate checked by `trust`,
 * tls.ts) unless `insecurePlaintext`; `identity` is presented as a client certificate if given
 * (the server presents its own to the dealer).
 */
export interface ConnectSecurity {
  insecurePlaintext?: boolean
  trust?: Trust
  identity?: Identity
}

/** A connected channel and what its TLS connection proves (nothing in plaintext). */
export interface Link {
  ch: Channel
  /** The TLS socket, for exporters (tls.ts `exporterHex`); undefined in plaintext. */
  tls?: TLSSocket
  /** SHA-256 of the certificate the peer presented (verified by the handshake), if any. */
  peerCertificate?: string
}

/** The reason of a TLS or socket error, one line (OpenSSL's reason when there is one). */
function reasonOf(e: Error): string {
  const r = (e as { reason?: unknown }).reason
  return typeof r === 'string' ? r : e.message
}

/** Connect with a timeout: TLS 1.3 with the peer's certificate checked before anything is sent, or plain TCP. */
export function connectLink(ep: Endpoint, timeoutMs: number, name: string, sec: ConnectSecurity = {}): Promise<Link> {
  const where = `${ep.host}:${ep.port}`
  return new Promise((resolve, reject) => {
    const s: Socket = sec.insecurePlaintext
      ? tcpConnect({ host: ep.host, port: ep.port })
      : tlsConnect({
          host: ep.host,
          port: ep.port,
          ...(isIP(ep.host) ? {} : { servername: ep.host }),
          minVersion: TLS_VERSION,
          maxVersion: TLS_VERSION,
          // the certificate is checked below against a pin or known hosts, not against a CA
          rejectUnauthorized: false,
          ...(sec.identity ? { cert: sec.identity.cert, key: sec.identity.key } : {}),
        })
    let settled = false
    const fail = (e: Error) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      s.destroy()
      reject(e)
    }
    const timer = setTimeout(() => fail(new ProtocolError(`timed out after ${timeoutMs} ms connecting to ${name} at ${where}`)), timeoutMs)
    const done = (link: Omit<Link, 'ch'>) => {
      settled = true
      clearTimeout(timer)
      s.removeAllListeners('error')
      resolve({ ch: new Channel(s, `${name} at ${where}`, timeoutMs), ...link })
    }
    s.on('error', (e) => {
      const hint = (e as { code?: string }).code === 'ERR_SSL_WRONG_VERSION_NUMBER' ? ' (it does not speak TLS: run with --insecure-plaintext?)' : ''
      fail(new ProtocolError(`cannot connect to ${name} at ${where}: ${reasonOf(e)}${hint}`))
    })
    if (sec.insecurePlaintext) {
      s.once('connect', () => !settled && done({}))
      return
    }
    const t = s as TLSSocket
    t.once('secureConnect', () => {
      if (settled) return
      if (t.getProtocol() !== TLS_VERSION) return fail(new ProtocolError(`${name} at ${where} negotiated ${t.getProtocol()}, not ${TLS_VERSION}`))
      const cert = t.getPeerCertificate()
      if (!cert?.raw) return fail(new ProtocolError(`${name} at ${where} presented no certificate`))
      const fp = certFingerprint(cert.raw)
      try {
        checkPeer(fp, name, where, sec.trust ?? {})
      } catch (e) {
        return fail(e as Error)
      }
      done({ tls: t, peerCertificate: fp })
    })
  })
}

/** Connect with a timeout (connectLink's channel). */
export async function connectChannel(ep: Endpoint, timeoutMs: number, name: string, sec: ConnectSecurity = {}): Promise<Channel> {
  return (await connectLink(ep, timeoutMs, name, sec)).ch
}

/**
 * How a listening party secures its links: TLS 1.3 with `identity` unless `insecurePlaintext`;
 * `requestCert` asks peers for a certificate (the dealer, of the server). A failed handshake (a plain
 * TCP client, a stall past the handshake timeout, an older TLS) is one `log` line and a closed socket.
 */
export interface ListenSecurity {
  insecurePlaintext?: boolean
  identity?: Identity
  requestCert?: boolean
  handshakeTimeoutMs?: number
  log?: (msg: string) => void
}

/** A listening socket; `close` drops every connection (established or still in its handshake). */
export interface Listener {
  port: number
  close(): Promise<void>
}

/** Listen on host:port (port 0 picks a free one); `onSocket` gets each connection once it is secured. */
export function listen(port: number, host: string, onSocket: (s: Socket) => void, sec: ListenSecurity): Promise<Listener> {
  return new Promise((resolve, reject) => {
    // every accepted connection (raw: also those still in their handshake) and every secured one
    const raw = new Set<Socket>()
    const secured = new Set<Socket>()
    const accept = (s: Socket) => {
      secured.add(s)
      s.on('close', () => secured.delete(s))
      onSocket(s)
    }
    let srv: Server
    if (sec.insecurePlaintext) srv = createServer(accept)
    else {
      if (!sec.identity) throw new ProtocolError('a TLS listener needs an identity')
      const tsrv = tlsCreateServer(
        {
          cert: sec.identity.cert,
          key: sec.identity.key,
          minVersion: TLS_VERSION,
          maxVersion: TLS_VERSION,
          requestCert: sec.requestCert ?? false,
          // a client certificate is optional and checked by the caller (dealer.ts), not against a CA
          rejectUnauthorized: false,
          handshakeTimeout: sec.handshakeTimeoutMs ?? 30_000,
        },
        accept,
      )
      tsrv.on('tlsClientError', (e, sock) => {
        sec.log?.(`refused a connection from ${sock.remoteAddress ?? '?'}:${sock.remotePort ?? '?'}: TLS handshake failed (${reasonOf(e)})`)
        sock.destroy()
      })
      srv = tsrv
    }
    srv.on('connection', (s: Socket) => {
      raw.add(s)
      s.on('close', () => raw.delete(s))
    })
    srv.once('error', (e) => reject(new ProtocolError(`cannot listen on ${host}:${port}: ${e.message}`)))
    srv.listen(port, host, () =>
      resolve({
        port: boundPort(srv),
        // a connection already ending (a finished session) gets up to a second to flush what it
        // wrote (through TLS, which a destroy of its TCP socket would cut); every other one is dropped
        close: async () => {
          const closed = new Promise<void>((done) => srv.close(() => done()))
          const ending = [...secured].filter((s) => s.writableEnded && !s.destroyed)
          for (const s of secured) if (!ending.includes(s)) s.destroy()
          await Promise.race([
            Promise.all(ending.map((s) => new Promise((r) => s.once('close', r)))),
            new Promise((r) => setTimeout(r, 1000).unref()),
          ])
          for (const s of [...secured, ...raw]) s.destroy()
          await closed
        },
      }),
    )
  })
}

/** What a TLS socket tells of its link (nothing for plain TCP). */
export function linkOf(sock: Socket): Omit<Link, 'ch'> {
  if (!(sock instanceof TLSSocket)) return {}
  const cert = sock.getPeerCertificate()
  return { tls: sock, ...(cert?.raw ? { peerCertificate: certFingerprint(cert.raw) } : {}) }
}

/** Sessions a server runs at once unless told otherwise (`pic serve --max-sessions`). */
export const DEFAULT_MAX_SESSIONS = 4

/** A listening server whose every connection is one session (`pic serve` for schedules and CKKS plans). */
export interface SessionServer {
  port: number
  /** Each session's end: undefined when it finished, its error when it failed. */
  sessions: Promise<Error | undefined>[]
  /** Drop every connection and stop listening (then `cleanup`). */
  close(cleanup?: () => void): Promise<void>
}

/**
 * Listen; run `serve` on a Channel per secured connection, log how each session ended (`served N
 * WHAT to PEER`, or its error, after which the channel is aborted) and report it to `onEnd`.
 */
export async function serveSessions(
  port: number, host: string, timeoutMs: number, what: string, serve: (ch: Channel, link: Link) => Promise<number>,
  opts: { log: (msg: string) => void; onEnd?: (e: Error | undefined) => void; security: ListenSecurity; maxSessions?: number },
): Promise<SessionServer> {
  const sessions: Promise<Error | undefined>[] = []
  // at most maxSessions sessions at once; a connection beyond gets an ERROR frame and is closed
  const maxSessions = UNBOUNDED ? Infinity : (opts.maxSessions ?? DEFAULT_MAX_SESSIONS)
  let active = 0
  const srv = await listen(port, host, (sock) => {
    const peer = `client at ${sock.remoteAddress}:${sock.remotePort}`
    if (active >= maxSessions) {
      opts.log(`refused ${peer}: ${maxSessions} session(s) already running`)
      sock.end(errorFrame(`the server is busy (${maxSessions} sessions running); try again later`))
      setTimeout(() => sock.destroy(), 1000).unref()
      return
    }
    active++
    const ch = new Channel(sock, peer, timeoutMs)
    sessions.push(
      serve(ch, { ch, ...linkOf(sock) }).then(
        (n) => {
          active--
          opts.log(`served ${n} ${what} to ${ch.peer}`)
          opts.onEnd?.(undefined)
          return undefined
        },
        (e: Error) => {
          active--
          ch.abort(e.message)
          opts.log(`session with ${ch.peer} failed: ${e.message}`)
          opts.onEnd?.(e)
          return e
        },
      ),
    )
  }, { handshakeTimeoutMs: timeoutMs, log: opts.log, ...opts.security })
  return {
    port: srv.port,
    sessions,
    close: (cleanup) => srv.close().then(() => cleanup?.()),
  }
}

export function boundPort(srv: Server): number {
  const a = srv.address()
  if (a && typeof a === 'object') return a.port
  throw new ProtocolError('server has no TCP address')
}
