/**
 * The two-party runtime commands of the mpc backend:
 *   pic dealer --port P                                   trusted dealer for the offline phase
 *   pic serve MODEL --schedule S --port P [--dealer H:P]  the server party (holds the weights)
 *   pic query S --connect H:P [--dealer H:P] --input X.npy [--output Y.npy] [--json]   the client party
 * Without --dealer the two parties run the offline phase themselves (backends/mpc/offline.ts: HE for
 * the linear layers, OT extension for the circuits' inputs and the Beaver products); with it the
 * dealer supplies the correlations (the trusted-third-party model), and both parties must agree.
 * dealer and serve run until interrupted (serve --once: until the first session ends).
 * Every link is TLS 1.3 (backends/mpc/tls.ts): dealer and serve present a certificate (--cert/--key,
 * else generated once in the state directory) and print `certificate sha256 HEX` once listening; a
 * connecting party pins its peer with --server-fingerprint / --dealer-fingerprint, else trusts it on
 * first use (STATE_DIR/known_hosts). --insecure-plaintext turns TLS off and warns on every start.
 */
import { mpcBackend, parseSchedule, runDealer, runQuery, runServe } from '../backends/mpc/index.js'
import { APPROX_OPTIONS, BACKEND_OPTIONS, checkCompileOptions, compileFor, flag, logger, need, onePositional, printJSON, str, UsageError, type Command, type ParsedArgs } from './cli-kit.js'
import { loadModel, readJSONFile } from './model.js'
import { queryCkksCommand, serveCkks } from './cmd-ckks.js'
import type { CkksPlanFile } from '../backends/ckks/index.js'
import { CLIENT_FORMAT } from '../backends/ckks/clientpart.js'
import { readFiniteNpy, writeNpy } from './npy.js'
import type { ConnectSecurity, ListenSecurity } from '../backends/mpc/net.js'
import { defaultStateDir, knownHostsIn, loadIdentity, parseFingerprint, plaintextWarning, type Trust } from '../backends/mpc/tls.js'
import { checkWritable, PicError } from './errors.js'
import { accuracyText, labelAccuracy, LABELS_OPTION, readLabels } from './cmd-run.js'

const NET_OPTIONS = {
  timeout: { type: 'string' as const, arg: 'MS', help: 'give up on a silent peer after this many milliseconds (default 30000)' },
  'state-dir': { type: 'string' as const, arg: 'DIR', help: 'where certificates and known hosts are kept (default $PIC_STATE_DIR, else $XDG_CONFIG_HOME/pic or ~/.config/pic)' },
  'insecure-plaintext': { type: 'boolean' as const, help: 'plain TCP instead of TLS 1.3, no encryption or authentication (debugging only; warns on every use)' },
}

/** The options of a party that listens (dealer, server). */
const LISTEN_OPTIONS = {
  port: { type: 'string' as const, arg: 'P', help: 'TCP port to listen on (0 picks a free one)' },
  host: { type: 'string' as const, arg: 'H', help: 'address to listen on (default 127.0.0.1)' },
  cert: { type: 'string' as const, arg: 'FILE', help: 'PEM certificate to present (default: generated at first start in the state directory, then reused)' },
  key: { type: 'string' as const, arg: 'FILE', help: "PEM private key of --cert" },
  ...NET_OPTIONS,
}

/** Where and how a listening party listens, from its options. */
export interface ListenOn {
  port: number
  host?: string
  timeoutMs?: number
  identity?: ListenSecurity['identity']
  insecurePlaintext?: boolean
  /** pic serve --max-sessions */
  maxSessions?: number
}

function stateDir(args: ParsedArgs): string {
  return str(args, 'state-dir') ?? defaultStateDir()
}

/** --insecure-plaintext: the warning goes to stderr on every start, even with --quiet. */
function plaintext(args: ParsedArgs, what: string): boolean {
  if (!flag(args, 'insecure-plaintext')) return false
  process.stderr.write(`pic: ${plaintextWarning(what)}\n`)
  return true
}

