/**
 * Compiling from code: `compile(graph, backend, options)` is `pic compile` without files. It runs the
 * backend's pipeline under the options (the same context `pic compile` builds from its flags: the
 * CLI's `compileFor` calls `compileGraph` below, so there is one path), then the backend's `lower`,
 * and returns what `pic compile -o FILE` writes: the plan (FILE), its sidecar (FILE.bin) and, for
 * CKKS, the public client part (FILE.client.json), plus the plan with its constants attached, as
 * `runPlan`, `simulatePlan` and `startCkksServer` take it.
 *
 * Options mirror the flags (`approx` is --approx, `calib` the --calib tensor, `approxRelu` is
 * --approx-relu, ...); `backendOptions` reach a plugin backend's `pipeline` and `lower` unchanged
 * (in `cx.options`).
 */
import { BACKENDS, loadBackend } from '../backends/index.js'
import type { Backend } from '../backends/backend.js'
import { attachSidecar, type CkksPlanFile } from '../backends/ckks/index.js'
import { clientPartOf, type ClientPart } from '../backends/ckks/service.js'
import type { MpcSchedule } from '../backends/mpc/index.js'
import { withBatchSize } from '../ir/builder.js'
import { PicError } from '../ir/errors.js'
import { graphInputs, type Graph } from '../ir/graph.js'
import type { Accelerator } from '../ir/interpret.js'
import type { GraphJSON, Sidecar } from '../ir/serialize.js'
import type { Tensor } from '../ir/tensor.js'
import { parseApprox } from '../passes/approximate.js'
import { parseNormSpec, parseSoftmaxSpec } from '../passes/approximate-normalizations.js'
import { passContext, runPipeline, type Pass, type PassContext } from '../passes/pass.js'

export interface CompileOptions {
  /** --approx: 'none' (default), 'hermite:D', 'chebyshev:D', 'minimax:D', 'wls:D', 'ola[:BUDGET]'. */
  approx?: string
  /** --approx-norm: LayerNorm by 'newton:D,K' (default newton:3,3 under `approx`) or 'none'. */
  approxNorm?: string
  /** --approx-softmax: 'exp:K' | 'poly:D' | '2quad[:C]' | 'thex' [+newton:D,K] (default exp:12+newton:0,30 under `approx`) or 'none'. */
  approxSoftmax?: string
  /** --calib: calibration inputs (batch first); needed by `approx` and `reluBudget`, and checks value ranges. */
  calib?: Tensor
  /** --maxpool under `approx`: 'poly' (default) or 'avg'. */
  maxpool?: 'poly' | 'avg'
  /** --keep-relu: approximate every activation but ReLU (default for mpc). */
  keepRelu?: boolean
  /** --approx-relu: with mpc and `approx`, approximate ReLUs too. */
  approxRelu?: boolean
  /** --relu-budget: a ReLU count or a fraction (0..1) to keep. */
  reluBudget?: number | string
  /** CKKS: --security, --refresh, --refresh-at. */
  security?: 128 | 192 | 256
  refresh?: 'client' | 'none'
  refreshAt?: 'cost' | 'latest'
  /** CKKS --batch: images per inference, or 'auto'. */
  batch?: number | 'auto'
  /** --range-margin (default 2) and mpc's --truncation-limit (default 2^-12). */
  rangeMargin?: number
  truncationLimit?: number
  /** Fast kernels for the runs over `calib` (`ortAccelerator()`); default the float64 interpreter. */
  accel?: Accelerator
  /** Progress and notes (default: none). */
  log?: (msg: string) => void
  /** Called with the IR after each pass (--trace). */
  trace?: (pass: Pass, g: Graph) => void
  /** Passes to run after the backend's pipeline. */
  extra?: readonly Pass[]
  /** More backend options, in `cx.options` as given: a plugin's own, CKKS's `logN`, `minLogScale`, `heap`. */
  backendOptions?: Readonly<Record<string, unknown>>
}

/**
 * The backend's pipeline (then `o.extra`) run over `g` under the options; the context carries the
 * pass options as `cx.options` and the passes' findings as `cx.report`. Options over the backend's
 * defaults: a backend that keeps ReLUs exact (mpc) does unless `approxRelu`; OLA prices degrees
 * with the backend's cost model.
 */
