/**
 * `pic serve MODEL --plan PLAN` for CKKS plans: the server holds the plan (its weights are the plan's
 * constants) and only ever evaluation keys: per session it loads the client's public key (to
 * re-randomize outputs), relinearization and Galois keys, evaluates each inference on the client's
 * ciphertexts, sends refresh requests to the client where the plan has refreshes, and returns each
 * output masked, flooded and re-randomized (privacy.ts). This module and everything it imports
 * create no secret key and no decryptor (test/backends/ckks/service.test.ts checks the import graph).
 */
import { Channel, HELLO_BYTES, ProtocolError, serveSessions } from '../mpc/net.js'
import { wireSizes } from './sizes.js'
import { generateIdentity, type Identity } from '../mpc/tls.js'
import { clientPartOf, type ClientPart } from './clientpart.js'
import { planEvaluator, type Ct, type EvalKeys, type GaloisKeys as GaloisKeysObject, type PlanEvaluator } from './evaluate.js'
import { constIndex, type CkksPlan, type Instr } from './plan.js'
import { DEFAULT_PRIVACY, protectOutput, type OutputPrivacy, type PrivacyEnv } from './privacy.js'
import { loadSeal, makeContext, type SealContext, type SEALLibrary } from './seal.js'
import { maskedRefreshGuard, NO_REFRESH_GUARD, RefreshMaskError, type RefreshGuard } from './refresh.js'
import { CKKS_PROTOCOL, galoisGroups, MAX_INFERENCES, outputMessage, refreshRequest, type CkksHello } from './wire.js'

const DEFAULT_TIMEOUT = 30_000

export { NO_REFRESH_GUARD, maskedRefreshGuard, type RefreshGuard } from './refresh.js'

export interface CkksServeOptions {
  port: number
  host?: string
  timeoutMs?: number
  log?: (msg: string) => void
  onSessionEnd?: (e: Error | undefined) => void
  /** Output privacy (default: uniform mask, flooding 2^-10 per slot, re-randomization). Tests build the broken variant with it. */
  privacy?: OutputPrivacy
  refreshGuard?: RefreshGuard
  /** The server's certificate (default: a fresh one, not stored; the CLI keeps one in its state directory). */
  identity?: Identity
  /** Plain TCP (debugging). */
  insecurePlaintext?: boolean
  /** Sessions served at once (default mpc/net.ts DEFAULT_MAX_SESSIONS); further connections are refused. */
  maxSessions?: number
}

export interface CkksServerHandle {
  port: number
  /** SHA-256 of the server's certificate (undefined in plaintext). */
  fingerprint?: string
  /** The client part this server accepts (its fingerprint is checked in every hello). */
  clientPart: ClientPart
  sessions: Promise<Error | undefined>[]
  close(): Promise<void>
}

interface Shared {
  plan: CkksPlan
  seal: SEALLibrary
  sc: SealContext
  encoder: ReturnType<SEALLibrary['CKKSEncoder']>
  ev: ReturnType<SEALLibrary['Evaluator']>
  evaluator: PlanEvaluator
  fingerprint: string
  outSlots: Int32Array[]
  privacy: OutputPrivacy
  guard: RefreshGuard
  log: (msg: string) => void
}