async function listenOn(args: ParsedArgs, cmd: Command, name: 'server' | 'dealer'): Promise<ListenOn> {
  const where = { port: port(args, cmd), host: str(args, 'host'), timeoutMs: timeout(args, cmd) }
  if (plaintext(args, name)) {
    if (str(args, 'cert') !== undefined || str(args, 'key') !== undefined) throw new UsageError('--cert and --key need TLS (drop --insecure-plaintext)', cmd)
    return { ...where, insecurePlaintext: true }
  }
  try {
    return { ...where, identity: await loadIdentity({ cert: str(args, 'cert'), key: str(args, 'key'), stateDir: stateDir(args), name, log: logger(args) }) }
  } catch (e) {
    throw new PicError((e as Error).message)
  }
}

/** Once listening: the certificate line (always on stderr: peers pin it), then the address. */
export function announce(args: ParsedArgs, what: string, fingerprint: string | undefined, port: number): void {
  if (fingerprint) process.stderr.write(`pic: certificate sha256 ${fingerprint}\n`)
  logger(args)(`${what} listening on ${str(args, 'host') ?? '127.0.0.1'}:${port}`)
}

/** How a connecting party trusts `peer`: the pin --PEER-fingerprint, else STATE_DIR/known_hosts. */
function trustOf(args: ParsedArgs, cmd: Command, peer: 'server' | 'dealer'): Trust {
  const pin = str(args, `${peer}-fingerprint`)
  let fingerprint: string | undefined
  try {
    fingerprint = pin === undefined ? undefined : parseFingerprint(pin, `--${peer}-fingerprint`)
  } catch (e) {
    throw new UsageError((e as Error).message, cmd)
  }
  return { fingerprint, knownHosts: knownHostsIn(stateDir(args)), log: logger(args) }
}

/** The security of a connecting party's links (query; serve to the dealer). */
export function connectSecurity(args: ParsedArgs, cmd: Command, what: string): { insecurePlaintext: boolean; serverTrust: Trust; dealerTrust: Trust } {
  return { insecurePlaintext: plaintext(args, what), serverTrust: trustOf(args, cmd, 'server'), dealerTrust: trustOf(args, cmd, 'dealer') }
}

const DEALER_OPTION = {
  dealer: { type: 'string' as const, arg: 'HOST:PORT', help: 'the trusted dealer of the offline phase (without it the two parties run it themselves; both must agree)' },
  'dealer-fingerprint': { type: 'string' as const, arg: 'HEX', help: "pin the dealer's certificate (SHA-256 that pic dealer prints)" },
}
export type { ConnectSecurity }

function port(args: ParsedArgs, cmd: Command): number {
  const p = Number(need(args, 'port', cmd))
  if (!Number.isInteger(p) || p < 0 || p > 65535) throw new UsageError(`--port must be an integer from 0 to 65535`, cmd)
  return p
}

function timeout(args: ParsedArgs, cmd: Command): number | undefined {
  const t = str(args, 'timeout')
  if (t === undefined) return undefined
  const v = Number(t)
  if (!Number.isInteger(v) || v < 1) throw new UsageError('--timeout must be a positive integer (milliseconds)', cmd)
  return v
}


/** Resolves on SIGINT or SIGTERM. */
function interrupted(): Promise<void> {
  return new Promise((resolve) => {
    process.once('SIGINT', () => resolve())
    process.once('SIGTERM', () => resolve())
  })
}

export const dealer: Command = {
  name: 'dealer',
  summary: 'Run the optional trusted dealer that supplies the offline correlations of two-party (mpc) sessions started with --dealer (without it, serve and query make them themselves).',
  usage: 'pic dealer --port P [--host H] [--timeout MS] [--cert FILE --key FILE] [--state-dir DIR] [--insecure-plaintext]',
  options: {
    ...LISTEN_OPTIONS,
  },
  async run(args) {
    const log = logger(args)
    const h = await runDealer({ ...(await listenOn(args, dealer, 'dealer')), log })
    announce(args, 'dealer', h.fingerprint, h.port)
    await interrupted()
    await h.close()
  },
}

/**
 * Why a schedule does not match the model as serve compiled it: the compile options that change the
 * graph (--approx with its --calib, --approx-relu, --keep-relu, --relu-budget, --maxpool) must be
 * those of `pic compile`; what the schedule records of them (approximated layers, calibration) is said.
 */
