/**
 * TLS 1.3 on every link (issue 12, item 4), tested over loopback:
 * - the version negotiated is TLS 1.3 (getProtocol on both kinds of links, and `openssl s_client`
 *   when openssl is installed: -tls1_3 succeeds, -tls1_2 is refused);
 * - a pin that does not match refuses the connection with one line, before anything is sent; known
 *   hosts trust on first use and refuse a changed certificate;
 * - plain TCP clients (HTTP, random bytes, a stall, a pic client with --insecure-plaintext) are refused
 *   cleanly: one log line each, no session, bounded memory, and the server goes on serving;
 * - sessions are bound to TLS connections (dealer.ts `startDealer`): attackers built here, who know a
 *   victim's session id (and its dealer link), cannot join the victim's session as the client or as
 *   the server, and a server session whose id comes from another TLS connection is refused; the same
 *   attacks succeed against the dealer's test-only `unboundPairing` (pairing by session id alone);
 * - an MPC run (digits cnn_square) and a CKKS service run (digits cnn_square) over pinned TLS match
 *   their oracles (the PyTorch logits in the fixtures; the float64 interpreter on the compiled model).
 */
import { spawn, spawnSync } from 'node:child_process'
import { randomBytes, X509Certificate } from 'node:crypto'
import { mkdtempSync, readFileSync, statSync } from 'node:fs'
import { connect as tcpConnect } from 'node:net'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { compileCkks } from '../../../backends/ckks/index.js'
import { queryCkks, startCkksServer } from '../../../backends/ckks/service.js'
import { dealerSpec, type Hello } from '../../../backends/mpc/dealer.js'
import { lowerMpc, runDealer, runQuery, runServe, type MpcSchedule } from '../../../backends/mpc/index.js'
import { operatorsToBytes } from '../../../backends/mpc/linear.js'
import { connectLink, type Link } from '../../../backends/mpc/net.js'
import { prepareServer } from '../../../backends/mpc/party.js'
import { PROTOCOL } from '../../../backends/mpc/protocol.js'
import { sessionPlan } from '../../../backends/mpc/steps/index.js'
import { checkPeer, DEALER_LINK_LABEL, exporterHex, generateIdentity, loadIdentity, SESSION_LABEL, type Identity } from '../../../backends/mpc/tls.js'
import type { Graph } from '../../../ir/graph.js'
import { argmax as argmaxAll } from '../../../passes/ola.js'
import { compiledGraph, maxAbsDiff, reference, testImages } from '../ckks/helpers.js'
import { argmax, compiled, images, parties } from './helpers.js'

const T = 1500
const ep = (port: number) => ({ host: '127.0.0.1', port })
const MAX = { max: 1 << 26 }

