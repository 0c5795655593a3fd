/**
 * Bounded resources against hostile peers (issue 12, item 5). Each victim runs as its own process
 * from the built CLI: `pic dealer`, `pic serve` with an mpc schedule (digits mlp_relu) and `pic serve
 * --plan` with a CKKS plan (digits cnn_square). Against each, the cases of the review: random bytes,
 * a header announcing 1 GiB, a stall (connect, send nothing), 24 frames of 16 MiB never read, 8
 * concurrent hellos, and for the dealer a request for 2^24 elements (a server's hello and operator
 * upload). Around every case the victim's peak RSS is reset (/proc/PID/clear_refs) and read back
 * (VmHWM): it may grow by at most 64 MB; a refused peer gets one ERROR line; afterwards every victim
 * still serves a real query. The same 16-MiB-frames case against a server with the bounds off
 * (PIC_TEST_UNBOUNDED_CHANNEL=1) grows past the bound, so the measurement can fail.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { connect as tcpConnect, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { connect as tlsConnect, type TLSSocket } from 'node:tls'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { encodeNpy, readNpy } from '../../../compiler/npy.js'
import { dealerSpec } from '../../../backends/mpc/dealer.js'
import { parseSchedule } from '../../../backends/mpc/index.js'
import { sessionPlan } from '../../../backends/mpc/steps/index.js'
import { exporterHex, generateIdentity, SESSION_LABEL, type Identity } from '../../../backends/mpc/tls.js'
import { digits, pic, picAsync, ROOT } from '../../helpers.js'

/** The links' security: TLS 1.3 (the default of every command); false runs everything in plaintext. */
const TLS = true
const SECURITY = TLS ? [] : ['--insecure-plaintext']

const MB = 1 << 20
const BOUND = 64 * MB
const TIMEOUT = 3000
const tmp = mkdtempSync(path.join(tmpdir(), 'pic-hostile-'))
const STATE = ['--state-dir', tmp]

// ---------------------------------------------------------------------------------------------
// victims: pic processes, their log and memory

interface Victim {
  name: string
  child: ChildProcess
  port: number
  /** Everything it wrote on stderr so far. */
  log: () => string
}

const children: ChildProcess[] = []
afterAll(() => {
  for (const c of children) if (c.exitCode === null) c.kill()
})

function start(name: string, args: string[], env: Record<string, string> = {}, timeout = TIMEOUT): Promise<Victim> {
  const child = spawn(process.execPath, [path.join(ROOT, 'bin/pic.js'), ...args, ...SECURITY, ...STATE, '--timeout', String(timeout)], {
    cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...env },
  })
  children.push(child)
  let err = ''
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} did not listen: ${err}`)), 120_000)
    child.stderr!.on('data', (d) => {
      err += d
      const m = /listening on [^\s]+:(\d+)/.exec(err)
      if (m && timer) {
        clearTimeout(timer)
        resolve({ name, child, port: Number(m[1]), log: () => err })
      }
    })
    child.on('exit', () => reject(new Error(`${name} exited: ${err}`)))
  })
}

function status(pid: number, key: 'VmRSS' | 'VmHWM'): number {
  const m = new RegExp(`${key}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  if (!m) throw new Error(`no ${key} for ${pid}`)
  return Number(m[1]) * 1024
}

/** Run a case; returns how far the victim's RSS peaked above its RSS at the start (bytes). */
async function growth(v: Victim, hostile: () => Promise<void>): Promise<number> {
  const pid = v.child.pid!
  writeFileSync(`/proc/${pid}/clear_refs`, '5')
  const before = status(pid, 'VmRSS')
  await hostile()
  const peak = status(pid, 'VmHWM')
  expect(v.child.exitCode).toBe(null)
  return peak - before
}

// ---------------------------------------------------------------------------------------------
// hostile peers

interface Peer {
  sock: Socket
  tls?: TLSSocket
  /** What the victim sent (up to 1 MiB). */
  got: () => Buffer
  closed: Promise<void>
}

