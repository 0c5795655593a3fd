/**
 * `pic query CLIENT_PART --connect HOST:P` for CKKS: the client generates its keys (the secret key
 * never leaves this process), uploads the public and evaluation keys once per session (seeded,
 * compressed), sends each inference's input encrypted, answers the server's refresh requests and
 * decrypts the outputs. The server side is server.ts.
 */
import type { Tensor } from '../../ir/tensor.js'
import { sizeOf } from '../../ir/tensor.js'
import { connectChannel, parseEndpoint, ProtocolError, type Channel } from '../mpc/net.js'
import type { Trust } from '../mpc/tls.js'
import { KeyHolder, type KeyBytes } from './client.js'
import { layoutView, type ClientPart } from './clientpart.js'
import { loadSeal } from './seal.js'
import { wireSizes } from './sizes.js'
import { batchOf, groupInput, storeGroup } from './simulate.js'
import { imageProgress } from './runtime.js'
import { CKKS_PROTOCOL, MAX_INFERENCES, parseServerMessage, type CkksHello } from './wire.js'

export { startCkksServer, NO_REFRESH_GUARD, type CkksServeOptions, type CkksServerHandle, type RefreshGuard } from './server.js'
export { clientPartOf, parseClientPart, CLIENT_FORMAT, type ClientPart } from './clientpart.js'
export { DEFAULT_PRIVACY, type OutputPrivacy } from './privacy.js'

export interface CkksQueryOptions {
  /** HOST:PORT of the server. */
  connect: string
  timeoutMs?: number
  /** Refreshes: 'client' answers the server's requests (default when the plan has refreshes), 'none' refuses such plans. */
  refresh?: 'client' | 'none'
  /** Also measure the keys' plain serialization (an extra key generation), for the report. */
  compareSerialization?: boolean
  /** Every decrypted slot of every returned output ciphertext (inference, output index, slots): for tests. */
  onOutputSlots?: (inference: number, output: number, slots: Float64Array) => void
  log?: (msg: string) => void
  /** How the server's certificate is checked (mpc/tls.ts `Trust`; default: any, with a warning in `log`). */
  serverTrust?: Trust
  /** Plain TCP (debugging; the server must run the same way). */
  insecurePlaintext?: boolean
}

export interface CkksQueryReport {
  images: number
  imagesPerInference: number
  inferences: number
  bytes: {
    /** Uploaded once per session: the keys as sent (seeded, zstd) and, if measured, as plain serializations. */
    keys: KeyBytes & { unseeded?: KeyBytes }
    /** Per image (per inference divided by the images it packs): up (inputs, refreshed values) and down (outputs, refresh requests). */
    perImage: { up: number; down: number }
    perInference: { up: number; down: number }
    refreshes: number
    total: { up: number; down: number }
  }
  latencyMs: { keygen: number; keyUpload: number; total: number; perImage: number; perInference: number; encrypt: number; decrypt: number; refresh: number }
}

const round = (v: number) => Math.round(v * 100) / 100

function sent(ch: Channel): number {
  return ch.counters.sent.setup + ch.counters.sent.online
}
function received(ch: Channel): number {
  return ch.counters.received.setup + ch.counters.received.online
}

