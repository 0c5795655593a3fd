/**
 * Message framing over TCP for the two-party runtime and the dealer. Every frame is
 * [u8 kind][u8 phase][u16 tag][u32 length][payload]; receiving checks kind, phase and tag against
 * what the protocol expects, enforces a size limit and a timeout, and counts bytes per phase so the
 * runtime can report measured communication. Errors are one-line messages; the peer is told about a
 * local failure with an ERROR frame before the socket closes.
 */
import { connect as tcpConnect, createServer, type Server, type Socket } from 'node:net'
import { PicError } from '../../ir/errors.js'

export const HEADER_BYTES = 8
const KIND_DATA = 1
const KIND_ERROR = 2
/** Largest frame the runtime accepts (garbled tables of the fixtures are far below). */
export const MAX_FRAME = 1 << 30

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

interface Frame {
  kind: number
  phase: number
  tag: number
  payload: Buffer
}

/** One framed connection. */
export class Channel {
  readonly counters: Counters = { sent: zero(), received: zero(), onlineRounds: new Set() }
  /** Received bytes not yet framed; concatenated once per complete frame. */
  private chunks: Buffer[] = []
  private have = 0
  private readonly frames: Frame[] = []
  private waiter: ((f: Frame | Error) => void) | undefined
  private failure: Error | undefined
  private closed = false

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
    while (this.have >= HEADER_BYTES) {
      if (this.chunks[0].length < HEADER_BYTES) this.chunks = [Buffer.concat(this.chunks, this.have)]
      const head = this.chunks[0]
      const kind = head[0]
      const phase = head[1]
      const tag = head.readUInt16LE(2)
      const len = head.readUInt32LE(4)
      if ((kind !== KIND_DATA && kind !== KIND_ERROR) || phase >= PHASES.length || len > MAX_FRAME) {
        this.fail(new ProtocolError(`${this.peer} sent a malformed frame`), true)
        return
      }
      const total = HEADER_BYTES + len
      if (this.have < total) break
      const all = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks, this.have)
      const payload = all.subarray(HEADER_BYTES, total)
      const rest = all.subarray(total)
      this.chunks = rest.length ? [rest] : []
      this.have = rest.length
      this.counters.received[PHASES[phase]] += total
      const f = { kind, phase, tag, payload }
      if (kind === KIND_ERROR) {
        this.fail(new ProtocolError(`${this.peer} reported an error: ${payload.toString('utf8').slice(0, 300)}`))
        return
      }
      if (this.waiter) {
        const w = this.waiter
        this.waiter = undefined
        w(f)
      } else this.frames.push(f)
    }
  }

  private fail(e: Error, tellPeer = false): void {
    if (this.failure) return
    this.failure = e
    if (tellPeer && !this.closed && !this.socket.destroyed) {
      this.socket.end(errorFrame(e.message))
      setTimeout(() => this.socket.destroy(), 1000).unref()
    } else this.socket.destroy()
    if (this.waiter) {
      const w = this.waiter
      this.waiter = undefined
      w(e)
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

  /** The next frame, which must carry the given phase and tag; `what` names it in errors. */
  async recv(phase: Phase, tag: number, what: string): Promise<Buffer> {
    const f = await this.next(what)
    if (f.phase !== PHASES.indexOf(phase) || f.tag !== (tag & 0xffff)) {
      const e = new ProtocolError(`${this.peer} sent an unexpected message while waiting for ${what}`)
      this.fail(e, true)
      throw e
    }
    if (phase === 'online') this.counters.onlineRounds.add(tag)
    return f.payload
  }

  private next(what: string): Promise<Frame> {
    const f = this.frames.shift()
    if (f) return Promise.resolve(f)
    if (this.failure) return Promise.reject(this.failure)
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = undefined
        const e = new ProtocolError(`timed out after ${this.timeoutMs} ms waiting for ${what} from ${this.peer}`)
        this.fail(e, true)
        reject(e)
      }, this.timeoutMs)
      this.waiter = (x) => {
        clearTimeout(timer)
        if (x instanceof Error) reject(x)
        else resolve(x)
      }
    })
  }

  /** Check a payload's length; on a mismatch tell the peer and throw. */
  expect(buf: Buffer, bytes: number, what: string): Buffer {
    if (buf.length !== bytes) {
      const e = new ProtocolError(`${this.peer} sent a malformed ${what}: expected ${bytes} bytes, got ${buf.length}`)
      this.fail(e, true)
      throw e
    }
    return buf
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
function errorFrame(message: string): Buffer {
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

/** Connect with a timeout. */
export function connectChannel(ep: Endpoint, timeoutMs: number, name: string): Promise<Channel> {
  return new Promise((resolve, reject) => {
    const s = tcpConnect({ host: ep.host, port: ep.port })
    const timer = setTimeout(() => {
      s.destroy()
      reject(new ProtocolError(`timed out after ${timeoutMs} ms connecting to ${name} at ${ep.host}:${ep.port}`))
    }, timeoutMs)
    s.once('connect', () => {
      clearTimeout(timer)
      s.removeAllListeners('error')
      resolve(new Channel(s, `${name} at ${ep.host}:${ep.port}`, timeoutMs))
    })
    s.once('error', (e) => {
      clearTimeout(timer)
      reject(new ProtocolError(`cannot connect to ${name} at ${ep.host}:${ep.port}: ${e.message}`))
    })
  })
}

/** Listen on host:port (port 0 picks a free one); resolves once listening. */
export function listen(port: number, host: string, onSocket: (s: Socket) => void): Promise<Server> {
  return new Promise((resolve, reject) => {
    const srv = createServer(onSocket)
    srv.once('error', (e) => reject(new ProtocolError(`cannot listen on ${host}:${port}: ${e.message}`)))
    srv.listen(port, host, () => resolve(srv))
  })
}

/** A listening server whose every connection is one session (`pic serve` for schedules and CKKS plans). */
export interface SessionServer {
  port: number
  /** Each session's end: undefined when it finished, its error when it failed. */
  sessions: Promise<Error | undefined>[]
  /** Drop every connection and stop listening (then `cleanup`). */
  close(cleanup?: () => void): Promise<void>
}

/**
 * Listen; run `serve` on a Channel per connection, log how each session ended (`served N WHAT to
 * PEER`, or its error, after which the channel is aborted) and report it to `onEnd`.
 */
export async function serveSessions(
  port: number, host: string, timeoutMs: number, what: string, serve: (ch: Channel) => Promise<number>,
  opts: { log: (msg: string) => void; onEnd?: (e: Error | undefined) => void },
): Promise<SessionServer> {
  const sockets = new Set<Socket>()
  const sessions: Promise<Error | undefined>[] = []
  const srv = await listen(port, host, (sock) => {
    sockets.add(sock)
    sock.on('close', () => sockets.delete(sock))
    const ch = new Channel(sock, `client at ${sock.remoteAddress}:${sock.remotePort}`, timeoutMs)
    sessions.push(
      serve(ch).then(
        (n) => {
          opts.log(`served ${n} ${what} to ${ch.peer}`)
          opts.onEnd?.(undefined)
          return undefined
        },
        (e: Error) => {
          ch.abort(e.message)
          opts.log(`session with ${ch.peer} failed: ${e.message}`)
          opts.onEnd?.(e)
          return e
        },
      ),
    )
  })
  return {
    port: boundPort(srv),
    sessions,
    close: (cleanup) =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy()
        srv.close(() => {
          cleanup?.()
          resolve()
        })
      }),
  }
}

export function boundPort(srv: Server): number {
  const a = srv.address()
  if (a && typeof a === 'object') return a.port
  throw new ProtocolError('server has no TCP address')
}