/** Start serving a CKKS plan (constants attached) on host:port. */
export async function startCkksServer(plan: CkksPlan, opts: CkksServeOptions): Promise<CkksServerHandle> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT
  const log = opts.log ?? (() => {})
  if (plan.inputs.length !== 1) throw new ProtocolError('plans with several inputs are not supported by the service')
  const seal = await loadSeal()
  const sc = makeContext(seal, plan.params)
  if (sc.primes.map(String).join(',') !== plan.params.primeValues.slice(0, sc.primes.length).join(',')) throw new ProtocolError('SEAL chose other primes than the plan assumed')
  const encoder = seal.CKKSEncoder(sc.context)
  const ev = seal.Evaluator(sc.context)
  const clientPart = clientPartOf(plan)
  const shared: Shared = {
    plan, seal, sc, encoder, ev,
    evaluator: planEvaluator(plan, sc, encoder, ev),
    fingerprint: clientPart.fingerprint,
    outSlots: plan.outputs.map((o) => constIndex(plan.constants[o.slots])),
    privacy: opts.privacy ?? DEFAULT_PRIVACY,
    guard: opts.refreshGuard ?? defaultGuard(plan),
    log,
  }
  if (plan.stats.bootstraps > 0) log(shared.guard.masked ? `refreshes masked in the coefficient domain: statistical distance 2^-${plan.refreshMask?.sigma ?? '?'} per refresh, |x| <= ${plan.refreshMask?.bound ?? '?'}` : UNMASKED_WARNING)
  log(`ckks plan ready: ${plan.keys.rotations.length} Galois key(s) expected, plaintexts encoded in ${shared.evaluator.setupMs.toFixed(0)} ms`)
  const identity = opts.insecurePlaintext ? undefined : (opts.identity ?? (await generateIdentity('pic server')))
  const srv = await serveSessions(opts.port, opts.host ?? '127.0.0.1', timeoutMs, 'inference(s)', (ch) => serveSession(shared, ch), {
    log,
    onEnd: opts.onSessionEnd,
    maxSessions: opts.maxSessions,
    security: { insecurePlaintext: opts.insecurePlaintext, identity },
  })
  return {
    port: srv.port,
    fingerprint: identity?.fingerprint,
    clientPart,
    sessions: srv.sessions,
    close: () =>
      srv.close(() => {
        shared.evaluator.dispose()
        encoder.delete()
        ev.delete()
        sc.context.delete()
      }),
  }
}

const UNMASKED_WARNING = 'warning: refreshes unmasked (--refresh-mask off): the client sees the intermediate activations it refreshes'

/** The masked refresh of the plan's reserve; a plan with refreshes but no reserve is refused (compiled before masking, or without it). */
function defaultGuard(plan: CkksPlan): RefreshGuard {
  if (plan.stats.bootstraps === 0) return NO_REFRESH_GUARD
  if (!plan.refreshMask) throw new RefreshMaskError('the plan has client-aided refreshes but no refresh reserve for masking them: recompile it, or serve with --refresh-mask off (the client then sees the intermediate activations)')
  return maskedRefreshGuard(plan)
}

function parseHello(b: Buffer, peer: string): CkksHello {
  let h: CkksHello
  try {
    h = JSON.parse(b.toString('utf8')) as CkksHello
  } catch {
    throw new ProtocolError(`${peer} sent a malformed hello`)
  }
  if (!h || h.protocol !== CKKS_PROTOCOL) throw new ProtocolError(`${peer} does not speak ${CKKS_PROTOCOL}`)
  if (!Number.isInteger(h.inferences) || h.inferences < 1 || h.inferences > MAX_INFERENCES) throw new ProtocolError(`${peer} asked for ${String(h.inferences)} inferences (1 to ${MAX_INFERENCES})`)
  return h
}

/** A ciphertext from the client, checked: two polynomials at the expected level. */
function loadCt(s: Shared, bytes: Buffer, level: number, what: string): Ct {
  const ct = s.seal.CipherText()
  try {
    ct.loadArray(s.sc.context, bytes)
  } catch {
    ct.delete()
    throw new ProtocolError(`the client sent a malformed ${what}`)
  }
  if (ct.size !== 2 || ct.coeffModulusSize !== level + 1) {
    ct.delete()
    throw new ProtocolError(`the client sent a ${what} at the wrong level or of size ${ct.size}`)
  }
  return ct
}

function loadKey<T extends { loadArray: (c: SealContext['context'], a: Uint8Array) => void; delete: () => void }>(make: () => T, s: Shared, bytes: Buffer, what: string): T {
  const k = make()
  try {
    k.loadArray(s.sc.context, bytes)
  } catch {
    k.delete()
    throw new ProtocolError(`the client sent malformed ${what}`)
  }
  return k
}