/** Connect as the links do (TLS 1.3 without checking the victim's certificate, or plain TCP). */
function connect(port: number, identity?: Identity): Promise<Peer> {
  return new Promise((resolve, reject) => {
    const sock: Socket = TLS
      ? tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false, minVersion: 'TLSv1.3', ...(identity ? { cert: identity.cert, key: identity.key } : {}) })
      : tcpConnect({ host: '127.0.0.1', port })
    const chunks: Buffer[] = []
    let n = 0
    sock.on('data', (d: Buffer) => {
      if (n < MB) chunks.push(d)
      n += d.length
    })
    sock.on('error', () => {})
    const closed = new Promise<void>((done) => sock.on('close', () => done()))
    sock.once(TLS ? 'secureConnect' : 'connect', () => resolve({ sock, tls: TLS ? (sock as TLSSocket) : undefined, got: () => Buffer.concat(chunks), closed }))
    sock.once('error', reject)
  })
}

function header(len: number, kind = 1, phase = 0, tag = 0): Buffer {
  const h = Buffer.alloc(8)
  h[0] = kind
  h[1] = phase
  h.writeUInt16LE(tag, 2)
  h.writeUInt32LE(len, 4)
  return h
}

function frame(payload: Buffer, phase = 0, tag = 0): Buffer {
  return Buffer.concat([header(payload.length, 1, phase, tag), payload])
}