/** Run every image of `input` (batch first) through the server's plan. */
export async function queryCkks(part: ClientPart, input: Tensor, o: CkksQueryOptions): Promise<{ output: Tensor; report: CkksQueryReport }> {
  const timeoutMs = o.timeoutMs ?? 30_000
  const log = o.log ?? (() => {})
  const view = layoutView(part)
  if (part.inputs.length !== 1 || part.outputs.length < 1) throw new ProtocolError('client parts with several inputs are not supported')
  const inShape = part.inputs[0].shape
  if (input.shape.length !== inShape.length || input.shape.slice(1).some((d, i) => d !== inShape[i + 1]))
    throw new ProtocolError(`input has shape [${input.shape.join(',')}], the plan expects [N,${inShape.slice(1).join(',')}]`)
  const refresh = o.refresh ?? 'client'
  if (part.refreshes > 0 && refresh !== 'client')
    throw new ProtocolError(`the plan needs ${part.refreshes} client-aided refresh(es) per inference; query with --refresh client (the client then sees those intermediate values)`)
  if (part.refreshes > 0) log(`note: the plan has ${part.refreshes} client-aided refresh(es) per inference: this client decrypts those intermediate values, masked by the server (statistical distance at most 2^-40 per refresh) unless it serves with --refresh-mask off`)
  const B = input.shape[0]
  if (B < 1) throw new ProtocolError('input has no images')
  const K = batchOf(part)
  const inferences = Math.ceil(B / K)
  if (inferences > MAX_INFERENCES) throw new ProtocolError(`${inferences} inferences in one session (at most ${MAX_INFERENCES})`)
  const t0 = performance.now()
  const seal = await loadSeal()
  log(`generating keys: ${part.keys.rotations.length} rotation key(s)${part.keys.relin ? ' + relinearization' : ''} at logN ${part.params.logN}...`)
  const holder = new KeyHolder(seal, { ...view, keys: part.keys })
  // the keys are made before connecting, so that no server session waits (and times out) meanwhile
  const tk = performance.now()
  const keys = holder.serializedKeys()
  const keygen = holder.keygenMs + performance.now() - tk
  const unseeded = o.compareSerialization ? holder.unseededKeyBytes() : undefined
  const ch = await connectChannel(parseEndpoint(o.connect), timeoutMs, 'server', { insecurePlaintext: o.insecurePlaintext, trust: { log, ...o.serverTrust } })
  try {
    const hello: CkksHello = { protocol: CKKS_PROTOCOL, fingerprint: part.fingerprint, inferences }
    // a refresh request or an output: a 13-byte head and a ciphertext at most at the top level
    const serverMessageMax = 13 + wireSizes(part.params).ciphertext(part.params.primes.length - 2)
    ch.send('setup', 0, Buffer.from(JSON.stringify(hello)))
    await ch.recv('setup', 1, 'session acceptance', { max: 1024 })
    const tu = performance.now()
    ch.send('setup', 2, Buffer.from(keys.publicKey))
    if (keys.relinKeys) ch.send('setup', 3, Buffer.from(keys.relinKeys))
    for (const g of keys.galoisKeys ?? []) {
      ch.send('setup', 4, Buffer.from(g))
      await ch.drained()
    }
    await ch.drained()
    const keyUpload = performance.now() - tu
    const galoisBytes = (keys.galoisKeys ?? []).reduce((n, g) => n + g.length, 0)
    const keyBytes: KeyBytes = {
      publicKey: keys.publicKey.length,
      relinKeys: keys.relinKeys?.length ?? 0,
      galoisKeys: galoisBytes,
      total: keys.publicKey.length + (keys.relinKeys?.length ?? 0) + galoisBytes,
    }
    log(`keys uploaded: ${keyBytes.total} B (${keygen.toFixed(0)} ms to generate)`)
    const up0 = sent(ch)
    const down0 = received(ch)
    const outs = part.outputs.map((p) => new Float64Array(B * sizeOf(p.shape.slice(1))))
    let encrypt = 0
    let decrypt = 0
    let refreshMs = 0
    let refreshes = 0
    const tq = performance.now()
    const progress = imageProgress(log, inferences, K > 1 ? 'inference' : 'image')
    for (let b = 0; b < inferences; b++) {
      const tag = b & 0xffff
      const te = performance.now()
      for (const ct of holder.encryptInputBytes(groupInput(input, b, K))) ch.send('online', tag, Buffer.from(ct))
      encrypt += performance.now() - te
      let got = 0
      while (got < part.outputs.length) {
        const m = parseServerMessage(await ch.recv('online', tag, `the outputs of inference ${b}`, { max: serverMessageMax }))
        if (!m) throw new ProtocolError('the server sent a malformed message')
        if (m.kind === 'refresh') {
          if (refresh !== 'client') throw new ProtocolError('the server asked for a refresh')
          if (m.level >= part.params.primes.length - 1) throw new ProtocolError(`the server asked for a refresh to level ${m.level}`)
          const tr = performance.now()
          ch.send('online', tag, Buffer.from(holder.refreshBytes(m.ct, m.level, m.scale)))
          refreshMs += performance.now() - tr
          refreshes++
          continue
        }
        const td = performance.now()
        const ct = holder.loadCiphertext(m.ct)
        try {
          const slots = holder.decryptSlots(ct)
          o.onOutputSlots?.(b, got, slots)
          const idx = view.constants[part.outputs[got].slots].data as Int32Array
          storeGroup(outs[got], Float64Array.from(idx, (s) => slots[s]), b, K, B)
        } finally {
          ct.delete()
        }
        decrypt += performance.now() - td
        got++
      }
      progress(b + 1)
    }
    const done = JSON.parse((await ch.recv('setup', 5, 'the end of the session', { max: 1024 })).toString('utf8')) as { served?: number }
    if (done.served !== inferences) throw new ProtocolError(`the server served ${String(done.served)} inferences, ${inferences} were asked`)
    const evalMs = performance.now() - tq
    const up = sent(ch) - up0
    const down = received(ch) - down0
    const report: CkksQueryReport = {
      images: B,
      imagesPerInference: K,
      inferences,
      bytes: {
        keys: { ...keyBytes, ...(unseeded ? { unseeded } : {}) },
        perImage: { up: Math.round(up / B), down: Math.round(down / B) },
        perInference: { up: Math.round(up / inferences), down: Math.round(down / inferences) },
        refreshes,
        total: { up: sent(ch), down: received(ch) },
      },
      latencyMs: {
        keygen: round(keygen),
        keyUpload: round(keyUpload),
        total: round(performance.now() - t0),
        perImage: round(evalMs / B),
        perInference: round(evalMs / inferences),
        encrypt: round(encrypt),
        decrypt: round(decrypt),
        refresh: round(refreshMs),
      },
    }
    return { output: { dtype: 'float64', shape: [B, ...part.outputs[0].shape.slice(1)], data: outs[0] }, report }
  } finally {
    ch.close()
    holder.dispose()
  }
}
