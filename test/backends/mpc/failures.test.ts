/**
 * Misbehaving peers: garbage, stalls and disconnects end in a clean one-line error on the other side
 * within the timeout, never a hang; mismatched schedules and unreachable parties are refused.
 * The framing is tested here over plain TCP (insecurePlaintext: the fake peers speak raw frames);
 * the same cases over TLS are in tls.test.ts.
 */
import { connect, createServer, type Server, type Socket } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { lowerMpc, runDealer, runQuery, runServe, type DealerHandle, type MpcSchedule } from '../../../backends/mpc/index.js'
import { ProtocolError } from '../../../backends/mpc/net.js'
import { Reader } from '../../../backends/mpc/protocol.js'
import { ringFromBytes } from '../../../backends/mpc/ring.js'
import { operatorsFromBytes } from '../../../backends/mpc/linear.js'
import type { Graph } from '../../../ir/graph.js'
import { compiled, images, parties } from './helpers.js'

const T = 600

function fakePeer(onSocket: (s: Socket) => void): Promise<{ port: number; srv: Server; sockets: Socket[] }> {
  const sockets: Socket[] = []
  return new Promise((resolve) => {
    const srv = createServer((s) => {
      sockets.push(s)
      s.on('error', () => {})
      onSocket(s)
    })
    srv.listen(0, '127.0.0.1', () => resolve({ port: (srv.address() as { port: number }).port, srv, sockets }))
  })
}

async function stop(f: { srv: Server; sockets: Socket[] }): Promise<void> {
  for (const s of f.sockets) s.destroy()
  await new Promise((r) => f.srv.close(() => r(undefined)))
}

/** Forward to `port`, but cut both connections after `limit` bytes from the server. */
function cuttingProxy(port: number, limit: number) {
  return fakePeer((c) => {
    const t = connect(port, '127.0.0.1')
    t.on('error', () => {})
    let seen = 0
    c.on('data', (d) => t.write(d))
    t.on('data', (d) => {
      seen += d.length
      if (seen > limit) {
        c.destroy()
        t.destroy()
      } else c.write(d)
    })
    c.on('close', () => t.destroy())
  })
}