async function serveSession(s: Shared, ch: Channel): Promise<number> {
  const { plan, seal } = s
  const sizes = wireSizes(plan.params)
  const hello = parseHello(await ch.recv('setup', 0, 'hello', { max: HELLO_BYTES }), ch.peer)
  if (hello.fingerprint !== s.fingerprint) throw new ProtocolError('the client part does not belong to the served plan (fingerprints differ)')
  ch.send('setup', 1, Buffer.from(JSON.stringify({ ok: true })))
  const pk = loadKey(() => seal.PublicKey(), s, await ch.recv('setup', 2, 'public key', { max: sizes.publicKey }), 'public key')
  const keys: EvalKeys = {}
  const gkGroups: GaloisKeysObject[] = []
  let encryptor: ReturnType<SEALLibrary['Encryptor']> | undefined
  try {
    if (plan.keys.relin) keys.rk = loadKey(() => seal.RelinKeys(), s, await ch.recv('setup', 3, 'relinearization keys', { max: sizes.relinKeys }), 'relinearization keys')
    const groups = galoisGroups(plan.keys.rotations)
    if (groups.length > 0) keys.gkByStep = new Map()
    for (const [k, g] of groups.entries()) {
      const gk = loadKey(() => seal.GaloisKeys(), s, await ch.recv('setup', 4, `Galois keys (group ${k + 1} of ${groups.length})`, { max: sizes.galoisKeys(g.length) }), 'Galois keys')
      gkGroups.push(gk)
      for (const step of g) keys.gkByStep!.set(step, gk)
    }
    encryptor = seal.Encryptor(s.sc.context, pk)
    const env: PrivacyEnv = { seal, sc: s.sc, encoder: s.encoder, ev: s.ev, encryptor, params: plan.params }
    const inp = plan.inputs[0]
    for (let b = 0; b < hello.inferences; b++) {
      const tag = b & 0xffff
      const regs = new Map<number, Ct>()
      for (let j = 0; j < inp.regs.length; j++) regs.set(inp.regs[j], loadCt(s, await ch.recv('online', tag, `input ciphertext ${j} of inference ${b}`, { max: sizes.ciphertext(inp.levels[j]) }), inp.levels[j], 'input ciphertext'))
      if (b === 0 && plan.stats.bootstraps > 0 && !s.guard.masked) s.log(`${ch.peer}: ${UNMASKED_WARNING}`)
      const refresh = async (ct: Ct, i: Instr): Promise<Ct> => {
        const round = s.guard.open(ct, i, env)
        const sent = round.sent.saveArray(seal.ComprModeType.zstd)
        if (round.sent !== ct) round.sent.delete()
        ch.send('online', tag, refreshRequest(i.level, i.scale, sent))
        return round.close(loadCt(s, await ch.recv('online', tag, 'a refreshed ciphertext', { max: sizes.ciphertext(i.level) }), i.level, 'refreshed ciphertext'))
      }
      const { outputs } = await s.evaluator.run(regs, keys, refresh)
      const done = new Set<Ct>()
      plan.outputs.forEach((o, k) => {
        const protectedCt = protectOutput(env, outputs[k].clone(), s.outSlots[k], s.evaluator.levelOf(o.reg), s.privacy)
        ch.send('online', tag, outputMessage(protectedCt.saveArray(seal.ComprModeType.zstd)))
        protectedCt.delete()
        done.add(outputs[k])
      })
      for (const ct of done) ct.delete()
      await ch.drained()
    }
    ch.send('setup', 5, Buffer.from(JSON.stringify({ served: hello.inferences })))
    await ch.drained()
    return hello.inferences
  } finally {
    encryptor?.delete()
    pk.delete()
    keys.rk?.delete()
    for (const gk of gkGroups) gk.delete()
    ch.close()
  }
}