/** The reason of the first ERROR frame among what the victim sent. */
function errorOf(b: Buffer): string | undefined {
  for (let o = 0; o + 8 <= b.length; ) {
    const len = b.readUInt32LE(o + 4)
    if (b[o] === 2) return b.subarray(o + 8, o + 8 + len).toString('utf8')
    o += 8 + len
  }
  return undefined
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** Resolves when the peer is closed, or after `ms`. */
const closedOr = (p: Peer, ms: number) => Promise.race([p.closed, sleep(ms)])

/** A valid hello for the victim (an mpc client's, a CKKS client's or, to the dealer, an mpc server's). */
type HelloOf = (p: Peer) => Buffer

const PAYLOAD = Buffer.alloc(16 * MB, 7)
/** How long the 16-MiB-frames case offers its frames (longer for the unbounded variant, so that all of them pass). */
let framesWaitMs = 1500

/** The cases every victim faces; `hello` makes a session get past its first receive. */
function cases(hello: HelloOf, extra: Record<string, (port: number) => Promise<void>> = {}): Record<string, (port: number) => Promise<void>> {
  return {
    'random bytes': async (port) => {
      const p = await connect(port)
      p.sock.write(randomBytes(64 << 10))
      await closedOr(p, TIMEOUT + 2000)
      expect(p.sock.destroyed || p.sock.readableEnded).toBe(true)
      const e = errorOf(p.got())
      if (e !== undefined) expect(e).not.toMatch(/\n/)
      p.sock.destroy()
    },
    '1 GiB header': async (port) => {
      const p = await connect(port)
      p.sock.write(header(1 << 30))
      p.sock.write(PAYLOAD.subarray(0, MB))
      await closedOr(p, TIMEOUT + 2000)
      expect(errorOf(p.got())).toMatch(/^[^\n]*announced 1073741824 bytes for (the )?hello, expected at most 65536 bytes$/)
      p.sock.destroy()
    },
    stall: async (port) => {
      const p = await connect(port)
      const t0 = performance.now()
      await closedOr(p, TIMEOUT + 3000)
      expect(performance.now() - t0).toBeLessThan(TIMEOUT + 3000)
      expect(errorOf(p.got())).toMatch(/^timed out after \d+ ms waiting for hello/)
      p.sock.destroy()
    },
    // the victim pauses the socket: the writes stall until it closes (bounded) or all pass (unbounded)
    '24 unread frames of 16 MiB': async (port) => {
      const p = await connect(port)
      p.sock.write(frame(hello(p)))
      // the same buffer 24 times: the sender holds 16 MiB, the victim is offered 384 MiB
      let written = 0
      for (let i = 0; i < 24; i++) {
        p.sock.write(header(PAYLOAD.length, 1, 2, 0))
        p.sock.write(PAYLOAD, () => written++)
      }
      const t0 = performance.now()
      while (written < 24 && !p.sock.destroyed && performance.now() - t0 < framesWaitMs) await sleep(100)
      p.sock.destroy()
    },
    '8 concurrent hellos': async (port) => {
      const ps = await Promise.all(Array.from({ length: 8 }, () => connect(port)))
      for (const p of ps) p.sock.write(frame(hello(p)))
      await sleep(1000)
      for (const p of ps) p.sock.destroy()
    },
    ...extra,
  }
}

// ---------------------------------------------------------------------------------------------

const GROWTH: Record<string, Record<string, number>> = {}
let dealer: Victim
let mpc: Victim
let ckks: Victim
let sched: string
let plan: string
let xs: string
let mpcHello: HelloOf
let ckksHello: HelloOf
let spec: unknown
let identity: Identity

beforeAll(async () => {
  const model = digits('mlp_relu.onnx')
  sched = path.join(tmp, 'mlp.json')
  expect(pic('compile', model, '--backend', 'mpc', '-o', sched, '--quiet').code).toBe(0)
  plan = path.join(tmp, 'cnn.json')
  expect(pic('compile', digits('cnn_square.onnx'), '--backend', 'ckks', '-o', plan, '--quiet').code).toBe(0)
  const x = readNpy(digits('test_x.npy'))
  xs = path.join(tmp, 'x.npy')
  writeFileSync(xs, encodeNpy({ dtype: 'float32', shape: [1, 1, 8, 8], data: x.data.slice(0, 64) }))
  const s = parseSchedule(JSON.parse(readFileSync(sched, 'utf8')))
  spec = dealerSpec(s, sessionPlan(s))
  identity = await generateIdentity('hostile')
  const session = (p: Peer) => (p.tls ? exporterHex(p.tls, SESSION_LABEL) : randomBytes(16).toString('hex'))
  mpcHello = (p) => Buffer.from(JSON.stringify({ protocol: 'pic-mpc/1', role: 'client', session: session(p), clientLink: randomBytes(16).toString('hex'), fingerprint: s.fingerprint, images: 1, spec }))
  const part = JSON.parse(readFileSync(path.join(tmp, 'cnn.client.json'), 'utf8')) as { fingerprint: string }
  ckksHello = () => Buffer.from(JSON.stringify({ protocol: 'pic-ckks/1', fingerprint: part.fingerprint, inferences: 1 }))
  dealer = await start('dealer', ['dealer', '--port', '0'])
  ;[mpc, ckks] = await Promise.all([
    start('mpc server', ['serve', model, '--schedule', sched, '--port', '0', '--dealer', `127.0.0.1:${dealer.port}`]),
    start('ckks server', ['serve', digits('cnn_square.onnx'), '--plan', plan, '--port', '0']),
  ])
}, 300_000)

/** A server's hello to the dealer asking for `n` elements in one segment (the dealer pairs nothing). */
const bigServerHello = (n: number) =>
  Buffer.from(JSON.stringify({ protocol: 'pic-mpc/1', role: 'server', session: randomBytes(16).toString('hex'), clientLink: randomBytes(16).toString('hex'), fingerprint: 'x', images: 1, spec: { sources: [n], segments: [{ sources: [0], size: n }], poly: [], mul: [], ot: [] } }))

describe('hostile peers cost bounded memory', () => {
  it('every case costs each victim at most 64 MB of RSS, and each still serves a real query', async () => {
    const dealerCases = cases((p) => {
      // to the dealer, a client's hello: it waits (pending) for a partner that never comes
      const h = JSON.parse(mpcHello(p).toString('utf8')) as Record<string, unknown>
      delete h.clientLink
      return Buffer.from(JSON.stringify(h))
    }, {
      'a request for 2^24 elements': async (port) => {
        const p = await connect(port, identity)
        const n = 1 << 24
        p.sock.write(frame(bigServerHello(n)))
        // the operators of that spec: a bias of n elements and more, offered before any partner
        p.sock.write(header(8 * n + 4096, 1, 0, 1))
        for (let i = 0; i < 8; i++) p.sock.write(PAYLOAD)
        await sleep(1000)
        p.sock.destroy()
      },
    })
    const run = async (v: Victim, cs: Record<string, (port: number) => Promise<void>>) => {
      GROWTH[v.name] = {}
      for (const [name, c] of Object.entries(cs)) {
        GROWTH[v.name][name] = await growth(v, () => c(v.port))
        await sleep(300)
      }
    }
    // each victim's cases in turn, the three victims at once; the CKKS server is queried as soon as
    // its cases are done, the mpc server once the sessions that waited for the dealer timed out
    const ckksQuery = run(ckks, cases(ckksHello)).then(() =>
      picAsync('query', path.join(tmp, 'cnn.client.json'), '--connect', `127.0.0.1:${ckks.port}`, '--input', xs, '--json', ...SECURITY, ...STATE),
    )
    await Promise.all([run(dealer, dealerCases), run(mpc, cases(mpcHello))])
    await sleep(TIMEOUT + 500)
    const [m, c] = await Promise.all([
      picAsync('query', sched, '--connect', `127.0.0.1:${mpc.port}`, '--dealer', `127.0.0.1:${dealer.port}`, '--input', xs, '--json', ...SECURITY, ...STATE),
      ckksQuery,
    ])
    console.log('RSS growth (MB):', JSON.stringify(Object.fromEntries(Object.entries(GROWTH).map(([v, g]) => [v, Object.fromEntries(Object.entries(g).map(([c, b]) => [c, Math.round(b / MB)]))]))))
    for (const [v, g] of Object.entries(GROWTH)) for (const [c, b] of Object.entries(g)) expect(b, `${v}: ${c}`).toBeLessThanOrEqual(BOUND)

    // concurrent hellos beyond the cap were refused with one line; the victims logged single lines
    expect(mpc.log()).toMatch(/refused client at [^\n]*: 4 session\(s\) already running/)
    expect(mpc.log()).toMatch(/session with client at [^\n]* failed: [^\n]*announced 1073741824 bytes for hello/)
    expect(dealer.log()).toMatch(/dealer: [^\n]*announced 1073741824 bytes for hello/)
    // and real clients are served afterwards
    expect(m.code, m.stderr).toBe(0)
    expect(JSON.parse(m.stdout).images).toBe(1)
    expect(c.code, c.stderr).toBe(0)
    expect(JSON.parse(c.stdout).images).toBe(1)
  }, 180_000)

  it('without the bounds (PIC_TEST_UNBOUNDED_CHANNEL=1), 24 unread frames of 16 MiB grow the server past 64 MB', async () => {
    // long timeouts (its own dealer too), so that the session, waiting for the dealer, outlives the transfer
    const slowDealer = await start('patient dealer', ['dealer', '--port', '0'], {}, 20_000)
    const weak = await start('unbounded mpc server', ['serve', digits('mlp_relu.onnx'), '--schedule', sched, '--port', '0', '--dealer', `127.0.0.1:${slowDealer.port}`], { PIC_TEST_UNBOUNDED_CHANNEL: '1' }, 20_000)
    framesWaitMs = 15_000
    const g = await growth(weak, () => cases(mpcHello)['24 unread frames of 16 MiB'](weak.port))
    console.log(`unbounded server: RSS growth ${Math.round(g / MB)} MB`)
    expect(g, weak.log()).toBeGreaterThan(BOUND)
    weak.child.kill()
    slowDealer.child.kill()
  }, 120_000)
})