export function compileGraph(g: Graph, backend: Pick<Backend, 'pipeline' | 'defaults'>, o: CompileOptions = {}): { compiled: Graph; cx: PassContext } {
  const approx = o.approx ?? 'none'
  parseApprox(approx)
  if (o.approxNorm !== undefined) parseNormSpec(o.approxNorm)
  if (o.approxSoftmax !== undefined) parseSoftmaxSpec(o.approxSoftmax)
  const norms = [o.approxNorm, o.approxSoftmax].some((s) => s !== undefined && s !== 'none')
  if ((approx !== 'none' || o.reluBudget !== undefined || norms) && !o.calib)
    throw new PicError(`calibration data (calib) is required with ${approx !== 'none' ? `approx '${approx}'` : norms ? 'approxNorm or approxSoftmax' : 'reluBudget'}`)
  const options = {
    ...o.backendOptions,
    approx,
    approxNorm: o.approxNorm,
    approxSoftmax: o.approxSoftmax,
    maxpool: o.maxpool ?? 'poly',
    keepRelu: o.keepRelu === true || (backend.defaults?.keepRelu === true && o.approxRelu !== true),
    reluBudget: o.reluBudget === undefined ? undefined : String(o.reluBudget),
    security: o.security === undefined ? undefined : String(o.security),
    refresh: o.refresh,
    refreshAt: o.refreshAt,
    batch: o.batch === undefined ? undefined : String(o.batch),
    rangeMargin: o.rangeMargin,
    truncationLimit: o.truncationLimit,
    costModel: backend.defaults?.costModel,
  }
  const log = o.log ?? (() => {})
  const cx = passContext(options, { calib: o.calib, log, accel: o.calib ? o.accel : undefined })
  const compiled = runPipeline(g, [...backend.pipeline(cx.options), ...(o.extra ?? [])], cx, { trace: o.trace })
  // mpc keeps ReLUs (and MaxPool) for garbled circuits: an approximation that then fits nothing is said so
  if (approx !== 'none' && cx.options.keepRelu === true && !(cx.report.layers as unknown[] | undefined)?.length)
    log(`note: --approx ${approx} approximated no activation: ReLU and MaxPool stay exact (garbled circuits)${o.keepRelu ? '' : '; add --approx-relu to approximate them too'}`)
  return { compiled, cx }
}

/** What `compile` returns: what `pic compile -o FILE` writes, and the compiled graph. */
export interface Compiled<Plan = unknown> {
  /** The backend's name. */
  backend: string
  /** The graph after the pipeline (mpc: what `startMpcServer` serves). */
  graph: Graph
  /** The plan or schedule, plain JSON (FILE). */
  plan: Plan
  /** Binary constants the plan refers to by offset (FILE.bin), when it has any. */
  sidecar?: Sidecar
  /** What `pic compile --json` prints besides `backend`. */
  summary: Record<string, unknown>
  /** The passes' findings (fitted layers, ReLU budget, ...). */
  report: Record<string, unknown>
  /** The text `pic compile` prints without -o. */
  print(): string
}

export interface CkksCompiled extends Compiled<CkksPlanFile> {
  /** The plan with the sidecar's constants attached: for runPlan, simulatePlan, startCkksServer. */
  runnable: CkksPlanFile
  /** The public part a client queries with (FILE.client.json): for queryCkks. */
  clientPart: ClientPart
}

/**
 * Compile `graph` for a backend: 'ir', 'ckks', 'mpc', a plugin module path (loaded as
 * `--backend PATH` loads it) or a Backend object. Errors the user can cause are PicErrors.
 */
export async function compile(graph: Graph, backend: 'ckks', options?: CompileOptions): Promise<CkksCompiled>
export async function compile(graph: Graph, backend: 'mpc', options?: CompileOptions): Promise<Compiled<MpcSchedule>>
export async function compile(graph: Graph, backend: 'ir', options?: CompileOptions): Promise<Compiled<GraphJSON>>
export async function compile<Plan = unknown>(graph: Graph, backend: string | Backend<Plan>, options?: CompileOptions): Promise<Compiled<Plan>>
export async function compile(graph: Graph, spec: string | Backend, o: CompileOptions = {}): Promise<Compiled> {
  const backend = typeof spec === 'string' ? await loadBackend(spec) : spec
  const g = batched(graph, o.batch, backend.name)
  const { compiled, cx } = compileGraph(g, backend, o)
  const { plan, sidecar } = backend.lower(compiled, cx)
  const out: Compiled = {
    backend: backend.name,
    graph: compiled,
    plan,
    ...(sidecar && sidecar.length > 0 ? { sidecar } : {}),
    summary: backend.summary(plan, compiled),
    report: cx.report,
    print: () => backend.print(plan, sidecar),
  }
  if (backend !== BACKENDS.ckks) return out
  const bytes = sidecar && sidecar.length > 0 ? Buffer.concat(sidecar as Uint8Array[]) : undefined
  const runnable = attachSidecar(plan as CkksPlanFile, bytes).plan
  return { ...out, runnable, clientPart: clientPartOf(runnable) } as CkksCompiled
}

/** `batch` K > 1 binds the symbolic batch dimension to K (CKKS only); 'auto' is the CKKS backend's. */
function batched(g: Graph, batch: number | 'auto' | undefined, backend: string): Graph {
  if (batch === undefined || batch === 'auto' || batch === 1) return g
  if (!Number.isInteger(batch) || batch < 1 || batch > 65536) throw new PicError(`batch must be 'auto' or a whole number from 1 to 65536, got ${String(batch)}`)
  if (backend !== 'ckks') throw new PicError(`batch is for the ckks backend (packing several images into one ciphertext), not ${backend}`)
  const bound = withBatchSize(g, batch)
  if (!bound) throw new PicError(`input '${graphInputs(g)[0]?.name}' has a fixed batch; batch needs a symbolic first dimension`)
  return bound
}