function scheduleMismatch(file: string, model: string, json: unknown, args: ParsedArgs): string {
  const s = json as { ranges?: { source?: string; samples?: number }; reluCount?: number; layers?: { kind?: string; name?: string }[] }
  const poly = (s.layers ?? []).filter((l) => l.kind === 'poly').length
  const hints: string[] = []
  if (s.ranges?.source === 'calibration' && str(args, 'calib') === undefined) hints.push(`it was compiled with --calib (${s.ranges.samples} samples), this serve has none`)
  if (poly > 0 && str(args, 'approx') === undefined) hints.push(`it has approximated layers, this serve has no --approx`)
  const polyRelu = (s.layers ?? []).some((l) => l.kind === 'poly' && /relu/i.test(l.name ?? ''))
  if (polyRelu && s.reluCount === 0 && !flag(args, 'approx-relu')) hints.push('its ReLUs are polynomials (compiled with --approx-relu), this serve has no --approx-relu')
  if ((s.reluCount ?? 0) > 0 && flag(args, 'approx-relu')) hints.push(`it keeps ${s.reluCount} ReLUs for garbled circuits (compiled without --approx-relu), this serve has --approx-relu`)
  return `${file}: the schedule does not match ${model} as compiled now: pic serve compiles the model again and needs the options the schedule was compiled with (--approx and --calib, --approx-relu, --keep-relu, --relu-budget, --maxpool)${hints.length ? `; ${hints.join('; ')}` : ''}`
}

export const serve: Command = {
  name: 'serve',
  summary: 'Run the server of private inference (an mpc schedule or a CKKS plan): holds the model, answers pic query sessions.',
  usage: 'pic serve MODEL (--schedule S [--dealer HOST:PORT [--dealer-fingerprint HEX]] | --plan PLAN) --port P [--cert FILE --key FILE] [--state-dir DIR] [--insecure-plaintext] [--approx SPEC --calib C.npy] [--once]',
  options: {
    schedule: { type: 'string', arg: 'S', help: 'the schedule from pic compile MODEL --backend mpc -o S (same options)' },
    plan: { type: 'string', arg: 'PLAN', help: 'a CKKS plan from pic compile MODEL --backend ckks -o PLAN, or an mpc schedule (detected by its format)' },
    ...LISTEN_OPTIONS,
    ...DEALER_OPTION,
    once: { type: 'boolean', help: 'exit after the first session (status 1 if it failed)' },
    'refresh-mask': { type: 'string', arg: 'on|off', help: "CKKS plans with refreshes: 'on' (default: the client decrypts masked values: statistical distance at most 2^-40 per refresh) or 'off' (the client sees the intermediate activations; warned at every session)" },
    'max-sessions': { type: 'string', arg: 'N', help: 'sessions served at once (default 4); further connections get an error and are closed' },
    // mpc: the options that shape the graph serve compiles again (the schedule's own params are used)
    ...APPROX_OPTIONS,
    'approx-relu': BACKEND_OPTIONS['approx-relu'],
  },
  async run(args) {
    const model = onePositional(args, serve, 'MODEL')
    const log = logger(args)
    const planFile = str(args, 'plan')
    if (planFile !== undefined && str(args, 'schedule') !== undefined) throw new UsageError('give one of --plan and --schedule', serve)
    const file = planFile ?? need(args, 'schedule', serve)
    const json = readJSONFile(file, planFile !== undefined ? 'plan' : 'schedule')
    const ms = str(args, 'max-sessions')
    if (ms !== undefined && !(Number.isInteger(Number(ms)) && Number(ms) >= 1)) throw new UsageError('--max-sessions must be a positive integer', serve)
    const on: ListenOn = { ...(await listenOn(args, serve, 'server')), ...(ms !== undefined ? { maxSessions: Number(ms) } : {}) }
    if ((json as { format?: unknown }).format === 'pic-ckks-plan') return serveCkks(args, serve, model, file, json as CkksPlanFile, on)
    const schedule = parseSchedule(json, file)
    checkCompileOptions(args, 'mpc', serve)
    log(`compiling ${model} again (the server holds the weights; the schedule fixes the protocol)...`)
    const { compiled: g } = compileFor(loadModel(model), mpcBackend, args)
    let ended: (e: Error | undefined) => void = () => {}
    const firstEnd = new Promise<Error | undefined>((resolve) => (ended = resolve))
    const dealerTrust = trustOf(args, serve, 'dealer')
    let h: Awaited<ReturnType<typeof runServe>>
    log(`preparing ${schedule.steps.length + schedule.outputs.length + schedule.steps.filter((st) => st.kind === "mul").length} linear operator(s) in the ring (checking the schedule against the model, quantizing the weights)...`)
    try {
      const dealerAt = str(args, 'dealer')
      if (dealerAt === undefined) log('offline phase: two-party (no dealer): HE for the linear layers, OT extension for the circuits and products')
      h = await runServe(g, schedule, { ...on, dealer: dealerAt, dealerTrust, log, onSessionEnd: (e) => ended(e) })
    } catch (e) {
      // serve compiles MODEL again: a different graph than the schedule's means different compile options
      if (e instanceof Error && /fingerprints differ/.test(e.message)) throw new PicError(scheduleMismatch(file, model, json, args))
      throw e
    }
    announce(args, 'server', h.fingerprint, h.port)
    const failed = flag(args, 'once') ? await Promise.race([firstEnd, interrupted().then(() => undefined)]) : await interrupted().then(() => undefined)
    await h.close()
    return failed ? 1 : 0
  },
}