/** `openssl s_client` against 127.0.0.1:port with a version flag; resolves with its output (the server runs in this process). */
function sClient(port: number, version: string): Promise<string> {
  return new Promise((resolve) => {
    const c = spawn('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, version], { stdio: ['pipe', 'pipe', 'pipe'] })
    let out = ''
    c.stdout.on('data', (d) => (out += d))
    c.stderr.on('data', (d) => (out += d))
    c.on('exit', () => resolve(out))
    c.stdin.end()
  })
}
const haveOpenssl = spawnSync('openssl', ['version']).status === 0

describe('TLS 1.3 on every link', () => {
  const g = compiled('cnn_square')
  const s = lowerMpc(g)

  it('negotiates TLS 1.3 with the server and the dealer (getProtocol, openssl s_client), refuses TLS 1.2', async () => {
    const p = await parties(g, s, T)
    try {
      for (const [name, port, fp] of [['server', p.server.port, p.server.fingerprint], ['dealer', p.dealer.port, p.dealer.fingerprint]] as const) {
        expect(fp).toMatch(/^[0-9a-f]{64}$/)
        const l = await connectLink(ep(port), T, name, { trust: { fingerprint: fp } })
        expect(l.tls!.getProtocol()).toBe('TLSv1.3')
        expect(l.peerCertificate).toBe(fp)
        l.ch.close()
        if (!haveOpenssl) continue
        const ok = await sClient(port, '-tls1_3')
        expect(ok).toMatch(/TLSv1\.3/)
        expect(ok).toMatch(/Cipher is TLS_/)
        const old = await sClient(port, '-tls1_2')
        expect(old).not.toMatch(/Cipher is (?!\(NONE\))/)
      }
    } finally {
      await p.close()
    }
  })

  it('a pinned MPC run over TLS matches the PyTorch logits', async () => {
    const p = await parties(g, s)
    try {
      const { x, ref } = images(3, 10)
      const logs: string[] = []
      const { output } = await runQuery(s, x, {
        connect: `127.0.0.1:${p.server.port}`, dealer: `127.0.0.1:${p.dealer.port}`,
        serverTrust: { fingerprint: p.server.fingerprint }, dealerTrust: { fingerprint: p.dealer.fingerprint }, log: (m) => logs.push(m),
      })
      const r = ref('cnn_square')
      for (let i = 0; i < 3; i++) {
        expect(argmax(output.data, i * 10, 10)).toBe(argmax(r.data, (10 + i) * 10, 10))
        for (let j = 0; j < 10; j++) expect(Math.abs(output.data[i * 10 + j] - r.data[(10 + i) * 10 + j])).toBeLessThan(0.05)
      }
      expect(logs).toEqual([]) // pinned: no warning
      expect(await p.server.sessions[0]).toBeUndefined()
    } finally {
      await p.close()
    }
  })

  it('a wrong pin is refused with one line, for the client and for the server connecting to the dealer', async () => {
    const p = await parties(g, s, T)
    const { x } = images(1)
    const wrong = '00'.repeat(32)
    try {
      await expect(runQuery(s, x, { connect: `127.0.0.1:${p.server.port}`, dealer: `127.0.0.1:${p.dealer.port}`, serverTrust: { fingerprint: wrong }, timeoutMs: T }))
        .rejects.toThrow(new RegExp(`^server at 127\\.0\\.0\\.1:${p.server.port} presented certificate sha256 ${p.server.fingerprint}, not the pinned ${wrong}: refused$`))
      await expect(runQuery(s, x, { connect: `127.0.0.1:${p.server.port}`, dealer: `127.0.0.1:${p.dealer.port}`, dealerTrust: { fingerprint: wrong }, timeoutMs: T }))
        .rejects.toThrow(/^dealer at 127\.0\.0\.1:\d+ presented certificate sha256 [0-9a-f]{64}, not the pinned 0{64}: refused$/)
    } finally {
      await p.close()
    }
    const dealer = await runDealer({ port: 0, timeoutMs: T })
    const server = await runServe(g, s, { port: 0, dealer: `127.0.0.1:${dealer.port}`, timeoutMs: T, dealerTrust: { fingerprint: wrong } })
    try {
      await expect(runQuery(s, x, { connect: `127.0.0.1:${server.port}`, dealer: `127.0.0.1:${dealer.port}`, timeoutMs: T }))
        .rejects.toThrow(/server at .* reported an error: dealer at 127\.0\.0\.1:\d+ presented certificate sha256 [0-9a-f]{64}, not the pinned 0{64}: refused/)
    } finally {
      await server.close()
      await dealer.close()
    }
  })

  it('an identity is generated once per state directory, kept across restarts, or taken from --cert/--key', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'pic-tls-'))
    const logs: string[] = []
    const first = await loadIdentity({ stateDir: dir, name: 'server', log: (m) => logs.push(m) })
    const again = await loadIdentity({ stateDir: dir, name: 'server', log: (m) => logs.push(m) })
    expect(again).toEqual(first)
    expect(logs).toEqual([`generated a server certificate in ${path.join(dir, 'server.cert.pem')} (kept across restarts)`])
    expect(statSync(path.join(dir, 'server.key.pem')).mode & 0o777).toBe(0o600)
    // the fingerprint is node's own SHA-256 of the DER certificate, as hex
    const x = new X509Certificate(first.cert)
    expect(first.fingerprint).toBe(x.fingerprint256.replace(/:/g, '').toLowerCase())
    expect(x.publicKey.asymmetricKeyType).toBe('ec')
    const dealer = await loadIdentity({ stateDir: dir, name: 'dealer' })
    expect(dealer.fingerprint).not.toBe(first.fingerprint)
    const given = await loadIdentity({ cert: path.join(dir, 'dealer.cert.pem'), key: path.join(dir, 'dealer.key.pem'), stateDir: mkdtempSync(path.join(tmpdir(), 'pic-tls-')), name: 'server' })
    expect(given.fingerprint).toBe(dealer.fingerprint)
    await expect(loadIdentity({ cert: path.join(dir, 'dealer.cert.pem'), key: path.join(dir, 'server.key.pem'), stateDir: dir, name: 'server' })).rejects.toThrow('the key does not belong to the certificate')
    await expect(loadIdentity({ cert: path.join(dir, 'dealer.cert.pem'), stateDir: dir, name: 'server' })).rejects.toThrow('give both --cert and --key, or neither')
  })

  it('known hosts: the first certificate is recorded, the same one accepted, another refused', async () => {
    const file = path.join(mkdtempSync(path.join(tmpdir(), 'pic-tls-')), 'known_hosts')
    const a = (await generateIdentity('a')).fingerprint
    const b = (await generateIdentity('b')).fingerprint
    const logs: string[] = []
    checkPeer(a, 'server', '127.0.0.1:1', { knownHosts: file, log: (m) => logs.push(m) })
    expect(readFileSync(file, 'utf8')).toBe(`127.0.0.1:1 ${a}\n`)
    expect(logs).toEqual([`trusting server at 127.0.0.1:1 on first use: certificate sha256 ${a} (recorded in ${file}; pin it to be sure)`])
    checkPeer(a, 'server', '127.0.0.1:1', { knownHosts: file })
    checkPeer(b, 'server', '127.0.0.1:2', { knownHosts: file })
    expect(() => checkPeer(b, 'server', '127.0.0.1:1', { knownHosts: file })).toThrow(`server at 127.0.0.1:1 presented certificate sha256 ${b}, but ${file} recorded ${a} on first use: refused`)
    expect(readFileSync(file, 'utf8')).toBe(`127.0.0.1:1 ${a}\n127.0.0.1:2 ${b}\n`)
  })

  it('plain TCP clients are refused cleanly: one log line each, no session, bounded memory, the server goes on', async () => {
    const dealer = await runDealer({ port: 0, timeoutMs: T })
    const logs: string[] = []
    const server = await runServe(g, s, { port: 0, dealer: `127.0.0.1:${dealer.port}`, timeoutMs: T, dealerTrust: { fingerprint: dealer.fingerprint }, log: (m) => logs.push(m) })
    try {
      const raw = (bytes: Buffer | undefined) =>
        new Promise<void>((resolve) => {
          const c = tcpConnect(server.port, '127.0.0.1')
          c.on('error', () => {})
          c.on('close', () => resolve())
          c.on('data', () => {}) // an alert, if any
          if (bytes) c.on('connect', () => c.write(bytes))
        })
      const rss0 = process.memoryUsage().rss
      const N = 200
      for (let i = 0; i < N; i += 20)
        await Promise.all(Array.from({ length: 20 }, (_, j) => raw((i + j) % 2 ? Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n') : randomBytes(4096))))
      const grown = (process.memoryUsage().rss - rss0) / 2 ** 20
      expect(grown).toBeLessThan(64)
      // a stall: the handshake times out after the server's timeout
      await raw(undefined)
      const refused = logs.filter((l) => /^refused a connection from 127\.0\.0\.1:\d+: TLS handshake failed \(.+\)$/.test(l))
      expect(refused.length).toBe(N + 1)
      expect(logs.length).toBe(N + 1)
      expect(server.sessions.length).toBe(0)
      // a pic client with --insecure-plaintext gets a one-line error
      const { x } = images(1)
      await expect(runQuery(s, x, { connect: `127.0.0.1:${server.port}`, dealer: `127.0.0.1:${dealer.port}`, timeoutMs: T, insecurePlaintext: true }))
        .rejects.toThrow(/^(server|dealer) at 127\.0\.0\.1:\d+ (closed the connection|sent a malformed frame)/)
      // and a TLS client still gets served
      const ok = await runQuery(s, x, { connect: `127.0.0.1:${server.port}`, dealer: `127.0.0.1:${dealer.port}`, serverTrust: { fingerprint: server.fingerprint } })
      expect(ok.report.images).toBe(1)
    } finally {
      await server.close()
      await dealer.close()
    }
  })

  it('a TLS client meeting a plain TCP server is refused with one line', async () => {
    const dealer = await runDealer({ port: 0, timeoutMs: T, insecurePlaintext: true })
    const server = await runServe(g, s, { port: 0, dealer: `127.0.0.1:${dealer.port}`, timeoutMs: T, insecurePlaintext: true })
    try {
      await expect(runQuery(s, images(1).x, { connect: `127.0.0.1:${server.port}`, dealer: `127.0.0.1:${dealer.port}`, timeoutMs: T }))
        .rejects.toThrow(/^cannot connect to server at 127\.0\.0\.1:\d+: /)
    } finally {
      await server.close()
      await dealer.close()
    }
  })
})

/** The parties of the pairing attacks: a real dealer (bound, or the test-only unbound one) and a real server pinned to it. */
async function world(g: Graph, s: MpcSchedule, unboundPairing: boolean) {
  const dealer = await runDealer({ port: 0, timeoutMs: T, unboundPairing })
  const server = await runServe(g, s, { port: 0, dealer: `127.0.0.1:${dealer.port}`, timeoutMs: T, dealerTrust: { fingerprint: dealer.fingerprint } })
  const spec = dealerSpec(s, sessionPlan(s))
  const hello = (h: Partial<Hello>) => Buffer.from(JSON.stringify({ protocol: PROTOCOL, fingerprint: s.fingerprint, images: 1, spec, ...h }))
  // the scripted parties wait longer than the dealer, so the dealer's verdict is what they see
  const toDealer = (identity?: Identity) => connectLink(ep(dealer.port), 3 * T, 'dealer', { trust: { fingerprint: dealer.fingerprint }, identity })
  /** Ask the dealer for image 0's material: the payload, or the error the dealer ended with. */
  const material = async (l: Link): Promise<Buffer | Error> => {
    l.ch.send('offline', 0, Buffer.alloc(0))
    return l.ch.recv('offline', 0, 'dealer material', MAX).catch((e: Error) => e)
  }
  return {
    dealer, server, hello, toDealer, material,
    close: async () => {
      await server.close()
      await dealer.close()
    },
  }
}

/** A victim client: its TLS links to the server and the dealer and the values they bind. */
async function victim(w: Awaited<ReturnType<typeof world>>) {
  const sl = await connectLink(ep(w.server.port), T, 'server', { trust: { fingerprint: w.server.fingerprint } })
  const dl = await w.toDealer()
  return { sl, dl, session: exporterHex(sl.tls!, SESSION_LABEL), link: exporterHex(dl.tls!, DEALER_LINK_LABEL) }
}

describe('the dealer pairs a client and a server only by a session both authenticated', () => {
  const g = compiled('mlp_relu')
  const s = lowerMpc(g)

  /** The attacker knows the victim's session id and joins the dealer as the client, before the victim. */
  async function learnedSessionId(unbound: boolean) {
    const w = await world(g, s, unbound)
    try {
      const v = await victim(w)
      const a = await w.toDealer()
      a.ch.send('setup', 0, w.hello({ role: 'client', session: v.session, serverCert: w.server.fingerprint }))
      const stolen = w.material(a)
      await new Promise((r) => setTimeout(r, 100))
      v.sl.ch.send('setup', 0, w.hello({ role: 'client', session: v.session, clientLink: v.link }))
      await v.sl.ch.recv('setup', 1, 'session acceptance', MAX) // the server is at the dealer
      await new Promise((r) => setTimeout(r, 100))
      v.dl.ch.send('setup', 0, w.hello({ role: 'client', session: v.session, serverCert: w.server.fingerprint }))
      const [attacker, mine] = await Promise.all([stolen, w.material(v.dl)])
      v.sl.ch.close()
      return { attacker, victim: mine }
    } finally {
      await w.close()
    }
  }

  it('an attacker who learned the session id cannot take the client\'s place (it does with unbound pairing)', async () => {
    const real = await learnedSessionId(false)
    expect(real.attacker).toBeInstanceOf(Error)
    expect((real.attacker as Error).message).toMatch(new RegExp(`reported an error: timed out after ${T} ms waiting for the other party of session [0-9a-f]{8}$`))
    expect(real.victim).toBeInstanceOf(Buffer)
    expect((real.victim as Buffer).length).toBeGreaterThan(16)
    const broken = await learnedSessionId(true)
    expect(broken.attacker, String(broken.attacker)).toBeInstanceOf(Buffer) // the client's seed and material went to the attacker
    expect((broken.attacker as Buffer).length).toBe((real.victim as Buffer).length)
    expect(broken.victim).toBeInstanceOf(Error)
  })

  /** An impostor server (another certificate) who knows the session id and the client's dealer link. */
  async function impostorServer(unbound: boolean) {
    const w = await world(g, s, unbound)
    try {
      const realServer = (await generateIdentity('the real server')).fingerprint
      const session = randomBytes(16).toString('hex')
      const v = await w.toDealer()
      const link = exporterHex(v.tls!, DEALER_LINK_LABEL)
      const imp = await w.toDealer(await generateIdentity('impostor'))
      imp.ch.send('setup', 0, w.hello({ role: 'server', session, clientLink: link }))
      imp.ch.send('setup', 1, operatorsToBytes(prepareServer(g, s).operators))
      const stolen = w.material(imp)
      await new Promise((r) => setTimeout(r, 100))
      v.ch.send('setup', 0, w.hello({ role: 'client', session, serverCert: realServer }))
      const [impostor, mine] = await Promise.all([stolen, w.material(v)])
      return { impostor, victim: mine }
    } finally {
      await w.close()
    }
  }

  it('a server whose certificate is not the one the client authenticated is refused (accepted with unbound pairing)', async () => {
    const real = await impostorServer(false)
    for (const e of [real.impostor, real.victim]) {
      expect(e).toBeInstanceOf(Error)
      expect((e as Error).message).toMatch(/reported an error: refused session [0-9a-f]{8}: the server did not present the certificate the client authenticated$/)
    }
    const broken = await impostorServer(true)
    expect(broken.impostor).toBeInstanceOf(Buffer)
    expect((broken.impostor as Buffer).length).toBe(16) // the server's seed
    expect(broken.victim).toBeInstanceOf(Buffer)
  })

  it('a client and a server whose session ids come from different TLS sessions are not paired', async () => {
    const w = await world(g, s, false)
    try {
      const v = await victim(w)
      // the attacker, a client of the real server on its own TLS connection, names the victim's dealer link
      const a = await connectLink(ep(w.server.port), T, 'server', { trust: { fingerprint: w.server.fingerprint } })
      a.ch.send('setup', 0, w.hello({ role: 'client', session: exporterHex(a.tls!, SESSION_LABEL), clientLink: v.link }))
      await a.ch.recv('setup', 1, 'session acceptance', MAX) // the server takes it to the dealer, vouching for that link
      v.dl.ch.send('setup', 0, w.hello({ role: 'client', session: v.session, serverCert: w.server.fingerprint }))
      const got = await w.material(v.dl)
      expect(got).toBeInstanceOf(Error)
      expect((got as Error).message).toMatch(/reported an error: refused session [0-9a-f]{8}: the client's and the server's session ids do not come from one TLS session$/)
      expect((await w.server.sessions[1])?.message).toMatch(/refused session [0-9a-f]{8}: the client's and the server's session ids do not come from one TLS session/)
      a.ch.close()
      v.sl.ch.close()
    } finally {
      await w.close()
    }
  })

  it('the server refuses a session id that is not its TLS connection\'s', async () => {
    const w = await world(g, s, false)
    try {
      const a = await connectLink(ep(w.server.port), T, 'server', { trust: { fingerprint: w.server.fingerprint } })
      a.ch.send('setup', 0, w.hello({ role: 'client', session: randomBytes(16).toString('hex'), clientLink: randomBytes(16).toString('hex') }))
      await expect(a.ch.recv('setup', 1, 'session acceptance', MAX)).rejects.toThrow(/reported an error: client at 127\.0\.0\.1:\d+ sent a session id that does not come from this TLS connection$/)
    } finally {
      await w.close()
    }
  })
})

describe('the CKKS service over TLS', () => {
  it('cnn_square: a pinned query matches the compiled model; a wrong pin and a plain TCP client are refused', async () => {
    const cg = compiledGraph('cnn_square')
    const h = await startCkksServer(compileCkks(cg, { model: 'cnn_square' }), { port: 0, timeoutMs: 20_000 })
    try {
      const x = testImages('digits', 2)
      await expect(queryCkks(h.clientPart, x, { connect: `127.0.0.1:${h.port}`, serverTrust: { fingerprint: 'ab'.repeat(32) } }))
        .rejects.toThrow(/^server at 127\.0\.0\.1:\d+ presented certificate sha256 [0-9a-f]{64}, not the pinned (ab){32}: refused$/)
      await expect(queryCkks(h.clientPart, x, { connect: `127.0.0.1:${h.port}`, insecurePlaintext: true, timeoutMs: 5000 }))
        .rejects.toThrow(/^server at 127\.0\.0\.1:\d+ (closed the connection|sent a malformed frame)/)
      const { output } = await queryCkks(h.clientPart, x, { connect: `127.0.0.1:${h.port}`, serverTrust: { fingerprint: h.fingerprint } })
      const ref = reference(cg, x)
      expect(Array.from(argmaxAll(output))).toEqual(Array.from(argmaxAll(ref)))
      expect(maxAbsDiff(output.data, ref.data)).toBeLessThanOrEqual(0.05)
    } finally {
      await h.close()
    }
  }, 120_000)
})