describe('misbehaving peers', () => {
  let g: Graph
  let s: MpcSchedule
  let dealer: DealerHandle
  const { x } = images(1)
  beforeAll(async () => {
    g = compiled('mlp_relu')
    s = lowerMpc(g)
    dealer = await runDealer({ port: 0, timeoutMs: T, insecurePlaintext: true })
  })
  afterAll(async () => {
    await dealer.close()
  })
  const ask = (port: number, timeoutMs = T, dealerPort = dealer.port) =>
    runQuery(s, x, { connect: `127.0.0.1:${port}`, dealer: `127.0.0.1:${dealerPort}`, timeoutMs, insecurePlaintext: true })

  it('a server that stalls: the client times out', async () => {
    const f = await fakePeer(() => {})
    try {
      await expect(ask(f.port)).rejects.toThrow(`timed out after ${T} ms waiting for session acceptance from server at 127.0.0.1:${f.port}`)
    } finally {
      await stop(f)
    }
  })

  it('a server that sends garbage: the client reports a malformed frame, and tells the server', async () => {
    let back = ''
    const f = await fakePeer((sock) => {
      sock.once('data', () => {
        sock.on('data', (d) => (back += d.toString('latin1')))
        sock.write(Buffer.alloc(64, 0xff))
      })
    })
    try {
      await expect(ask(f.port)).rejects.toThrow(/server at 127\.0\.0\.1:\d+ sent a malformed frame/)
      await new Promise((r) => setTimeout(r, 100))
      expect(back).toMatch(/sent a malformed frame/)
    } finally {
      await stop(f)
    }
  })

  it('a server that disconnects: the client reports the closed connection', async () => {
    const f = await fakePeer((sock) => sock.once('data', () => sock.destroy()))
    try {
      await expect(ask(f.port)).rejects.toThrow(/server at 127\.0\.0\.1:\d+ closed the connection/)
    } finally {
      await stop(f)
    }
  })

  it('a client that sends garbage, stalls or disconnects: the server session fails cleanly', async () => {
    const p = await parties(g, s, T, { insecurePlaintext: true })
    try {
      const garbage = connect(p.server.port, '127.0.0.1')
      garbage.on('error', () => {})
      garbage.write(Buffer.from('GET / HTTP/1.1\r\n\r\n'))
      const stall = connect(p.server.port, '127.0.0.1')
      stall.on('error', () => {})
      const quit = connect(p.server.port, '127.0.0.1')
      quit.on('error', () => {})
      quit.on('connect', () => quit.destroy())
      await new Promise((r) => setTimeout(r, 100))
      expect(p.server.sessions.length).toBe(3)
      const errors = (await Promise.all(p.server.sessions)).map((e) => e?.message ?? 'ok')
      expect(errors.some((m) => /sent a malformed frame/.test(m))).toBe(true)
      expect(errors.some((m) => new RegExp(`timed out after ${T} ms waiting for hello`).test(m))).toBe(true)
      expect(errors.some((m) => /closed the connection/.test(m))).toBe(true)
      garbage.destroy()
      stall.destroy()
      const ok = await ask(p.server.port, 10_000, p.dealer.port)
      expect(ok.report.images).toBe(1)
    } finally {
      await p.close()
    }
  })

  it('a connection cut in the middle of the protocol: both sides fail cleanly', async () => {
    const p = await parties(g, s, T, { insecurePlaintext: true })
    const cut = await cuttingProxy(p.server.port, 20_000)
    try {
      await expect(ask(cut.port, T, p.dealer.port)).rejects.toThrow(/closed the connection/)
      const [err] = await Promise.all(p.server.sessions)
      expect(err?.message).toMatch(/^connection to client at .* failed: |closed the connection/)
    } finally {
      await stop(cut)
      await p.close()
    }
  })

  it('the dealer refuses a malformed offline specification and a session whose partner never comes', async () => {
    const frame = (obj: unknown) => {
      const p = Buffer.from(JSON.stringify(obj))
      const h = Buffer.alloc(8)
      h[0] = 1
      h.writeUInt32LE(p.length, 4)
      return Buffer.concat([h, p])
    }
    const reply = (hello: unknown) =>
      new Promise<string>((resolve) => {
        const c = connect(dealer.port, '127.0.0.1')
        let got = ''
        c.on('error', () => {})
        c.on('data', (d) => (got += d.subarray(8).toString('utf8')))
        c.on('close', () => resolve(got))
        c.write(frame(hello))
      })
    const base = { protocol: 'pic-mpc/1', role: 'client', session: 'ab'.repeat(16), fingerprint: 'f', images: 1 }
    expect(await reply({ ...base, spec: { sources: [2 ** 40], segments: [], poly: [], mul: [], ot: [] } })).toMatch(/sent a malformed offline specification/)
    expect(await reply({ ...base, session: 'cd'.repeat(16), spec: { sources: [4], segments: [], poly: [], mul: [], ot: [] } })).toMatch(
      new RegExp(`timed out after ${T} ms waiting for the other party of session [0-9a-f]{8}`),
    )
  })

  it('an unreachable dealer or server is reported', async () => {
    const f = await fakePeer(() => {})
    const port = f.port
    await stop(f)
    await expect(runQuery(s, x, { connect: `127.0.0.1:${port}`, dealer: `127.0.0.1:${dealer.port}`, timeoutMs: T, insecurePlaintext: true })).rejects.toThrow(/cannot connect to server at 127\.0\.0\.1:\d+/)
  })

  it('a schedule compiled from another model is refused by the server', async () => {
    await expect(runServe(compiled('cnn_square'), s, { port: 0, dealer: `127.0.0.1:${dealer.port}`, insecurePlaintext: true })).rejects.toThrow(/schedule was not compiled from this model/)
  })
})

describe('bytes from a peer that do not parse', () => {
  it('are protocol errors (the CLI prints them as such), not internal ones', () => {
    expect(() => ringFromBytes(Buffer.alloc(7), 1, 'shares')).toThrow(new ProtocolError('malformed shares: expected 8 bytes, got 7'))
    expect(() => operatorsFromBytes(Buffer.alloc(4), [], () => 0)).toThrow(ProtocolError)
    expect(() => new Reader(Buffer.alloc(3), 'labels').take(4)).toThrow(new ProtocolError('malformed labels: too short'))
  })
})
