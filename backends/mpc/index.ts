/**
 * The `mpc` backend: Delphi-style hybrid two-party inference. `mpcBackend` lowers a graph to a
 * schedule (plain JSON with the cost model); `runDealer`, `runServe` and `runQuery` are the three
 * runtime commands (`pic dealer`, `pic serve`, `pic query`) over TCP.
 */
import type { Graph } from '../../ir/graph.js'
import type { Tensor } from '../../ir/tensor.js'
import type { PassContext } from '../../passes/pass.js'
import { PIPELINES } from '../../passes/pipelines.js'
import type { Backend } from '../backend.js'
import { startDealer, type DealerHandle, type DealerOptions } from './dealer.js'
import { parseEndpoint, ProtocolError } from './net.js'
import { prepareServer, query, startServer, type QueryOptions, type QueryReport, type ServeOptions, type ServerHandle } from './party.js'
import { printSchedule } from './print.js'
import { lowerMpc, type LowerOptions } from './schedule.js'
import { MpcLowerError, type MpcSchedule } from './types.js'

export { lowerMpc, printSchedule, MpcLowerError, ProtocolError }
export type { MpcSchedule, QueryReport, ServerHandle, DealerHandle }

function lowerOptions(options: Readonly<Record<string, unknown>>): LowerOptions {
  const num = (k: string) => (typeof options[k] === 'number' ? (options[k] as number) : undefined)
  return {
    fracBits: num('fracBits'), weightFracBits: num('weightFracBits'), intBits: num('intBits'),
    rangeMargin: num('rangeMargin'), truncationLimit: num('truncationLimit'),
  }
}

/** The per-inference summary `pic compile --backend mpc --json` prints. */
export function scheduleSummary(s: MpcSchedule): Record<string, unknown> {
  return {
    reluCount: s.reluCount,
    comparisons: s.comparisons,
    triples: s.triples,
    andGates: s.andGates,
    rounds: s.rounds,
    bytes: s.bytes,
    latencyMs: s.latencyMs,
    offlineLatencyMs: s.offlineLatencyMs,
    twoParty: s.twoParty,
    params: s.params,
    trust: s.trust,
    ranges: s.ranges,
    truncation: s.truncation,
    layers: s.layers,
  }
}

export const mpcBackend: Backend<MpcSchedule> = {
  name: 'mpc',
  doc: 'Delphi-style two-party schedule: linear layers on additive shares, ReLU and max pooling in garbled circuits, polynomials with Beaver squares',
  pipeline: (options) => PIPELINES.mpc(options),
  lower: (g: Graph, cx: PassContext) => ({ plan: lowerMpc(g, { ...lowerOptions(cx.options), calib: cx.calib, accel: cx.accel, log: (m) => cx.log(m) }) }),
  print: (plan) => printSchedule(plan),
  summary: (plan) => scheduleSummary(plan),
  defaults: { keepRelu: true },
}

/** Check that parsed JSON is a schedule this runtime understands. */
export function parseSchedule(json: unknown, file = 'schedule'): MpcSchedule {
  const s = json as MpcSchedule
  if (!s || typeof s !== 'object' || s.format !== 'pic.mpc.schedule/1' || !Array.isArray(s.steps) || !Array.isArray(s.sources) || !s.params)
    throw new ProtocolError(`${file}: not an mpc schedule (compile one with 'pic compile MODEL --backend mpc -o FILE')`)
  return s
}

/** `pic dealer --port P`: serve offline correlations until closed. */
export const runDealer: (o: DealerOptions) => Promise<DealerHandle> = startDealer

/** What `pic serve` takes: the server's options with the dealer as HOST:PORT (none: the two-party offline phase). */
export type ServeCommand = Omit<ServeOptions, 'dealer'> & { dealer?: string }

/**
 * `pic serve MODEL --schedule S --port P --dealer HOST:PORT`: `graph` is the model after the same
 * pipeline the schedule was compiled with (the schedule's fingerprint is checked against it).
 */
export async function runServe(graph: Graph, schedule: MpcSchedule, o: ServeCommand): Promise<ServerHandle> {
  const model = prepareServer(graph, schedule)
  return startServer(model, { ...o, dealer: o.dealer === undefined ? undefined : parseEndpoint(o.dealer) })
}

export interface QueryCommand extends Omit<QueryOptions, 'server' | 'dealer'> {
  /** HOST:PORT of the server. */
  connect: string
  /** HOST:PORT of the dealer (none: the two-party offline phase). */
  dealer?: string
}

/** `pic query S --connect HOST:PORT --dealer HOST:PORT --input X.npy`: outputs and the JSON report. */
export function runQuery(schedule: MpcSchedule, input: Tensor, o: QueryCommand): Promise<{ output: Tensor; report: QueryReport }> {
  const { connect, dealer, ...rest } = o
  return query(schedule, input, { ...rest, server: parseEndpoint(connect), dealer: dealer === undefined ? undefined : parseEndpoint(dealer) })
}