export const query: Command = {
  name: 'query',
  summary: 'Run the client of private inference (an mpc schedule or a CKKS client part) on every image of X and write the outputs.',
  usage: 'pic query (S [--dealer HOST:PORT [--dealer-fingerprint HEX]] | PLAN.client.json [--refresh client|none] [--key-sizes]) --connect HOST:PORT [--server-fingerprint HEX] --input X.npy [--output Y.npy] [--labels Y.npy] [--json] [--state-dir DIR] [--insecure-plaintext]',
  options: {
    connect: { type: 'string', arg: 'HOST:PORT', help: 'the server' },
    'server-fingerprint': { type: 'string', arg: 'HEX', help: "pin the server's certificate (SHA-256 that pic serve prints); without it the first one seen is recorded in STATE_DIR/known_hosts" },
    ...DEALER_OPTION,
    input: { type: 'string', arg: 'X.npy', help: 'inputs, batch first; each image is one inference' },
    output: { type: 'string', short: 'o', arg: 'Y.npy', help: 'outputs (logits)' },
    ...LABELS_OPTION,
    refresh: { type: 'string', arg: 'MODE', help: "CKKS: 'client' (default: answer the plan's refresh requests, seeing those intermediate values) or 'none' (refuse plans with refreshes)" },
    'key-sizes': { type: 'boolean', help: 'CKKS: also measure the keys as plain (unseeded) serializations for the report (one more key generation)' },
    ...NET_OPTIONS,
  },
  async run(args) {
    const file = onePositional(args, query, 'S (the schedule) or PLAN.client.json')
    const json = readJSONFile(file, 'schedule')
    const ckks = (json as { format?: unknown }).format === CLIENT_FORMAT
    const schedule = ckks ? undefined : parseSchedule(json, file)
    // before any connection: the inputs are finite, the output can be written
    const x = readFiniteNpy(need(args, 'input', query))
    const labels = readLabels(str(args, 'labels'), x.shape[0])
    const out = str(args, 'output')
    if (out) checkWritable(out)
    else if (!flag(args, 'json')) logger(args)('note: no --output: the outputs are not written, only the summary')
    if (!schedule) return queryCkksCommand(args, query, file, json, timeout(args, query), connectSecurity(args, query, 'client'))
    const sec = connectSecurity(args, query, 'client')
    const { output, report } = await runQuery(schedule, x, { connect: need(args, 'connect', query), dealer: str(args, 'dealer'), timeoutMs: timeout(args, query), ...sec, log: logger(args) })
    if (out) writeNpy(out, output)
    const acc = labels ? labelAccuracy(output, labels) : undefined
    if (flag(args, 'json')) printJSON({ backend: 'mpc', schedule: file, ...report, ...(acc ? { accuracy: acc.accuracy, correct: acc.correct } : {}) })
    else
      logger(args)(
        `${report.images} image(s): online ${report.perImage.bytes.online} B and ${report.perImage.rounds} rounds per image (predicted ${report.predicted.bytes.online} B, ${report.predicted.rounds}), offline ${report.perImage.bytes.offline} B, ${report.latencyMs.perImage} ms per image${accuracyText(acc)}`,
      )
  },
}
