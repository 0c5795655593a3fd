/**
 * The two-party runtime commands of the mpc backend:
 *   pic dealer --port P                                   trusted dealer for the offline phase
 *   pic serve MODEL --schedule S --port P --dealer H:P    the server party (holds the weights)
 *   pic query S --connect H:P --dealer H:P --input X.npy [--output Y.npy] [--json]   the client party
 * dealer and serve run until interrupted (serve --once: until the first session ends).
 */
import { mpcBackend, parseSchedule, runDealer, runQuery, runServe } from '../backends/mpc/index.js'
import { COMPILE_OPTIONS, compileFor, flag, logger, need, onePositional, printJSON, str, UsageError, type Command, type ParsedArgs } from './cli-kit.js'
import { loadModel, readJSONFile } from './model.js'
import { queryCkksCommand, serveCkks } from './cmd-ckks.js'
import type { CkksPlanFile } from '../backends/ckks/index.js'
import { CLIENT_FORMAT } from '../backends/ckks/clientpart.js'
import { readNpy, writeNpy } from './npy.js'

const NET_OPTIONS = {
  timeout: { type: 'string' as const, arg: 'MS', help: 'give up on a silent peer after this many milliseconds (default 30000)' },
}

/** The options of a party that listens (dealer, server). */
const LISTEN_OPTIONS = {
  port: { type: 'string' as const, arg: 'P', help: 'TCP port to listen on (0 picks a free one)' },
  host: { type: 'string' as const, arg: 'H', help: 'address to listen on (default 127.0.0.1)' },
  ...NET_OPTIONS,
}

/** Where a listening party listens, from its options. */
function listenOn(args: ParsedArgs, cmd: Command): { port: number; host?: string; timeoutMs?: number } {
  return { port: port(args, cmd), host: str(args, 'host'), timeoutMs: timeout(args, cmd) }
}

const DEALER_OPTION = { dealer: { type: 'string' as const, arg: 'HOST:PORT', help: 'the dealer' } }

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
  summary: 'Run the trusted dealer that supplies the offline correlations of two-party (mpc) sessions.',
  usage: 'pic dealer --port P [--host H] [--timeout MS]',
  options: {
    ...LISTEN_OPTIONS,
  },
  async run(args) {
    const log = logger(args)
    const h = await runDealer({ ...listenOn(args, dealer), log })
    log(`dealer listening on ${str(args, 'host') ?? '127.0.0.1'}:${h.port}`)
    await interrupted()
    await h.close()
  },
}

export const serve: Command = {
  name: 'serve',
  summary: 'Run the server of private inference (an mpc schedule or a CKKS plan): holds the model, answers pic query sessions.',
  usage: 'pic serve MODEL (--schedule S --dealer HOST:PORT | --plan PLAN) --port P [--approx SPEC --calib C.npy] [--once]',
  options: {
    schedule: { type: 'string', arg: 'S', help: 'the schedule from pic compile MODEL --backend mpc -o S (same options)' },
    plan: { type: 'string', arg: 'PLAN', help: 'a CKKS plan from pic compile MODEL --backend ckks -o PLAN, or an mpc schedule (detected by its format)' },
    ...LISTEN_OPTIONS,
    ...DEALER_OPTION,
    once: { type: 'boolean', help: 'exit after the first session (status 1 if it failed)' },
    ...COMPILE_OPTIONS,
  },
  async run(args) {
    const model = onePositional(args, serve, 'MODEL')
    const log = logger(args)
    const planFile = str(args, 'plan')
    if (planFile !== undefined && str(args, 'schedule') !== undefined) throw new UsageError('give one of --plan and --schedule', serve)
    const file = planFile ?? need(args, 'schedule', serve)
    const json = readJSONFile(file, planFile !== undefined ? 'plan' : 'schedule')
    if ((json as { format?: unknown }).format === 'pic-ckks-plan') return serveCkks(args, serve, model, file, json as CkksPlanFile, listenOn(args, serve))
    const schedule = parseSchedule(json, file)
    const { compiled: g } = compileFor(loadModel(model), mpcBackend, args)
    let ended: (e: Error | undefined) => void = () => {}
    const firstEnd = new Promise<Error | undefined>((resolve) => (ended = resolve))
    const h = await runServe(g, schedule, { ...listenOn(args, serve), dealer: need(args, 'dealer', serve), log, onSessionEnd: (e) => ended(e) })
    log(`server listening on ${str(args, 'host') ?? '127.0.0.1'}:${h.port}`)
    const failed = flag(args, 'once') ? await Promise.race([firstEnd, interrupted().then(() => undefined)]) : await interrupted().then(() => undefined)
    await h.close()
    return failed ? 1 : 0
  },
}

export const query: Command = {
  name: 'query',
  summary: 'Run the client of private inference (an mpc schedule or a CKKS client part) on every image of X and write the outputs.',
  usage: 'pic query (S --dealer HOST:PORT | PLAN.client.json [--refresh client|none] [--key-sizes]) --connect HOST:PORT --input X.npy [--output Y.npy] [--json]',
  options: {
    connect: { type: 'string', arg: 'HOST:PORT', help: 'the server' },
    ...DEALER_OPTION,
    input: { type: 'string', arg: 'X.npy', help: 'inputs, batch first; each image is one inference' },
    output: { type: 'string', short: 'o', arg: 'Y.npy', help: 'outputs (logits)' },
    refresh: { type: 'string', arg: 'MODE', help: "CKKS: 'client' (default: answer the plan's refresh requests, seeing those intermediate values) or 'none' (refuse plans with refreshes)" },
    'key-sizes': { type: 'boolean', help: 'CKKS: also measure the keys as plain (unseeded) serializations for the report (one more key generation)' },
    ...NET_OPTIONS,
  },
  async run(args) {
    const file = onePositional(args, query, 'S (the schedule) or PLAN.client.json')
    const json = readJSONFile(file, 'schedule')
    if ((json as { format?: unknown }).format === CLIENT_FORMAT) return queryCkksCommand(args, query, file, json, timeout(args, query))
    const schedule = parseSchedule(json, file)
    const x = readNpy(need(args, 'input', query))
    const { output, report } = await runQuery(schedule, x, { connect: need(args, 'connect', query), dealer: need(args, 'dealer', query), timeoutMs: timeout(args, query) })
    const out = str(args, 'output')
    if (out) writeNpy(out, output)
    if (flag(args, 'json')) printJSON({ backend: 'mpc', schedule: file, ...report })
    else
      logger(args)(
        `${report.images} image(s): online ${report.perImage.bytes.online} B and ${report.perImage.rounds} rounds per image (predicted ${report.predicted.bytes.online} B, ${report.predicted.rounds}), offline ${report.perImage.bytes.offline} B, ${report.latencyMs.perImage} ms per image`,
      )
  },
}
